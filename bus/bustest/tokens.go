package bustest

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
