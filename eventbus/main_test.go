package eventbus_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/internal/pgtest"
)

// database is the PostgreSQL server the package's tests share, started by
// the first test that needs it; each broker on it gets a schema of its own.
type database struct {
	once    sync.Once
	srv     *pgtest.Server
	dsn     string
	err     error
	schemas atomic.Int64
}

// pg is set by TestMain before any test runs and never replaced.
var pg *database

func TestMain(m *testing.M) {
	pg = &database{}
	code := m.Run()
	if pg.srv != nil {
		_ = pg.srv.Stop()
	}
	os.Exit(code)
}

// start starts the server once; a machine without PostgreSQL fails the
// test with what to install.
func (d *database) start(t testing.TB) string {
	t.Helper()
	d.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if d.srv, d.err = pgtest.Start(ctx); d.err != nil {
			return
		}
		d.dsn, d.err = d.srv.CreateDatabase(ctx, "eventbus")
	})
	if d.err != nil {
		t.Fatalf("the postgres backend's tests need a PostgreSQL server: %v", d.err)
	}
	return d.dsn
}

// schema returns a schema no other broker of the test binary uses.
func (d *database) schema() string {
	return fmt.Sprintf("b%d_%d", os.Getpid(), d.schemas.Add(1))
}

// backend is a kind of broker the plugin runs on. The tests that exercise
// a bus run once on each, from one case.
type backend struct {
	name string
	// broker declares a broker module named name with a store of its own.
	broker func(t *testing.T, name string) decl
	// reference declares a broker the way configs written for the
	// reference plugin do, with every field it knew.
	reference func(t *testing.T, name string) decl
}

var backends = []backend{
	{name: "jetstream", broker: embeddedBroker, reference: func(t *testing.T, name string) decl {
		return decl{eventbus.TypeBrokerAlias, name, map[string]any{
			"provider": "nats", "deploy_target": "embedded", "version": "2.10", "replicas": float64(1),
			"jetstream":     map[string]any{"enabled": true, "max_storage_bytes": float64(1 << 30), "max_memory_bytes": float64(1 << 28), "max_age": "24h"},
			"limits":        map[string]any{"cpu": "500m", "memory": "512Mi", "storage": "10Gi"},
			"poll_interval": "1s", "broker_target": "in_process", "max_conns": float64(4),
			"_config_dir": "/somewhere",
			"embedded":    map[string]any{"port": float64(-1), "store_dir": t.TempDir()},
		}}
	}},
	{name: "postgres", broker: postgresBroker, reference: func(t *testing.T, name string) decl {
		return decl{eventbus.TypeBrokerAlias, name, map[string]any{
			"provider": "pgchannel", "dsn": pg.start(t), "schema": pg.schema(), "version": "15", "replicas": float64(1),
			"limits":        map[string]any{"cpu": "500m", "memory": "512Mi", "storage": "10Gi"},
			"poll_interval": "1s", "broker_target": "in_process", "max_conns": float64(4),
			"_config_dir": "/somewhere",
		}}
	}},
}

// postgresBroker declares a postgres broker on the shared server, in a
// schema of its own.
func postgresBroker(t *testing.T, name string) decl {
	return decl{eventbus.TypeBroker, name, map[string]any{
		"provider": "postgres", "dsn": pg.start(t), "schema": pg.schema(), "poll_interval": "200ms", "max_conns": float64(8),
	}}
}

// forEachBackend runs test once per backend, in parallel.
func forEachBackend(t *testing.T, test func(t *testing.T, be backend)) {
	t.Helper()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			test(t, be)
		})
	}
}
