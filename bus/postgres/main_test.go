package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus/postgres"
	"github.com/wfeventbus/eventbus/internal/pgtest"
)

// hangGuard bounds waits, so that a broken backend fails instead of hanging.
const hangGuard = time.Minute

// cluster is the test binary's PostgreSQL: one shared server, and the
// template that servers a test restarts or kills are copied from.
type cluster struct {
	template *pgtest.Template
	shared   *pgtest.Server
	dsn      string
	schemas  atomic.Int64
}

// pg is set by TestMain before any test runs and never changed after.
var pg *cluster

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := startCluster(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bus/postgres tests need a PostgreSQL server: %v\n", err)
		os.Exit(1)
	}
	pg = c
	code := m.Run()
	_ = c.shared.Stop()
	_ = c.template.Remove()
	os.Exit(code)
}

func startCluster(ctx context.Context) (*cluster, error) {
	tpl, err := pgtest.NewTemplate(ctx)
	if err != nil {
		return nil, err
	}
	srv, err := tpl.Start(ctx)
	if err != nil {
		_ = tpl.Remove()
		return nil, err
	}
	dsn, err := srv.CreateDatabase(ctx, "bustest")
	if err != nil {
		_ = srv.Stop()
		_ = tpl.Remove()
		return nil, err
	}
	return &cluster{template: tpl, shared: srv, dsn: dsn}, nil
}

// schema returns a schema name no other test uses.
func (c *cluster) schema() string {
	return fmt.Sprintf("t%d_%d", os.Getpid(), c.schemas.Add(1))
}

// ownServer starts a server of t's own, stopped at the end of t.
func (c *cluster) ownServer(t testing.TB) (*pgtest.Server, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	srv, err := c.template.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	dsn, err := srv.CreateDatabase(ctx, "bustest")
	if err != nil {
		t.Fatal(err)
	}
	return srv, dsn
}

// testKey is the token key the Buses of one test share.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// newBus connects a Bus to dsn on schema, closed at the end of t.
func newBus(t testing.TB, dsn, schema string, opts ...postgres.Option) *postgres.Bus {
	t.Helper()
	return newBusConfig(t, postgres.Config{DSN: dsn, Schema: schema, PollInterval: 100 * time.Millisecond}, opts...)
}

func newBusConfig(t testing.TB, cfg postgres.Config, opts ...postgres.Option) *postgres.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	opts = append([]postgres.Option{postgres.WithTokenKey(testKey), postgres.WithMaintenanceInterval(100 * time.Millisecond)}, opts...)
	b, err := postgres.Connect(ctx, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
