package embedded

import (
	"errors"
	"strconv"
	"strings"
)

// Errors returned by Start, matched with errors.Is. Configuration errors wrap
// bus.ErrInvalidConfig and name the offending field.
var (
	// ErrPortInUse: another process already listens on the configured port.
	// Stop that process, or set Config.Port to a free port (-1 picks one).
	// The underlying listen error stays in the chain.
	ErrPortInUse = errors.New("port in use")

	// ErrStart: the server did not come up (it reported a fatal error, or
	// the context ended before it was ready). Nothing is left running.
	ErrStart = errors.New("embedded nats-server did not start")

	// ErrShutdown: the server is shut down; it cannot hand out connections.
	ErrShutdown = errors.New("embedded nats-server is shut down")

	// ErrUnknownServer: a Cluster was asked about a server name it does not
	// have. Cluster.Names lists the ones it has.
	ErrUnknownServer = errors.New("no such server in the cluster")

	// ErrNoLeader: the cluster has no leader for what was asked about yet,
	// usually because an election is under way; the Cluster.Wait methods
	// wait for one.
	ErrNoLeader = errors.New("no leader")

	// ErrStoreInUse: another server, in this process or another, runs on
	// the store directory. Two servers on one directory would overwrite
	// each other's messages, so the second one does not start. Give it
	// another directory, or connect to the server already running there.
	// The error is a *StoreInUseError, which says who holds the directory.
	ErrStoreInUse = errors.New("store directory in use")
)

// portInUseError reports a taken port: its message says which port, and it
// matches both ErrPortInUse and the listen error that revealed it.
type portInUseError struct {
	port int
	err  error
}

func (e *portInUseError) Error() string {
	return "port " + strconv.Itoa(e.port) + " is in use: " + e.err.Error() +
		" (stop the process listening there, or choose another port; -1 picks a free one)"
}

func (e *portInUseError) Unwrap() []error { return []error{ErrPortInUse, e.err} }

// StoreInUseError reports a store directory another server holds. It
// matches ErrStoreInUse.
type StoreInUseError struct {
	// Dir is the store directory, made absolute.
	Dir string
	// PID is the process that holds it; 0 when it could not be read.
	PID int
	// URL is where that process's server serves clients; "" when unknown.
	URL string
}

func (e *StoreInUseError) Error() string {
	var b strings.Builder
	b.WriteString("store directory " + e.Dir + " is in use by ")
	if e.PID > 0 {
		b.WriteString("process " + strconv.Itoa(e.PID))
	} else {
		b.WriteString("another process")
	}
	if e.URL != "" {
		b.WriteString(", whose embedded broker serves " + e.URL)
	}
	b.WriteString(" (" + LockFileName + " is locked): two brokers on one store would overwrite each other's messages; use another store directory, or stop that process")
	return b.String()
}

func (e *StoreInUseError) Unwrap() error { return ErrStoreInUse }
