package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/runner"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// TestMain serves the eventbus plugin when eventbus run (under test)
// launches this test binary as its plugin, as the eventbus binary does.
func TestMain(m *testing.M) {
	if os.Getenv(pluginCookieKey) == pluginCookieValue {
		servePlugin()
		return
	}
	pg = &database{}
	code := m.Run()
	pg.stop()
	os.Exit(code)
}

// runModes are the plugin modes of eventbus run, by their flags.
var runModes = map[string]runOptions{
	"in-process":     {},
	"out-of-process": {outOfProcess: true},
}

// parityOrders are what the parity test publishes: good orders, each
// making some steps fail at run time, and one that fails its pipeline.
var parityOrders = []string{
	`{"id":"a","n":1,"bad":false,"size":"2000","subject":""}`,
	`{"id":"x","n":9,"bad":true,"size":"1","subject":""}`,
	`{"id":"b","n":2,"bad":false,"size":"lots","subject":""}`,
	`{"id":"c","n":3,"bad":false,"size":"-1","subject":""}`,
}

// observed is what one run of the parity app showed the host.
type observed struct {
	Triggers map[string]any    // trigger data by order and delivery
	Runs     map[string]string // each run's outcome ("ok" or its error)
	Steps    map[string]any    // each plugin step's output or error
	Creates  []string          // the outcome of creating bad configs
	Metrics  map[string]float64
	Logs     []string // the plugin's log records: level, message, keys
	Dead     []string // the dead letters' payloads and headers
}

// TestPluginModesAgree runs the same app through eventbus run's two plugin
// modes, with the production wiring of each, and compares everything the
// host sees: every trigger's data, every plugin step's output or error,
// the outcome of every run, the errors of bad configs, the metrics, the
// plugin's log records and the dead letters. Values that differ from run
// to run (ack tokens, times) are masked; nothing else may differ.
func TestPluginModesAgree(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		obs = map[string]*observed{}
	)
	t.Run("modes", func(t *testing.T) {
		for name, o := range runModes {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				got := runParity(t, o)
				mu.Lock()
				obs[name] = got
				mu.Unlock()
			})
		}
	})
	in, out := obs["in-process"], obs["out-of-process"]
	if in == nil || out == nil {
		t.Fatal("a mode did not finish")
	}
	a, b := reflect.ValueOf(*in), reflect.ValueOf(*out)
	for i := range a.NumField() {
		name := a.Type().Field(i).Name
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			ja, _ := json.MarshalIndent(a.Field(i).Interface(), "", "  ")
			jb, _ := json.MarshalIndent(b.Field(i).Interface(), "", "  ")
			t.Errorf("%s differ:\nin process:\n%s\nout of process:\n%s", name, ja, jb)
		}
	}
	// The app did what it was written to do, in both modes.
	if len(in.Dead) == 0 || in.Dead[0] != parityOrders[1] || len(in.Runs) != len(parityOrders)+1 || len(in.Creates) == 0 {
		t.Errorf("dead letters %v, runs %v, creates %v", in.Dead, in.Runs, in.Creates)
	}
	for _, want := range []string{"forward", "batch", "no-subject", "wrong-batch", "nowhere", "read", "stale", "forged", "keep-alive"} {
		if _, ok := in.Steps["a/1/"+want]; !ok {
			t.Errorf("no record of step %s", want)
		}
	}
}

