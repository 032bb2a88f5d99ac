package e2e_test

import (
	"slices"
	"strings"
	"testing"
)

// stepLines returns the messages logged by step.log steps of the parity
// pipeline, from the n-th such record on.
func stepLines(a *app, from int) []string {
	var out []string
	for _, r := range a.log.records() {
		if r.str("pipeline") == "parity" && r.str("step") != "" && r.str("level") == "INFO" {
			out = append(out, r.msg())
		}
	}
	if from > len(out) {
		return nil
	}
	return out[from:]
}

// TestParity runs examples/parity under `eventbus run` and checks every
// line it logs against what engine-pipelines.md says the workflow engine
// gives for the same messages: number rendering (§2.4), missing values
// (§2.3), expressions (§2.7), guards (§4.3, §2.6), hyphenated names (§2.2),
// foreach (§3.9), workflow_call (§3.16), conditional routing that falls
// through (§3.4), and the error text of a failed run in the dead letter
// (§4.7).
func TestParity(t *testing.T) {
	t.Parallel()
	ctx := guard(t, testGuard)
	a := startApp(t, repoPath(t, "examples/parity/app.yaml"), appConfig{})
	js := connect(t, a)

	waitLine := func(want string) {
		t.Helper()
		if _, err := a.log.waitFor(ctx, func(r record) bool { return r.msg() == want && r.str("pipeline") == "parity" }); err != nil {
			t.Fatalf("no log record %q: %v", want, err)
		}
	}

	publish(t, ctx, js, "parity.in", `{"n":1234567,"who":"ada","items":["a","b"],"kind":"big"}`)
	waitLine("route: small (condition true)")
	got := stepLines(a, 0)
	want := []string{
		"numbers: raw=1.234567e+06 toInt=1234567 printf=1234567 add=1.234568e+06 expr=617283.5",
		"missing: template=[<no value>] expr=[] default=none body=ada",
		// skip_if '{{ .json.quiet }}' with quiet absent renders
		// "<no value>", which is truthy: that step is skipped.
		"guard: if on a missing key ran",
		"hyphens: hello ADA / hello ADA",
		`foreach: count=2 labels=["0:A","1:B"]`,
		"workflow_call: ADA has 2 items",
		"route: big (condition true)",
		// The jump goes to big; small, after it, runs too.
		"route: small (condition true)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("logged lines of the first message:\n got %q\nwant %q", got, want)
	}

	publish(t, ctx, js, "parity.in", "not json")
	dead := readStream(t, ctx, js, "PARITY", "parity.dead", 1)[0]
	wantErr := `workflow execution failed: pipeline "parity" execution failed: step "check" failed: validate step "check": missing required fields: json`
	if got := dead.Headers().Get("Eventbus-Error"); got != wantErr {
		t.Errorf("Eventbus-Error:\n got %s\nwant %s", got, wantErr)
	}
	if string(dead.Data()) != "not json" {
		t.Errorf("dead letter payload %q", dead.Data())
	}

	n := len(stepLines(a, 0))
	publish(t, ctx, js, "parity.in", `{"n":3,"who":"bo","items":[],"kind":"small","quiet":false}`)
	waitLine("route: small (condition false)")
	got = stepLines(a, n)
	want = []string{
		"numbers: raw=3 toInt=3 printf=3 add=4 expr=1.5",
		"missing: template=[<no value>] expr=[] default=none body=bo",
		"guard: skip_if on quiet did not skip",
		"guard: if on a missing key ran",
		"hyphens: hello BO / hello BO",
		"foreach: count=0 labels=[]",
		"workflow_call: BO has 0 items",
		"route: small (condition false)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("logged lines of the third message:\n got %q\nwant %q", got, want)
	}
	if strings.Contains(a.log.String(), `"level":"ERROR","msg":"template`) {
		t.Error("a template failed")
	}
}
