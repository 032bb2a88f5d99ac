package e2e_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// maxPayload is the max_payload of testdata/big/app.yaml's broker.
const maxPayload = 8 << 20

// jsonMessage returns a JSON object with the given id, exactly n bytes
// long.
func jsonMessage(id string, n int) string {
	head, tail := `{"id":"`+id+`","pad":"`, `"}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// TestBigMessages runs an app whose broker takes messages of up to 8 MiB:
// in both modes every message the broker accepts reaches its pipeline on
// its first delivery, up to one of exactly max_payload bytes, which comes
// as text only; one of 1 MiB comes parsed as well. One byte more is
// refused by the broker.
func TestBigMessages(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		ctx := guard(t, testGuard)
		a := startApp(t, repoPath(t, "e2e/testdata/big/app.yaml"), appConfig{mode: m})
		js := connect(t, a)

		sizes := map[string]int{"limit": maxPayload, "mib": 1 << 20}
		for id, n := range sizes {
			publish(t, ctx, js, "big."+id, jsonMessage(id, n))
		}
		if _, err := js.Publish(ctx, "big.over", []byte(jsonMessage("over", maxPayload+1))); !errors.Is(err, nats.ErrMaxPayload) {
			t.Errorf("publishing max_payload+1 bytes: %v, want %v", err, nats.ErrMaxPayload)
		}

		for _, r := range readStream(t, ctx, js, "RESULTS", "results.>", len(sizes)) {
			var got struct {
				Size   int
				ID     string
				Parsed bool
			}
			if err := json.Unmarshal(r.Data(), &got); err != nil {
				t.Fatalf("result %q: %v", r.Data(), err)
			}
			if want := sizes[got.ID]; got.Size != want || r.Subject() != "results."+got.ID {
				t.Errorf("%s: the pipeline got %d bytes, want %d", r.Subject(), got.Size, want)
			}
			if wantParsed := got.ID == "mib"; got.Parsed != wantParsed {
				t.Errorf("%s: parsed as json %v, want %v", got.ID, got.Parsed, wantParsed)
			}
		}
		eventually(t, ctx, "reader settled", func() (bool, string) { return settled(ctx, js, "BIG", "reader") })
		c, err := js.Consumer(ctx, "BIG", "reader")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumRedelivered != 0 || info.Delivered.Stream != uint64(len(sizes)) {
			t.Errorf("delivered %d messages, %d redelivered; want each of %d delivered once", info.Delivered.Stream, info.NumRedelivered, len(sizes))
		}
		if n := subjectCount(t, ctx, js, "RESULTS", "results.limit") + subjectCount(t, ctx, js, "RESULTS", "results.mib"); n != uint64(len(sizes)) {
			t.Errorf("RESULTS holds %d reports, want %d", n, len(sizes))
		}
	})
}
