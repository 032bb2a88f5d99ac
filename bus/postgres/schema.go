package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The backend's tables, in the configured schema (written {{S}} below):
//
//   - streams: one row per stream, its configuration, a version bumped by
//     every change (publishers check it, so a cached route is never
//     trusted blindly) and last_seq. Publishing locks the stream's row
//     while it assigns sequences, until its transaction commits, so a
//     stream's sequences become visible strictly in order and without
//     gaps: a reader that sees sequence n sees every sequence below it.
//   - messages: the stored messages, keyed by (stream_id, seq).
//   - consumers: one row per durable consumer, its configuration and
//     scanned_seq, the highest stream sequence it has handed out or
//     passed over. Fetching locks the consumer's row, so pullers of one
//     consumer in any number of processes never take the same message.
//   - deliveries: a consumer's messages handed out and not yet acked or
//     terminated, with their delivery count and visible_at, the time after
//     which they are handed out again (the ack wait as a visibility
//     timeout, a nak's delay, a backoff step). A row with delivery_count 0
//     is a message due for its first delivery (deliver policy
//     last_per_subject).
//   - dedup: message ids seen inside each stream's duplicate window.
//
// Publishing, fetching and settling are functions, so that each is one
// round trip. Fetching and settling commit without waiting for the WAL
// flush (synchronous_commit off): losing one to a crash of the server only
// means a message is delivered again. Publishing waits for it.

