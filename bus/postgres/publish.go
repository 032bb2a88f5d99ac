package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wfeventbus/eventbus/bus"
)

const (
	// maxFlush bounds the messages of one publishing transaction.
	maxFlush = 1000
	// maxFlushBytes bounds their size.
	maxFlushBytes = 8 << 20
	// flushTimeout bounds one publishing transaction.
	flushTimeout = 30 * time.Second
	// maxReroutes bounds how often a message is routed again after its
	// stream changed under it.
	maxReroutes = 3
)

// Publish statuses the publish function returns.
const (
	statusStored    = 0
	statusDuplicate = 1
	statusWrongLast = 2
	statusFull      = 4
	statusStale     = 9
	statusAllStored = 10
)

// pubGroup is the messages of one Publish or PublishBatch call.
type pubGroup struct {
	results []bus.PublishResult
	left    atomic.Int64
	done    chan struct{}
}

func (g *pubGroup) finish(i int, r bus.PublishResult) {
	g.results[i] = r
	if g.left.Add(-1) == 0 {
		close(g.done)
	}
}

// pubItem is one message waiting to be published.
type pubItem struct {
	g        *pubGroup
	i        int
	msg      *bus.OutgoingMessage
	headers  []byte
	size     int
	reroutes int
}

// publishQueue holds the messages waiting for one stream. One flusher at a
// time drains it: while it commits, calls pile up and go together in the
// next transaction, so concurrent publishers share commits (and the
// stream's lock) instead of queueing for them one by one.
type publishQueue struct {
	mu       sync.Mutex
	pending  []*pubItem
	flushing bool
}

// publishers are the Bus's publish queues by stream id.
type publishers struct {
	mu     sync.Mutex
	queues map[int64]*publishQueue
	wg     sync.WaitGroup
}

func (p *publishers) init() { p.queues = map[int64]*publishQueue{} }

// wait waits for running flushes.
func (p *publishers) wait() { p.wg.Wait() }

// Publish stores msg and returns once it is committed. A subject no stream
// captures is bus.ErrNoStream; a message larger than the stream or the Bus
// allows is bus.ErrPayloadTooLarge; a failed ExpectedLastSequence is
// bus.ErrWrongLastSequence; an unreachable database is
// bus.ErrNotConnected, after trying again as PublishBatch says.
// Concurrent calls share transactions.
func (b *Bus) Publish(ctx context.Context, msg bus.OutgoingMessage) (bus.PublishAck, error) {
	results, err := b.PublishBatch(ctx, []bus.OutgoingMessage{msg})
	if err != nil {
		return bus.PublishAck{}, err
	}
	return results[0].Ack, results[0].Err
}

const (
	// defaultPublishTimeout bounds a publish, its retries included, whose
	// context has no deadline.
	defaultPublishTimeout = 30 * time.Second
	// A message that failed for want of the database is sent again after
	// retryPause, then twice as long each time up to maxRetryPause.
	retryPause    = 50 * time.Millisecond
	maxRetryPause = time.Second
)

// PublishBatch stores msgs, in order, in as few transactions as their
// streams allow (up to 1000 messages each), and returns once all are
// committed or refused. A message with a MsgID that failed because the
// database could not be reached (bus.ErrNotConnected) is sent again, after
// a pause, until ctx ends (30 seconds when ctx has no deadline): the
// database stores it once however often it arrives, whereas one without
// may have been committed before the connection broke, and is not sent
// again. Each message's outcome is in its result; the returned error is
// for the call as a whole: the Bus closed, or ctx ending first (the
// results of the messages still unanswered then carry ctx's error; they
// may still be stored).
func (b *Bus) PublishBatch(ctx context.Context, msgs []bus.OutgoingMessage) ([]bus.PublishResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPublishTimeout)
		defer cancel()
	}
	results, err := b.publishBatch(ctx, msgs)
	pause := retryPause
	for err == nil {
		var again []int
		for i, r := range results {
			if errors.Is(r.Err, bus.ErrNotConnected) && msgs[i].MsgID != "" {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return results, nil
		}
		select {
		case <-ctx.Done():
			for _, i := range again {
				results[i].Err = fmt.Errorf("%w (gave up: %w)", results[i].Err, ctx.Err())
			}
			return results, nil
		case <-time.After(pause):
		}
		pause = min(2*pause, maxRetryPause)
		retry := make([]bus.OutgoingMessage, len(again))
		for k, i := range again {
			retry[k] = msgs[i]
		}
		var more []bus.PublishResult
		more, err = b.publishBatch(ctx, retry)
		for k, r := range more {
			results[again[k]] = r
		}
	}
	return results, err
}

