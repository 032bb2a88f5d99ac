package bus_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
)

func newCodec(t *testing.T, key []byte, previous ...[]byte) *bus.TokenCodec {
	t.Helper()
	c, err := bus.NewTokenCodec(key, previous...)
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

func TestTokenRoundTripIssuerAndExpiry(t *testing.T) {
	t.Parallel()
	c := newCodec(t, nil)
	for _, want := range []bus.Token{
		{Backend: "jetstream", Stream: "S", Consumer: "C", StreamSeq: 9, Delivery: 1, Reply: "r", Issuer: "bus-1", Expires: 1_700_000_000_123},
		{Backend: "jetstream", Stream: "S", Consumer: "C", StreamSeq: 9, Delivery: 1, Issuer: "bus-1"},
		{Backend: "jetstream", Stream: "S", Consumer: "C", StreamSeq: 9, Delivery: 1, Expires: 1},
	} {
		got, err := c.Decode(c.Encode(want))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}

// Codecs of the replicas of one app share the key and accept each other's
// tokens; during a rotation a codec signs with the new key and still
// accepts the old one, and a codec of another app accepts neither.
func TestTokenKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey := []byte("0123456789abcdef0123456789abcdef")
	newKey := []byte("NEW-KEY-NEW-KEY-NEW-KEY-NEW-KEY!")
	otherApp := []byte("fedcba9876543210fedcba9876543210")
	tok := bus.Token{Backend: "jetstream", Stream: "S", Consumer: "C", StreamSeq: 1, Delivery: 1}

	replicaOld := newCodec(t, oldKey)
	replicaOld2 := newCodec(t, oldKey)
	rotating := newCodec(t, newKey, oldKey)
	rotated := newCodec(t, newKey)
	addingNew := newCodec(t, oldKey, newKey)
	other := newCodec(t, otherApp)

	cases := []struct {
		name       string
		issuer     *bus.TokenCodec
		settler    *bus.TokenCodec
		wantAccept bool
	}{
		{"same key", replicaOld, replicaOld2, true},
		{"old key to rotating", replicaOld, rotating, true},
		{"rotating to rotating", rotating, rotating, true},
		{"rotating to a codec accepting the new key", rotating, addingNew, true},
		{"rotating to a codec not yet knowing the new key", rotating, replicaOld, false},
		{"rotating to rotated", rotating, rotated, true},
		{"old key to rotated", replicaOld, rotated, false},
		{"another app", other, replicaOld, false},
		{"to another app", replicaOld, other, false},
		{"another app to rotating", other, rotating, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.settler.Decode(tc.issuer.Encode(tok))
			switch {
			case tc.wantAccept && err != nil:
				t.Fatalf("Decode = %v, want the token accepted", err)
			case tc.wantAccept && got != tok:
				t.Fatalf("Decode = %+v, want %+v", got, tok)
			case !tc.wantAccept && !errors.Is(err, bus.ErrInvalidToken):
				t.Fatalf("Decode = %+v, %v; want ErrInvalidToken", got, err)
			}
		})
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

func TestTokenCodecBadKeys(t *testing.T) {
	t.Parallel()
	good := []byte("0123456789abcdef")
	cases := map[string]struct {
		key      []byte
		previous [][]byte
		want     string
	}{
		"short key":              {key: []byte("short-secret"), want: "token key: 12 bytes"},
		"empty key":              {key: []byte{}, want: "token key: 0 bytes"},
		"short previous key":     {key: good, previous: [][]byte{good, []byte("short-secret")}, want: "previous token key 2: 12 bytes"},
		"previous without a key": {previous: [][]byte{good}, want: "only beside a current token key"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := bus.NewTokenCodec(tc.key, tc.previous...)
			if !errors.Is(err, bus.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidConfig saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "short-secret") || strings.Contains(err.Error(), string(good)) {
				t.Fatalf("the error %q holds a key", err)
			}
		})
	}
}

func FuzzTokenDecode(f *testing.F) {
	c, err := bus.NewTokenCodec([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.Encode(bus.Token{Backend: "jetstream", Stream: "S"}))
	f.Add(c.Encode(bus.Token{Backend: "jetstream", Stream: "S", Issuer: "i", Expires: 5}))
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