// migrations are the schema's versions, applied in order; the index plus
// one is the version. A released migration is never edited: changes come
// as new ones.
var migrations = []string{
	`
CREATE TABLE {{S}}.streams (
	id bigserial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	description text NOT NULL DEFAULT '',
	subjects text[] NOT NULL,
	retention smallint NOT NULL,
	storage smallint NOT NULL,
	replicas int NOT NULL,
	max_msgs bigint NOT NULL,
	max_bytes bigint NOT NULL,
	max_age_ns bigint NOT NULL,
	max_msg_size int NOT NULL,
	discard smallint NOT NULL,
	duplicate_window_ns bigint NOT NULL,
	version bigint NOT NULL DEFAULT 1,
	last_seq bigint NOT NULL DEFAULT 0
);

CREATE TABLE {{S}}.messages (
	stream_id bigint NOT NULL,
	seq bigint NOT NULL,
	subject text NOT NULL,
	payload bytea NOT NULL,
	headers bytea,
	published_at timestamptz NOT NULL,
	size int NOT NULL,
	PRIMARY KEY (stream_id, seq)
);

CREATE TABLE {{S}}.consumers (
	id bigserial PRIMARY KEY,
	stream_id bigint NOT NULL,
	name text NOT NULL,
	description text NOT NULL DEFAULT '',
	filter_subjects text[] NOT NULL DEFAULT '{}',
	filter_regex text,
	deliver_policy smallint NOT NULL,
	opt_start_seq bigint NOT NULL DEFAULT 0,
	opt_start_time timestamptz,
	ack_policy smallint NOT NULL,
	ack_wait_ns bigint NOT NULL,
	max_deliver int NOT NULL,
	backoff_ns bigint[] NOT NULL DEFAULT '{}',
	max_ack_pending int NOT NULL,
	scanned_seq bigint NOT NULL,
	delivered bigint NOT NULL DEFAULT 0,
	UNIQUE (stream_id, name)
);

CREATE TABLE {{S}}.deliveries (
	consumer_id bigint NOT NULL,
	seq bigint NOT NULL,
	delivery_count int NOT NULL,
	visible_at timestamptz NOT NULL,
	nakd boolean NOT NULL DEFAULT false,
	PRIMARY KEY (consumer_id, seq)
);
CREATE INDEX deliveries_due ON {{S}}.deliveries (consumer_id, visible_at);

CREATE TABLE {{S}}.dedup (
	stream_id bigint NOT NULL,
	msg_id text NOT NULL,
	seq bigint NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (stream_id, msg_id)
);

CREATE FUNCTION {{S}}.ns(p bigint) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT make_interval(secs => p / 1e9) $$;

-- wait_for is how long delivery number p_delivery stays invisible: the
-- backoff step for it (the last one repeating) or else the ack wait.
CREATE FUNCTION {{S}}.wait_for(p_ack_wait_ns bigint, p_backoff_ns bigint[], p_delivery int) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT make_interval(secs => (CASE WHEN cardinality(p_backoff_ns) = 0 THEN p_ack_wait_ns
		ELSE p_backoff_ns[greatest(1, least(p_delivery, cardinality(p_backoff_ns)))] END) / 1e9)
$$;

-- publish stores messages in stream p_stream, in order, if the stream is
-- still at version p_version (status 9 for the whole call otherwise).
-- When every message is simply stored it returns one row, status 10, o_seq
-- the first message's sequence, the others following. Otherwise a row per
-- message: 0 stored at o_seq, 1 duplicate of o_seq, 2 wrong last sequence
-- (o_seq is the stream's), 4 refused by discard new.
CREATE FUNCTION {{S}}.publish(p_stream bigint, p_version bigint, p_subjects text[], p_payloads bytea[],
	p_headers bytea[], p_sizes int[], p_msg_ids text[], p_expected bigint[])
RETURNS TABLE (o_idx int, o_seq bigint, o_status smallint)
LANGUAGE plpgsql AS $$
DECLARE
	s record;
	v_last bigint;
	v_n int := coalesce(array_length(p_subjects, 1), 0);
	v_now timestamptz;
	v_count bigint;
	v_bytes bigint;
	v_dup bigint;
	v_full boolean;
BEGIN
	-- Taking the row lock and the sequences in one statement; the lock is
	-- held until commit.
	UPDATE {{S}}.streams st SET last_seq = st.last_seq + v_n
	WHERE st.id = p_stream AND st.version = p_version
	RETURNING st.last_seq - v_n AS first_free, st.discard, st.max_msgs, st.max_bytes, st.duplicate_window_ns INTO s;
	IF NOT FOUND THEN
		RETURN QUERY SELECT 0, 0::bigint, 9::smallint;
		RETURN;
	END IF;
	v_last := s.first_free;
	-- Taken after the lock, so that publication times follow sequences.
	v_now := clock_timestamp();
	v_full := s.discard = 1 AND (s.max_msgs > 0 OR s.max_bytes > 0);
	IF p_msg_ids IS NULL AND p_expected IS NULL AND NOT v_full THEN
		INSERT INTO {{S}}.messages (stream_id, seq, subject, payload, headers, published_at, size)
		SELECT p_stream, v_last + u.o, u.subj, u.pay, u.hdr, v_now, u.sz
		FROM unnest(p_subjects, p_payloads, p_headers, p_sizes) WITH ORDINALITY AS u(subj, pay, hdr, sz, o);
		RETURN QUERY SELECT 0, v_last + 1, 10::smallint;
		RETURN;
	END IF;
	IF v_full THEN
		SELECT count(*), coalesce(sum(m.size), 0) INTO v_count, v_bytes
		FROM {{S}}.messages m WHERE m.stream_id = p_stream;
	END IF;
	FOR i IN 1..v_n LOOP
		o_idx := i;
		IF p_expected IS NOT NULL AND p_expected[i] IS NOT NULL AND p_expected[i] <> v_last THEN
			o_seq := v_last; o_status := 2; RETURN NEXT; CONTINUE;
		END IF;
		IF p_msg_ids IS NOT NULL AND p_msg_ids[i] IS NOT NULL THEN
			SELECT d.seq INTO v_dup FROM {{S}}.dedup d
			WHERE d.stream_id = p_stream AND d.msg_id = p_msg_ids[i] AND d.expires_at > v_now;
			IF FOUND THEN
				o_seq := v_dup; o_status := 1; RETURN NEXT; CONTINUE;
			END IF;
		END IF;
		IF v_full THEN
			IF (s.max_msgs > 0 AND v_count + 1 > s.max_msgs) OR (s.max_bytes > 0 AND v_bytes + p_sizes[i] > s.max_bytes) THEN
				o_seq := 0; o_status := 4; RETURN NEXT; CONTINUE;
			END IF;
			v_count := v_count + 1;
			v_bytes := v_bytes + p_sizes[i];
		END IF;
		v_last := v_last + 1;
		INSERT INTO {{S}}.messages (stream_id, seq, subject, payload, headers, published_at, size)
		VALUES (p_stream, v_last, p_subjects[i], p_payloads[i], p_headers[i], v_now, p_sizes[i]);
		IF p_msg_ids IS NOT NULL AND p_msg_ids[i] IS NOT NULL THEN
			INSERT INTO {{S}}.dedup (stream_id, msg_id, seq, expires_at)
			VALUES (p_stream, p_msg_ids[i], v_last, v_now + {{S}}.ns(s.duplicate_window_ns))
			ON CONFLICT (stream_id, msg_id) DO UPDATE SET seq = excluded.seq, expires_at = excluded.expires_at;
		END IF;
		o_seq := v_last; o_status := 0; RETURN NEXT;
	END LOOP;
	-- Give back the sequences of messages not stored.
	UPDATE {{S}}.streams SET last_seq = v_last WHERE id = p_stream;
END $$;

-- notify tells the listeners of p_channel which streams got messages. The
-- transaction commits without waiting for the WAL flush: a notification
-- is worth nothing after a crash.
CREATE FUNCTION {{S}}.notify(p_channel text, p_streams text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('synchronous_commit', 'off', true);
	PERFORM pg_notify(p_channel, s) FROM unnest(p_streams) AS s;
END $$;

-- fetch hands out up to p_batch messages of consumer p_consumer: due
-- redeliveries first, then new messages in stream order. When it hands out
-- nothing it returns one row of NULLs whose o_due_in says in how many
-- seconds the next redelivery falls due (NULL: none pending).
--
-- Sequences are gathered into arrays first and rows then looked up by
-- them, so every statement is an index lookup of at most p_batch rows
-- whatever the size of the stream and however stale the planner's
-- statistics of these fast-changing tables.
CREATE FUNCTION {{S}}.fetch(p_consumer bigint, p_batch int)
RETURNS TABLE (o_seq bigint, o_subject text, o_payload bytea, o_headers bytea, o_published_at timestamptz,
	o_delivery int, o_consumer_seq bigint, o_due_in float8)
LANGUAGE plpgsql AS $$
DECLARE
	c {{S}}.consumers%ROWTYPE;
	v_now timestamptz := clock_timestamp();
	v_got int := 0;
	v_n int := 0;
	v_room int;
	v_pending int;
	v_last bigint;
	v_lo bigint;
	v_hi bigint;
	v_due bigint[];
	v_new bigint[];
	v_scanned bigint;
BEGIN
	PERFORM set_config('synchronous_commit', 'off', true);
	SELECT * INTO c FROM {{S}}.consumers WHERE id = p_consumer FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the consumer does not exist' USING ERRCODE = 'P0002';
	END IF;
	IF c.ack_policy <> 1 THEN
		IF c.max_deliver > 0 THEN
			DELETE FROM {{S}}.deliveries d
			WHERE d.consumer_id = p_consumer AND d.visible_at <= v_now AND d.delivery_count >= c.max_deliver;
		END IF;
		v_due := ARRAY(SELECT d.seq FROM {{S}}.deliveries d
			WHERE d.consumer_id = p_consumer AND d.visible_at <= v_now
			ORDER BY d.visible_at, d.seq LIMIT p_batch);
		IF cardinality(v_due) > 0 THEN
			RETURN QUERY
			WITH upd AS (
				UPDATE {{S}}.deliveries d
				SET delivery_count = d.delivery_count + 1, nakd = false,
					visible_at = v_now + {{S}}.wait_for(c.ack_wait_ns, c.backoff_ns, d.delivery_count + 1)
				WHERE d.consumer_id = p_consumer AND d.seq = ANY(v_due)
				RETURNING d.seq, d.delivery_count)
			SELECT m.seq, m.subject, m.payload, m.headers, m.published_at, upd.delivery_count,
				c.delivered + row_number() OVER (ORDER BY m.seq), NULL::float8
			FROM {{S}}.messages m JOIN upd ON upd.seq = m.seq
			WHERE m.stream_id = c.stream_id AND m.seq = ANY(v_due)
			ORDER BY m.seq;
			GET DIAGNOSTICS v_got = ROW_COUNT;
		END IF;
	END IF;

	v_room := p_batch - v_got;
	IF v_room > 0 AND c.ack_policy <> 1 AND c.max_ack_pending > 0 THEN
		SELECT count(*) INTO v_pending FROM (
			SELECT 1 FROM {{S}}.deliveries d WHERE d.consumer_id = p_consumer AND d.delivery_count > 0
			LIMIT c.max_ack_pending) x;
		v_room := least(v_room, c.max_ack_pending - v_pending);
	END IF;
	v_scanned := c.scanned_seq;
	IF v_room > 0 THEN
		-- last_seq is read before the messages, in an earlier snapshot:
		-- every sequence up to it is committed and visible below.
		SELECT s.last_seq INTO v_last FROM {{S}}.streams s WHERE s.id = c.stream_id;
		v_lo := c.scanned_seq;
		-- Windows of sequences, so that a scan never reads more than one
		-- window, until messages are found or the stream's end is reached.
		WHILE v_lo < v_last LOOP
			v_hi := least(v_last, v_lo + CASE WHEN c.filter_regex IS NULL THEN v_room ELSE 10000 END);
			v_new := ARRAY(SELECT m.seq FROM {{S}}.messages m
				WHERE m.stream_id = c.stream_id AND m.seq > v_lo AND m.seq <= v_hi
					AND (c.filter_regex IS NULL OR m.subject ~ c.filter_regex)
				ORDER BY m.seq LIMIT v_room);
			IF cardinality(v_new) >= v_room THEN
				v_scanned := v_new[v_room];
				EXIT;
			END IF;
			v_scanned := v_hi;
			EXIT WHEN cardinality(v_new) > 0;
			v_lo := v_hi;
		END LOOP;
		IF cardinality(v_new) > 0 THEN
			IF c.ack_policy <> 1 THEN
				INSERT INTO {{S}}.deliveries (consumer_id, seq, delivery_count, visible_at)
				SELECT p_consumer, x, 1, v_now + {{S}}.wait_for(c.ack_wait_ns, c.backoff_ns, 1) FROM unnest(v_new) AS x;
			END IF;
			RETURN QUERY
			SELECT m.seq, m.subject, m.payload, m.headers, m.published_at, 1,
				c.delivered + v_got + row_number() OVER (ORDER BY m.seq), NULL::float8
			FROM {{S}}.messages m
			WHERE m.stream_id = c.stream_id AND m.seq = ANY(v_new)
			ORDER BY m.seq;
			GET DIAGNOSTICS v_n = ROW_COUNT;
		END IF;
	END IF;
	IF v_got + v_n > 0 OR v_scanned <> c.scanned_seq THEN
		UPDATE {{S}}.consumers SET scanned_seq = v_scanned, delivered = c.delivered + v_got + v_n WHERE id = p_consumer;
	END IF;
	IF v_got + v_n = 0 THEN
		RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::bytea, NULL::bytea, NULL::timestamptz, NULL::int, NULL::bigint,
			(SELECT extract(epoch FROM min(d.visible_at) - v_now)::float8 FROM {{S}}.deliveries d
			 WHERE d.consumer_id = p_consumer AND d.visible_at > v_now);
	END IF;
END $$;

-- settle applies one operation to deliveries, each named by consumer,
-- sequence and delivery count, and returns those it applied to: a
-- delivery redelivered, nak'd or settled since is left alone. Operations:
-- 0 ack, 1 nak (visible again after p_delay_ns), 2 term, 3 in progress.
CREATE FUNCTION {{S}}.settle(p_op smallint, p_consumers bigint[], p_seqs bigint[], p_counts int[], p_delay_ns bigint)
RETURNS TABLE (o_consumer bigint, o_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
	v_cids bigint[];
	v_seqs bigint[];
BEGIN
	PERFORM set_config('synchronous_commit', 'off', true);
	IF p_op = 0 OR p_op = 2 THEN
		WITH del AS (
			DELETE FROM {{S}}.deliveries d USING unnest(p_consumers, p_seqs, p_counts) AS t(cid, seq, cnt)
			WHERE d.consumer_id = t.cid AND d.seq = t.seq AND d.delivery_count = t.cnt AND NOT d.nakd
			RETURNING d.consumer_id, d.seq)
		SELECT array_agg(del.consumer_id), array_agg(del.seq) INTO v_cids, v_seqs FROM del;
		IF v_cids IS NULL THEN
			RETURN;
		END IF;
		RETURN QUERY SELECT * FROM unnest(v_cids, v_seqs);
		-- Only workqueue streams and ack all consumers need more.
		IF EXISTS (SELECT 1 FROM {{S}}.consumers c JOIN {{S}}.streams s ON s.id = c.stream_id
				WHERE c.id = ANY(v_cids) AND (s.retention = 2 OR (p_op = 0 AND c.ack_policy = 2))) THEN
			WITH info AS (
				SELECT t.cid, t.seq, c.stream_id, c.ack_policy, s.retention
				FROM unnest(v_cids, v_seqs) AS t(cid, seq)
				JOIN {{S}}.consumers c ON c.id = t.cid JOIN {{S}}.streams s ON s.id = c.stream_id),
			below AS (
				DELETE FROM {{S}}.deliveries d USING info
				WHERE p_op = 0 AND info.ack_policy = 2 AND d.consumer_id = info.cid AND d.seq < info.seq)
			DELETE FROM {{S}}.messages m USING info
			WHERE info.retention = 2 AND m.stream_id = info.stream_id AND m.seq = info.seq;
		END IF;
	ELSIF p_op = 1 THEN
		RETURN QUERY
		UPDATE {{S}}.deliveries d SET nakd = true, visible_at = clock_timestamp() + {{S}}.ns(p_delay_ns)
		FROM unnest(p_consumers, p_seqs, p_counts) AS t(cid, seq, cnt)
		WHERE d.consumer_id = t.cid AND d.seq = t.seq AND d.delivery_count = t.cnt AND NOT d.nakd
		RETURNING d.consumer_id, d.seq;
	ELSIF p_op = 3 THEN
		RETURN QUERY
		UPDATE {{S}}.deliveries d
		SET visible_at = clock_timestamp() + {{S}}.wait_for(c.ack_wait_ns, c.backoff_ns, d.delivery_count)
		FROM unnest(p_consumers, p_seqs, p_counts) AS t(cid, seq, cnt), {{S}}.consumers c
		WHERE d.consumer_id = t.cid AND d.seq = t.seq AND d.delivery_count = t.cnt AND NOT d.nakd AND c.id = d.consumer_id
		RETURNING d.consumer_id, d.seq;
	END IF;
END $$;
`,
	// 2: a filtered consumer's fetch scans windows that start small and
	// grow, instead of reading 10000 sequences each time.
	`
CREATE OR REPLACE FUNCTION {{S}}.fetch(p_consumer bigint, p_batch int)
RETURNS TABLE (o_seq bigint, o_subject text, o_payload bytea, o_headers bytea, o_published_at timestamptz,
	o_delivery int, o_consumer_seq bigint, o_due_in float8)
LANGUAGE plpgsql AS $$
DECLARE
	c {{S}}.consumers%ROWTYPE;
	v_now timestamptz := clock_timestamp();
	v_got int := 0;
	v_n int := 0;
	v_room int;
	v_pending int;
	v_last bigint;
	v_lo bigint;
	v_hi bigint;
	v_due bigint[];
	v_new bigint[];
	v_scanned bigint;
	v_win bigint;
BEGIN
	PERFORM set_config('synchronous_commit', 'off', true);
	SELECT * INTO c FROM {{S}}.consumers WHERE id = p_consumer FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the consumer does not exist' USING ERRCODE = 'P0002';
	END IF;
	IF c.ack_policy <> 1 THEN
		IF c.max_deliver > 0 THEN
			DELETE FROM {{S}}.deliveries d
			WHERE d.consumer_id = p_consumer AND d.visible_at <= v_now AND d.delivery_count >= c.max_deliver;
		END IF;
		v_due := ARRAY(SELECT d.seq FROM {{S}}.deliveries d
			WHERE d.consumer_id = p_consumer AND d.visible_at <= v_now
			ORDER BY d.visible_at, d.seq LIMIT p_batch);
		IF cardinality(v_due) > 0 THEN
			RETURN QUERY
			WITH upd AS (
				UPDATE {{S}}.deliveries d
				SET delivery_count = d.delivery_count + 1, nakd = false,
					visible_at = v_now + {{S}}.wait_for(c.ack_wait_ns, c.backoff_ns, d.delivery_count + 1)
				WHERE d.consumer_id = p_consumer AND d.seq = ANY(v_due)
				RETURNING d.seq, d.delivery_count)
			SELECT m.seq, m.subject, m.payload, m.headers, m.published_at, upd.delivery_count,
				c.delivered + row_number() OVER (ORDER BY m.seq), NULL::float8
			FROM {{S}}.messages m JOIN upd ON upd.seq = m.seq
			WHERE m.stream_id = c.stream_id AND m.seq = ANY(v_due)
			ORDER BY m.seq;
			GET DIAGNOSTICS v_got = ROW_COUNT;
		END IF;
	END IF;

	v_room := p_batch - v_got;
	IF v_room > 0 AND c.ack_policy <> 1 AND c.max_ack_pending > 0 THEN
		SELECT count(*) INTO v_pending FROM (
			SELECT 1 FROM {{S}}.deliveries d WHERE d.consumer_id = p_consumer AND d.delivery_count > 0
			LIMIT c.max_ack_pending) x;
		v_room := least(v_room, c.max_ack_pending - v_pending);
	END IF;
	v_scanned := c.scanned_seq;
	IF v_room > 0 THEN
		-- last_seq is read before the messages, in an earlier snapshot:
		-- every sequence up to it is committed and visible below.
		SELECT s.last_seq INTO v_last FROM {{S}}.streams s WHERE s.id = c.stream_id;
		v_lo := c.scanned_seq;
		-- Windows of sequences, so that a scan never reads more than one
		-- window, until messages are found or the stream's end is reached.
		-- Without a filter a window is the room left; with one it starts
		-- at twice that, enough when most subjects match, and grows
		-- fourfold up to 10000 while too few do.
		v_win := CASE WHEN c.filter_regex IS NULL THEN v_room ELSE greatest(2 * v_room, 100) END;
		WHILE v_lo < v_last LOOP
			v_hi := least(v_last, v_lo + v_win);
			v_new := ARRAY(SELECT m.seq FROM {{S}}.messages m
				WHERE m.stream_id = c.stream_id AND m.seq > v_lo AND m.seq <= v_hi
					AND (c.filter_regex IS NULL OR m.subject ~ c.filter_regex)
				ORDER BY m.seq LIMIT v_room);
			IF cardinality(v_new) >= v_room THEN
				v_scanned := v_new[v_room];
				EXIT;
			END IF;
			v_scanned := v_hi;
			EXIT WHEN cardinality(v_new) > 0;
			v_lo := v_hi;
			IF c.filter_regex IS NOT NULL THEN
				v_win := least(v_win * 4, 10000);
			END IF;
		END LOOP;
		IF cardinality(v_new) > 0 THEN
			IF c.ack_policy <> 1 THEN
				INSERT INTO {{S}}.deliveries (consumer_id, seq, delivery_count, visible_at)
				SELECT p_consumer, x, 1, v_now + {{S}}.wait_for(c.ack_wait_ns, c.backoff_ns, 1) FROM unnest(v_new) AS x;
			END IF;
			RETURN QUERY
			SELECT m.seq, m.subject, m.payload, m.headers, m.published_at, 1,
				c.delivered + v_got + row_number() OVER (ORDER BY m.seq), NULL::float8
			FROM {{S}}.messages m
			WHERE m.stream_id = c.stream_id AND m.seq = ANY(v_new)
			ORDER BY m.seq;
			GET DIAGNOSTICS v_n = ROW_COUNT;
		END IF;
	END IF;
	IF v_got + v_n > 0 OR v_scanned <> c.scanned_seq THEN
		UPDATE {{S}}.consumers SET scanned_seq = v_scanned, delivered = c.delivered + v_got + v_n WHERE id = p_consumer;
	END IF;
	IF v_got + v_n = 0 THEN
		RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::bytea, NULL::bytea, NULL::timestamptz, NULL::int, NULL::bigint,
			(SELECT extract(epoch FROM min(d.visible_at) - v_now)::float8 FROM {{S}}.deliveries d
			 WHERE d.consumer_id = p_consumer AND d.visible_at > v_now);
	END IF;
END $$;
`,
}