// publishBatch is one attempt of PublishBatch.
func (b *Bus) publishBatch(ctx context.Context, msgs []bus.OutgoingMessage) ([]bus.PublishResult, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g := &pubGroup{results: make([]bus.PublishResult, len(msgs)), done: make(chan struct{})}
	if len(msgs) == 0 {
		return g.results, nil
	}
	g.left.Store(int64(len(msgs)))
	byStream := map[int64][]*pubItem{}
	var order []int64
	for i := range msgs {
		m := &msgs[i]
		it := &pubItem{g: g, i: i, msg: m}
		rt, err := b.prepare(ctx, it)
		if err != nil {
			g.finish(i, bus.PublishResult{Err: err})
			continue
		}
		if _, ok := byStream[rt.id]; !ok {
			order = append(order, rt.id)
		}
		byStream[rt.id] = append(byStream[rt.id], it)
	}
	for i, id := range order {
		b.enqueue(id, byStream[id], i == len(order)-1)
	}
	select {
	case <-g.done:
		return g.results, nil
	case <-ctx.Done():
		return g.snapshot(ctx.Err()), ctx.Err()
	}
}

// snapshot copies the results known so far; the others say err. The
// flushers still own the group, so its results are not handed out.
func (g *pubGroup) snapshot(err error) []bus.PublishResult {
	out := make([]bus.PublishResult, len(g.results))
	for i := range out {
		out[i].Err = err
	}
	return out
}

// prepare checks it's message, routes it and encodes its headers.
func (b *Bus) prepare(ctx context.Context, it *pubItem) (*route, error) {
	m := it.msg
	if p := subjectProblem(m.Subject, false); p != "" {
		return nil, configError("subject", "%q %s", m.Subject, p)
	}
	rt, err := b.route(ctx, m.Subject)
	if err != nil {
		return nil, err
	}
	if it.headers == nil {
		it.headers = encodeHeaders(m.Headers, m.CorrelationID)
		it.size = len(m.Subject) + len(it.headers) + len(m.Payload)
	}
	if err := b.checkItem(rt, it); err != nil {
		return nil, err
	}
	return rt, nil
}

// checkItem applies the checks that need only the stream's configuration.
func (b *Bus) checkItem(rt *route, it *pubItem) error {
	if it.msg.ExpectedStream != "" && it.msg.ExpectedStream != rt.name {
		return fmt.Errorf("publish to %q: expected stream %q, but stream %q captures the subject", it.msg.Subject, it.msg.ExpectedStream, rt.name)
	}
	limit, what := b.opts.maxPayload, "the bus takes at most %d (max payload, subject and headers included)"
	if rt.maxMsgSize > 0 && rt.maxMsgSize < limit {
		limit, what = rt.maxMsgSize, "stream %[2]q takes at most %[1]d (max_msg_size, subject and headers included)"
	}
	if it.size > limit {
		return fmt.Errorf("publish to %q: %w: %d bytes; "+what, it.msg.Subject, bus.ErrPayloadTooLarge, it.size, limit, rt.name)
	}
	return nil
}

// enqueue adds items for stream id and starts a flusher if none runs:
// with inline set, the caller's own goroutine, for its first transaction
// (the caller waits for it anyway), then a goroutine of its own if more
// piled up meanwhile.
func (b *Bus) enqueue(id int64, items []*pubItem, inline bool) {
	b.publish.mu.Lock()
	q := b.publish.queues[id]
	if q == nil {
		q = &publishQueue{}
		b.publish.queues[id] = q
	}
	b.publish.mu.Unlock()
	q.mu.Lock()
	q.pending = append(q.pending, items...)
	start := !q.flushing
	q.flushing = true
	q.mu.Unlock()
	if !start {
		return
	}
	if !inline {
		b.publish.wg.Go(func() { b.drain(id, q) })
		return
	}
	b.publish.wg.Add(1)
	if b.drainOne(id, q) {
		b.publish.wg.Go(func() { b.drain(id, q) })
	}
	b.publish.wg.Done()
}

// drain publishes q's messages until it is empty.
func (b *Bus) drain(id int64, q *publishQueue) {
	for b.drainOne(id, q) {
	}
}

// drainOne publishes one transaction's worth of q's messages and reports
// whether more wait; when none do, it ends q's flushing.
func (b *Bus) drainOne(id int64, q *publishQueue) bool {
	// Publishers released by the last commit come back at about the same
	// time: let them join this transaction rather than the next.
	runtime.Gosched()
	{
		q.mu.Lock()
		n, bytes := 0, 0
		for n < len(q.pending) && n < maxFlush && (n == 0 || bytes+q.pending[n].size <= maxFlushBytes) {
			bytes += q.pending[n].size
			n++
		}
		if n == 0 {
			q.flushing = false
			q.mu.Unlock()
			return false
		}
		items := append([]*pubItem(nil), q.pending[:n]...)
		q.pending = q.pending[n:]
		if len(q.pending) == 0 {
			q.pending = nil
		}
		q.mu.Unlock()
		b.flush(id, items)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		q.flushing = false
		return false
	}
	return true
}

