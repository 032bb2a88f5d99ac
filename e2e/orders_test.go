package e2e_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// order is an order as a test publishes it, with what the example makes of
// it.
type order struct {
	ID       string   `json:"id"`
	Customer string   `json:"customer"`
	Items    []string `json:"items"`
	priority string
}

func testOrders() []order {
	var out []order
	for i := 1; i <= 10; i++ {
		o := order{ID: fmt.Sprintf("o-%d", i), Customer: fmt.Sprintf("customer-%d", i), priority: "normal"}
		for j := range i % 5 {
			o.Items = append(o.Items, fmt.Sprintf("item-%d", j))
		}
		if len(o.Items) > 2 {
			o.priority = "high"
		}
		if o.Items == nil {
			o.Items = []string{}
		}
		out = append(out, o)
	}
	return out
}

// TestOrders runs examples/orders: every valid order is enriched,
// published on orders.enriched and logged; a malformed one is tried three
// times and then dead-lettered, once.
func TestOrders(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		ctx := guard(t, testGuard)
		a := startApp(t, repoPath(t, "examples/orders/app.yaml"), appConfig{mode: m})
		js := connect(t, a)

		orders := testOrders()
		for _, o := range orders {
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			publish(t, ctx, js, "orders.created", string(b))
		}
		const malformed = `{"id":"o-bad","items":["a"]}`
		publish(t, ctx, js, "orders.created", malformed)

		t.Run("enriched", func(t *testing.T) {
			got := map[string]map[string]any{}
			for _, m := range readStream(t, ctx, js, "ORDERS", "orders.enriched", len(orders)) {
				var e map[string]any
				if err := json.Unmarshal(m.Data(), &e); err != nil {
					t.Fatalf("enriched order %q is not JSON: %v", m.Data(), err)
				}
				id, _ := e["id"].(string)
				if got[id] != nil {
					t.Errorf("order %s enriched twice", id)
				}
				got[id] = e
				if c := m.Headers().Get("Correlation-Id"); c != id {
					t.Errorf("order %s: Correlation-Id header %q", id, c)
				}
				if mid, want := m.Headers().Get("Nats-Msg-Id"), fmt.Sprintf("enriched-%v", e["received_sequence"]); mid != want {
					t.Errorf("order %s: Nats-Msg-Id %q, want %q", id, mid, want)
				}
			}
			for _, o := range orders {
				e := got[o.ID]
				if e == nil {
					t.Errorf("order %s was not enriched", o.ID)
					continue
				}
				want := map[string]string{
					"customer": o.Customer,
					"items":    strconv.Itoa(len(o.Items)),
					"priority": o.priority,
				}
				for k, v := range want {
					if e[k] != v {
						t.Errorf("order %s: %s = %v, want %q", o.ID, k, e[k], v)
					}
				}
				if seq, _ := e["received_sequence"].(string); seq == "" || seq == "0" {
					t.Errorf("order %s: received_sequence %v", o.ID, e["received_sequence"])
				}
				if at, _ := e["enriched_at"].(string); !validTime(at) {
					t.Errorf("order %s: enriched_at %v is not an RFC 3339 time", o.ID, e["enriched_at"])
				}
			}
		})

		t.Run("dead-lettered", func(t *testing.T) {
			dead := readStream(t, ctx, js, "DEAD_LETTERS", "dlq.orders", 1)[0]
			if string(dead.Data()) != malformed {
				t.Errorf("dead letter payload %q, want the malformed order %q", dead.Data(), malformed)
			}
			h := dead.Headers()
			if got := h.Get("Eventbus-Delivery-Count"); got != "3" {
				t.Errorf("Eventbus-Delivery-Count = %q, want 3", got)
			}
			// engine-pipelines.md §4.7: the engine's words, under both hosts.
			want := `workflow execution failed: pipeline "enrich-order" execution failed: step "check" failed: validate step "check": missing required fields: customer`
			if got := h.Get("Eventbus-Error"); got != want {
				t.Errorf("Eventbus-Error:\n got %s\nwant %s", got, want)
			}
			if got := h.Get("Eventbus-Subject"); got != "orders.created" {
				t.Errorf("Eventbus-Subject = %q", got)
			}
			// Once the consumer has settled every order, nothing more can be
			// dead-lettered: exactly one dead letter, and only the valid
			// orders enriched.
			eventually(t, ctx, "order-enricher settled", func() (bool, string) {
				return settled(ctx, js, "ORDERS", "order-enricher")
			})
			if n := subjectCount(t, ctx, js, "DEAD_LETTERS", "dlq.orders"); n != 1 {
				t.Errorf("dlq.orders holds %d messages, want 1", n)
			}
			// Each of the three failed deliveries is logged once: twice as
			// retried, once as terminated.
			var failures []string
			for _, r := range waitRecords(t, ctx, a, 3, func(r record) bool { return strings.Contains(r.str("error"), `step "check" failed`) }) {
				failures = append(failures, r.str("level")+" "+r.msg())
			}
			if want := []string{
				"WARN pipeline failed; message will be redelivered",
				"WARN pipeline failed; message will be redelivered",
				"ERROR pipeline failed on the last allowed delivery; message terminated",
			}; !slices.Equal(failures, want) {
				t.Errorf("log records of the failed deliveries:\n  %s\nwant:\n  %s", strings.Join(failures, "\n  "), strings.Join(want, "\n  "))
			}
			if n := subjectCount(t, ctx, js, "ORDERS", "orders.enriched"); n != uint64(len(orders)) {
				t.Errorf("orders.enriched holds %d messages, want %d", n, len(orders))
			}
		})

		t.Run("logged", func(t *testing.T) {
			for _, o := range orders {
				want := fmt.Sprintf("enriched order %s for %s: %d items, priority %s", o.ID, o.Customer, len(o.Items), o.priority)
				r, err := a.log.waitFor(ctx, func(r record) bool { return r.msg() == want })
				if err != nil {
					t.Errorf("no log record %q: %v", want, err)
					continue
				}
				if r.str("pipeline") != "log-enriched" || r.str("level") != "INFO" {
					t.Errorf("log record %v: want pipeline log-enriched at INFO", r)
				}
			}
			eventually(t, ctx, "enriched-logger settled", func() (bool, string) {
				return settled(ctx, js, "ORDERS", "enriched-logger")
			})
			if a.log.contains("enriched order o-bad") {
				t.Error("the malformed order was logged as enriched")
			}
		})
	})
}

func validTime(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}
