package runner

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultShutdownTimeout is how long Stop lets in-flight runs finish
// before cancelling them, unless WithShutdownTimeout says otherwise.
const DefaultShutdownTimeout = 30 * time.Second

// Option configures a Runner.
type Option func(*options) error

type options struct {
	shutdownTimeout time.Duration
	registerer      prometheus.Registerer
	now             func() time.Time
	pluginWarnings  func() []PluginWarning
}

// PluginWarning is a warning a plugin reports about a config it accepted.
type PluginWarning struct {
	// Field is the path of the field, beginning with "config"
	// ("config.subject"); "" for the config as a whole.
	Field string
	// Message says what is likely wrong.
	Message string
}

// WithPluginWarnings lets the runner read the warnings of a plugin that
// reports them apart from its errors, as the eventbus plugin does in this
// process (pluginserver.DirectConfig.Warn): take returns the warnings
// reported since it was last called. The runner calls it after each create
// and init call, places each warning at the field it names in the config
// just created, and reports it with the config's other warnings. A plugin
// in another process logs its warnings instead.
func WithPluginWarnings(take func() []PluginWarning) Option {
	return func(o *options) error {
		if take == nil {
			return fmt.Errorf("%w: WithPluginWarnings: nil function", ErrInvalidOption)
		}
		o.pluginWarnings = take
		return nil
	}
}

// WithShutdownTimeout sets how long Stop waits for in-flight runs before
// cancelling them; it must be positive.
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithShutdownTimeout: %v is not positive", ErrInvalidOption, d)
		}
		o.shutdownTimeout = d
		return nil
	}
}

// WithRegisterer registers the runner's metrics
// (eventbus_pipeline_runs_total, eventbus_pipeline_run_seconds) with reg.
// Without it the metrics are kept but not exported.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) error {
		if reg == nil {
			return fmt.Errorf("%w: WithRegisterer: nil registerer", ErrInvalidOption)
		}
		o.registerer = reg
		return nil
	}
}

// WithClock sets the clock of run metadata (started_at) and of the now
// template function.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock: nil clock", ErrInvalidOption)
		}
		o.now = now
		return nil
	}
}

// PluginWarnings collects the warnings a plugin in this process reports,
// for WithPluginWarnings(w.Take). It is safe for concurrent use; the zero
// value is ready.
type PluginWarnings struct {
	mu   sync.Mutex
	list []PluginWarning
}

// Add records a warning about field ("" for the config as a whole).
func (w *PluginWarnings) Add(field, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, PluginWarning{Field: field, Message: message})
}

// Take returns the warnings added since it was last called.
func (w *PluginWarnings) Take() []PluginWarning {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}
