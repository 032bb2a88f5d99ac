package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// waiters wake the fetches of this process waiting for a stream's
// messages. A fetch takes the stream's channel before it looks, so a
// wake-up between its look and its wait is not lost.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (w *waiters) init() { w.m = map[string]chan struct{}{} }

// ch returns the channel closed at the next wake-up of stream.
func (w *waiters) ch(stream string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.m[stream]
	if c == nil {
		c = make(chan struct{})
		w.m[stream] = c
	}
	return c
}

// wake wakes the fetches waiting for stream.
func (w *waiters) wake(stream string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c := w.m[stream]; c != nil {
		close(c)
		delete(w.m, stream)
	}
}

// wakeAll wakes every waiting fetch.
func (w *waiters) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s, c := range w.m {
		close(c)
		delete(w.m, s)
	}
}

// notifyTimeout bounds one notification.
const notifyTimeout = 5 * time.Second

// notifier tells other processes which streams got messages. Publishing
// transactions do not NOTIFY themselves: PostgreSQL serialises the commits
// of notifying transactions on one global lock, which would serialise all
// publishers. Instead a committed publish marks its stream, and this
// notifier sends one NOTIFY per marked stream, from a transaction of its
// own, after the commit: while one is sent, further publishes only mark,
// so notifications never outnumber what the lock can take, however many
// messages are published.
//
// When no other session listens on the channel (an app of one process,
// whose own fetches are woken directly), nothing is sent at all: the
// notifier looks in pg_stat_activity, at most once per poll interval. A
// process that starts listening meanwhile finds the messages by polling
// until the notifier looks again.
type notifier struct {
	b     *Bus
	mu    sync.Mutex
	dirty map[string]struct{}
	kick  chan struct{}

	// Used by run only: whether other sessions listen, as last seen, and
	// when that was.
	others  bool
	checked time.Time
}

func newNotifier(b *Bus) *notifier {
	return &notifier{b: b, dirty: map[string]struct{}{}, kick: make(chan struct{}, 1)}
}

// mark notes that stream got messages.
func (n *notifier) mark(stream string) {
	n.mu.Lock()
	n.dirty[stream] = struct{}{}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	for {
		select {
		case <-n.kick:
		case <-n.b.ctx.Done():
			return
		}
		n.mu.Lock()
		streams := make([]string, 0, len(n.dirty))
		for s := range n.dirty {
			streams = append(streams, s)
		}
		clear(n.dirty)
		n.mu.Unlock()
		if len(streams) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(n.b.ctx, notifyTimeout)
		var err error
		if n.othersListen(ctx) {
			_, err = n.b.pool.Exec(ctx, n.b.sql.notify, n.b.cfg.Schema, streams)
		}
		cancel()
		if err != nil && n.b.ctx.Err() == nil {
			// Other processes find the messages when they next poll.
			n.b.log.Debug("notify failed; other processes will find the messages by polling", "error", err)
		}
	}
}

// othersListen reports whether a session other than this Bus's listener
// listens on its channel, asking pg_stat_activity at most once per poll
// interval. A session whose query this role may not see counts as one
// that listens, and so does any failure to ask: an unneeded NOTIFY costs
// little, a missing one a poll interval of latency.
func (n *notifier) othersListen(ctx context.Context) bool {
	if !n.checked.IsZero() && time.Since(n.checked) < n.b.cfg.PollInterval {
		return n.others
	}
	n.checked = time.Now()
	err := n.b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> $2 AND backend_type = 'client backend'
			AND (query = $1 OR query LIKE '<%>'))`, n.b.sql.listen, int64(n.b.listen.pid.Load())).Scan(&n.others)
	if err != nil {
		n.others = true
	}
	return n.others
}

const (
	// listenRetry is the first pause before the listener reconnects; it
	// doubles up to maxListenRetry while connecting fails.
	listenRetry    = 100 * time.Millisecond
	maxListenRetry = 5 * time.Second
)

// listener holds the Bus's one LISTEN connection, whatever the number of
// consumers and subscriptions, and wakes the fetches waiting for the
// streams named in notifications.
type listener struct {
	b *Bus
	// pid is the server process of the LISTEN connection, 0 while there
	// is none.
	pid atomic.Uint32
}

func newListener(b *Bus) *listener { return &listener{b: b} }

func (l *listener) run() {
	delay := listenRetry
	for l.b.ctx.Err() == nil {
		connected, err := l.listen()
		if l.b.ctx.Err() != nil {
			return
		}
		if connected {
			delay = listenRetry
		}
		l.b.log.Warn("LISTEN connection lost; fetches poll until it is back", "error", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-l.b.ctx.Done():
			return
		}
		delay = min(2*delay, maxListenRetry)
	}
}

// listen connects, listens and dispatches notifications until the
// connection fails or the Bus closes. connected reports whether it got as
// far as listening.
func (l *listener) listen() (connected bool, err error) {
	conn, err := pgx.ConnectConfig(l.b.ctx, l.b.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	}()
	if _, err := conn.Exec(l.b.ctx, l.b.sql.listen); err != nil {
		return false, err
	}
	l.pid.Store(conn.PgConn().PID())
	defer l.pid.Store(0)
	// Notifications sent while nobody listened are lost: look again.
	l.b.waits.wakeAll()
	for {
		n, err := conn.WaitForNotification(l.b.ctx)
		if err != nil {
			return true, err
		}
		l.b.waits.wake(n.Payload)
	}
}
