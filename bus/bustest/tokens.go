package bustest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// tokenOp is one Settler call on a token.
type tokenOp struct {
	name string
	do   func(ctx context.Context, b bus.Settler, token string) error
}

// tokenOps returns every Settler call.
func tokenOps() []tokenOp {
	return []tokenOp{
		{"Ack", func(ctx context.Context, b bus.Settler, tok string) error { return b.Ack(ctx, tok) }},
		{"Nak", func(ctx context.Context, b bus.Settler, tok string) error { return b.Nak(ctx, tok, 0) }},
		{"Term", func(ctx context.Context, b bus.Settler, tok string) error { return b.Term(ctx, tok, "bustest") }},
		{"InProgress", func(ctx context.Context, b bus.Settler, tok string) error { return b.InProgress(ctx, tok) }},
	}
}

// settle runs op, turning a panic into an error so that one bad token fails
// its check instead of the whole run.
func (op tokenOp) settle(ctx context.Context, b bus.Settler, token string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s panicked: %v", op.name, r)
		}
	}()
	return op.do(ctx, b, token)
}

// testTokens offers every Settler call forged, malformed and altered tokens,
// which must all be refused with ErrInvalidToken and leave the delivery
// alone; the genuine token then acks once and is stale after that.
func testTokens(t *testing.T, s *suite) {
	f := s.setup(t)
	ctx := guard(t)
	f.publish(t, "a", 1)
	m := f.receive(t, 1)[0]
	if len(m.AckToken) < 4 {
		t.Fatalf("AckToken %q is too short to alter", m.AckToken)
	}

	other, err := bus.NewTokenCodec(nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := other.Encode(bus.Token{
		Backend:   "jetstream",
		Stream:    m.Stream,
		Consumer:  m.Consumer,
		StreamSeq: m.StreamSequence,
		Delivery:  m.DeliveryCount,
	})
	invalid := []struct{ name, token string }{
		{"ForgedByAnotherCodec", forged},
		{"Empty", ""},
		{"Garbage", "x"},
		{"TruncatedToHalf", m.AckToken[:len(m.AckToken)/2]},
		{"TruncatedByOne", m.AckToken[:len(m.AckToken)-1]},
		{"Altered", alter(m.AckToken)},
	}
	if stream, consumer, ok := f.bus.TokenSource(m.AckToken); !ok || stream != m.Stream || consumer != m.Consumer {
		t.Errorf("TokenSource of a delivery's token = %q, %q, %v; want %q, %q, true", stream, consumer, ok, m.Stream, m.Consumer)
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			if stream, consumer, ok := f.bus.TokenSource(tc.token); ok {
				t.Errorf("TokenSource(%q) = %q, %q, true; want false", tc.token, stream, consumer)
			}
			for _, op := range tokenOps() {
				if err := op.settle(ctx, f.bus, tc.token); !errors.Is(err, bus.ErrInvalidToken) {
					t.Errorf("%s(%q) = %v, want %v", op.name, tc.token, err, bus.ErrInvalidToken)
				}
			}
		})
	}

	t.Run("GenuineThenStale", func(t *testing.T) {
		ack := tokenOps()[0]
		if err := ack.settle(ctx, f.bus, m.AckToken); err != nil {
			t.Fatalf("Ack of the genuine token after the invalid ones: %v", err)
		}
		wantErr(t, "second Ack of the genuine token", ack.settle(ctx, f.bus, m.AckToken), bus.ErrStaleToken)
	})
}

// testTokensAcrossReplicas settles, on other buses, tokens one bus handed
// out, as the replicas of an app sharing a token key do: a bus with the
// same key settles a token once (a second time is stale); a bus rotating
// to a new key, which has the key as its previous one, settles them too; a
// bus with another app's key rejects them as invalid. The consumer ends
// with nothing pending.
func testTokensAcrossReplicas(t *testing.T, s *suite) {
	f := s.setup(t, withAckWait(time.Hour))
	if f.env.ConnectKeyed == nil {
		t.Skip("the harness gives no Env.ConnectKeyed")
	}
	ctx := guard(t)
	key := []byte("the app's token key, 32 bytes...")
	issuer := f.env.ConnectKeyed(t, key)
	replica := f.env.ConnectKeyed(t, key)
	rotating := f.env.ConnectKeyed(t, []byte("the app's next key, 32 bytes...."), key)
	otherApp := f.env.ConnectKeyed(t, []byte("another app's key, 32 bytes....."))

	f.publish(t, "a", 3)
	var msgs []*bus.Message
	for len(msgs) < 3 {
		batch, err := issuer.Fetch(ctx, f.stream, f.consumer, bus.FetchOptions{Batch: 3 - len(msgs), MaxWait: fetchWait})
		if err != nil {
			t.Fatalf("Fetch on the issuing bus: %v", err)
		}
		msgs = append(msgs, batch...)
	}

	for _, op := range tokenOps() {
		wantErr(t, op.name+" on a bus with another app's key", op.settle(ctx, otherApp, msgs[0].AckToken), bus.ErrInvalidToken)
	}
	if stream, consumer, ok := replica.TokenSource(msgs[0].AckToken); !ok || stream != f.stream || consumer != f.consumer {
		t.Errorf("TokenSource on a bus sharing the key = %q, %q, %v; want %q, %q, true", stream, consumer, ok, f.stream, f.consumer)
	}
	if err := replica.Ack(ctx, msgs[0].AckToken); err != nil {
		t.Fatalf("Ack on a bus sharing the key: %v", err)
	}
	wantErr(t, "second Ack on that bus", replica.Ack(ctx, msgs[0].AckToken), bus.ErrStaleToken)
	if err := rotating.InProgress(ctx, msgs[1].AckToken); err != nil {
		t.Fatalf("InProgress on a bus with the key as its previous one: %v", err)
	}
	if err := rotating.Term(ctx, msgs[1].AckToken, "bustest"); err != nil {
		t.Fatalf("Term on a bus with the key as its previous one: %v", err)
	}
	if err := replica.Nak(ctx, msgs[2].AckToken, 0); err != nil {
		t.Fatalf("Nak on a bus sharing the key: %v", err)
	}
	again := f.receive(t, 1)[0]
	if again.StreamSequence != msgs[2].StreamSequence || again.DeliveryCount != 2 {
		t.Fatalf("after the nak got %s, want sequence %d, delivery 2", describe(again), msgs[2].StreamSequence)
	}
	if err := again.Ack(ctx); err != nil {
		t.Fatalf("Ack of the redelivery: %v", err)
	}
	f.expectCounts(t, "after every token was settled", 0, 0)
}

// alter changes one character in the middle of token, keeping its length
// and alphabet.
func alter(token string) string {
	b := []byte(token)
	i := len(b) / 2
	if b[i] == '.' {
		i++
	}
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
