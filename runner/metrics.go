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

// runBuckets are the upper bounds, in seconds, of the run duration
// histogram: from a millisecond, for pipelines that only route a message,
// to an hour, for pipelines that wait on other systems.
var runBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// outcomes are the values of the outcome label.
var outcomes = []string{OutcomeSuccess, OutcomeFailure, OutcomeTimeout, OutcomeCanceled}

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
			Buckets: runBuckets,
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

// declare makes the series of pipeline exist, at zero, before its first
// run, so that a dashboard or an alert sees a pipeline that never ran.
func (m *metrics) declare(pipeline string) {
	for _, o := range outcomes {
		m.runs.WithLabelValues(pipeline, o)
	}
	m.seconds.WithLabelValues(pipeline)
}

func (m *metrics) observe(pipeline, outcome string, seconds float64) {
	m.runs.WithLabelValues(pipeline, outcome).Inc()
	m.seconds.WithLabelValues(pipeline).Observe(seconds)
}
