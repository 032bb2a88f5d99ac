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

// Metrics counts what the plugin does, for Prometheus. Pipeline runs are
// counted by the host that runs them (eventbus_pipeline_runs_total), not
// here: the plugin counts messages.
type Metrics struct {
	published    *prometheus.CounterVec
	settled      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
}

var _ eventbus.Metrics = (*Metrics)(nil)

// settlements are the values of the settlement label.
var settlements = []string{"ack", "nak", "term"}

// NewMetrics registers the plugin's counters with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_messages_published_total", Help: "Messages the publish step stored, by stream.",
		}, []string{"stream"}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_messages_settled_total", Help: "Deliveries settled by triggers and settle steps, by stream, consumer and settlement (ack, nak or term).",
		}, []string{"stream", "consumer", "settlement"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_messages_dead_lettered_total", Help: "Messages published to their consumer's dead-letter subject after their last allowed delivery, by stream and consumer.",
		}, []string{"stream", "consumer"}),
	}
	reg.MustRegister(m.published, m.settled, m.deadLettered)
	return m
}

// StreamDeclared makes the stream's published count exist at zero.
func (m *Metrics) StreamDeclared(stream string) { m.published.WithLabelValues(stream) }

// ConsumerDeclared makes the consumer's settlement and dead-letter counts
// exist at zero.
func (m *Metrics) ConsumerDeclared(stream, consumer string) {
	for _, kind := range settlements {
		m.settled.WithLabelValues(stream, consumer, kind)
	}
	m.deadLettered.WithLabelValues(stream, consumer)
}

func (m *Metrics) Published(stream string, n int) {
	m.published.WithLabelValues(stream).Add(float64(n))
}

func (m *Metrics) Settled(stream, consumer, kind string) {
	m.settled.WithLabelValues(stream, consumer, kind).Inc()
}

func (m *Metrics) DeadLettered(stream, consumer string) {
	m.deadLettered.WithLabelValues(stream, consumer).Inc()
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

var (
	connectedDesc = prometheus.NewDesc("eventbus_broker_connected",
		"1 while the broker's connection is up, labelled with the server it is on; 0, with no server, while it is down.", []string{"broker", "server"}, nil)
	reconnectsDesc = prometheus.NewDesc("eventbus_broker_reconnects_total",
		"Times the broker's connection was lost and made again, to the same server or another.", []string{"broker"}, nil)
)

// NewConnectionCollector collects the state of the connection of every
// broker core runs, read at each scrape.
func NewConnectionCollector(core *eventbus.Plugin) prometheus.Collector {
	return connectionCollector{core: core}
}

type connectionCollector struct{ core *eventbus.Plugin }

func (c connectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connectedDesc
	ch <- reconnectsDesc
}

func (c connectionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.core.ConnectionStates() {
		up := 0.0
		if s.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, up, s.Broker, s.Server)
		ch <- prometheus.MustNewConstMetric(reconnectsDesc, prometheus.CounterValue, float64(s.Reconnects), s.Broker)
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
