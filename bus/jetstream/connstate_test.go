package jetstream_test

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConnectionState follows a bus on a 3-node cluster whose server is
// stopped under it: the state names the server the bus is on, and after
// the stop another one, with the reconnect counted.
func TestConnectionState(t *testing.T) {
	t.Parallel()
	c := startConformanceCluster(t)
	b, nc := clusterBus(t, c)
	first := b.ConnectionState()
	if !first.Connected || !slices.Contains(c.Names(), first.Server) || first.Reconnects != 0 ||
		!slices.Contains(c.ClientURLs(), first.URL) {
		t.Fatalf("state %+v, want connected to a server of %v with no reconnect", first, c.Names())
	}
	if on, err := c.ServerOf(nc); err != nil || on != first.Server {
		t.Fatalf("the connection is on %q (%v), the state says %q", on, err, first.Server)
	}

	ctx := testContext(t)
	if err := c.Stop(ctx, first.Server); err != nil {
		t.Fatal(err)
	}
	for {
		st := b.ConnectionState()
		if st.Connected && st.Reconnects == 1 {
			if st.Server == first.Server || !slices.Contains(c.Running(), st.Server) || !strings.HasPrefix(st.URL, "nats://127.0.0.1:") {
				t.Fatalf("after %s stopped, state %+v; want another running server", first.Server, st)
			}
			break
		}
		if !st.Connected && (st.Server != "" || st.URL != "") {
			t.Fatalf("disconnected state %+v names a server", st)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no reconnect to another server: %+v", st)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
