package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestRunMetrics runs examples/orders with --metrics-addr. Before any
// order, GET /metrics already shows every count the app will move, at
// zero, and the broker's connection to its embedded server; after one
// order, it counts the runs by pipeline and the messages by
// stream and consumer, in one set of metrics.
func TestRunMetrics(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		ctx := guard(t, testGuard)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		a := startApp(t, repoPath(t, "examples/orders/app.yaml"), appConfig{mode: m, flags: []string{"--metrics-addr", addr}})
		url := "http://" + addr + "/metrics"

		type series struct {
			metric string
			labels map[string]string
		}
		runs := func(pipeline, outcome string) series {
			return series{"eventbus_pipeline_runs_total", map[string]string{"pipeline": pipeline, "outcome": outcome}}
		}
		settled := func(consumer, how string) series {
			return series{"eventbus_messages_settled_total", map[string]string{"stream": "ORDERS", "consumer": consumer, "settlement": how}}
		}
		published := &series{"eventbus_messages_published_total", map[string]string{"stream": "ORDERS"}}
		deadLettered := &series{"eventbus_messages_dead_lettered_total", map[string]string{"stream": "ORDERS", "consumer": "order-enricher"}}
		check := func(body string, want map[*series]float64) (bool, string) {
			var bad []string
			for s, v := range want {
				if got, ok := sample(body, s.metric, s.labels); !ok || got != v {
					bad = append(bad, fmt.Sprintf("%s%v = %v (present: %v), want %v", s.metric, s.labels, got, ok, v))
				}
			}
			return len(bad) == 0, strings.Join(bad, "; ")
		}

		body, err := scrape(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		connected := &series{"eventbus_broker_connected", map[string]string{"broker": "bus", "server": "bus"}}
		reconnects := &series{"eventbus_broker_reconnects_total", map[string]string{"broker": "bus"}}
		before := map[*series]float64{published: 0, deadLettered: 0, connected: 1, reconnects: 0}
		for _, p := range []string{"enrich-order", "log-enriched"} {
			for _, o := range []string{"success", "failure", "timeout", "canceled"} {
				s := runs(p, o)
				before[&s] = 0
			}
		}
		for _, c := range []string{"order-enricher", "enriched-logger"} {
			for _, how := range []string{"ack", "nak", "term"} {
				s := settled(c, how)
				before[&s] = 0
			}
		}
		if ok, bad := check(body, before); !ok {
			t.Errorf("before the first order: %s", bad)
		}
		if strings.Contains(body, "eventbus_trigger_run") {
			t.Error("the trigger's runs are counted apart from the pipeline runs")
		}
		if !strings.Contains(body, "# TYPE eventbus_pipeline_run_seconds histogram") ||
			!strings.Contains(body, `eventbus_pipeline_run_seconds_bucket{pipeline="enrich-order",le="3600"} 0`) {
			t.Error("no eventbus_pipeline_run_seconds histogram reaching an hour")
		}

		js := connect(t, a)
		publish(t, ctx, js, "orders.created", `{"id":"m-1","customer":"ada","items":["a"]}`)
		readStream(t, ctx, js, "ORDERS", "orders.enriched", 1)
		enrichOK, logOK := runs("enrich-order", "success"), runs("log-enriched", "success")
		enricherAck, loggerAck := settled("order-enricher", "ack"), settled("enriched-logger", "ack")
		after := map[*series]float64{&enrichOK: 1, &logOK: 1, published: 1, &enricherAck: 1, &loggerAck: 1, deadLettered: 0}
		eventually(t, ctx, "the order counted", func() (bool, string) {
			body, err := scrape(ctx, url)
			if err != nil {
				return false, err.Error()
			}
			return check(body, after)
		})
	})
}

// scrape returns the body of a GET of url.
func scrape(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// sample finds the value of the sample of metric with exactly labels in a
// Prometheus text exposition.
func sample(body, metric string, labels map[string]string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, metric+"{")
		if !ok {
			continue
		}
		set, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		got := map[string]string{}
		for _, kv := range strings.Split(set, ",") {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = strings.Trim(v, `"`)
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		return f, err == nil
	}
	return 0, false
}
