package hostgc

import (
	"runtime/debug"
	"testing"
)

func TestSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	unset := func(string) (string, bool) { return "", false }
	if got := Set(unset); got != Percent {
		t.Fatalf("without GOGC in the environment, Set = %d, want %d", got, Percent)
	}

	debug.SetGCPercent(150)
	set := func(k string) (string, bool) { return "150", k == "GOGC" }
	if got := Set(set); got != 150 {
		t.Fatalf("with GOGC=150 in the environment, Set = %d, want the environment's 150", got)
	}
}

func TestCurrentOff(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	if got := Current(); got != -1 {
		t.Fatalf("with collection off, Current = %d, want -1", got)
	}
}