// flush publishes items, all routed to stream id, in one call of the
// publish function.
func (b *Bus) flush(id int64, items []*pubItem) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), flushTimeout)
	defer cancel()
	rt := b.routes.byStream(id)
	if rt == nil {
		b.reroute(ctx, items)
		return
	}
	args := publishArgs(items)
	if args.msgIDs == nil && args.expected == nil {
		// The common case, in one plain statement: no message ids to look
		// up, no expected sequence, a stream that refuses nothing.
		var first int64
		err := b.pool.QueryRow(ctx, b.sql.publishPlain, rt.id, rt.version, args.subjects, args.payloads, args.headers, args.sizes).Scan(&first)
		switch {
		case err == nil:
			for i, it := range items {
				it.g.finish(it.i, bus.PublishResult{Ack: bus.PublishAck{Stream: rt.name, Sequence: uint64(first) + uint64(i)}})
			}
			b.published(rt.name)
			return
		case !isNoRows(err):
			b.failAll(items, err)
			return
		}
		// No row: the stream changed, or it refuses messages when full;
		// the publish function sorts that out.
	}
	rows, err := b.pool.Query(ctx, b.sql.publish, rt.id, rt.version, args.subjects, args.payloads, args.headers, args.sizes, args.msgIDs, args.expected)
	if err != nil {
		b.failAll(items, err)
		return
	}
	type outcome struct {
		idx    int32
		seq    int64
		status int16
	}
	outs := make([]outcome, 0, len(items))
	for rows.Next() {
		var o outcome
		if err := rows.Scan(&o.idx, &o.seq, &o.status); err != nil {
			rows.Close()
			b.failAll(items, err)
			return
		}
		outs = append(outs, o)
	}
	if err := rows.Err(); err != nil {
		b.failAll(items, err)
		return
	}
	if len(outs) == 1 && outs[0].status == statusStale {
		if err := b.reloadRoutes(ctx); err != nil {
			b.failAll(items, err)
			return
		}
		b.reroute(ctx, items)
		return
	}
	if len(outs) == 1 && outs[0].status == statusAllStored {
		for i, it := range items {
			it.g.finish(it.i, bus.PublishResult{Ack: bus.PublishAck{Stream: rt.name, Sequence: uint64(outs[0].seq) + uint64(i)}})
		}
		b.published(rt.name)
		return
	}
	stored := false
	for _, o := range outs {
		if o.idx < 1 || int(o.idx) > len(items) {
			continue
		}
		it := items[o.idx-1]
		m := it.msg
		var r bus.PublishResult
		switch o.status {
		case statusStored:
			r.Ack = bus.PublishAck{Stream: rt.name, Sequence: uint64(o.seq)}
			stored = true
		case statusDuplicate:
			r.Ack = bus.PublishAck{Stream: rt.name, Sequence: uint64(o.seq), Duplicate: true}
		case statusWrongLast:
			r.Err = fmt.Errorf("publish to %q: %w: expected %d, the stream's last is %d", m.Subject, bus.ErrWrongLastSequence, m.ExpectedLastSequence, o.seq)
		case statusFull:
			r.Err = fmt.Errorf("publish to %q: stream %q is full (max_msgs or max_bytes with discard new)", m.Subject, rt.name)
		default:
			r.Err = fmt.Errorf("publish to %q: unexpected status %d", m.Subject, o.status)
		}
		it.g.finish(it.i, r)
	}
	if len(outs) != len(items) {
		b.log.Error("publish function answered for fewer messages than it was given", "stream", rt.name, "given", len(items), "answered", len(outs))
	}
	if stored {
		b.published(rt.name)
	}
}

// published wakes the fetches waiting for stream: this process's at once,
// other processes' through a notification.
func (b *Bus) published(stream string) {
	b.waits.wake(stream)
	if b.notify != nil {
		b.notify.mark(stream)
	}
}

