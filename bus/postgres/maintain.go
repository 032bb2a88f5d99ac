package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wfeventbus/eventbus/bus"
)

// maintainTimeout bounds one round of maintenance.
const maintainTimeout = time.Minute

// maintain enforces limits and retention every maintenance interval until
// the Bus closes.
func (b *Bus) maintain() {
	t := time.NewTicker(b.opts.maintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-b.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(b.ctx, maintainTimeout)
		if err := b.maintainOnce(ctx); err != nil && b.ctx.Err() == nil {
			b.log.Warn("maintenance failed; retrying at the next interval", "error", err)
		}
		cancel()
	}
}

// maintainOnce runs one round, unless another Bus on the schema is running
// one: expired message ids leave the duplicate window; each stream loses
// the messages past max_age, and, with discard old, those beyond max_msgs
// and max_bytes; an interest stream loses the messages every consumer has
// acked (all of them when it has no consumer). Every removal takes a
// prefix of the stream, and the deliveries of removed messages go with
// them.
func (b *Bus) maintainOnce(ctx context.Context) error {
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", advisoryKey(b.cfg.Schema, "maintain")).Scan(&mine); err != nil || !mine {
			return err
		}
		if _, err := tx.Exec(ctx, b.q(`DELETE FROM {{S}}.dedup WHERE expires_at < clock_timestamp()`)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, b.q(`SELECT id, retention, discard, max_msgs, max_bytes, max_age_ns, last_seq FROM {{S}}.streams
			WHERE max_msgs > 0 OR max_bytes > 0 OR max_age_ns > 0 OR retention = $1`), int16(bus.RetentionInterest))
		if err != nil {
			return err
		}
		type limits struct {
			id                              int64
			retention, discard              int16
			maxMsgs, maxBytes, maxAge, last int64
		}
		var all []limits
		for rows.Next() {
			var l limits
			if err := rows.Scan(&l.id, &l.retention, &l.discard, &l.maxMsgs, &l.maxBytes, &l.maxAge, &l.last); err != nil {
				rows.Close()
				return err
			}
			all = append(all, l)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, l := range all {
			var cut int64 // messages below cut go
			raise := func(sql string, args ...any) error {
				var seq *int64
				if err := tx.QueryRow(ctx, b.q(sql), args...).Scan(&seq); err != nil && !isNoRows(err) {
					return err
				}
				if seq != nil && *seq > cut {
					cut = *seq
				}
				return nil
			}
			if l.maxAge > 0 {
				// The first message young enough; none: all go.
				var seq *int64
				err := tx.QueryRow(ctx, b.q(`SELECT seq FROM {{S}}.messages WHERE stream_id = $1
					AND published_at >= clock_timestamp() - {{S}}.ns($2) ORDER BY seq LIMIT 1`), l.id, l.maxAge).Scan(&seq)
				switch {
				case isNoRows(err):
					cut = l.last + 1
				case err != nil:
					return err
				case *seq > cut:
					cut = *seq
				}
			}
			if l.discard == int16(bus.DiscardOld) && l.maxMsgs > 0 {
				if err := raise(`SELECT seq FROM {{S}}.messages WHERE stream_id = $1 ORDER BY seq DESC OFFSET $2 - 1 LIMIT 1`, l.id, l.maxMsgs); err != nil {
					return err
				}
			}
			if l.discard == int16(bus.DiscardOld) && l.maxBytes > 0 {
				if err := raise(`SELECT seq + 1 FROM (SELECT seq, sum(size) OVER (ORDER BY seq DESC) AS total
					FROM {{S}}.messages WHERE stream_id = $1) x WHERE total > $2 ORDER BY seq DESC LIMIT 1`, l.id, l.maxBytes); err != nil {
					return err
				}
			}
			if l.retention == int16(bus.RetentionInterest) {
				if err := raise(`SELECT coalesce(min(least(c.scanned_seq + 1,
					(SELECT min(d.seq) FROM {{S}}.deliveries d WHERE d.consumer_id = c.id))), $2 + 1)
					FROM {{S}}.consumers c WHERE c.stream_id = $1`, l.id, l.last); err != nil {
					return err
				}
			}
			if cut <= 1 {
				continue
			}
			if _, err := tx.Exec(ctx, b.q(`DELETE FROM {{S}}.messages WHERE stream_id = $1 AND seq < $2`), l.id, cut); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, b.q(`DELETE FROM {{S}}.deliveries d USING {{S}}.consumers c
				WHERE c.stream_id = $1 AND d.consumer_id = c.id AND d.seq < $2`), l.id, cut); err != nil {
				return err
			}
		}
		return nil
	})
}
