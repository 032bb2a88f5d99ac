package runner

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a pipeline run, the values of the outcome label.
const (
	OutcomeSuccess  = "success"  // every step ran, or one stopped the run
	OutcomeFailure  = "failure"  // a step failed
	OutcomeTimeout  = "timeout"  // the pipeline's timeout expired
	OutcomeCanceled = "canceled" // the trigger gave up or the runner shut down
)

// metrics are the runner's Prometheus collectors.
type metrics struct {
	runs    *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// newMetrics creates the collectors and registers them with reg (nil:
// kept unregistered). Collectors already registered by another Runner on
// the same registry are shared.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_pipeline_runs_total",
			Help: "Pipeline runs by pipeline and outcome (success, failure, timeout, canceled).",
		}, []string{"pipeline", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventbus_pipeline_run_seconds",
			Help:    "Duration of pipeline runs, by pipeline.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"pipeline"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.runs, err = register(reg, m.runs)
	if err != nil {
		return nil, err
	}
	m.seconds, err = register(reg, m.seconds)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) observe(pipeline, outcome string, seconds float64) {
	m.runs.WithLabelValues(pipeline, outcome).Inc()
	m.seconds.WithLabelValues(pipeline).Observe(seconds)
}
