package bench

import "errors"

var (
	// ErrConfig: a Config field is invalid; the message names it. Nothing
	// was measured.
	ErrConfig = errors.New("invalid bench config")

	// ErrScenario: a scenario could not complete (a publish failed, the
	// plugin refused a call, messages stopped arriving). The wrapping error
	// names the scenario; the measurement is void.
	ErrScenario = errors.New("bench scenario failed")
)
