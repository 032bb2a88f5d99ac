package postgres

import (
	"regexp"
	"testing"
)

func TestSubjectProblem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		subject string
		wild    bool
		ok      bool
	}{
		{"orders.created", false, true},
		{"orders.*", true, true},
		{"orders.>", true, true},
		{"orders.*", false, false},
		{"orders.>.x", true, false},
		{"orders..x", true, false},
		{"", true, false},
		{"a b", true, false},
		{"ord*ers", true, false},
		{".a", true, false},
		{"a.", true, false},
	}
	for _, c := range cases {
		if got := subjectProblem(c.subject, c.wild) == ""; got != c.ok {
			t.Errorf("subjectProblem(%q, %v) ok = %v, want %v", c.subject, c.wild, got, c.ok)
		}
	}
}

func TestSubjectMatchesAndRegex(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "x", true},
		{"*", "x.y", false},
		{"*.b.*", "a.b.c", true},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b", false},
		{"a+b.(x)", "a+b.(x)", true},
		{"a+b.(x)", "aab.(x)", false},
	}
	for _, c := range cases {
		if got := subjectMatches(c.pattern, c.subject); got != c.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", c.pattern, c.subject, got, c.want)
		}
		// PostgreSQL's ARE and Go's RE2 agree on this subset.
		re := regexp.MustCompile(subjectRegex([]string{c.pattern}))
		if got := re.MatchString(c.subject); got != c.want {
			t.Errorf("subjectRegex(%q) = %s matches %q: %v, want %v", c.pattern, re, c.subject, got, c.want)
		}
	}
	re := regexp.MustCompile(subjectRegex([]string{"a.*", "b.>"}))
	for s, want := range map[string]bool{"a.x": true, "b.x.y": true, "c.x": false, "a.x.y": false} {
		if re.MatchString(s) != want {
			t.Errorf("two-pattern regex matches %q: %v, want %v", s, !want, want)
		}
	}
}

func TestSubjectsOverlap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "*.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "x.y", true},
		{"a.*", "a.b.c", false},
		{"a.*.c", "a.b.*", true},
		{"a.*.c", "a.b.d", false},
		{"orders.>", "payments.>", false},
		{"a", "a.>", false},
	}
	for _, c := range cases {
		if got := subjectsOverlap(c.a, c.b); got != c.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := subjectsOverlap(c.b, c.a); got != c.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}
