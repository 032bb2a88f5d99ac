package runner

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testClock = func() time.Time { return time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC) }

// testContext is a run as a subscribe trigger starts it: trigger data from
// a Struct (every number a float64), two step outputs merged.
func testContext(strict bool) *runContext {
	pc := newRunContext(map[string]any{
		"seq":     float64(1234567),
		"subject": "o.new",
		"json":    map[string]any{"id": "o-1", "n": float64(3), "items": []any{"a", "b"}, "quiet": false},
		"nothing": nil,
		"my-key":  "hyphen",
		"upper":   "shadow",
	}, map[string]any{"pipeline": "orders", "started_at": "2026-05-06T07:08:09Z"}, strict)
	pc.merge("parse-request", map[string]any{"id": float64(7), "name": "ann"})
	pc.merge("plain", map[string]any{"sequence": "9", "count": 2})
	return pc
}

func newTestTemplates(config func(string) (string, bool)) *templates {
	return newTemplates(testClock, config, nil)
}

type tmplCase struct {
	name   string
	in     string
	strict bool
	want   string
	match  string // a regexp the output must match instead of want
	err    string // a substring of the error
}

func runTmplCases(t *testing.T, tt *templates, cases []tmplCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.resolve(c.in, testContext(c.strict))
			switch {
			case c.err != "":
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("resolve(%q) = %q, %v; want an error with %q", c.in, got, err, c.err)
				}
				if !errors.Is(err, ErrTemplate) {
					t.Errorf("error %v does not match ErrTemplate", err)
				}
			case err != nil:
				t.Fatalf("resolve(%q): %v", c.in, err)
			case c.match != "":
				if !regexp.MustCompile(c.match).MatchString(got) {
					t.Errorf("resolve(%q) = %q, want a match of %s", c.in, got, c.match)
				}
			case got != c.want:
				t.Errorf("resolve(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// engine-pipelines.md §2.3 (data, missing values) and §2.4 (rendering).
func TestTemplateDataAndRendering(t *testing.T) {
	t.Parallel()
	runTmplCases(t, newTestTemplates(nil), []tmplCase{
		{name: "§2.2 plain text is returned as it is", in: "no template", want: "no template"},
		{name: "§2.3 current keys at the top level", in: "{{ .subject }}", want: "o.new"},
		{name: "§2.3 trigger, steps and meta", in: "{{ .trigger.subject }} {{ .steps.plain.sequence }} {{ .meta.pipeline }}", want: "o.new 9 orders"},
		{name: "§2.3 no .current alias", in: "{{ .current }}", want: "<no value>"},
		{name: "§2.3 missing key", in: "{{ .nope }}", want: "<no value>"},
		{name: "§2.3 missing key of a map", in: "{{ .json.nope }}", want: "<no value>"},
		{name: "§2.3 missing trigger key", in: "{{ .trigger.nope }}", want: "<no value>"},
		{name: "§2.3 index of a missing key", in: `{{ index .json "nope" }}`, want: "<no value>"},
		{name: "§2.3 present nil value", in: "{{ .nothing }}", want: "<no value>"},
		{name: "§2.3 step helper on a missing step", in: `{{ step "x" "k" }}`, want: "<no value>"},
		{name: "§2.3 missing step is an empty map", in: "{{ .steps.nope }}", want: "map[]"},
		{name: "§2.3 missing intermediate key fails", in: "{{ .nope.deeper }}", err: "template exec error: template: :1:8: executing \"\" at <.nope.deeper>: nil pointer evaluating interface {}.deeper"},
		{name: "§2.3 default on missing", in: `{{ .nope | default "d" }}`, want: "d"},
		{name: "§2.3 if on missing", in: `{{ if .nope }}yes{{ else }}no{{ end }}`, want: "no"},
		{name: "§2.3 with on missing", in: `[{{ with .nope }}x{{ end }}]`, want: "[]"},
		{name: "§2.3 len of missing fails", in: "{{ len .nope }}", err: "len of nil pointer"},
		{name: "§2.3 strict: missing key fails", in: "{{ .nope }}", strict: true, err: `template exec error: template: :1:3: executing "" at <.nope>: map has no entry for key "nope"`},
		{name: "§2.3 strict: default on missing fails", in: `{{ .nope | default "d" }}`, strict: true, err: "map has no entry"},
		{name: "§2.3 strict: index of missing is <no value>", in: `{{ index .json "nope" }}`, strict: true, want: "<no value>"},
		{name: "§2.3 strict: step helper fails", in: `{{ step "x" }}`, strict: true, err: `step "x" not found in pipeline context`},
		{name: "§2.3 strict: step key fails", in: `{{ step "plain" "x" }}`, strict: true, err: `step "plain": key "x" not found`},
		{name: "§2.3 strict: step non-map fails", in: `{{ step "plain" "sequence" "x" }}`, strict: true, err: `step "plain": value at key path is not a map (cannot access key "x")`},
		{name: "§2.3 strict: trigger key fails", in: `{{ trigger "x" }}`, strict: true, err: `trigger: key "x" not found`},
		{name: "§2.5 trigger helper walks keys", in: `{{ trigger "json" "id" }}`, want: "o-1"},
		{name: "§2.5 trigger helper without keys", in: `{{ len (trigger) }}`, want: "6"},
		{name: "§2.5 step helper walks keys", in: `{{ step "parse-request" "name" }}`, want: "ann"},
		{name: "§2.4 float64 of 1234567", in: "{{ .seq }}", want: "1.234567e+06"},
		{name: "§2.4 float64 of 3", in: "{{ .json.n }}", want: "3"},
		{name: "§2.4 Go int", in: "{{ .count }}", want: "2"},
		{name: "§2.4 bool", in: "{{ .json.quiet }}", want: "false"},
		{name: "§2.4 list", in: "{{ .json.items }}", want: "[a b]"},
		{name: "§2.4 map with sorted keys", in: "{{ .steps.parse-request }}", want: "map[id:7 name:ann]"},
		{name: "§2.4 printf %.0f gives plain digits", in: `{{ printf "%.0f" .seq }}`, want: "1234567"},
		{name: "§2.4 toInt gives plain digits", in: `{{ toInt .seq }}`, want: "1234567"},
		{name: "§2.4 eq float and int fails", in: `{{ eq .json.n 3 }}`, err: "incompatible types for comparison"},
		{name: "§2.4 eq float and float", in: `{{ eq .json.n 3.0 }}`, want: "true"},
		{name: "§2.2 hyphenated step name", in: "{{ .steps.parse-request.name }}", want: "ann"},
		{name: "§2.2 hyphenated top-level key", in: "{{ .my-key }}", want: "hyphen"},
		{name: "§2.2 hyphen in a string literal is kept", in: `{{ printf "%s-x" .subject }}`, want: "o.new-x"},
		{name: "§2.2 hyphen chain is a key, not subtraction", in: "{{ .x-1 }}", want: "<no value>"},
		{name: "§2.2 comment action is left alone", in: "a{{/* .b-c */}}b", want: "ab"},
		{name: "§2.2 $.a-b is a parse error", in: "{{ $.my-key }}", err: "template parse error"},
		{name: "§2.2 unknown function is a parse error", in: `{{ env "HOME" }}`, err: `template parse error: template: :1: function "env" not defined`},
		{name: "§6.1 toJson does not exist", in: `{{ toJson .json }}`, err: `function "toJson" not defined`},
		{name: "§2.2 expressions run first, on the raw string", in: `{{ "${ subject }" }}`, want: "o.new"},
		{name: "§2.2 expression output is parsed as a template", in: `${ "{{" } .subject }}`, want: "o.new"},
	})
}

// engine-pipelines.md §2.5: every function of the engine's function map,
// with its argument order, coercions and edge cases.
func TestTemplateFunctions(t *testing.T) {
	t.Parallel()
	config := func(k string) (string, bool) {
		v, ok := map[string]string{"region": "eu"}[k]
		return v, ok
	}
	runTmplCases(t, newTestTemplates(config), []tmplCase{
		{name: "uuid", in: "{{ uuid }}", match: `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
		{name: "uuidv4", in: "{{ uuidv4 }}", match: `^[0-9a-f-]{36}$`},
		{name: "now is RFC 3339 UTC", in: "{{ now }}", want: "2026-05-06T07:08:09Z"},
		{name: "now with empty layout", in: `{{ now "" }}`, want: "2026-05-06T07:08:09Z"},
		{name: "now with a named layout", in: `{{ now "DateOnly" }}`, want: "2026-05-06"},
		{name: "now with Kitchen", in: `{{ now "Kitchen" }}`, want: "7:08AM"},
		{name: "now with a Go layout", in: `{{ now "2006/01/02" }}`, want: "2026/05/06"},
		{name: "lower", in: `{{ lower "ÀB" }}`, want: "àb"},
		{name: "upper", in: `{{ upper "àb" }}`, want: "ÀB"},
		{name: "title collapses whitespace", in: `{{ title "x  y " }}`, want: "X Y"},
		{name: "title upper-cases the first byte only", in: `{{ title "hello wORLD" }}`, want: "Hello WORLD"},
		{name: "default keeps 0", in: `{{ default "d" 0 }}`, want: "0"},
		{name: "default keeps false", in: `{{ default "d" false }}`, want: "false"},
		{name: "default replaces empty", in: `{{ default "d" "" }}`, want: "d"},
		{name: "default pipe form", in: `{{ .subject | default "d" }}`, want: "o.new"},
		{name: "coalesce", in: `{{ coalesce .nope "" "b" "c" }}`, want: "b"},
		{name: "coalesce of nothing", in: `{{ coalesce .nope "" }}`, want: "<no value>"},
		{name: "trimPrefix", in: `{{ .subject | trimPrefix "o." }}`, want: "new"},
		{name: "trimSuffix", in: `{{ trimSuffix ".new" .subject }}`, want: "o"},
		{name: "trimSpace", in: `[{{ trimSpace "  a b  " }}]`, want: "[a b]"},
		{name: "replace old new s", in: `{{ replace "o" "0" "foo" }}`, want: "f00"},
		{name: "contains substr s", in: `{{ contains "ne" .subject }}`, want: "true"},
		{name: "hasPrefix", in: `{{ hasPrefix "o." .subject }}`, want: "true"},
		{name: "hasSuffix", in: `{{ hasSuffix "x" .subject }}`, want: "false"},
		{name: "split sep s", in: `{{ split "," "a,b" }}`, want: "[a b]"},
		{name: "split result indexes", in: `{{ index (split "." .subject) 1 }}`, want: "new"},
		{name: "join a slice", in: `{{ join "-" .json.items }}`, want: "a-b"},
		{name: "join a non-slice", in: `{{ join "-" .subject }}`, want: "o.new"},
		{name: "urlEncode", in: `{{ urlEncode "a b&c" }}`, want: "a+b%26c"},
		{name: "b64", in: `{{ b64 "hi" }}`, want: "aGk="},
		{name: "json sorts keys and escapes html", in: `{{ json .steps.parse-request }} {{ json "<&>" }}`, want: `{"id":7,"name":"ann"} "\u003c\u0026\u003e"`},
		{name: "json of nil", in: `{{ json .nothing }}`, want: "null"},
		{name: "config", in: `{{ config "region" }}`, want: "eu"},
		{name: "config of an unknown key", in: `[{{ config "nope" }}]`, want: "[]"},
		{name: "add ints", in: `{{ add 2 3 }}`, want: "5"},
		{name: "add float and int", in: `{{ add .json.n 1 }}`, want: "4"},
		{name: "add big float", in: `{{ add .seq 1 }}`, want: "1.234568e+06"},
		{name: "add string number", in: `{{ add "1.5" 1 }}`, want: "2.5"},
		{name: "add unparseable string", in: `{{ add "abc" 1 }}`, want: "1"},
		{name: "add bool is 0", in: `{{ add true 1 }}`, want: "1"},
		{name: "sub", in: `{{ sub 2 5 }}`, want: "-3"},
		{name: "mul", in: `{{ mul .json.n 2 }}`, want: "6"},
		{name: "mul ints", in: `{{ mul 4 5 }}`, want: "20"},
		{name: "div is float", in: `{{ div 3 2 }}`, want: "1.5"},
		{name: "div by zero is 0", in: `{{ div 3 0 }}`, want: "0"},
		{name: "toInt truncates", in: `{{ toInt "12.9" }}`, want: "12"},
		{name: "toInt of text is 0", in: `{{ toInt "abc" }}`, want: "0"},
		{name: "toFloat", in: `{{ toFloat "2.5" }}`, want: "2.5"},
		{name: "toString of nil", in: `{{ toString .nothing }}`, want: "<nil>"},
		{name: "toString of a float", in: `{{ toString .seq }}`, want: "1.234567e+06"},
		{name: "length of a string in bytes", in: `{{ length "àb" }}`, want: "3"},
		{name: "length of a list", in: `{{ length .json.items }}`, want: "2"},
		{name: "length of a map", in: `{{ length .json }}`, want: "4"},
		{name: "length of missing is 0", in: `{{ length .nope }}`, want: "0"},
		{name: "sum of floats", in: `{{ sum (split "," "1,2") }}`, want: "3"},
		{name: "sum of a non-slice is 0", in: `{{ sum .subject }}`, want: "0"},
		{name: "min of an empty slice", in: `{{ min (slice .json.items 0 0) }}`, want: "<no value>"},
		{name: "max of strings compares numbers", in: `{{ max (split "," "1,5,3") }}`, want: "5"},
		{name: "first", in: `{{ first .json.items }}`, want: "a"},
		{name: "last", in: `{{ last .json.items }}`, want: "b"},
		{name: "first of empty", in: `{{ first (slice .json.items 0 0) }}`, want: "<no value>"},
		{name: "flatten", in: `{{ flatten (split "," "a,b") }}`, want: "[a b]"},
		{name: "unique", in: `{{ unique (split "," "a,b,a") }}`, want: "[a b]"},
		{name: "sortBy of scalars sorts them", in: `{{ sortBy (split "," "b,a,10,9") "k" }}`, want: "[9 10 a b]"},
		{name: "pluck of non-maps", in: `{{ pluck .json.items "k" }}`, want: "[]"},
		{name: "groupBy of non-maps", in: `{{ groupBy .json.items "k" }}`, want: "map[]"},
		{name: "Go builtins: printf and len", in: `{{ printf "%d/%s" (len .json.items) .subject }}`, want: "2/o.new"},
		{name: "no sprig: quote", in: `{{ quote "a" }}`, err: `function "quote" not defined`},
		{name: "no sprig: dict", in: `{{ dict }}`, err: `function "dict" not defined`},
	})
}

// engine-pipelines.md §2.5: the collection functions over maps and numbers
// of Go int kinds, which only step outputs hold.
func TestTemplateCollectionFunctions(t *testing.T) {
	t.Parallel()
	tt := newTestTemplates(nil)
	pc := newRunContext(nil, map[string]any{}, false)
	pc.merge("rows", map[string]any{
		"items": []any{
			map[string]any{"k": "b", "n": 2, "p": 1.5},
			map[string]any{"k": "a", "n": 10, "p": "0.5"},
			map[string]any{"k": "b", "n": 1},
			map[string]any{"n": 4, "k": nil},
		},
		"ints":   []any{3, 1, 2},
		"mixed":  []any{1, 2.5, 3},
		"nested": []any{[]any{1, 2}, 3, []any{}},
	})
	for _, c := range []struct{ in, want string }{
		{`{{ sum .ints }}`, "6"},
		{`{{ printf "%T" (sum .ints) }}`, "int64"},
		{`{{ printf "%T" (sum .mixed) }}`, "float64"},
		{`{{ sum .mixed }}`, "6.5"},
		{`{{ sum .items "n" }}`, "17"},
		{`{{ sum .items "p" }}`, "2"},
		{`{{ min .ints }} {{ max .ints }}`, "1 3"},
		{`{{ printf "%T" (min .mixed) }} {{ min .mixed }}`, "float64 1"},
		{`{{ max .items "n" }}`, "10"},
		{`{{ pluck .items "k" }}`, "[b a b <nil>]"},
		{`{{ flatten .nested }}`, "[1 2 3]"},
		{`{{ len (unique .items "k") }}`, "3"},
		{`{{ range $k, $v := groupBy .items "k" }}{{ $k }}={{ len $v }} {{ end }}`, "<nil>=1 a=1 b=2 "},
		{`{{ range sortBy .items "n" }}{{ .n }} {{ end }}`, "1 2 4 10 "},
		{`{{ range sortBy .items "p" }}{{ .k }} {{ end }}`, "a b b <no value> "},
		{`{{ range sortBy .items "k" }}{{ .n }} {{ end }}`, "10 2 1 4 "},
	} {
		got, err := tt.resolve(c.in, pc)
		if err != nil || got != c.want {
			t.Errorf("resolve(%s) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// engine-pipelines.md §2.7: ${ } expressions, their environment and
// rendering.
func TestExpressions(t *testing.T) {
	t.Parallel()
	runTmplCases(t, newTestTemplates(nil), []tmplCase{
		{name: "current key", in: "${ subject }", want: "o.new"},
		{name: "member access", in: "${ json.id }", want: "o-1"},
		{name: "body is the trigger data", in: "${ body.subject }", want: "o.new"},
		{name: "trigger", in: "${ trigger.json.id }", want: "o-1"},
		{name: "steps by index", in: `${ steps["parse-request"].name }`, want: "ann"},
		{name: "current namespace", in: "${ current.subject }", want: "o.new"},
		{name: "meta", in: "${ meta.pipeline }", want: "orders"},
		{name: "arithmetic on floats", in: "${ json.n * 2 + 1 }", want: "7"},
		{name: "division", in: "${ 3/2 }", want: "1.5"},
		{name: "division by zero", in: "${ 1/0 }", want: "+Inf"},
		{name: "number rendering", in: "${ seq }", want: "1.234567e+06"},
		{name: "comparison", in: "${ json.n == 3 }", want: "true"},
		{name: "ternary", in: `${ json.n > 2 ? "big" : "small" }`, want: "big"},
		{name: "nil coalescing", in: `${ nope ?? "d" }`, want: "d"},
		{name: "undefined is empty", in: "[${ nope }]", want: "[]"},
		{name: "member of undefined fails", in: "${ nope.x }", err: `expr eval error in "nope.x": cannot fetch x from <nil>`},
		{name: "compile error", in: "${ 1 + }", err: `expr compile error in "1 +"`},
		{name: "env: is a compile error", in: "${env:HOME}", err: "expr compile error"},
		{name: "function with the engine's argument order", in: "${ split(',', 'a,b') }", want: "[a b]"},
		{name: "function of the map", in: "${ toInt(seq) }", want: "1234567"},
		{name: "expr builtin", in: "${ len(json.items) }", want: "2"},
		{name: "expr toJSON is pretty-printed", in: "${ toJSON(json.items) }", want: "[\n  \"a\",\n  \"b\"\n]"},
		{name: "data key shadows a function", in: "${ upper('a') }", err: "string is not callable"},
		{name: "several blocks, left to right", in: "${ subject }/${ json.id }", want: "o.new/o-1"},
		{name: "expression then template", in: "${ json.id }:{{ .subject }}", want: "o-1:o.new"},
		{name: "a } ends the block", in: `${ "}" }`, err: "expr compile error"},
	})
}

// engine-pipelines.md §2.1: ResolveMap keeps non-strings, templates every
// string at any depth, and results stay strings.
func TestResolveMap(t *testing.T) {
	t.Parallel()
	tt := newTestTemplates(nil)
	pc := testContext(false)
	got, err := tt.resolveMap(map[string]any{
		"subject": "{{ .subject }}",
		"note":    "{{ .seq }}",
		"opts":    map[string]any{"n": "{{ .missing }}", "list": []any{"{{ .json.n }}", 5}},
		"retries": 3,
	}, pc)
	if err != nil {
		t.Fatal(err)
	}
	opts := got["opts"].(map[string]any)
	if got["subject"] != "o.new" || got["note"] != "1.234567e+06" || opts["n"] != "<no value>" || got["retries"] != 3 {
		t.Errorf("resolveMap = %v", got)
	}
	if l := opts["list"].([]any); l[0] != "3" || l[1] != 5 {
		t.Errorf("list = %#v, want the string \"3\" and the int 5", l)
	}
	_, err = tt.resolveMap(map[string]any{"outer": map[string]any{"inner": "{{ .nope.x }}"}}, pc)
	if err == nil || !strings.HasPrefix(err.Error(), `field "outer": field "inner": template exec error:`) {
		t.Errorf("error %v, want field paths at each level", err)
	}
}

// engine-pipelines.md §2.6: the truth of guards and of step.conditional.
func TestTruthiness(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in          string
		guard, cond bool
	}{
		{"", false, false}, {"  ", false, false}, {"false", false, false}, {" 0 ", false, false},
		{"False", true, false}, {"FALSE", true, false}, {"no", true, false}, {"n", true, false},
		{"off", true, false}, {"<nil>", true, false}, {"<no value>", true, true},
		{"true", true, true}, {"1", true, true}, {"yes", true, true}, {"x", true, true},
	} {
		if got := guardTruthy(c.in); got != c.guard {
			t.Errorf("guardTruthy(%q) = %v, want %v", c.in, got, c.guard)
		}
		if got := conditionTruthy(c.in); got != c.cond {
			t.Errorf("conditionTruthy(%q) = %v, want %v", c.in, got, c.cond)
		}
	}
}

// engine-pipelines.md §2.2 step 4: the hyphen rewrite itself.
func TestRewriteHyphens(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"{{ .steps.my-step.out }}", `{{ (index .steps "my-step" "out") }}`},
		{"{{ .trace-id }}", `{{ (index . "trace-id") }}`},
		{"{{ .a.b.c-d.e }}", `{{ (index .a.b "c-d" "e") }}`},
		{"{{ .a.b }} x-y", "{{ .a.b }} x-y"},
		{`{{ printf "%s .a-b" .c-d }}`, `{{ printf "%s .a-b" (index . "c-d") }}`},
		{"{{/* .a-b */}}", "{{/* .a-b */}}"},
		{"{{ $.a-b }}", `{{ $(index . "a-b") }}`},
		{"no action .a-b", "no action .a-b"},
	} {
		if got := rewriteHyphens(c.in); got != c.want {
			t.Errorf("rewriteHyphens(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
