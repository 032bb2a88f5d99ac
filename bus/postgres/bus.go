package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wfeventbus/eventbus/bus"
)

// backendName is the Backend of every token this package issues.
const backendName = "postgres"

const (
	stateOpen int32 = iota
	stateClosing
	stateClosed
)

// Bus is bus.Bus on a PostgreSQL database. It is safe for concurrent use;
// any number of Buses, in any number of processes, may share one schema.
type Bus struct {
	pool     *pgxpool.Pool
	ownsPool bool
	cfg      Config
	opts     options
	codec    *bus.TokenCodec
	log      *slog.Logger
	sql      statements

	routes    routes
	consumers consumerCache
	publish   publishers
	acks      *settleBatcher
	waits     waiters
	notify    *notifier // nil with PollOnly
	listen    *listener // nil with PollOnly

	// ctx ends when Close begins; background work runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	subsMu sync.Mutex
	subs   map[*subscription]struct{}

	state     atomic.Int32
	closeOnce sync.Once
	closeErr  error
}

var _ bus.Bus = (*Bus)(nil)

// Connect makes a connection pool from cfg.DSN (at most cfg.MaxConns
// connections), migrates cfg.Schema and returns a Bus that owns the pool.
// When the database cannot be reached the error wraps bus.ErrNotConnected
// and says so plainly.
func Connect(ctx context.Context, cfg Config, opts ...Option) (*Bus, error) {
	cfg, err := cfg.withDefaults(true)
	if err != nil {
		return nil, err
	}
	pcfg, err := cfg.poolConfig()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, configError("dsn", "%v", err)
	}
	b, err := newBus(ctx, pool, cfg, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	b.ownsPool = true
	return b, nil
}

// New returns a Bus on pool, which the caller keeps and closes after the
// Bus. cfg.DSN and cfg.MaxConns are not used. The schema is migrated
// before New returns.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config, opts ...Option) (*Bus, error) {
	if pool == nil {
		return nil, configError("pool", "nil")
	}
	cfg, err := cfg.withDefaults(false)
	if err != nil {
		return nil, err
	}
	return newBus(ctx, pool, cfg, opts)
}

func newBus(ctx context.Context, pool *pgxpool.Pool, cfg Config, opts []Option) (*Bus, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	codec, err := bus.NewTokenCodec(o.tokenKey, o.previousTokenKeys...)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, pool, cfg.Schema); err != nil {
		if errors.Is(err, bus.ErrNotConnected) {
			// pgx reports every address and TLS mode it tried, over
			// several lines; the network error says it in one.
			cause := err
			var opErr *net.OpError
			if errors.As(err, &opErr) {
				cause = opErr
			}
			cc := pool.Config().ConnConfig
			return nil, fmt.Errorf("%w: cannot reach PostgreSQL at %s (%w): start it there or correct the dsn",
				bus.ErrNotConnected, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), cause)
		}
		return nil, err
	}
	b := &Bus{
		pool:  pool,
		cfg:   cfg,
		opts:  o,
		codec: codec,
		log:   o.logger,
		sql:   newStatements(cfg.Schema),
		subs:  make(map[*subscription]struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.routes.init()
	b.consumers.init()
	b.publish.init()
	b.waits.init()
	b.acks = newSettleBatcher(b)
	if !cfg.PollOnly {
		b.notify = newNotifier(b)
		b.listen = newListener(b)
		b.bg.Go(b.notify.run)
		b.bg.Go(b.listen.run)
	}
	b.bg.Go(b.maintain)
	return b, nil
}

// Close stops every subscription, giving running handlers the close timeout
// (WithCloseTimeout) to finish before their context is canceled, stops the
// background work and closes the pool if the Bus owns it. Calls after Close
// fail with bus.ErrClosed. Close is idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.state.Store(stateClosing)
		b.subsMu.Lock()
		subs := make([]*subscription, 0, len(b.subs))
		for s := range b.subs {
			subs = append(subs, s)
		}
		b.subsMu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), b.opts.closeTimeout)
		defer cancel()
		var errs []error
		for _, s := range subs {
			if err := s.Stop(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		b.state.Store(stateClosed)
		b.acks.close()
		b.cancel()
		b.bg.Wait()
		b.publish.wait()
		if b.ownsPool {
			b.pool.Close()
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// ready fails once the Bus is closing.
func (b *Bus) ready() error {
	if b.state.Load() != stateOpen {
		return bus.ErrClosed
	}
	return nil
}

// settleReady is ready for settlements, which handlers may still make while
// Close waits for them.
func (b *Bus) settleReady() error {
	if b.state.Load() == stateClosed {
		return bus.ErrClosed
	}
	return nil
}

// statements are the SQL the Bus runs, with its schema filled in.
type statements struct {
	schema        string
	publish       string
	publishPlain  string
	fetch         string
	settle        string
	notify        string
	listen        string
	routes        string
	consumerByKey string
}

func newStatements(schema string) statements {
	return statements{
		schema:  schema,
		publish: inSchema(schema, `SELECT o_idx, o_seq, o_status FROM {{S}}.publish($1, $2, $3, $4, $5, $6, $7, $8)`),
		// The publish function's first path as one statement, without its
		// call: the stream's row is locked and its sequences taken first,
		// then the messages stored with times taken after the lock. No row
		// comes back when the stream is at another version or refuses
		// messages when full (discard new with a limit).
		publishPlain: inSchema(schema, `WITH s AS (
	UPDATE {{S}}.streams st SET last_seq = st.last_seq + cardinality($3::text[])
	WHERE st.id = $1 AND st.version = $2 AND NOT (st.discard = 1 AND (st.max_msgs > 0 OR st.max_bytes > 0))
	RETURNING st.last_seq - cardinality($3::text[]) AS first_free),
ins AS (
	INSERT INTO {{S}}.messages (stream_id, seq, subject, payload, headers, published_at, size)
	SELECT $1, s.first_free + u.o, u.subj, u.pay, u.hdr, clock_timestamp(), u.sz
	FROM s, unnest($3::text[], $4::bytea[], $5::bytea[], $6::int[]) WITH ORDINALITY AS u(subj, pay, hdr, sz, o))
SELECT first_free + 1 FROM s`),
		fetch:         inSchema(schema, `SELECT * FROM {{S}}.fetch($1, $2)`),
		settle:        inSchema(schema, `SELECT o_consumer, o_seq FROM {{S}}.settle($1, $2, $3, $4, $5)`),
		notify:        inSchema(schema, `SELECT {{S}}.notify($1, $2)`),
		listen:        "LISTEN " + ident(schema),
		routes:        inSchema(schema, `SELECT id, name, version, subjects, max_msg_size FROM {{S}}.streams`),
		consumerByKey: inSchema(schema, `SELECT c.id, c.stream_id, c.ack_policy, c.ack_wait_ns FROM {{S}}.consumers c JOIN {{S}}.streams s ON s.id = c.stream_id WHERE s.name = $1 AND c.name = $2`),
	}
}
