package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wfeventbus/eventbus/internal/pgtest"
)

// TestSuitePostgres runs the PostgreSQL scenarios briefly on a server of
// the test's own: every figure is reported, next to its ceiling, with the
// targets that apply without a JetStream figure, and the schemas the run
// made are gone afterwards.
func TestSuitePostgres(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatalf("the postgres scenarios need a PostgreSQL server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	dsn, err := srv.CreateDatabase(ctx, "bench")
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(launcher(t, ModeInProcess))
	cfg.PostgresDSN, cfg.PostgresOnly = dsn, true
	cfg.PostgresBatchSize, cfg.PostgresFetchMessages, cfg.PostgresFetchOps = 20, 400, 20
	cfg.PostgresLatencyRate = 200
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{
		IDPgRawInsert, IDPgStep, IDPgRawInsertBatch, IDPgStepBatch, IDPgTrigger(1), IDPgTrigger(32), IDPgLatency,
		IDPgRawFetchAck, IDPgFetchAck, IDPgFetchLatency(0), IDPgFetchLatency(100_000),
	}
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.ID)
		if r.Messages <= 0 || r.Elapsed <= 0 || r.Rate <= 0 {
			t.Errorf("%s: messages %d in %s, want some", r.ID, r.Messages, r.Elapsed)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("results\n got %v\nwant %v", got, want)
	}
	for id, ceiling := range map[string]string{
		IDPgStep: IDPgRawInsert, IDPgStepBatch: IDPgRawInsertBatch, IDPgFetchAck: IDPgRawFetchAck,
		IDPgFetchLatency(100_000): IDPgFetchLatency(0), IDPgTrigger(32): "",
	} {
		if res, _ := rep.Result(id); res.Ceiling != ceiling || (ceiling != "" && res.Ratio <= 0) {
			t.Errorf("%s: ceiling %q ratio %v, want %q", id, res.Ceiling, res.Ratio, ceiling)
		}
	}
	if lat, _ := rep.Result(IDPgLatency); lat.Latency.Count != int(float64(cfg.PostgresLatencyRate)*cfg.LatencyDuration.Seconds()) {
		t.Errorf("%s: %d latency samples", lat.ID, lat.Latency.Count)
	}
	if fl, _ := rep.Result(IDPgFetchLatency(0)); fl.Latency.Count != cfg.PostgresFetchOps {
		t.Errorf("%s: %d latency samples, want %d", fl.ID, fl.Latency.Count, cfg.PostgresFetchOps)
	}
	// Publish, batch, fetch+ack (rate and ratio), latency p50, flatness;
	// the trigger's has no JetStream figure to be held to.
	if len(rep.Targets) != 6 {
		t.Errorf("%d targets, want 6: %+v", len(rep.Targets), rep.Targets)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'eventbus_bench%'`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d bench schemas left behind (%v)", left, err)
	}
}

func TestCountName(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 500: "500", 1000: "1k", 100_000: "100k", 1_000_000: "1m", 1_500: "1500"} {
		if got := countName(n); got != want {
			t.Errorf("countName(%d) = %q, want %q", n, got, want)
		}
	}
}