// schemaVersion is the version this package writes and reads.
func schemaVersion() int { return len(migrations) }

// ident quotes name as an SQL identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// inSchema puts the schema's quoted name where sql says {{S}}.
func inSchema(schema, sql string) string { return strings.ReplaceAll(sql, "{{S}}", ident(schema)) }

// advisoryKey is the advisory lock key of purpose in schema.
func advisoryKey(schema, purpose string) int64 {
	h := fnv.New64a()
	h.Write([]byte("eventbus/" + schema + "/" + purpose))
	return int64(h.Sum64())
}

// migrate brings schema to schemaVersion, creating it if need be. It holds
// a transaction-scoped advisory lock, so processes starting at once
// migrate one after another and the later ones find nothing to do; the
// whole migration is one transaction, so a failure leaves nothing half
// done.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate schema %q: %w", schema, mapError(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryKey(schema, "migrate")); err != nil {
		return fmt.Errorf("migrate schema %q: lock: %w", schema, mapError(err))
	}
	if _, err := tx.Exec(ctx, inSchema(schema, `CREATE SCHEMA IF NOT EXISTS {{S}};
CREATE TABLE IF NOT EXISTS {{S}}.schema_version (version int NOT NULL)`)); err != nil {
		return fmt.Errorf("migrate schema %q: %w", schema, mapError(err))
	}
	var version int
	if err := tx.QueryRow(ctx, inSchema(schema, `SELECT coalesce(max(version), 0) FROM {{S}}.schema_version`)).Scan(&version); err != nil {
		return fmt.Errorf("migrate schema %q: read version: %w", schema, mapError(err))
	}
	if version > schemaVersion() {
		return fmt.Errorf("schema %q is at version %d, newer than this build knows (%d): upgrade the eventbus", schema, version, schemaVersion())
	}
	if version == schemaVersion() {
		return tx.Commit(ctx)
	}
	for v := version; v < schemaVersion(); v++ {
		if _, err := tx.Exec(ctx, inSchema(schema, migrations[v])); err != nil {
			return fmt.Errorf("migrate schema %q to version %d: %w", schema, v+1, mapError(err))
		}
	}
	if _, err := tx.Exec(ctx, inSchema(schema, `DELETE FROM {{S}}.schema_version; INSERT INTO {{S}}.schema_version VALUES (`+fmt.Sprint(schemaVersion())+`)`)); err != nil {
		return fmt.Errorf("migrate schema %q: record version: %w", schema, mapError(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate schema %q: commit: %w", schema, mapError(err))
	}
	return nil
}
