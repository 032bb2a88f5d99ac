package postgres_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// The test binary doubles as a process of an application: with childEnv
// set, TestMain runs runChild instead of the tests.
const (
	childEnv       = "EVENTBUS_PG_CHILD" // "work" or "hold"
	childDSNEnv    = "EVENTBUS_PG_DSN"
	childSchemaEnv = "EVENTBUS_PG_SCHEMA"
	childHoldEnv   = "EVENTBUS_PG_HOLD"
	procStream     = "PROC"
	procConsumer   = "shared"
)

// runChild is a process on procConsumer. "work" subscribes and prints
// "got <seq> <delivery>" for each message it acked; "hold" fetches
// EVENTBUS_PG_HOLD messages, prints "held <seq>" for each and keeps them
// unsettled. Both print "ready" and then wait to be killed.
func runChild() int {
	ctx := context.Background()
	b, err := postgres.Connect(ctx, postgres.Config{DSN: os.Getenv(childDSNEnv), Schema: os.Getenv(childSchemaEnv)},
		postgres.WithTokenKey(testKey))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	switch os.Getenv(childEnv) {
	case "work":
		_, err := b.Subscribe(ctx, procStream, procConsumer, func(ctx context.Context, m *bus.Message) {
			if err := m.Ack(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "ack:", err)
				return
			}
			say("got %d %d", m.StreamSequence, m.DeliveryCount)
		}, bus.SubscribeOptions{Concurrency: 4})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		say("ready")
	case "hold":
		want, _ := strconv.Atoi(os.Getenv(childHoldEnv))
		for held := 0; held < want; {
			msgs, err := b.Fetch(ctx, procStream, procConsumer, bus.FetchOptions{Batch: want - held, MaxWait: 10 * time.Second})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			for _, m := range msgs {
				say("held %d", m.StreamSequence)
			}
			held += len(msgs)
		}
		say("ready")
	default:
		return 2
	}
	select {}
}

// child is a running child process and the lines it prints.
type child struct {
	cmd   *exec.Cmd
	lines chan string
}

func startChild(t *testing.T, mode, schema string, extra ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDSNEnv+"="+pg.dsn, childSchemaEnv+"="+schema)
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 4096)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill ends the process with SIGKILL: no chance to settle or close.
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

// await reads lines until one equals want, handing the others to each.
func (c *child) await(t *testing.T, want string, each func(string)) {
	t.Helper()
	timeout := time.After(hangGuard)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q", want)
			}
			if line == want {
				return
			}
			if each != nil {
				each(line)
			}
		case <-timeout:
			t.Fatalf("child did not print %q within %v", want, hangGuard)
		}
	}
}

func setupProcStream(t *testing.T, b *postgres.Bus, ackWait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: procStream, Subjects: []string{"proc.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: procConsumer, Stream: procStream, AckWait: ackWait}); err != nil {
		t.Fatal(err)
	}
}

func publishN(t *testing.T, b bus.Publisher, n int) {
	t.Helper()
	msgs := make([]bus.OutgoingMessage, n)
	for i := range msgs {
		msgs[i] = bus.OutgoingMessage{Subject: "proc.x", Payload: []byte(strconv.Itoa(i))}
	}
	results, err := b.PublishBatch(t.Context(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

// TestProcessesShareConsumer runs two processes subscribed to one durable
// consumer and checks that 1,000 messages are each handled exactly once,
// by one of them, and that both took part.
func TestProcessesShareConsumer(t *testing.T) {
	t.Parallel()
	const total = 1000
	schema := pg.schema()
	b := newBus(t, pg.dsn, schema)
	setupProcStream(t, b, time.Minute)
	children := []*child{startChild(t, "work", schema), startChild(t, "work", schema)}
	for _, c := range children {
		c.await(t, "ready", nil)
	}
	publishN(t, b, total)

	type got struct{ child, delivery int }
	seen := map[uint64][]got{}
	perChild := make([]int, len(children))
	lines := make(chan [2]string, 64)
	stop := make(chan struct{})
	defer close(stop)
	for i, c := range children {
		go func() {
			for line := range c.lines {
				select {
				case lines <- [2]string{strconv.Itoa(i), line}:
				case <-stop:
					return
				}
			}
		}()
	}
	timeout := time.After(hangGuard)
	for len(seen) < total {
		select {
		case l := <-lines:
			var seq uint64
			var delivery int
			if _, err := fmt.Sscanf(l[1], "got %d %d", &seq, &delivery); err != nil {
				t.Fatalf("child %s printed %q", l[0], l[1])
			}
			i, _ := strconv.Atoi(l[0])
			seen[seq] = append(seen[seq], got{i, delivery})
			perChild[i]++
		case <-timeout:
			t.Fatalf("after %v, %d of %d messages were handled", hangGuard, len(seen), total)
		}
	}
	for _, c := range children {
		c.kill()
	}
	t.Logf("handled per process: %v", perChild)
	for seq, gs := range seen {
		if len(gs) != 1 || gs[0].delivery != 1 {
			t.Errorf("seq %d handled %v (process, delivery), want once, first delivery", seq, gs)
		}
	}
	for i, n := range perChild {
		if n == 0 {
			t.Errorf("process %d handled nothing; both should share the consumer", i)
		}
	}
}

// TestKilledProcessRedelivers has a process fetch 40 of 100 messages and
// die by SIGKILL holding them. A subscription of this process, running
// meanwhile, must handle the other 60 at once and the 40 only as second
// deliveries, after their ack wait: each exactly once.
func TestKilledProcessRedelivers(t *testing.T) {
	t.Parallel()
	const (
		total   = 100
		held    = 40
		ackWait = 3 * time.Second
	)
	schema := pg.schema()
	b := newBus(t, pg.dsn, schema)
	setupProcStream(t, b, ackWait)
	publishN(t, b, total)

	c := startChild(t, "hold", schema, childHoldEnv+"="+strconv.Itoa(held))
	heldSeqs := map[uint64]bool{}
	c.await(t, "ready", func(line string) {
		seq, err := strconv.ParseUint(strings.TrimPrefix(line, "held "), 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", line)
		}
		heldSeqs[seq] = true
	})
	if len(heldSeqs) != held {
		t.Fatalf("child held %d messages, want %d", len(heldSeqs), held)
	}

	var (
		mu      sync.Mutex
		handled = map[uint64][]uint64{}
	)
	all := make(chan struct{})
	sub, err := b.Subscribe(t.Context(), procStream, procConsumer, func(ctx context.Context, m *bus.Message) {
		if err := m.Ack(ctx); err != nil {
			t.Errorf("ack: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		handled[m.StreamSequence] = append(handled[m.StreamSequence], m.DeliveryCount)
		if len(handled) == total && len(handled[m.StreamSequence]) == 1 {
			close(all)
		}
	}, bus.SubscribeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	c.kill()
	select {
	case <-all:
	case <-time.After(hangGuard):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("only %d of %d messages handled", len(handled), total)
	}
	if err := sub.Stop(t.Context()); err != nil {
		t.Error(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for seq, deliveries := range handled {
		want := uint64(1)
		if heldSeqs[seq] {
			want = 2
		}
		if len(deliveries) != 1 || deliveries[0] != want {
			t.Errorf("seq %d (held by the killed process: %v) handled with deliveries %v, want once as delivery %d",
				seq, heldSeqs[seq], deliveries, want)
		}
	}
}
