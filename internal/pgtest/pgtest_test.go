package pgtest_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wfeventbus/eventbus/internal/pgtest"
)

// TestServerLifecycle starts a server, writes a row, restarts the server,
// reads the row back (fsync on, fast shutdown), and stops it by its pid.
func TestServerLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	dsn, err := srv.CreateDatabase(ctx, "lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Errorf("fsync = %q (%v), want on", fsync, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	before := srv.PID()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.PID() == before || srv.PID() == 0 {
		t.Errorf("pid %d after restart, was %d", srv.PID(), before)
	}
	conn, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Errorf("after restart read %d (%v), want 42", v, err)
	}
	conn.Close(ctx)

	pid := srv.PID()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("server process %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestNotInstalledSaysWhatToInstall checks the error of a machine without
// PostgreSQL names the package to install.
func TestNotInstalledSaysWhatToInstall(t *testing.T) {
	if !strings.Contains(pgtest.ErrNotInstalled.Error(), "apt-get install postgresql") {
		t.Errorf("ErrNotInstalled = %q, want it to say apt-get install postgresql", pgtest.ErrNotInstalled)
	}
}
