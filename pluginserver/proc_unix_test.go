//go:build unix

package pluginserver_test

import (
	"errors"
	"syscall"
)

// processGone reports whether no process with pid exists any more (a
// zombie still counts as existing).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
