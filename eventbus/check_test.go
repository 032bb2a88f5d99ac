package eventbus_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wfeventbus/eventbus/eventbus"
)

// TestConfigProblemsAtOnce: a config with several problems is refused
// with all of them, one per line, each naming its field.
func TestConfigProblemsAtOnce(t *testing.T) {
	t.Parallel()
	p := eventbus.New(eventbus.Options{})
	ctx := context.Background()
	_, err := p.CreateModule(ctx, eventbus.TypeConsumer, "c", map[string]any{
		"deliver_policy":      "by_start_sequence",
		"max_ack_pending":     float64(-2),
		"dead_letter_subject": "dlq.>",
		"filter_subjects":     []any{"orders.*", "orders.new"},
	})
	if !errors.Is(err, eventbus.ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
	lines := strings.Split(err.Error(), "\n")
	for i, want := range []string{
		"config.stream_name: required",
		"config.opt_start_seq: required with deliver_policy BY_START_SEQUENCE",
		"config.max_ack_pending: must be -1 (unlimited) or more, got -2",
		`config.filter_subjects[1]: "orders.new" overlaps filter "orders.*"`,
		`config.dead_letter_subject: "dlq.>" may not contain wildcards`,
	} {
		if i >= len(lines) || !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d: want %q...", i, want)
		}
	}
	if len(lines) != 5 {
		t.Errorf("got %d lines, want 5:\n%v", len(lines), err)
	}
}

// TestChecksDoNoIO: creating and initialising an embedded broker, its
// stream and consumer and a trigger and steps using them neither starts
// the server (its port may be taken) nor creates its store.
func TestChecksDoNoIO(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	store := filepath.Join(t.TempDir(), "store")
	p := eventbus.New(eventbus.Options{})
	ctx := context.Background()
	var mods []eventbus.Module
	for _, d := range []struct {
		typ, name string
		cfg       map[string]any
	}{
		{eventbus.TypeBroker, "bus", map[string]any{"embedded": map[string]any{"port": float64(ln.Addr().(*net.TCPAddr).Port), "store_dir": store}}},
		{eventbus.TypeStream, "orders", map[string]any{"subjects": []any{"orders.>"}}},
		{eventbus.TypeConsumer, "worker", map[string]any{"stream_name": "orders"}},
	} {
		m, err := p.CreateModule(ctx, d.typ, d.name, d.cfg)
		if err != nil {
			t.Fatalf("create %s: %v", d.name, err)
		}
		mods = append(mods, m)
	}
	for _, m := range mods {
		if err := m.Init(ctx); err != nil {
			t.Fatalf("init: %v", err)
		}
	}
	if _, err := p.CreateStep(ctx, eventbus.StepPublish, "pub", map[string]any{"subject": "orders.new"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:p", map[string]any{"name": "worker"}, func(context.Context, map[string]any) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the store exists after create and init: %v", err)
	}
}

// TestWarnings: a config that is likely wrong is accepted, and its
// warning goes to Options.Warn within the call that found it, naming the
// instance and the field.
func TestWarnings(t *testing.T) {
	t.Parallel()
	var got []eventbus.Warning
	p := eventbus.New(eventbus.Options{Warn: func(w eventbus.Warning) { got = append(got, w) }})
	ctx := context.Background()
	for _, d := range []struct {
		typ, name string
		cfg       map[string]any
	}{
		{eventbus.TypeBroker, "bus", map[string]any{"dsn": "nats://127.0.0.1:1"}},
		{eventbus.TypeConsumer, "worker", map[string]any{"stream_name": "LEGACY"}},
	} {
		m, err := p.CreateModule(ctx, d.typ, d.name, d.cfg)
		if err != nil {
			t.Fatalf("create %s: %v", d.name, err)
		}
		if err := m.Init(ctx); err != nil {
			t.Fatalf("init %s: %v", d.name, err)
		}
	}
	if len(got) != 1 || got[0].Instance != "module worker" || got[0].Field != "config.stream_name" || !strings.Contains(got[0].Message, `no eventbus.stream module declares stream "LEGACY" on broker bus`) {
		t.Fatalf("warnings after init: %+v", got)
	}
	if _, err := p.CreateStep(ctx, eventbus.StepPublish, "pub", map[string]any{"subject": "{{ .to }}"}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Instance != "step pub" || got[1].Field != "config.subject" || !strings.Contains(got[1].Message, "is a template") {
		t.Fatalf("warnings after the step: %+v", got)
	}
}

// TestInvalidModuleNotReportedAgain: a reference to a module whose own
// config was refused is not reported as missing on top of it.
func TestInvalidModuleNotReportedAgain(t *testing.T) {
	t.Parallel()
	p := eventbus.New(eventbus.Options{})
	ctx := context.Background()
	bus, err := p.CreateModule(ctx, eventbus.TypeBroker, "bus", map[string]any{"embedded": map[string]any{"port": float64(-1), "store_dir": t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateModule(ctx, eventbus.TypeStream, "orders", map[string]any{"subjects": []any{"orders.>"}, "max_age": "soon"}); err == nil {
		t.Fatal("a stream with max_age soon was accepted")
	}
	c, err := p.CreateModule(ctx, eventbus.TypeConsumer, "worker", map[string]any{"stream_name": "orders"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []eventbus.Module{bus, c} {
		if err := m.Init(ctx); err != nil {
			t.Errorf("init: %v", err)
		}
	}
	if _, err := p.CreateStep(ctx, eventbus.StepPublish, "pub", map[string]any{"subject": "orders.new"}); err != nil {
		t.Errorf("publish to the refused stream's subject: %v", err)
	}
	// A subject the refused stream would not have stored is still checked.
	if _, err := p.CreateStep(ctx, eventbus.StepPublish, "pub2", map[string]any{"subject": "payments.new"}); !errors.Is(err, eventbus.ErrUnknownRef) {
		t.Errorf("publish to a subject no stream stores: %v", err)
	}
}
