package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wfeventbus/eventbus/bus"
)

// streamColumns are the columns scanStream reads, then the state columns.
const streamColumns = `s.id, s.name, s.description, s.subjects, s.retention, s.storage, s.replicas, s.max_msgs, s.max_bytes,
	s.max_age_ns, s.max_msg_size, s.discard, s.duplicate_window_ns, s.last_seq`

// streamState reads a stream's message count, bytes and first sequence.
const streamState = `(SELECT count(*) FROM {{S}}.messages m WHERE m.stream_id = s.id),
	(SELECT coalesce(sum(m.size), 0) FROM {{S}}.messages m WHERE m.stream_id = s.id),
	(SELECT min(m.seq) FROM {{S}}.messages m WHERE m.stream_id = s.id),
	(SELECT count(*) FROM {{S}}.consumers c WHERE c.stream_id = s.id)`

func (b *Bus) q(sql string) string { return inSchema(b.cfg.Schema, sql) }

// scanStream reads a row of streamColumns and streamState.
func scanStream(row pgx.Row) (int64, bus.StreamInfo, error) {
	var (
		id                                   int64
		info                                 bus.StreamInfo
		c                                    = &info.Config
		retention, storage, discard          int16
		replicas, maxMsgSize                 int32
		maxAge, dupWindow, lastSeq, msgs, by int64
		firstSeq                             *int64
		consumers                            int64
	)
	err := row.Scan(&id, &c.Name, &c.Description, &c.Subjects, &retention, &storage, &replicas, &c.MaxMsgs, &c.MaxBytes,
		&maxAge, &maxMsgSize, &discard, &dupWindow, &lastSeq, &msgs, &by, &firstSeq, &consumers)
	if err != nil {
		return 0, info, err
	}
	c.Retention = bus.Retention(retention)
	c.Storage = bus.Storage(storage)
	c.Discard = bus.Discard(discard)
	c.Replicas = int(replicas)
	c.MaxMsgSize = maxMsgSize
	c.MaxAge = time.Duration(maxAge)
	c.DuplicateWindow = time.Duration(dupWindow)
	info.LastSeq = uint64(lastSeq)
	info.Messages = uint64(msgs)
	info.Bytes = uint64(by)
	info.FirstSeq = uint64(lastSeq) + 1
	if firstSeq != nil {
		info.FirstSeq = uint64(*firstSeq)
	}
	info.Consumers = int(consumers)
	return id, info, nil
}

