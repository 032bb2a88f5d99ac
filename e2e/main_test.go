package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// eventbusBin is the eventbus binary under test. TestMain sets it once,
// before any test runs; tests only read it.
var eventbusBin string

// TestMain builds the eventbus command into a temporary directory, runs the
// tests against it and removes it. The binary is built without the race
// detector, whatever the tests run with: it is the product under test, and
// building it plainly keeps the package fast.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "eventbus-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	pg = &database{}
	defer pg.stop()
	eventbusBin = filepath.Join(dir, "eventbus")
	build := exec.Command("go", "build", "-o", eventbusBin, "github.com/wfeventbus/eventbus/cmd/eventbus")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build eventbus:", err)
		return 1
	}
	return m.Run()
}
