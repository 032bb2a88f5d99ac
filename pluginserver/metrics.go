package pluginserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wfeventbus/eventbus/eventbus"
)

// MetricsAddrEnv names the environment variable that makes the plugin serve
// Prometheus metrics at an address (for example 127.0.0.1:9464).
const MetricsAddrEnv = "EVENTBUS_METRICS_ADDR"

// Metrics counts what the plugin does, for Prometheus.
type Metrics struct {
	published    prometheus.Counter
	settled      *prometheus.CounterVec
	deadLettered prometheus.Counter
	runs         *prometheus.CounterVec
	runSeconds   *prometheus.HistogramVec
}

var _ eventbus.Metrics = (*Metrics)(nil)

// NewMetrics registers the plugin's counters with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_messages_published_total", Help: "Messages stored by the publish step.",
		}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_messages_settled_total", Help: "Deliveries settled, by how: ack, nak or term.",
		}, []string{"settlement"}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_messages_dead_lettered_total", Help: "Messages published to a dead-letter subject after max_deliver.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_trigger_runs_total", Help: "Pipeline runs fired by subscribe triggers, by workflow and outcome.",
		}, []string{"workflow", "outcome"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventbus_trigger_run_seconds", Help: "Duration of pipeline runs fired by subscribe triggers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"workflow"}),
	}
	for _, kind := range []string{"ack", "nak", "term"} {
		m.settled.WithLabelValues(kind)
	}
	reg.MustRegister(m.published, m.settled, m.deadLettered, m.runs, m.runSeconds)
	return m
}

func (m *Metrics) Published(_ string, n int) { m.published.Add(float64(n)) }
func (m *Metrics) Settled(kind string)       { m.settled.WithLabelValues(kind).Inc() }
func (m *Metrics) DeadLettered(string)       { m.deadLettered.Inc() }

func (m *Metrics) PipelineRun(workflow string, ok bool, d time.Duration) {
	outcome := "success"
	if !ok {
		outcome = "failure"
	}
	m.runs.WithLabelValues(workflow, outcome).Inc()
	m.runSeconds.WithLabelValues(workflow).Observe(d.Seconds())
}

var (
	pendingDesc = prometheus.NewDesc("eventbus_consumer_pending_messages",
		"Messages of a consumer's stream not yet delivered to it.", []string{"broker", "stream", "consumer"}, nil)
	ackPendingDesc = prometheus.NewDesc("eventbus_consumer_ack_pending_messages",
		"Messages delivered to a consumer and not yet settled.", []string{"broker", "stream", "consumer"}, nil)
)

// NewBacklogCollector collects the backlog of every consumer core uses,
// read from the brokers at each scrape.
func NewBacklogCollector(core *eventbus.Plugin) prometheus.Collector {
	return backlogCollector{core: core}
}

type backlogCollector struct{ core *eventbus.Plugin }

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- ackPendingDesc
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, s := range c.core.ConsumerStates(ctx) {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.Pending), s.Broker, s.Stream, s.Consumer)
		ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(s.AckPending), s.Broker, s.Stream, s.Consumer)
	}
}

// serveMetrics serves reg at addr until the returned stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", MetricsAddrEnv, addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
