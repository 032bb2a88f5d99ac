package jetstream

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

func TestWaitCures(t *testing.T) {
	t.Parallel()
	api := func(code int, errCode jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: desc})
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"cluster temporarily unavailable", api(503, 10008, "JetStream system temporarily unavailable"), true},
		{"incomplete results", api(503, 10004, "incomplete results"), true},
		{"earlier attempt at the message id still being stored", api(409, 10158, "duplicate message id is in process"), true},
		{"placement with a server offline", api(400, 10005, "no suitable peers for placement, peer offline"), true},
		{"placement without enough servers", api(400, 10005, "no suitable peers for placement"), false},
		{"placement without storage", api(400, 10005, "no suitable peers for placement, insufficient storage"), false},
		{"JetStream not enabled", api(503, 10076, "JetStream not enabled"), false},
		{"JetStream not enabled for the account", api(503, 10039, "JetStream not enabled for account"), false},
		{"wrong last sequence", api(400, 10071, "wrong last sequence: 3"), false},
		{"not an API error", errors.New("boom"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := waitCures(c.err); got != c.want {
				t.Fatalf("waitCures(%v) = %v, want %v", c.err, got, c.want)
			}
			if mapped := mapError(c.err); errors.Is(mapped, bus.ErrUnavailable) != c.want {
				t.Fatalf("mapError(%v) = %v; wraps bus.ErrUnavailable: %v, want %v", c.err, mapped, !c.want, c.want)
			}
		})
	}
}

func TestRetryErrorWording(t *testing.T) {
	t.Parallel()
	last := fmt.Errorf("publish to %q: %w", "a.b", &brokerError{sentinel: bus.ErrUnavailable, cause: errors.New("nats: no response from stream"), detail: "stream \"A\" did not answer"})
	cases := []struct {
		attempts int
		want     string
	}{
		{1, `publish to "a.b": unavailable: stream "A" did not answer (gave up after 1 attempt: context deadline exceeded)`},
		{3, `publish to "a.b": unavailable: stream "A" did not answer (gave up after 3 attempts: context deadline exceeded)`},
	}
	for _, c := range cases {
		err := &retryError{last: last, end: errors.New("context deadline exceeded"), attempts: c.attempts}
		if err.Error() != c.want {
			t.Errorf("Error() = %q, want %q", err.Error(), c.want)
		}
		if !errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("%v does not wrap bus.ErrUnavailable", err)
		}
	}
}
