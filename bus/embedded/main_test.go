package embedded_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus/embedded"
)

// holdStoreEnv, when set, makes the test binary a helper process instead:
// it starts a server on the store directory the variable names, prints the
// server's URL on stdout and serves until its stdin closes.
const holdStoreEnv = "EMBEDDED_TEST_HOLD_STORE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdStoreEnv); dir != "" {
		os.Exit(holdStore(dir))
	}
	os.Exit(m.Run())
}

func holdStore(dir string) int {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: dir, Port: embedded.RandomPort, SyncAlways: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hold store:", err)
		return 1
	}
	nc, err := srv.Connect()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hold store:", err)
		return 1
	}
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "HELD", Subjects: []string{"held.>"}})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hold store:", err)
		return 1
	}
	nc.Close()
	fmt.Println(srv.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Shutdown(ctx)
	return 0
}
