package bus_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
)

func newCodec(t *testing.T, key []byte) *bus.TokenCodec {
	t.Helper()
	c, err := bus.NewTokenCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	c := newCodec(t, nil)
	want := bus.Token{Backend: "jetstream", Stream: "ORDERS", Consumer: "worker", StreamSeq: 1<<40 + 7, Delivery: 3, Reply: "$JS.ACK.ORDERS.worker.3.7.1.1700000000.0"}
	got, err := c.Decode(c.Encode(want))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestTokenRejects(t *testing.T) {
	t.Parallel()
	c := newCodec(t, []byte("0123456789abcdef0123456789abcdef"))
	other := newCodec(t, []byte("fedcba9876543210fedcba9876543210"))
	good := c.Encode(bus.Token{Backend: "jetstream", Stream: "S", Consumer: "C", StreamSeq: 1, Delivery: 1})
	body, mac, _ := strings.Cut(strings.TrimPrefix(good, "ebt1."), ".")
	flipped := []byte(body)
	flipped[2] ^= 1

	cases := map[string]string{
		"empty":          "",
		"garbage":        "not-a-token",
		"no mac":         "ebt1." + body,
		"bad base64":     "ebt1.!!!." + mac,
		"altered body":   "ebt1." + string(flipped) + "." + mac,
		"other key":      other.Encode(bus.Token{Backend: "jetstream", Stream: "S", Consumer: "C", StreamSeq: 1, Delivery: 1}),
		"truncated body": "ebt1." + body[:len(body)-2] + "." + mac,
		"wrong prefix":   "ebt2." + body + "." + mac,
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := c.Decode(token); !errors.Is(err, bus.ErrInvalidToken) {
				t.Fatalf("Decode(%q) = %v, want ErrInvalidToken", token, err)
			}
		})
	}
}

func TestTokenCodecShortKey(t *testing.T) {
	t.Parallel()
	if _, err := bus.NewTokenCodec([]byte("short")); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("got %v, want ErrInvalidConfig", err)
	}
}

func FuzzTokenDecode(f *testing.F) {
	c, err := bus.NewTokenCodec([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.Encode(bus.Token{Backend: "jetstream", Stream: "S"}))
	f.Add("ebt1..")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := c.Decode(s)
		if err == nil && c.Encode(tok) != s {
			t.Fatalf("accepted a token that does not re-encode to itself: %q", s)
		}
	})
}

func TestTokenCodecConcurrentUse(t *testing.T) {
	t.Parallel()
	c := newCodec(t, nil)
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 500 {
				want := bus.Token{Backend: "jetstream", Stream: "S", Consumer: "C", StreamSeq: uint64(g*1000 + i), Delivery: 1}
				got, err := c.Decode(c.Encode(want))
				if err == nil && got != want {
					err = errors.New("round trip changed the token")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