// EnsureStream creates the stream or updates it to cfg, and returns its
// configuration and state. Subjects another stream captures are refused
// (bus.ErrInvalidConfig), as are changes of retention_policy or storage.
// Streams are created and changed one at a time across all processes
// (under an advisory lock), so two streams never end up overlapping.
func (b *Bus) EnsureStream(ctx context.Context, cfg bus.StreamConfig) (bus.StreamInfo, error) {
	cfg, err := checkStreamConfig(cfg)
	if err != nil {
		return bus.StreamInfo{}, fmt.Errorf("stream %q: %w", cfg.Name, err)
	}
	if err := b.ready(); err != nil {
		return bus.StreamInfo{}, err
	}
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryKey(b.cfg.Schema, "catalog")); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, b.q(`SELECT name, subjects, retention, storage FROM {{S}}.streams`))
		if err != nil {
			return err
		}
		type existing struct {
			name              string
			subjects          []string
			retention, storag int16
		}
		var all []existing
		for rows.Next() {
			var e existing
			if err := rows.Scan(&e.name, &e.subjects, &e.retention, &e.storag); err != nil {
				rows.Close()
				return err
			}
			all = append(all, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var self *existing
		for i, e := range all {
			if e.name == cfg.Name {
				self = &all[i]
				continue
			}
			for _, s := range cfg.Subjects {
				for _, o := range e.subjects {
					if subjectsOverlap(s, o) {
						return configError("subjects", "%q overlaps %q of stream %q: a subject belongs to one stream at most", s, o, e.name)
					}
				}
			}
		}
		if self == nil {
			_, err := tx.Exec(ctx, b.q(`INSERT INTO {{S}}.streams (name, description, subjects, retention, storage, replicas,
				max_msgs, max_bytes, max_age_ns, max_msg_size, discard, duplicate_window_ns)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`),
				cfg.Name, cfg.Description, cfg.Subjects, int16(cfg.Retention), int16(cfg.Storage), cfg.Replicas,
				cfg.MaxMsgs, cfg.MaxBytes, cfg.MaxAge.Nanoseconds(), cfg.MaxMsgSize, int16(cfg.Discard), cfg.DuplicateWindow.Nanoseconds())
			return err
		}
		if self.retention != int16(cfg.Retention) {
			return configError("retention_policy", "stream %q exists with another retention policy, which cannot change", cfg.Name)
		}
		if self.storag != int16(cfg.Storage) {
			return configError("storage", "stream %q exists with another storage, which cannot change", cfg.Name)
		}
		_, err = tx.Exec(ctx, b.q(`UPDATE {{S}}.streams SET description = $2, subjects = $3, replicas = $4, max_msgs = $5,
			max_bytes = $6, max_age_ns = $7, max_msg_size = $8, discard = $9, duplicate_window_ns = $10, version = version + 1
			WHERE name = $1 AND (description, subjects, replicas, max_msgs, max_bytes, max_age_ns, max_msg_size, discard, duplicate_window_ns)
				IS DISTINCT FROM ($2, $3, $4, $5, $6, $7, $8, $9, $10)`),
			cfg.Name, cfg.Description, cfg.Subjects, cfg.Replicas, cfg.MaxMsgs, cfg.MaxBytes, cfg.MaxAge.Nanoseconds(),
			cfg.MaxMsgSize, int16(cfg.Discard), cfg.DuplicateWindow.Nanoseconds())
		return err
	})
	if err != nil {
		return bus.StreamInfo{}, fmt.Errorf("stream %q: %w", cfg.Name, mapError(err))
	}
	if err := b.reloadRoutes(ctx); err != nil {
		return bus.StreamInfo{}, err
	}
	return b.StreamInfo(ctx, cfg.Name)
}

// StreamInfo returns the stream's configuration and state.
func (b *Bus) StreamInfo(ctx context.Context, name string) (bus.StreamInfo, error) {
	if err := checkName("name", name); err != nil {
		return bus.StreamInfo{}, err
	}
	if err := b.ready(); err != nil {
		return bus.StreamInfo{}, err
	}
	_, info, err := scanStream(b.pool.QueryRow(ctx, b.q(`SELECT `+streamColumns+`, `+streamState+` FROM {{S}}.streams s WHERE s.name = $1`), name))
	if isNoRows(err) {
		return bus.StreamInfo{}, fmt.Errorf("stream %q: %w", name, bus.ErrNotFound)
	}
	if err != nil {
		return bus.StreamInfo{}, fmt.Errorf("stream %q: %w", name, mapError(err))
	}
	return info, nil
}

// Streams returns every stream of the schema.
func (b *Bus) Streams(ctx context.Context) ([]bus.StreamInfo, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, b.q(`SELECT `+streamColumns+`, `+streamState+` FROM {{S}}.streams s ORDER BY s.name`))
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", mapError(err))
	}
	defer rows.Close()
	out := []bus.StreamInfo{}
	for rows.Next() {
		_, info, err := scanStream(rows)
		if err != nil {
			return nil, fmt.Errorf("list streams: %w", mapError(err))
		}
		out = append(out, info)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", mapError(err))
	}
	return out, nil
}

// DeleteStream deletes the stream, its messages and its consumers.
func (b *Bus) DeleteStream(ctx context.Context, name string) error {
	if err := checkName("name", name); err != nil {
		return err
	}
	if err := b.ready(); err != nil {
		return err
	}
	b.consumers.forget(name, "")
	var found bool
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryKey(b.cfg.Schema, "catalog")); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRow(ctx, b.q(`DELETE FROM {{S}}.streams WHERE name = $1 RETURNING id`), name).Scan(&id)
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		for _, sql := range []string{
			`DELETE FROM {{S}}.deliveries d USING {{S}}.consumers c WHERE c.stream_id = $1 AND d.consumer_id = c.id`,
			`DELETE FROM {{S}}.consumers WHERE stream_id = $1`,
			`DELETE FROM {{S}}.messages WHERE stream_id = $1`,
			`DELETE FROM {{S}}.dedup WHERE stream_id = $1`,
		} {
			if _, err := tx.Exec(ctx, b.q(sql), id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stream %q: %w", name, mapError(err))
	}
	if !found {
		return fmt.Errorf("stream %q: %w", name, bus.ErrNotFound)
	}
	b.waits.wake(name)
	return b.reloadRoutes(ctx)
}

