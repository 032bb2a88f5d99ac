package pluginserver

import (
	"errors"
	"fmt"
	"testing"

	"github.com/wfeventbus/eventbus/wfplugin"
)

func TestHostErrorKeepsTheHostsWords(t *testing.T) {
	t.Parallel()
	remote := &wfplugin.RemoteError{Op: "TriggerWorkflow pipeline:orders", Message: `step "check" failed: bad order`}
	err := hostError(fmt.Errorf("callback: %w", remote))
	if err.Error() != `step "check" failed: bad order` {
		t.Fatalf("message = %q", err.Error())
	}
	if !errors.Is(err, remote) {
		t.Fatal("the original error is no longer in the chain")
	}
	plain := errors.New("connection refused")
	if got := hostError(plain); got != plain {
		t.Fatalf("a local error changed: %v", got)
	}
	if hostError(nil) != nil {
		t.Fatal("nil became an error")
	}
}
