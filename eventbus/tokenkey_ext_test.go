package eventbus_test

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/eventbus"
)

// TestReplicasSettleEachOthersTokens runs three replicas of an app on one
// broker, two with the key from EVENTBUS_TOKEN_KEY and one from a
// token_key_file holding the same key, and a fourth app with a key of its
// own: a token one replica consumed is settled by a settle step on
// another, once; the other app rejects it as invalid. No log line holds the
// key.
func TestReplicasSettleEachOthersTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	const key = "the key the replicas share, 32 b"
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := newLogRecorder()
	replica := func(env map[string]string, broker map[string]any) *eventbus.Plugin {
		p := eventbus.New(eventbus.Options{Logger: slog.New(logs), Getenv: func(k string) string { return env[k] }})
		broker["dsn"] = srv.ClientURL()
		startModules(t, p,
			decl{eventbus.TypeBroker, "bus", broker},
			decl{eventbus.TypeStream, "jobs", map[string]any{"name": "JOBS", "subjects": []any{"jobs.>"}}},
			decl{eventbus.TypeConsumer, "claims", map[string]any{"stream_name": "JOBS", "ack_wait": "1h"}},
		)
		return p
	}
	shared := map[string]string{eventbus.TokenKeyEnv: base64.StdEncoding.EncodeToString([]byte(key))}
	first := replica(shared, map[string]any{})
	second := replica(shared, map[string]any{})
	third := replica(nil, map[string]any{"token_key_file": keyFile})
	otherApp := replica(map[string]string{eventbus.TokenKeyEnv: base64.StdEncoding.EncodeToString([]byte("another app's key, also 32 bytes"))}, map[string]any{})

	exec := func(p *eventbus.Plugin, typ string, config map[string]any) (map[string]any, error) {
		t.Helper()
		s, err := p.CreateStep(ctx, typ, "s", config)
		if err != nil {
			t.Fatalf("create %s: %v", typ, err)
		}
		return s.Execute(ctx, eventbus.MapInput{Rendered: config})
	}
	for _, subject := range []string{"jobs.a", "jobs.b"} {
		if _, err := exec(first, eventbus.StepPublish, map[string]any{"subject": subject, "payload": "x"}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec(first, eventbus.StepConsume, map[string]any{"consumer": "claims", "batch_size": float64(2)})
	if err != nil {
		t.Fatal(err)
	}
	msgs := out["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("consumed %d messages, want 2", len(msgs))
	}
	tokens := []string{msgs[0].(map[string]any)["ack_token"].(string), msgs[1].(map[string]any)["ack_token"].(string)}

	if _, err := exec(otherApp, eventbus.StepAck, map[string]any{"ack_token": tokens[0]}); !errors.Is(err, bus.ErrInvalidToken) {
		t.Fatalf("ack on another app = %v, want bus.ErrInvalidToken", err)
	}
	if _, err := exec(second, eventbus.StepAck, map[string]any{"ack_token": tokens[0]}); err != nil {
		t.Fatalf("ack on a replica with the key from %s: %v", eventbus.TokenKeyEnv, err)
	}
	if _, err := exec(second, eventbus.StepAck, map[string]any{"ack_token": tokens[0]}); !errors.Is(err, bus.ErrStaleToken) {
		t.Fatalf("second ack on that replica = %v, want bus.ErrStaleToken", err)
	}
	if _, err := exec(third, eventbus.StepTerm, map[string]any{"ack_token": tokens[1], "reason": "done elsewhere"}); err != nil {
		t.Fatalf("term on a replica with the key from token_key_file: %v", err)
	}
	states := first.ConsumerStates(ctx)
	if len(states) != 1 || states[0].AckPending != 0 || states[0].Pending != 0 {
		t.Fatalf("consumer states %+v, want nothing pending", states)
	}

	connected := logs.matching("connected to an external broker")
	if len(connected) != 4 {
		t.Fatalf("%d connection lines, want 4", len(connected))
	}
	sources := map[string]int{}
	for _, r := range connected {
		sources[r.attrs["token_key"]]++
	}
	if sources[eventbus.TokenKeyEnv] != 3 || sources["token_key_file"] != 1 {
		t.Errorf("token_key sources %v, want %s three times and token_key_file once", sources, eventbus.TokenKeyEnv)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, r := range *logs.records {
		for k, v := range r.attrs {
			if strings.Contains(v, key) || strings.Contains(v, shared[eventbus.TokenKeyEnv]) {
				t.Errorf("log line %q holds the key in %s", r.msg, k)
			}
		}
	}
}

// A broker whose token key cannot be used is not created: the error names
// the variable or field, never the key.
func TestBrokerRejectsBadTokenKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		env    map[string]string
		config map[string]any
		want   string
	}{
		{"variable not base64", map[string]string{eventbus.TokenKeyEnv: "secret-but-not-base64!"}, map[string]any{}, eventbus.TokenKeyEnv + ": not base64"},
		{"variable too short", map[string]string{eventbus.TokenKeyEnv: base64.StdEncoding.EncodeToString([]byte("secret"))}, map[string]any{}, eventbus.TokenKeyEnv + ", decoded: 6 bytes"},
		{"file missing", nil, map[string]any{"token_key_file": filepath.Join(t.TempDir(), "none")}, "token_key_file: cannot read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := eventbus.New(eventbus.Options{Getenv: func(k string) string { return c.env[k] }})
			_, err := p.CreateModule(context.Background(), eventbus.TypeBroker, "bus", c.config)
			if !errors.Is(err, eventbus.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CreateModule = %v, want ErrConfig saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error %q holds the key", err)
			}
		})
	}
}
