package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/bustest"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

// TestConformance runs the bus conformance suite twice: on a file-store
// server, which is restarted under load, and on a memory-only server.
func TestConformance(t *testing.T) {
	t.Parallel()
	promises := bustest.Features{
		Dedup:           true,
		NakDelay:        true,
		InProgress:      true,
		MaxDeliver:      true,
		OrderPerSubject: true,
	}
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		f := promises
		f.Restart = true
		bustest.Run(t, bustest.Harness{Features: f, Storage: bus.StorageFile, New: func(t *testing.T) bustest.Env {
			return conformanceEnv(t, embedded.Config{StoreDir: t.TempDir(), Port: restartablePort(t)})
		}})
	})
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		bustest.Run(t, bustest.Harness{Features: promises, Storage: bus.StorageMemory, New: func(t *testing.T) bustest.Env {
			return conformanceEnv(t, embedded.Config{Port: embedded.RandomPort, MemoryOnly: true})
		}})
	})
}

// conformanceEnv starts a server for one case and a bus on a TCP connection
// to it that reconnects forever, so that the bus survives Restart.
func conformanceEnv(t *testing.T, cfg embedded.Config) bustest.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The port is fixed from now on, so that a restart comes back where the
	// client reconnects to.
	cfg.Port = srv.Port()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	nc, err := jetstream.Connect(ctx, jetstream.ConnectConfig{URLs: []string{srv.ClientURL()}, Name: t.Name()},
		nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	b, err := jetstream.New(nc, jetstream.WithOwnedConn())
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	env := bustest.Env{Bus: b}
	if !cfg.MemoryOnly {
		env.Restart = func(t *testing.T) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("restart: shutdown: %v", err)
			}
			again, err := embedded.Start(ctx, cfg)
			if err != nil {
				t.Fatalf("restart: start: %v", err)
			}
			srv = again
		}
	}
	return env
}
