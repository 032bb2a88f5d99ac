package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// TestPublishThroughRestart publishes 300 messages with msg ids, one at a
// time, while the database restarts: every publish must succeed, the ones
// the restart interrupted sent again by the Bus, and the stream must hold
// each message once.
func TestPublishThroughRestart(t *testing.T) {
	t.Parallel()
	const total = 300
	srv, dsn := pg.ownServer(t)
	b := newBus(t, dsn, pg.schema())
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "R", Subjects: []string{"r.>"}}); err != nil {
		t.Fatal(err)
	}
	var acked atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i := range total {
			if _, err := b.Publish(ctx, bus.OutgoingMessage{Subject: "r.x", Payload: []byte("x"), MsgID: fmt.Sprint(i)}); err != nil {
				done <- fmt.Errorf("Publish %d: %w", i, err)
				return
			}
			acked.Add(1)
		}
		done <- nil
	}()
	for acked.Load() < total/3 {
		select {
		case err := <-done:
			t.Fatalf("publishing ended before the restart: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restartedAt := acked.Load()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	info, err := b.StreamInfo(ctx, "R")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("published=%d acked=%d acked-when-the-restart-returned=%d stored=%d", total, acked.Load(), restartedAt, info.Messages)
	if info.Messages != total {
		t.Fatalf("the stream holds %d messages, want %d", info.Messages, total)
	}
}

// TestPublishWithoutDatabase publishes while the database is down: with a
// msg id the publish is tried until its context ends, and then fails with
// the context's error and, once an attempt got as far as finding the
// database gone, bus.ErrNotConnected.
func TestPublishWithoutDatabase(t *testing.T) {
	t.Parallel()
	srv, dsn := pg.ownServer(t)
	b := newBus(t, dsn, pg.schema())
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "D", Subjects: []string{"d.x"}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := b.Publish(pctx, bus.OutgoingMessage{Subject: "d.x", Payload: []byte("x"), MsgID: "x"})
		cancel()
		if ctx.Err() != nil {
			t.Fatalf("no publish failed with bus.ErrNotConnected; the last: %v", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish without a database = %v, want it to end with its context", err)
		}
		if errors.Is(err, bus.ErrNotConnected) {
			t.Logf("Publish without a database: %v", err)
			return
		}
	}
}

// TestSubscriptionThroughRestart runs a subscription while the database
// restarts: it must go on by itself, without being started again, and
// handle every message published before the restart and every one another
// Bus publishes after it.
func TestSubscriptionThroughRestart(t *testing.T) {
	t.Parallel()
	const half = 200
	srv, dsn := pg.ownServer(t)
	schema := pg.schema()
	b := newBus(t, dsn, schema)
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangGuard)
	defer cancel()
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: "c", Stream: "S"}); err != nil {
		t.Fatal(err)
	}
	var (
		mu         sync.Mutex
		handled    = map[string]int{}
		deliveries int
	)
	// midway closes once half of the first messages are handled, all once
	// every message is.
	midway, all := make(chan struct{}), make(chan struct{})
	sub, err := b.Subscribe(ctx, "S", "c", func(hctx context.Context, m *bus.Message) {
		// An ack lost to the restart is a redelivery, which the counts
		// below allow; a message never handled is what they catch.
		_ = m.Ack(hctx)
		mu.Lock()
		defer mu.Unlock()
		handled[string(m.Payload)]++
		deliveries++
		if handled[string(m.Payload)] == 1 {
			switch len(handled) {
			case half / 2:
				close(midway)
			case 2 * half:
				close(all)
			}
		}
	}, bus.SubscribeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(context.Background()) }()
	publish := func(p *postgres.Bus, prefix string) {
		t.Helper()
		for i := range half {
			id := fmt.Sprintf("%s-%d", prefix, i)
			if _, err := p.Publish(ctx, bus.OutgoingMessage{Subject: "s.x", Payload: []byte(id), MsgID: id}); err != nil {
				t.Fatalf("Publish %s: %v", id, err)
			}
		}
	}
	publish(b, "before")
	select {
	case <-midway:
	case <-ctx.Done():
		t.Fatal("the subscription handled too little before the restart")
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	publish(newBus(t, dsn, schema), "after")
	select {
	case <-all:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("after the restart the subscription handled %d of %d messages", len(handled), 2*half)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("published=%d handled=%d deliveries=%d", 2*half, len(handled), deliveries)
	for _, prefix := range []string{"before", "after"} {
		for i := range half {
			if id := fmt.Sprintf("%s-%d", prefix, i); handled[id] == 0 {
				t.Errorf("%s never handled", id)
			}
		}
	}
}
