// Package e2e holds the end-to-end tests of the eventbus command. They build
// the real binary once, run `eventbus run` on the apps in examples/ and in
// testdata/ as separate processes (the plugin re-executed from the same
// binary, an embedded broker on a free loopback port with its store in a
// temporary directory), and observe what the apps do only from outside: with
// a NATS client on the app's broker, the process's exit status and log
// output, and its metrics endpoint.
//
// The package has no code besides its tests; run them with
//
//	go test ./e2e/
package e2e
