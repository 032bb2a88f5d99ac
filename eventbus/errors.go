package eventbus

import "errors"

// Errors of the plugin core; match them with errors.Is.
var (
	// ErrUnknownType: no module, step or trigger of that type exists here.
	ErrUnknownType = errors.New("unknown type")

	// ErrConfig: a module, step or trigger config is invalid; the message
	// names the field.
	ErrConfig = errors.New("invalid config")

	// ErrUnknownRef: a broker_ref, stream_name or consumer names nothing
	// declared in the app.
	ErrUnknownRef = errors.New("unknown reference")

	// ErrNotStarted: the broker a step uses has not been started (or was
	// stopped).
	ErrNotStarted = errors.New("broker not started")

	// ErrPipelineFailed: the pipeline a trigger ran returned an error; the
	// message is nak'd for redelivery.
	ErrPipelineFailed = errors.New("pipeline failed")
)
