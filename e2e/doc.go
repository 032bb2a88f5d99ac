// Package e2e holds the end-to-end tests of the eventbus command. They build
// the real binary once, run `eventbus run` on the apps in examples/ and in
// testdata/ as separate processes (an embedded broker on a free loopback
// port with its store in a temporary directory), and observe what the apps
// do only from outside: with a NATS client on the app's broker, the
// process's exit status and log output, and its metrics endpoint. Every
// test of an app's behaviour runs twice from one case: with the plugin in
// the app's process (the default) and out of process (the plugin
// re-executed from the same binary, over gRPC).
//
// The package has no code besides its tests; run them with
//
//	go test ./e2e/
package e2e