// reroute routes items again after their stream changed or vanished.
func (b *Bus) reroute(ctx context.Context, items []*pubItem) {
	byStream := map[int64][]*pubItem{}
	for _, it := range items {
		it.reroutes++
		if it.reroutes > maxReroutes {
			it.g.finish(it.i, bus.PublishResult{Err: fmt.Errorf("publish to %q: the stream kept changing; try again", it.msg.Subject)})
			continue
		}
		rt, err := b.prepare(ctx, it)
		if err != nil {
			it.g.finish(it.i, bus.PublishResult{Err: err})
			continue
		}
		byStream[rt.id] = append(byStream[rt.id], it)
	}
	for id, its := range byStream {
		b.flush(id, its)
	}
}

// failAll gives every item err.
func (b *Bus) failAll(items []*pubItem, err error) {
	err = mapError(err)
	for _, it := range items {
		it.g.finish(it.i, bus.PublishResult{Err: fmt.Errorf("publish to %q: %w", it.msg.Subject, err)})
	}
}

// args are the publish function's arrays.
type args struct {
	subjects []string
	payloads [][]byte
	headers  [][]byte
	sizes    []int32
	msgIDs   []*string
	expected []*int64
}

func publishArgs(items []*pubItem) args {
	a := args{
		subjects: make([]string, len(items)),
		payloads: make([][]byte, len(items)),
		headers:  make([][]byte, len(items)),
		sizes:    make([]int32, len(items)),
	}
	for i, it := range items {
		m := it.msg
		a.subjects[i] = m.Subject
		a.payloads[i] = m.Payload
		if a.payloads[i] == nil {
			a.payloads[i] = []byte{}
		}
		a.headers[i] = it.headers
		a.sizes[i] = int32(it.size)
		if m.MsgID != "" {
			if a.msgIDs == nil {
				a.msgIDs = make([]*string, len(items))
			}
			a.msgIDs[i] = &m.MsgID
		}
		if m.ExpectedLastSequence != 0 {
			if a.expected == nil {
				a.expected = make([]*int64, len(items))
			}
			v := int64(m.ExpectedLastSequence)
			a.expected[i] = &v
		}
	}
	return a
}

// PublishTx stores msg in the caller's transaction tx: the message is
// visible to consumers when tx commits and gone if it rolls back, so it
// commits or rolls back together with the caller's own writes (a
// transactional outbox). Until tx ends it holds the stream's lock, so
// other publishers to the stream wait for it: keep such transactions
// short. Errors are those of Publish; a message refused leaves tx usable.
func (b *Bus) PublishTx(ctx context.Context, tx pgx.Tx, msg bus.OutgoingMessage) (bus.PublishAck, error) {
	if err := b.ready(); err != nil {
		return bus.PublishAck{}, err
	}
	g := &pubGroup{results: make([]bus.PublishResult, 1), done: make(chan struct{})}
	it := &pubItem{g: g, msg: &msg}
	for attempt := 0; ; attempt++ {
		rt, err := b.prepare(ctx, it)
		if err != nil {
			return bus.PublishAck{}, err
		}
		a := publishArgs([]*pubItem{it})
		var o struct {
			idx    int32
			seq    int64
			status int16
		}
		err = tx.QueryRow(ctx, b.sql.publish, rt.id, rt.version, a.subjects, a.payloads, a.headers, a.sizes, a.msgIDs, a.expected).Scan(&o.idx, &o.seq, &o.status)
		if err != nil {
			return bus.PublishAck{}, fmt.Errorf("publish to %q: %w", msg.Subject, mapError(err))
		}
		switch o.status {
		case statusStale:
			if attempt >= maxReroutes {
				return bus.PublishAck{}, fmt.Errorf("publish to %q: the stream kept changing; try again", msg.Subject)
			}
			if err := b.reloadRoutes(ctx); err != nil {
				return bus.PublishAck{}, err
			}
			continue
		case statusStored, statusAllStored:
			if b.notify != nil {
				if _, err := tx.Exec(ctx, b.sql.notify, b.cfg.Schema, []string{rt.name}); err != nil {
					return bus.PublishAck{}, fmt.Errorf("publish to %q: notify: %w", msg.Subject, mapError(err))
				}
			}
			return bus.PublishAck{Stream: rt.name, Sequence: uint64(o.seq)}, nil
		case statusDuplicate:
			return bus.PublishAck{Stream: rt.name, Sequence: uint64(o.seq), Duplicate: true}, nil
		case statusWrongLast:
			return bus.PublishAck{}, fmt.Errorf("publish to %q: %w: expected %d, the stream's last is %d", msg.Subject, bus.ErrWrongLastSequence, msg.ExpectedLastSequence, o.seq)
		case statusFull:
			return bus.PublishAck{}, fmt.Errorf("publish to %q: stream %q is full (max_msgs or max_bytes with discard new)", msg.Subject, rt.name)
		default:
			return bus.PublishAck{}, errors.New("publish: unexpected status")
		}
	}
}
