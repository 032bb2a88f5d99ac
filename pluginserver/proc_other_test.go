//go:build !unix

package pluginserver_test

import "os"

// processGone reports whether no process with pid exists any more.
func processGone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	_ = p.Release()
	return false
}
