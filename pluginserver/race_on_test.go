//go:build race

package pluginserver_test

// raceEnabled: the tests run with the race detector, and so does the plugin
// binary they build.
const raceEnabled = true
