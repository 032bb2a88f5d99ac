package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// DefaultFetchMaxWait is how long Fetch waits when FetchOptions.MaxWait is 0.
const DefaultFetchMaxWait = 5 * time.Second

// fetchTimeout bounds one call of the fetch function.
const fetchTimeout = 30 * time.Second

// consumerHandle is what fetching and settling need to know of a consumer.
type consumerHandle struct {
	id       int64
	streamID int64
	stream   string
	name     string
	ackNone  bool
	// idText is id in decimal, the Reply of the consumer's tokens.
	idText string
}

type consumerKey struct{ stream, name string }

// consumerCache remembers consumer handles by stream and name.
type consumerCache struct {
	mu sync.RWMutex
	m  map[consumerKey]*consumerHandle
}

func (c *consumerCache) init() { c.m = map[consumerKey]*consumerHandle{} }

// forget drops the handles of stream: of consumer name, or of all its
// consumers when name is empty.
func (c *consumerCache) forget(stream, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.stream == stream && (name == "" || k.name == name) {
			delete(c.m, k)
		}
	}
}

// consumer returns the handle of stream's consumer name, asking the
// database unless it is cached (or fresh is set).
func (b *Bus) consumer(ctx context.Context, stream, name string, fresh bool) (*consumerHandle, error) {
	key := consumerKey{stream, name}
	if !fresh {
		b.consumers.mu.RLock()
		h := b.consumers.m[key]
		b.consumers.mu.RUnlock()
		if h != nil {
			return h, nil
		}
	}
	h := &consumerHandle{stream: stream, name: name}
	var ackPolicy int16
	var ackWait int64
	err := b.pool.QueryRow(ctx, b.sql.consumerByKey, stream, name).Scan(&h.id, &h.streamID, &ackPolicy, &ackWait)
	if err != nil {
		if isNoRows(err) {
			return nil, fmt.Errorf("consumer %q on stream %q: %w", name, stream, bus.ErrNotFound)
		}
		return nil, fmt.Errorf("consumer %q on stream %q: %w", name, stream, mapError(err))
	}
	h.ackNone = ackPolicy == ackPolicyNone
	h.idText = strconv.FormatInt(h.id, 10)
	b.consumers.mu.Lock()
	b.consumers.m[key] = h
	b.consumers.mu.Unlock()
	return h, nil
}

// fetchOptions checks opts and fills in the defaults.
func fetchOptions(opts bus.FetchOptions) (batch int, wait time.Duration, err error) {
	batch, wait = opts.Batch, opts.MaxWait
	switch {
	case batch == 0:
		batch = 1
	case batch < 0 || batch > bus.MaxFetchBatch:
		return 0, 0, configError("batch", "%d is not between 1 and %d", batch, bus.MaxFetchBatch)
	}
	switch {
	case wait == 0:
		wait = DefaultFetchMaxWait
	case wait < 0:
		return 0, 0, configError("max_wait", "%s is negative", wait)
	}
	return batch, wait, nil
}

// Fetch hands out up to opts.Batch messages of the durable consumer: due
// redeliveries first, then new messages in stream order. It returns as
// soon as there is at least one, or an empty slice after opts.MaxWait (and
// no later than ctx's deadline). While it waits it is woken by publishes
// of this process, by notifications from other processes, and otherwise
// looks again every poll interval or when a redelivery falls due. A
// consumer that does not exist is bus.ErrNotFound.
func (b *Bus) Fetch(ctx context.Context, stream, consumer string, opts bus.FetchOptions) ([]*bus.Message, error) {
	if err := checkName("stream_name", stream); err != nil {
		return nil, err
	}
	if err := checkName("consumer", consumer); err != nil {
		return nil, err
	}
	batch, wait, err := fetchOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := b.consumer(ctx, stream, consumer, false)
	if err != nil {
		return nil, err
	}
	return b.fetchWait(ctx, h, batch, wait, nil)
}

