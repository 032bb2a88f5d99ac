package eventbus

import "testing"

func TestSubjectMatches(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern, subject string
		want             bool
	}{
		{"orders.>", "orders.created", true},
		{"orders.>", "orders.eu.created", true},
		{"orders.>", "orders", false},
		{"orders.*", "orders.created", true},
		{"orders.*", "orders.eu.created", false},
		{"orders.created", "orders.created", true},
		{"orders.created", "orders.deleted", false},
		{"*.created", "orders.created", true},
		{">", "anything.at.all", true},
		{"dlq.orders", "dlq", false},
	} {
		if got := subjectMatches(c.pattern, c.subject); got != c.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", c.pattern, c.subject, got, c.want)
		}
	}
}

func TestSubjectsCollide(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"orders.>", "orders.*", true},
		{"orders.>", "orders", false},
		{"orders.*", "payments.*", false},
		{"*.created", "orders.*", true},
		{"a.*.c", "a.b.*", true},
		{"a.b", "a.b.c", false},
		{">", "x", true},
		{"a.>", "b.>", false},
	} {
		if got := subjectsCollide(c.a, c.b); got != c.want {
			t.Errorf("subjectsCollide(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := subjectsCollide(c.b, c.a); got != c.want {
			t.Errorf("subjectsCollide(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

func TestSubjectSubset(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sub, of string
		want    bool
	}{
		{"orders.new", "orders.*", true},
		{"orders.*", "orders.>", true},
		{"orders.>", "orders.*", false},
		{"orders.*", "orders.new", false},
		{"a.*.c", "a.b.*", false},
		{"a.b", "a.b", true},
		{"a", "a.>", false},
	} {
		if got := subjectSubset(c.sub, c.of); got != c.want {
			t.Errorf("subjectSubset(%q, %q) = %v, want %v", c.sub, c.of, got, c.want)
		}
	}
}

func TestPrefixMatches(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern, prefix string
		want            bool
	}{
		{"shipping.>", "shipping.", true},
		{"orders.>", "shipping.", false},
		{"shipping.*", "shipping.", true},
		{"shipping", "shipping.", false},
		{"shipping.eu", "shipping.", true},
		{"shipping.eu", "shipping.e", true},
		{"shipping.eu", "shipping.us", false},
		{"orders.>", "ord", true},
		{"orders.>", "pay", false},
		{"*.created", "orders.", true},
		{"orders.*.created", "orders.eu.", true},
		{"orders.*", "orders.eu.", false},
		{">", "", true},
	} {
		if got := prefixMatches(c.pattern, c.prefix); got != c.want {
			t.Errorf("prefixMatches(%q, %q) = %v, want %v", c.pattern, c.prefix, got, c.want)
		}
	}
}

func TestTemplatePrefix(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, prefix string
		templated  bool
	}{
		{"orders.created", "orders.created", false},
		{"shipping.{{ .json.region }}", "shipping.", true},
		{"{{ .to }}", "", true},
		{"a.${ x }.{{ y }}", "a.", true},
		{"a.{{ y }}.${ x }", "a.", true},
	} {
		prefix, templated := templatePrefix(c.in)
		if prefix != c.prefix || templated != c.templated {
			t.Errorf("templatePrefix(%q) = %q, %v; want %q, %v", c.in, prefix, templated, c.prefix, c.templated)
		}
	}
}
