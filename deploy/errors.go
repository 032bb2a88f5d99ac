package deploy

import "errors"

// Errors returned by ParseApp and Render, matched with errors.Is; each is
// wrapped with the file, module or option it is about.
var (
	// ErrApp: the app YAML cannot be deployed as written (no broker, a
	// broker field out of range, a URL the rendered cluster would not
	// replace). The message names the file, line and field to change.
	ErrApp = errors.New("app cannot be deployed")

	// ErrTarget: the deploy target is not one Render can render, or the
	// command line and the app name different ones. The message lists the
	// targets it can render.
	ErrTarget = errors.New("unsupported deploy target")

	// ErrOptions: an option of Render is missing or invalid; the message
	// names it.
	ErrOptions = errors.New("invalid deploy options")
)