// fetchWait fetches until it gets messages or wait passes.
func (b *Bus) fetchWait(ctx context.Context, h *consumerHandle, batch int, wait time.Duration, sub *subscription) ([]*bus.Message, error) {
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok {
		// Leave time to hand back what a last look finds.
		if d = d.Add(-time.Until(d) / 10); d.Before(deadline) {
			deadline = d
		}
	}
	retried := false
	for {
		woken := b.waits.ch(h.stream)
		msgs, dueIn, err := b.fetchOnce(ctx, h, batch, sub)
		if err != nil {
			if errors.Is(err, bus.ErrNotFound) && !retried {
				// The cached consumer may have been deleted and made again.
				retried = true
				b.consumers.forget(h.stream, h.name)
				fresh, ferr := b.consumer(ctx, h.stream, h.name, true)
				if ferr != nil {
					return nil, ferr
				}
				h = fresh
				continue
			}
			return nil, err
		}
		if len(msgs) > 0 {
			return msgs, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		pause := min(b.cfg.PollInterval, left)
		if dueIn > 0 && dueIn < pause {
			pause = dueIn
		}
		t := time.NewTimer(pause)
		select {
		case <-woken:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-b.ctx.Done():
			t.Stop()
			return nil, bus.ErrClosed
		}
		t.Stop()
	}
}

// fetchOnce calls the fetch function once. dueIn is when the next
// redelivery falls due (0: none known) when nothing was handed out.
// Deliveries made after ctx ended are handed back at once.
func (b *Bus) fetchOnce(ctx context.Context, h *consumerHandle, batch int, sub *subscription) ([]*bus.Message, time.Duration, error) {
	// The function runs to its end even if ctx ends meanwhile, so that
	// what it hands out is either returned or handed back, never left to
	// sit out its ack wait.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	rows, err := b.pool.Query(qctx, b.sql.fetch, h.id, batch)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch from %q on stream %q: %w", h.name, h.stream, mapError(err))
	}
	defer rows.Close()
	var (
		out   []*bus.Message
		dueIn time.Duration
	)
	for rows.Next() {
		var (
			seq, cseq   *int64
			subject     *string
			payload     []byte
			hdr         []byte
			published   *time.Time
			count       *int32
			dueInSecond *float64
		)
		if err := rows.Scan(&seq, &subject, &payload, &hdr, &published, &count, &cseq, &dueInSecond); err != nil {
			return nil, 0, fmt.Errorf("fetch from %q on stream %q: %w", h.name, h.stream, mapError(err))
		}
		if seq == nil {
			if dueInSecond != nil {
				dueIn = time.Duration(*dueInSecond*float64(time.Second)) + time.Millisecond
			}
			continue
		}
		headers, herr := decodeHeaders(hdr)
		if herr != nil {
			b.log.Warn("message with malformed headers; delivered without them", "stream", h.stream, "seq", *seq, "error", herr)
		}
		d := &delivery{
			b:     b,
			h:     h,
			seq:   *seq,
			count: *count,
			sub:   sub,
		}
		if payload == nil {
			payload = []byte{}
		}
		d.msg = bus.Message{
			Subject:          *subject,
			Payload:          payload,
			Headers:          headers,
			Stream:           h.stream,
			Consumer:         h.name,
			StreamSequence:   uint64(*seq),
			ConsumerSequence: uint64(*cseq),
			DeliveryCount:    uint64(*count),
			PublishedAt:      *published,
			Acknowledger:     d,
		}
		if !h.ackNone {
			d.msg.AckToken = b.codec.Encode(bus.Token{
				Backend:   backendName,
				Stream:    h.stream,
				Consumer:  h.name,
				StreamSeq: uint64(*seq),
				Delivery:  uint64(*count),
				Reply:     h.idText,
			})
		}
		out = append(out, &d.msg)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("fetch from %q on stream %q: %w", h.name, h.stream, mapError(err))
	}
	if ctx.Err() != nil && len(out) > 0 {
		b.release(out)
		return nil, 0, ctx.Err()
	}
	return out, dueIn, nil
}
