package e2e_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
	"github.com/wfeventbus/eventbus/internal/pgtest"
)

// database is the PostgreSQL server the package's tests share, started by
// the first test that needs it; each app gets a database of its own.
type database struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
	dbs  atomic.Int64
}

// pg is set by TestMain before any test runs and never replaced.
var pg *database

// create returns the DSN of a new database; a machine without PostgreSQL
// fails the test with what to install.
func (db *database) create(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	db.once.Do(func() { db.srv, db.err = pgtest.Start(ctx) })
	if db.err != nil {
		t.Fatalf("the postgres tests need a PostgreSQL server: %v", db.err)
	}
	dsn, err := db.srv.CreateDatabase(ctx, fmt.Sprintf("app%d_%d", os.Getpid(), db.dbs.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func (db *database) stop() {
	if db.srv != nil {
		_ = db.srv.Stop()
	}
}

// queueMsg is a stored message as a test sees it.
type queueMsg struct {
	subject string
	data    []byte
}

// brokerView is a test's own client on an app's broker.
type brokerView interface {
	// publish stores data on subject and fails the test unless a stream
	// stored it.
	publish(t *testing.T, ctx context.Context, subject, data string)
	// read returns the first n messages of stream on subject, waiting for
	// them.
	read(t *testing.T, ctx context.Context, stream, subject string, n int) []queueMsg
	// count returns how many messages stream holds.
	count(ctx context.Context, stream string) (uint64, error)
}

// queueBackend runs an app of the same pipelines on one kind of broker.
type queueBackend struct {
	name string
	// file is the app, relative to the repository's root.
	file string
	// start starts it in mode m and returns it with a client on its broker.
	start func(t *testing.T, m mode, file string) (*app, brokerView)
}

// queueBackends are the work-queue apps: the same streams, consumer and
// pipeline on embedded NATS and on PostgreSQL.
var queueBackends = []queueBackend{
	{name: "nats", file: "examples/work-queue/app.yaml", start: func(t *testing.T, m mode, file string) (*app, brokerView) {
		a := startApp(t, file, appConfig{mode: m})
		return a, natsView{js: connect(t, a)}
	}},
	{name: "postgres", file: "examples/postgres/app.yaml", start: func(t *testing.T, m mode, file string) (*app, brokerView) {
		dsn := pg.create(t)
		a := startApp(t, file, appConfig{mode: m, env: []string{"DATABASE_URL=" + dsn}})
		ctx, cancel := context.WithTimeout(t.Context(), startGuard)
		defer cancel()
		// The broker says which it is and why, whichever mode runs it.
		if _, err := a.log.waitFor(ctx, func(r record) bool {
			return r.msg() == "connected to PostgreSQL" && r.str("reason") == "DATABASE_URL is set" && r.str("dsn") == dsn && r.str("schema") == "eventbus"
		}); err != nil {
			t.Fatalf("no start-up line of the postgres broker: %v", err)
		}
		b, err := postgres.Connect(ctx, postgres.Config{DSN: dsn, PollOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return a, pgView{b: b}
	}},
}

// inEachBackendAndMode runs test for every queue backend in both plugin
// modes, in parallel.
func inEachBackendAndMode(t *testing.T, test func(t *testing.T, be queueBackend, m mode)) {
	t.Helper()
	for _, be := range queueBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			inEachMode(t, func(t *testing.T, m mode) { test(t, be, m) })
		})
	}
}

type natsView struct{ js jetstream.JetStream }

func (v natsView) publish(t *testing.T, ctx context.Context, subject, data string) {
	t.Helper()
	publish(t, ctx, v.js, subject, data)
}

func (v natsView) read(t *testing.T, ctx context.Context, stream, subject string, n int) []queueMsg {
	t.Helper()
	var out []queueMsg
	for _, m := range readStream(t, ctx, v.js, stream, subject, n) {
		out = append(out, queueMsg{subject: m.Subject(), data: m.Data()})
	}
	return out
}

func (v natsView) count(ctx context.Context, stream string) (uint64, error) {
	return streamMsgs(ctx, v.js, stream)
}

type pgView struct{ b *postgres.Bus }

func (v pgView) publish(t *testing.T, ctx context.Context, subject, data string) {
	t.Helper()
	if _, err := v.b.Publish(ctx, bus.OutgoingMessage{Subject: subject, Payload: []byte(data)}); err != nil {
		t.Fatalf("publish %s %s: %v", subject, data, err)
	}
}

func (v pgView) read(t *testing.T, ctx context.Context, stream, subject string, n int) []queueMsg {
	t.Helper()
	var (
		out   []queueMsg
		after uint64
	)
	for len(out) < n {
		msgs, err := v.b.Read(ctx, stream, postgres.ReadOptions{Subject: subject, After: after, Limit: min(n-len(out), bus.MaxFetchBatch), MaxWait: time.Second})
		if err != nil {
			t.Fatalf("read %s on %s: %d of %d messages: %v", subject, stream, len(out), n, err)
		}
		for _, m := range msgs {
			out = append(out, queueMsg{subject: m.Subject, data: m.Payload})
			after = m.StreamSequence
		}
	}
	return out
}

func (v pgView) count(ctx context.Context, stream string) (uint64, error) {
	info, err := v.b.StreamInfo(ctx, stream)
	return info.Messages, err
}
