package eventbus

import "strings"

// Subject patterns, as NATS reads them: tokens separated by '.', where '*'
// matches one token and '>' (last only) one or more.

// subjectMatches reports whether pattern matches the literal subject.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// subjectsCollide reports whether some subject matches both patterns.
func subjectsCollide(a, b string) bool {
	x, y := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(x) || i == len(y):
			return len(x) == len(y)
		case x[i] == ">" || y[i] == ">":
			return true
		case x[i] != "*" && y[i] != "*" && x[i] != y[i]:
			return false
		}
	}
}

// prefixMatches reports whether pattern matches some subject that begins
// with prefix: the literal text of a subject written with a template after
// it. The text after the last '.' of prefix is the start of a token the
// template completes.
func prefixMatches(pattern, prefix string) bool {
	p, pre := strings.Split(pattern, "."), strings.Split(prefix, ".")
	whole, partial := pre[:len(pre)-1], pre[len(pre)-1]
	for i, tok := range whole {
		switch {
		case i >= len(p):
			return false
		case p[i] == ">":
			return true
		case p[i] != "*" && p[i] != tok:
			return false
		}
	}
	if len(whole) >= len(p) {
		return false
	}
	tok := p[len(whole)]
	return tok == ">" || tok == "*" || strings.HasPrefix(tok, partial)
}

// templatePrefix returns the literal text of s before its first template
// ({{ or ${}), and whether s holds a template at all.
func templatePrefix(s string) (string, bool) {
	i := strings.Index(s, "{{")
	if j := strings.Index(s, "${"); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return s, false
	}
	return s[:i], true
}

// subjectSubset reports whether every subject that matches sub also
// matches of.
func subjectSubset(sub, of string) bool {
	s, o := strings.Split(sub, "."), strings.Split(of, ".")
	for i, tok := range o {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s) || s[i] == ">":
			return false
		case tok == "*":
		case s[i] == "*" || s[i] != tok:
			return false
		}
	}
	return len(s) == len(o)
}
