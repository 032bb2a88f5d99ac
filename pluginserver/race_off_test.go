//go:build !race

package pluginserver_test

// raceEnabled: the tests run without the race detector.
const raceEnabled = false
