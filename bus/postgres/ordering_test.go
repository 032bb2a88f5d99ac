package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wfeventbus/eventbus/bus"
)

// ticker lets publishers wait for the consumer's next look.
type ticker struct {
	mu sync.Mutex
	ch chan struct{}
}

func (k *ticker) next() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ch
}

func (k *ticker) tick() {
	k.mu.Lock()
	close(k.ch)
	k.ch = make(chan struct{})
	k.mu.Unlock()
}

// TestOutOfOrderCommits is the defect of queues that read past a serial
// column: a transaction that took its number first but commits last is
// skipped by a reader that already moved past. Here, in each round, eight
// transactions begin one after another (each taking a transaction id
// first), publish in their own transactions concurrently, the last one to
// begin always publishing first, and each holds its transaction open until
// the consumer has looked again (zero to two times) before it commits, or,
// one in five, rolls back. A consumer fetches throughout. Every committed
// message must arrive exactly once, in stream order, with sequences 1, 2,
// 3, ... and no rolled-back one ever.
func TestOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	const (
		rounds = 12
		perTx  = 8
	)
	schema := pg.schema()
	b := newBus(t, pg.dsn, schema)
	ctx, cancel := context.WithTimeout(t.Context(), 3*hangGuard)
	defer cancel()
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "OOO", Subjects: []string{"ooo.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: "reader", Stream: "OOO"}); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, pg.dsn+"&pool_max_conns=20")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	var looks ticker
	looks.ch = make(chan struct{})
	var (
		mu       sync.Mutex
		got      []*bus.Message
		stopRead = make(chan struct{})
		readErr  error
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			msgs, err := b.Fetch(ctx, "OOO", "reader", bus.FetchOptions{Batch: 100, MaxWait: 20 * time.Millisecond})
			if err != nil {
				mu.Lock()
				readErr = err
				mu.Unlock()
				return
			}
			for _, m := range msgs {
				if err := m.Ack(ctx); err != nil {
					mu.Lock()
					readErr = err
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			got = append(got, msgs...)
			mu.Unlock()
			looks.tick()
			select {
			case <-stopRead:
				return
			default:
			}
		}
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	var (
		committed    = map[string]bool{}
		rolledBack   = map[string]bool{}
		reordered    int
		commitsMu    sync.Mutex
		commitOrders [][]int
	)
	for round := range rounds {
		txs := make([]pgx.Tx, perTx)
		for i := range txs {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Take a transaction id now, in begin order.
			if _, err := tx.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
				t.Fatal(err)
			}
			txs[i] = tx
		}
		lastPublished := make(chan struct{})
		var order []int
		var wg sync.WaitGroup
		for i, tx := range txs {
			holds := rng.IntN(3)
			rollback := rng.IntN(5) == 0
			id := fmt.Sprintf("r%d-tx%d", round, i)
			if rollback {
				rolledBack[id] = true
			} else {
				committed[id] = true
			}
			wg.Go(func() {
				if i != perTx-1 {
					<-lastPublished
				}
				_, err := b.PublishTx(ctx, tx, bus.OutgoingMessage{Subject: "ooo.x", Payload: []byte(id)})
				if i == perTx-1 {
					close(lastPublished)
				}
				if err != nil {
					t.Errorf("PublishTx %s: %v", id, err)
					_ = tx.Rollback(ctx)
					return
				}
				for range holds {
					select {
					case <-looks.next():
					case <-ctx.Done():
					}
				}
				commitsMu.Lock()
				defer commitsMu.Unlock()
				if rollback {
					err = tx.Rollback(ctx)
				} else {
					err = tx.Commit(ctx)
				}
				if err != nil {
					t.Errorf("end tx %s: %v", id, err)
				}
				order = append(order, i)
			})
		}
		wg.Wait()
		if !slices.IsSorted(order) {
			reordered++
		}
		commitOrders = append(commitOrders, order)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Wait until everything committed has arrived.
	for {
		mu.Lock()
		n, failed := len(got), readErr != nil
		mu.Unlock()
		if n >= len(committed) || failed {
			break
		}
		select {
		case <-readDone:
		case <-looks.next():
		case <-ctx.Done():
			t.Fatalf("only %d of %d committed messages arrived", n, len(committed))
		}
	}
	close(stopRead)
	<-readDone
	if readErr != nil {
		t.Fatalf("consumer: %v", readErr)
	}
	// Nothing more may come.
	more, err := b.Fetch(ctx, "OOO", "reader", bus.FetchOptions{Batch: 10, MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, more...)

	t.Logf("transactions=%d committed=%d rolled-back=%d rounds-committed-out-of-begin-order=%d/%d first-round-order=%v",
		rounds*perTx, len(committed), len(rolledBack), reordered, rounds, commitOrders[0])
	if reordered == 0 {
		t.Fatal("no round committed out of begin order: the test did not exercise anything")
	}
	seen := map[string]bool{}
	for i, m := range got {
		if m.StreamSequence != uint64(i+1) {
			t.Fatalf("delivery %d has sequence %d, want %d (skipped or out of order): %s", i, m.StreamSequence, i+1, m.Payload)
		}
		id := string(m.Payload)
		if rolledBack[id] {
			t.Errorf("delivered %s, whose transaction rolled back", id)
		}
		if seen[id] {
			t.Errorf("delivered %s twice", id)
		}
		seen[id] = true
	}
	for id := range committed {
		if !seen[id] {
			t.Errorf("committed message %s was never delivered", id)
		}
	}
	info, err := b.StreamInfo(ctx, "OOO")
	if err != nil {
		t.Fatal(err)
	}
	if info.LastSeq != uint64(len(committed)) || info.Messages != uint64(len(committed)) {
		t.Errorf("stream last sequence %d, messages %d, want %d and %d: rolled-back transactions must leave no gap",
			info.LastSeq, info.Messages, len(committed), len(committed))
	}
}