// consumerColumns are the columns scanConsumer reads.
const consumerColumns = `c.id, c.name, c.description, c.filter_subjects, c.deliver_policy, c.opt_start_seq, c.opt_start_time,
	c.ack_policy, c.ack_wait_ns, c.max_deliver, c.backoff_ns, c.max_ack_pending`

// consumerState reads a consumer's pending, ack pending and redelivered
// counts.
const consumerState = `
	(SELECT count(*) FROM {{S}}.messages m WHERE m.stream_id = c.stream_id AND m.seq > c.scanned_seq
		AND (c.filter_regex IS NULL OR m.subject ~ c.filter_regex))
	+ (SELECT count(*) FROM {{S}}.deliveries d WHERE d.consumer_id = c.id AND d.delivery_count = 0),
	(SELECT count(*) FROM {{S}}.deliveries d WHERE d.consumer_id = c.id AND d.delivery_count > 0),
	(SELECT count(*) FROM {{S}}.deliveries d WHERE d.consumer_id = c.id AND d.delivery_count > 1)`

func scanConsumer(stream string, row pgx.Row) (bus.ConsumerInfo, error) {
	var (
		info                         bus.ConsumerInfo
		c                            = &info.Config
		id                           int64
		deliverPolicy, ackPolicy     int16
		startSeq, ackWait            int64
		startTime                    *time.Time
		maxDeliver, maxAckPending    int32
		backoff                      []int64
		pending, ackPending, redeliv int64
	)
	err := row.Scan(&id, &c.Durable, &c.Description, &c.FilterSubjects, &deliverPolicy, &startSeq, &startTime,
		&ackPolicy, &ackWait, &maxDeliver, &backoff, &maxAckPending, &pending, &ackPending, &redeliv)
	if err != nil {
		return info, err
	}
	c.Stream = stream
	if len(c.FilterSubjects) == 0 {
		c.FilterSubjects = nil
	}
	c.DeliverPolicy = bus.DeliverPolicy(deliverPolicy)
	c.OptStartSeq = uint64(startSeq)
	if startTime != nil {
		c.OptStartTime = *startTime
	}
	c.AckPolicy = bus.AckPolicy(ackPolicy)
	c.AckWait = time.Duration(ackWait)
	c.MaxDeliver = int(maxDeliver)
	for _, d := range backoff {
		c.Backoff = append(c.Backoff, time.Duration(d))
	}
	c.MaxAckPending = int(maxAckPending)
	info.NumPending = uint64(pending)
	info.NumAckPending = int(ackPending)
	info.NumRedelivered = int(redeliv)
	return info, nil
}

