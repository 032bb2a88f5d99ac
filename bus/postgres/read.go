package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// DefaultReadLimit is how many messages Read returns at most when
// ReadOptions.Limit is 0.
const DefaultReadLimit = 100

// ReadOptions select the stored messages Read returns.
type ReadOptions struct {
	// Subject is a subject pattern (NATS wildcards); empty reads every
	// subject of the stream.
	Subject string
	// After is the sequence to read after: the first message returned is
	// the first stored one with a higher sequence.
	After uint64
	// Limit is the most messages returned, 1 to bus.MaxFetchBatch (default
	// DefaultReadLimit).
	Limit int
	// MaxWait is how long Read waits for a message when there is none yet;
	// 0 returns at once.
	MaxWait time.Duration
}

// Read returns stored messages of stream in sequence order, without a
// consumer: nothing is delivered, held or settled, so it changes nothing
// for the stream's consumers (tools such as eventbus sub look at a stream
// this way). The messages have no Consumer, AckToken or Acknowledger, and
// their DeliveryCount is 0. Sequences become visible in order, so reading
// on from the last sequence returned misses nothing. Read waits up to
// opts.MaxWait for a message, woken as fetches are. A stream that does
// not exist is bus.ErrNotFound.
func (b *Bus) Read(ctx context.Context, stream string, opts ReadOptions) ([]*bus.Message, error) {
	if err := checkName("stream_name", stream); err != nil {
		return nil, err
	}
	regex, err := readRegex(opts.Subject)
	if err != nil {
		return nil, err
	}
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = DefaultReadLimit
	case limit < 0 || limit > bus.MaxFetchBatch:
		return nil, configError("limit", "%d is not between 1 and %d", limit, bus.MaxFetchBatch)
	}
	if opts.MaxWait < 0 {
		return nil, configError("max_wait", "%s is negative", opts.MaxWait)
	}
	if err := b.ready(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(opts.MaxWait)
	for {
		woken := b.waits.ch(stream)
		msgs, err := b.readOnce(ctx, stream, regex, opts.After, limit)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		t := time.NewTimer(min(b.cfg.PollInterval, left))
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

// readRegex is the regular expression of a subject pattern, nil for every
// subject.
func readRegex(subject string) (*string, error) {
	if subject == "" {
		return nil, nil
	}
	if p := subjectProblem(subject, true); p != "" {
		return nil, configError("subject", "%q %s", subject, p)
	}
	r := subjectRegex([]string{subject})
	return &r, nil
}

func (b *Bus) readOnce(ctx context.Context, stream string, regex *string, after uint64, limit int) ([]*bus.Message, error) {
	var id int64
	err := b.pool.QueryRow(ctx, b.q(`SELECT id FROM {{S}}.streams WHERE name = $1`), stream).Scan(&id)
	if isNoRows(err) {
		return nil, fmt.Errorf("stream %q: %w", stream, bus.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read stream %q: %w", stream, mapError(err))
	}
	rows, err := b.pool.Query(ctx, b.q(`SELECT seq, subject, payload, headers, published_at FROM {{S}}.messages
		WHERE stream_id = $1 AND seq > $2 AND ($3::text IS NULL OR subject ~ $3) ORDER BY seq LIMIT $4`),
		id, int64(min(after, 1<<63-1)), regex, limit)
	if err != nil {
		return nil, fmt.Errorf("read stream %q: %w", stream, mapError(err))
	}
	defer rows.Close()
	var out []*bus.Message
	for rows.Next() {
		var (
			seq       int64
			m         bus.Message
			hdr       []byte
			published time.Time
		)
		if err := rows.Scan(&seq, &m.Subject, &m.Payload, &hdr, &published); err != nil {
			return nil, fmt.Errorf("read stream %q: %w", stream, mapError(err))
		}
		headers, herr := decodeHeaders(hdr)
		if herr != nil {
			b.log.Warn("message with malformed headers; read without them", "stream", stream, "seq", seq, "error", herr)
		}
		if m.Payload == nil {
			m.Payload = []byte{}
		}
		m.Headers, m.Stream, m.StreamSequence, m.PublishedAt = headers, stream, uint64(seq), published
		out = append(out, &m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream %q: %w", stream, mapError(err))
	}
	return out, nil
}

// LastSequence is the sequence of the newest stored message of stream
// whose subject matches the pattern subject (every subject when empty), 0
// when there is none.
func (b *Bus) LastSequence(ctx context.Context, stream, subject string) (uint64, error) {
	if err := checkName("stream_name", stream); err != nil {
		return 0, err
	}
	regex, err := readRegex(subject)
	if err != nil {
		return 0, err
	}
	if err := b.ready(); err != nil {
		return 0, err
	}
	var (
		found bool
		seq   *int64
	)
	err = b.pool.QueryRow(ctx, b.q(`SELECT true, (SELECT max(seq) FROM {{S}}.messages m WHERE m.stream_id = s.id AND ($2::text IS NULL OR m.subject ~ $2))
		FROM {{S}}.streams s WHERE s.name = $1`), stream, regex).Scan(&found, &seq)
	if isNoRows(err) {
		return 0, fmt.Errorf("stream %q: %w", stream, bus.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("stream %q: %w", stream, mapError(err))
	}
	if seq == nil {
		return 0, nil
	}
	return uint64(*seq), nil
}

// StreamNameBySubject returns the stream that stores subject, or for a
// pattern with wildcards the one stream whose subjects it overlaps. No
// stream is bus.ErrNoStream; a pattern spanning several streams is
// bus.ErrInvalidConfig naming them.
func (b *Bus) StreamNameBySubject(ctx context.Context, subject string) (string, error) {
	if p := subjectProblem(subject, true); p != "" {
		return "", configError("subject", "%q %s", subject, p)
	}
	if err := b.ready(); err != nil {
		return "", err
	}
	if err := b.reloadRoutes(ctx); err != nil {
		return "", err
	}
	b.routes.mu.RLock()
	var names []string
	for _, rt := range b.routes.streams {
		if slices.ContainsFunc(rt.subjects, func(p string) bool { return subjectsOverlap(p, subject) }) {
			names = append(names, rt.name)
		}
	}
	b.routes.mu.RUnlock()
	switch len(names) {
	case 0:
		return "", fmt.Errorf("subject %q: %w", subject, bus.ErrNoStream)
	case 1:
		return names[0], nil
	}
	slices.Sort(names)
	return "", configError("subject", "%q spans streams %s; name one of them", subject, strings.Join(names, ", "))
}
