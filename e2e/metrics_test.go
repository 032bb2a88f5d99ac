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

// TestRunMetrics runs examples/orders with --metrics-addr: after an order
// has gone through, GET /metrics counts the successful runs of the
// enrich-order pipeline.
func TestRunMetrics(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		ctx := guard(t, testGuard)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		a := startApp(t, repoPath(t, "examples/orders/app.yaml"), appConfig{mode: m, flags: []string{"--metrics-addr", addr}})
		js := connect(t, a)

		publish(t, ctx, js, "orders.created", `{"id":"m-1","customer":"ada","items":["a"]}`)
		readStream(t, ctx, js, "ORDERS", "orders.enriched", 1)

		url := "http://" + addr + "/metrics"
		var last string
		eventually(t, ctx, "a successful enrich-order run counted", func() (bool, string) {
			body, err := scrape(ctx, url)
			if err != nil {
				return false, err.Error()
			}
			last = body
			v, ok := sample(body, "eventbus_pipeline_runs_total", map[string]string{"pipeline": "enrich-order", "outcome": "success"})
			return ok && v >= 1, fmt.Sprintf("eventbus_pipeline_runs_total{pipeline=enrich-order,outcome=success} = %v (present: %v)", v, ok)
		})
		if v, ok := sample(last, "eventbus_pipeline_runs_total", map[string]string{"pipeline": "enrich-order", "outcome": "success"}); !ok || v != 1 {
			t.Errorf("enrich-order successful runs = %v, want 1 (one order published)", v)
		}
		if !strings.Contains(last, "# TYPE eventbus_pipeline_run_seconds histogram") {
			t.Error("no eventbus_pipeline_run_seconds histogram")
		}

		// The plugin's own metrics are served on the same endpoint.
		eventually(t, ctx, "the plugin's counts of the order", func() (bool, string) {
			body, err := scrape(ctx, url)
			if err != nil {
				return false, err.Error()
			}
			published, okPub := unlabelled(body, "eventbus_messages_published_total")
			acks, okAck := sample(body, "eventbus_messages_settled_total", map[string]string{"settlement": "ack"})
			_, okPending := sample(body, "eventbus_consumer_pending_messages", map[string]string{"broker": "bus", "stream": "ORDERS", "consumer": "order-enricher"})
			return okPub && published == 1 && okAck && acks == 2 && okPending,
				fmt.Sprintf("published=%v (%v) acks=%v (%v) pending gauge present=%v", published, okPub, acks, okAck, okPending)
		})
	})
}

// unlabelled finds the value of a metric without labels in a Prometheus text
// exposition.
func unlabelled(body, metric string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, metric+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return f, err == nil
		}
	}
	return 0, false
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