// runParity runs the parity app in one mode until every order is settled,
// and returns what the host saw.
func runParity(t *testing.T, o runOptions) *observed {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	port := freeTCPPort(t)
	env := map[string]string{"PARITY_PORT": strconv.Itoa(port), "PARITY_STORE": t.TempDir()}
	d := deps{
		lookupEnv: func(k string) (string, bool) {
			if v, ok := env[k]; ok {
				return v, true
			}
			return os.LookupEnv(k)
		},
		version: version,
	}
	logs := newSyncBuffer()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.metricsAddr = "127.0.0.1:" + strconv.Itoa(freeTCPPort(t))
	o.shutdownTimeout = 5 * time.Second
	file := "testdata/parity/app.yaml"

	rec := &recorder{obs: &observed{Triggers: map[string]any{}, Runs: map[string]string{}, Steps: map[string]any{}}, names: map[string]string{}}
	var fw runner.Forwarder
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	c, metricsURL, err := openPlugin(ctx, d, logger, file, &o, reg, rec.workflow(fw.TriggerWorkflow), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closePlugin(c, logger)
	rec.Plugin = runner.FromClient(c)
	cfg, err := runner.CheckFile(file, d.lookupEnv, rec.Catalog())
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(cfg, rec, logger, runner.WithRegisterer(reg), runner.WithShutdownTimeout(o.shutdownTimeout))
	if err != nil {
		t.Fatal(err)
	}
	fw.Attach(r)
	stopMetrics, err := serveMetrics(o.metricsAddr, reg, metricsURL, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer stopMetrics()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Stop(context.Background()) }()
	rec.obs.Creates = badCreates(ctx, c)

	nc, err := nats.Connect("nats://127.0.0.1:" + strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range parityOrders {
		if _, err := js.Publish(ctx, "orders.new", []byte(order)); err != nil {
			t.Fatal(err)
		}
	}
	rec.obs.Dead = waitDead(t, ctx, js)
	waitSettled(t, ctx, js)
	rec.obs.Metrics = scrapeEventbus(t, ctx, "http://"+o.metricsAddr+"/metrics")
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	rec.obs.Logs = pluginRecords(t, logs.String())
	return rec.obs
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// recorder is the runner's plugin with a record of every step execution
// and trigger call, keyed by order id, delivery and step.
type recorder struct {
	runner.Plugin

	mu    sync.Mutex
	obs   *observed
	names map[string]string // step handle → step name
}

func (r *recorder) CreateStep(ctx context.Context, typ, name string, config map[string]any) (string, error) {
	h, err := r.Plugin.CreateStep(ctx, typ, name, config)
	r.mu.Lock()
	r.names[h] = name
	r.mu.Unlock()
	return h, err
}

func (r *recorder) ExecuteStep(ctx context.Context, handle string, in runner.StepInput) (runner.StepResult, error) {
	res, err := r.Plugin.ExecuteStep(ctx, handle, in)
	var v any = masked(res.Output)
	if err != nil {
		v = "error: " + maskText(err.Error())
	}
	r.mu.Lock()
	r.obs.Steps[runKey(in.TriggerData)+"/"+r.names[handle]] = v
	r.mu.Unlock()
	return res, err
}

// workflow records each trigger call's data and the run's outcome.
func (r *recorder) workflow(next wfplugin.WorkflowHandler) wfplugin.WorkflowHandler {
	return func(ctx context.Context, wt, action string, data map[string]any) error {
		key := runKey(data)
		r.mu.Lock()
		r.obs.Triggers[key] = masked(data)
		r.mu.Unlock()
		err := next(ctx, wt, action, data)
		outcome := "ok"
		if err != nil {
			outcome = maskText(err.Error())
		}
		r.mu.Lock()
		r.obs.Runs[key] = outcome
		r.mu.Unlock()
		return err
	}
}

// runKey names a run by its order's id and the delivery.
func runKey(data map[string]any) string {
	js, _ := data["json"].(map[string]any)
	return fmt.Sprintf("%v/%v", js["id"], data["delivery_count"])
}

// masked replaces what differs from run to run: ack tokens and times.
func masked(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			switch k {
			case "ack_token", "published_at", "acked_at":
				out[k] = "<" + k + ">"
			default:
				out[k] = masked(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = masked(e)
		}
		return out
	case string:
		return maskText(v)
	}
	return v
}

var (
	tokenText = regexp.MustCompile(`"[A-Za-z0-9_-]{40,}"`)
)

func maskText(s string) string { return tokenText.ReplaceAllString(s, `"<token>"`) }

// badCreates creates modules, steps and triggers from configs the plugin
// must refuse, and returns each error's text.
func badCreates(ctx context.Context, c *wfplugin.Client) []string {
	var out []string
	add := func(_ string, err error) {
		if err == nil {
			out = append(out, "accepted")
			return
		}
		out = append(out, err.Error())
	}
	add(c.CreateModule(ctx, eventbus.TypeStream, "nosubj", map[string]any{"name": "NOSUBJ"}))
	add(c.CreateModule(ctx, eventbus.TypeStream, "typo", map[string]any{"name": "TYPO", "subjects": []any{"typo.>"}, "retention_polcy": "workqueue"}))
	add(c.CreateModule(ctx, eventbus.TypeStream, "wrong", map[string]any{"name": "WRONG", "subjects": []any{"wrong.>"}, "max_msgs": "many"}))
	add(c.CreateModule(ctx, eventbus.TypeStream, "int", map[string]any{"name": "INT", "subjects": []any{"int.>"}, "max_msgs": 10, "max_age": "1h"}))
	add(c.CreateModule(ctx, eventbus.TypeConsumer, "orphan", map[string]any{"stream_name": "ORDERS", "broker_ref": "nope"}))
	add(c.CreateModule(ctx, eventbus.TypeBroker, "bus", map[string]any{}))
	add(c.CreateModule(ctx, "eventbus.queue", "q", nil))
	add(c.CreateStep(ctx, eventbus.StepPublish, "p", map[string]any{"subject": "x", "broker_ref": "nope"}))
	add(c.CreateStep(ctx, eventbus.StepConsume, "c", map[string]any{"consumer": "worker", "batch_size": 2000}))
	add(c.CreateStep(ctx, eventbus.StepConsume, "c", map[string]any{"consumer": "worker", "batch_size": 2.5}))
	add(c.CreateStep(ctx, eventbus.StepAck, "a", map[string]any{"ack_token": 7}))
	add(c.CreateStep(ctx, eventbus.StepPublish, "p", map[string]any{"subject": "x", "headers": map[string]any{"a": []any{"b"}}}))
	add(c.CreateStep(ctx, "step.eventbus.publsh", "p", nil))
	add(c.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:typo", map[string]any{"name": "worker", "concurency": 4}))
	add(c.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:nameless", map[string]any{"stream_name": "ORDERS"}))
	add(c.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:neg", map[string]any{"name": "worker", "concurrency": -1}))
	add(c.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:other", map[string]any{"name": "worker", "stream_name": "OUT"}))
	return out
}

// waitDead waits for the one dead letter and returns it: payload and
// headers.
func waitDead(t *testing.T, ctx context.Context, js jetstream.JetStream) []string {
	t.Helper()
	c, err := js.OrderedConsumer(ctx, "DEAD", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(hangGuard))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	out := []string{string(m.Data())}
	for _, k := range slices.Sorted(maps.Keys(m.Headers())) {
		out = append(out, k+": "+strings.Join(m.Headers()[k], ","))
	}
	return out
}

// waitSettled waits until the worker has settled every order and the
// broker has applied every settlement of the out-reader's messages: of
// the three each good order made, one acked, one terminated and one held
// by a nak with a delay of a minute.
func waitSettled(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	good := 0
	for _, o := range parityOrders {
		if !strings.Contains(o, `"bad":true`) {
			good++
		}
	}
	info := func(stream, consumer string) *jetstream.ConsumerInfo {
		c, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			t.Fatal(err)
		}
		i, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	for {
		w, r := info("ORDERS", "worker"), info("OUT", "out-reader")
		if w.NumPending == 0 && w.NumAckPending == 0 && w.Delivered.Stream == uint64(len(parityOrders)) &&
			r.NumPending == 0 && r.NumAckPending == good {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not settled: worker %+v, out-reader %+v", w, r)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// scrapeEventbus reads the eventbus_ samples of a metrics endpoint:
// counters and gauges by name and labels, histograms by their count.
func scrapeEventbus(t *testing.T, ctx context.Context, url string) map[string]float64 {
	t.Helper()
	body, err := httpGet(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, "eventbus_") {
			continue
		}
		for _, m := range f.GetMetric() {
			key := name + labels(m)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+" count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func labels(m *dto.Metric) string {
	var ls []string
	for _, l := range m.GetLabel() {
		ls = append(ls, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(ls)
	return "{" + strings.Join(ls, ",") + "}"
}

// pluginRecords returns the plugin's log records, sorted, each as its
// level, message and attribute keys (values hold times and tokens).
func pluginRecords(t *testing.T, logs string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["plugin"] != pluginName {
			continue
		}
		keys := slices.Sorted(maps.Keys(rec))
		var attrs []string
		for _, k := range keys {
			switch k {
			case "time", "level", "msg":
			case "subject", "sequence", "delivery", "error", "workflow", "consumer", "stream", "dead_letter_subject", "delay":
				attrs = append(attrs, fmt.Sprintf("%s=%v", k, maskText(fmt.Sprint(rec[k]))))
			default:
				attrs = append(attrs, k)
			}
		}
		out = append(out, fmt.Sprintf("%v %v %s", rec["level"], rec["msg"], strings.Join(attrs, " ")))
	}
	sort.Strings(out)
	return out
}

func httpGet(ctx context.Context, url string) (string, error) {
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
