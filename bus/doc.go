// Package bus declares the domain of the event bus: messages, streams,
// consumers, and the small interfaces every backend implements — publishing,
// pull-consuming, continuous subscription, settlement by token and
// stream/consumer management.
//
// bus knows nothing of plugins, YAML or a particular broker. Backends live in
// sub-packages (bus/jetstream, bus/postgres) and prove their behaviour by
// running the conformance suite in bus/bustest.
package bus