// EnsureConsumer creates the durable consumer or updates it to cfg. A
// missing stream is bus.ErrNotFound. The deliver policy and its start
// cannot change; on a workqueue stream the consumer must ack explicitly and
// its filter may not overlap another consumer's.
func (b *Bus) EnsureConsumer(ctx context.Context, cfg bus.ConsumerConfig) (bus.ConsumerInfo, error) {
	cfg, err := checkConsumerConfig(cfg)
	if err != nil {
		return bus.ConsumerInfo{}, fmt.Errorf("consumer %q: %w", cfg.Durable, err)
	}
	if err := b.ready(); err != nil {
		return bus.ConsumerInfo{}, err
	}
	var regex *string
	if len(cfg.FilterSubjects) > 0 {
		r := subjectRegex(cfg.FilterSubjects)
		regex = &r
	}
	backoff := make([]int64, len(cfg.Backoff))
	for i, d := range cfg.Backoff {
		backoff[i] = d.Nanoseconds()
	}
	filters := cfg.FilterSubjects
	if filters == nil {
		filters = []string{}
	}
	var startTime *time.Time
	if !cfg.OptStartTime.IsZero() {
		startTime = &cfg.OptStartTime
	}
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var (
			streamID, lastSeq int64
			retention         int16
		)
		// The share lock holds publishers back while the starting point is
		// chosen, so it is exact.
		err := tx.QueryRow(ctx, b.q(`SELECT id, retention, last_seq FROM {{S}}.streams WHERE name = $1 FOR SHARE`), cfg.Stream).
			Scan(&streamID, &retention, &lastSeq)
		if isNoRows(err) {
			return fmt.Errorf("stream %q: %w", cfg.Stream, bus.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var (
			id           int64
			oldPolicy    int16
			oldStartSeq  int64
			oldStartTime *time.Time
		)
		err = tx.QueryRow(ctx, b.q(`SELECT id, deliver_policy, opt_start_seq, opt_start_time FROM {{S}}.consumers
			WHERE stream_id = $1 AND name = $2 FOR UPDATE`), streamID, cfg.Durable).Scan(&id, &oldPolicy, &oldStartSeq, &oldStartTime)
		exists := err == nil
		if err != nil && !isNoRows(err) {
			return err
		}
		if retention == int16(bus.RetentionWorkQueue) {
			if err := b.checkWorkQueueConsumer(ctx, tx, streamID, cfg); err != nil {
				return err
			}
		}
		if exists {
			sameStart := (oldStartTime == nil) == (startTime == nil) && (oldStartTime == nil || oldStartTime.Equal(*startTime))
			if oldPolicy != int16(cfg.DeliverPolicy) || oldStartSeq != int64(cfg.OptStartSeq) || !sameStart {
				return configError("deliver_policy", "consumer %q exists with another deliver policy or start, which cannot change", cfg.Durable)
			}
			_, err := tx.Exec(ctx, b.q(`UPDATE {{S}}.consumers SET description = $2, filter_subjects = $3, filter_regex = $4,
				ack_policy = $5, ack_wait_ns = $6, max_deliver = $7, backoff_ns = $8, max_ack_pending = $9 WHERE id = $1`),
				id, cfg.Description, filters, regex, int16(cfg.AckPolicy), cfg.AckWait.Nanoseconds(),
				cfg.MaxDeliver, backoff, cfg.MaxAckPending)
			return err
		}
		start, err := b.startSeq(ctx, tx, streamID, lastSeq, cfg, regex)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, b.q(`INSERT INTO {{S}}.consumers (stream_id, name, description, filter_subjects, filter_regex,
			deliver_policy, opt_start_seq, opt_start_time, ack_policy, ack_wait_ns, max_deliver, backoff_ns, max_ack_pending, scanned_seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`),
			streamID, cfg.Durable, cfg.Description, filters, regex, int16(cfg.DeliverPolicy), int64(cfg.OptStartSeq),
			startTime, int16(cfg.AckPolicy), cfg.AckWait.Nanoseconds(), cfg.MaxDeliver, backoff, cfg.MaxAckPending, start).Scan(&id)
		if err != nil {
			return err
		}
		if cfg.DeliverPolicy == bus.DeliverLastPerSubject {
			// The last message of each subject waits as a first delivery.
			_, err = tx.Exec(ctx, b.q(`INSERT INTO {{S}}.deliveries (consumer_id, seq, delivery_count, visible_at)
				SELECT $1, x.seq, 0, clock_timestamp() FROM (
					SELECT DISTINCT ON (m.subject) m.seq FROM {{S}}.messages m
					WHERE m.stream_id = $2 AND ($3::text IS NULL OR m.subject ~ $3)
					ORDER BY m.subject, m.seq DESC) x`), id, streamID, regex)
		}
		return err
	})
	if err != nil {
		return bus.ConsumerInfo{}, fmt.Errorf("consumer %q on stream %q: %w", cfg.Durable, cfg.Stream, mapError(err))
	}
	b.consumers.forget(cfg.Stream, cfg.Durable)
	return b.ConsumerInfo(ctx, cfg.Stream, cfg.Durable)
}

