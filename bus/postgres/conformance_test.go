package postgres_test

import (
	"context"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/bustest"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// TestConformance runs the bus conformance suite: each case on a schema of
// its own on the shared server, except the cases that restart the server,
// which get a server of their own.
func TestConformance(t *testing.T) {
	t.Parallel()
	bustest.Run(t, bustest.Harness{
		Features: bustest.Features{
			Dedup:           true,
			NakDelay:        true,
			InProgress:      true,
			MaxDeliver:      true,
			OrderPerSubject: true,
			Restart:         true,
		},
		Storage: bus.StorageFile,
		New: func(t *testing.T) bustest.Env {
			schema := pg.schema()
			return bustest.Env{
				Bus:     newBus(t, pg.dsn, schema),
				Connect: func(t *testing.T) bus.Bus { return newBus(t, pg.dsn, schema) },
				ConnectKeyed: func(t *testing.T, key []byte, previous ...[]byte) bus.Bus {
					return newBus(t, pg.dsn, schema, postgres.WithTokenKey(key, previous...))
				},
			}
		},
		NewRestartable: func(t *testing.T) bustest.Env {
			srv, dsn := pg.ownServer(t)
			return bustest.Env{
				Bus: newBus(t, dsn, pg.schema()),
				Restart: func(t *testing.T) {
					t.Helper()
					ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
					defer cancel()
					if err := srv.Restart(ctx); err != nil {
						t.Fatalf("restart: %v", err)
					}
				},
			}
		},
	})
}
