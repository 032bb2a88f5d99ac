package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
	"github.com/wfeventbus/eventbus/internal/pgtest"
)

// database is the PostgreSQL server the package's tests share, started by
// the first test that needs it; each test gets a schema of its own.
type database struct {
	once    sync.Once
	srv     *pgtest.Server
	dsn     string
	err     error
	schemas atomic.Int64
}

// pg is set by TestMain before any test runs and never replaced.
var pg *database

// start starts the server once; a machine without PostgreSQL fails the
// test with what to install.
func (db *database) start(t testing.TB) string {
	t.Helper()
	db.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if db.srv, db.err = pgtest.Start(ctx); db.err != nil {
			return
		}
		db.dsn, db.err = db.srv.CreateDatabase(ctx, "cli")
	})
	if db.err != nil {
		t.Fatalf("the postgres tests need a PostgreSQL server: %v", db.err)
	}
	return db.dsn
}

func (db *database) stop() {
	if db.srv != nil {
		_ = db.srv.Stop()
	}
}

// schema returns a schema no other test uses.
func (db *database) schema() string {
	return fmt.Sprintf("c%d_%d", os.Getpid(), db.schemas.Add(1))
}

// cliBroker is a broker the commands of a test talk to.
type cliBroker struct {
	// conn are the flags that name it.
	conn []string
	// env names it instead of --url, with envArgs the flags still needed.
	env     map[string]string
	envArgs []string
	// shown is how the commands print where they are connected.
	shown string
	// stream declares a stream.
	stream func(t *testing.T, name string, subjects ...string)
}

// with returns args followed by the broker's connection flags.
func (b cliBroker) with(args ...string) []string {
	return append(append([]string(nil), args...), b.conn...)
}

// cliBackends are the brokers the commands' tests run on, from one case.
var cliBackends = []struct {
	name  string
	start func(t *testing.T) cliBroker
}{
	{name: "nats", start: func(t *testing.T) cliBroker {
		url := startNATS(t, false)
		_, js := jetStreamClient(t, url)
		return cliBroker{
			conn: []string{"--url", url}, env: map[string]string{"NATS_URL": url}, shown: url,
			stream: func(t *testing.T, name string, subjects ...string) { createStream(t, js, name, subjects...) },
		}
	}},
	{name: "postgres", start: func(t *testing.T) cliBroker {
		dsn, schema := pg.start(t), pg.schema()
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		defer cancel()
		// An app's broker makes the schema; here the test's own bus does.
		b, err := postgres.Connect(ctx, postgres.Config{DSN: dsn, Schema: schema, PollOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return cliBroker{
			conn: []string{"--url", dsn, "--schema", schema}, env: map[string]string{"DATABASE_URL": dsn}, envArgs: []string{"--schema", schema},
			shown: dsn + " (schema " + schema + ")",
			stream: func(t *testing.T, name string, subjects ...string) {
				ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
				defer cancel()
				if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: name, Subjects: subjects}); err != nil {
					t.Fatalf("create stream %s: %v", name, err)
				}
			},
		}
	}},
}

// forEachBackend runs test once per broker kind, in parallel, each on a
// broker of its own.
func forEachBackend(t *testing.T, test func(t *testing.T, b cliBroker)) {
	t.Helper()
	for _, be := range cliBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			test(t, be.start(t))
		})
	}
}