// startSeq is where a new consumer starts: the stream sequence below the
// first message it delivers.
func (b *Bus) startSeq(ctx context.Context, tx pgx.Tx, streamID, lastSeq int64, cfg bus.ConsumerConfig, regex *string) (int64, error) {
	var seq *int64
	var err error
	switch cfg.DeliverPolicy {
	case bus.DeliverAll:
		return 0, nil
	case bus.DeliverNew, bus.DeliverLastPerSubject:
		return lastSeq, nil
	case bus.DeliverByStartSequence:
		return int64(cfg.OptStartSeq) - 1, nil
	case bus.DeliverLast:
		err = tx.QueryRow(ctx, b.q(`SELECT max(m.seq) FROM {{S}}.messages m WHERE m.stream_id = $1 AND ($2::text IS NULL OR m.subject ~ $2)`),
			streamID, regex).Scan(&seq)
	case bus.DeliverByStartTime:
		err = tx.QueryRow(ctx, b.q(`SELECT min(m.seq) FROM {{S}}.messages m WHERE m.stream_id = $1 AND m.published_at >= $2`),
			streamID, cfg.OptStartTime).Scan(&seq)
	}
	if err != nil {
		return 0, err
	}
	if seq == nil {
		return lastSeq, nil
	}
	return *seq - 1, nil
}

// checkWorkQueueConsumer enforces what a workqueue stream needs of its
// consumers: explicit acks, and filters no other consumer's overlap, so
// each message has one consumer to remove it.
func (b *Bus) checkWorkQueueConsumer(ctx context.Context, tx pgx.Tx, streamID int64, cfg bus.ConsumerConfig) error {
	if cfg.AckPolicy != bus.AckExplicit {
		return configError("ack_policy", "a workqueue stream's consumers must ack explicitly")
	}
	rows, err := tx.Query(ctx, b.q(`SELECT name, filter_subjects FROM {{S}}.consumers WHERE stream_id = $1 AND name <> $2`), streamID, cfg.Durable)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var filters []string
		if err := rows.Scan(&name, &filters); err != nil {
			return err
		}
		if len(filters) == 0 || len(cfg.FilterSubjects) == 0 {
			return configError("filter_subjects", "consumer %q already reads the whole workqueue stream, or this one would: give both filters that do not overlap", name)
		}
		for _, f := range cfg.FilterSubjects {
			if slices.ContainsFunc(filters, func(o string) bool { return subjectsOverlap(f, o) }) {
				return configError("filter_subjects", "%q overlaps a filter of consumer %q on the workqueue stream", f, name)
			}
		}
	}
	return rows.Err()
}

// ConsumerInfo returns the consumer's configuration and state.
func (b *Bus) ConsumerInfo(ctx context.Context, stream, name string) (bus.ConsumerInfo, error) {
	if err := checkName("stream_name", stream); err != nil {
		return bus.ConsumerInfo{}, err
	}
	if err := checkName("name", name); err != nil {
		return bus.ConsumerInfo{}, err
	}
	if err := b.ready(); err != nil {
		return bus.ConsumerInfo{}, err
	}
	info, err := scanConsumer(stream, b.pool.QueryRow(ctx, b.q(`SELECT `+consumerColumns+`, `+consumerState+`
		FROM {{S}}.consumers c JOIN {{S}}.streams s ON s.id = c.stream_id WHERE s.name = $1 AND c.name = $2`), stream, name))
	if isNoRows(err) {
		return bus.ConsumerInfo{}, fmt.Errorf("consumer %q on stream %q: %w", name, stream, bus.ErrNotFound)
	}
	if err != nil {
		return bus.ConsumerInfo{}, fmt.Errorf("consumer %q on stream %q: %w", name, stream, mapError(err))
	}
	return info, nil
}

// DeleteConsumer deletes the consumer and its pending deliveries.
func (b *Bus) DeleteConsumer(ctx context.Context, stream, name string) error {
	if err := checkName("stream_name", stream); err != nil {
		return err
	}
	if err := checkName("name", name); err != nil {
		return err
	}
	if err := b.ready(); err != nil {
		return err
	}
	b.consumers.forget(stream, name)
	var found bool
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, b.q(`DELETE FROM {{S}}.consumers c USING {{S}}.streams s
			WHERE s.id = c.stream_id AND s.name = $1 AND c.name = $2 RETURNING c.id`), stream, name).Scan(&id)
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		_, err = tx.Exec(ctx, b.q(`DELETE FROM {{S}}.deliveries WHERE consumer_id = $1`), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("consumer %q on stream %q: %w", name, stream, mapError(err))
	}
	if !found {
		return fmt.Errorf("consumer %q on stream %q: %w", name, stream, bus.ErrNotFound)
	}
	b.waits.wake(stream)
	return nil
}
