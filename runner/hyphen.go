package runner

import "strings"

// rewriteHyphens rewrites field chains with hyphenated names inside
// template actions into index calls, as the engine does, because
// text/template reads a hyphen as the start of a number:
//
//	{{ .steps.my-step.id }}  ->  {{ (index .steps "my-step" "id") }}
//	{{ $m.content-type }}    ->  {{ (index $m "content-type") }}
//
// Text outside actions, string literals and comments are left alone.
func rewriteHyphens(s string) string {
	if !strings.Contains(s, "{{") || !strings.Contains(s, "-") {
		return s
	}
	var out strings.Builder
	for {
		open := strings.Index(s, "{{")
		if open < 0 {
			out.WriteString(s)
			return out.String()
		}
		out.WriteString(s[:open+2])
		s = s[open+2:]
		end := actionEnd(s)
		if end < 0 {
			out.WriteString(s)
			return out.String()
		}
		out.WriteString(rewriteAction(s[:end]))
		out.WriteString("}}")
		s = s[end+2:]
	}
}

// actionEnd returns the index of the "}}" closing an action that starts at
// s[0], skipping string literals and comments; -1 if there is none.
func actionEnd(s string) int {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"' || s[i] == '`' || s[i] == '\'':
			i = literalEnd(s, i)
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return -1
			}
			i += j + 3
		case strings.HasPrefix(s[i:], "}}"):
			return i
		}
	}
	return -1
}

// literalEnd returns the index of the quote closing the literal that
// starts at s[i] (the last index when it is unterminated).
func literalEnd(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j
		}
	}
	return len(s) - 1
}

// rewriteAction rewrites the hyphenated chains of one action's text.
func rewriteAction(a string) string {
	var out strings.Builder
	for i := 0; i < len(a); {
		c := a[i]
		switch {
		case c == '"' || c == '`' || c == '\'':
			j := literalEnd(a, i)
			out.WriteString(a[i : j+1])
			i = j + 1
		case strings.HasPrefix(a[i:], "/*"):
			j := strings.Index(a[i+2:], "*/")
			if j < 0 {
				out.WriteString(a[i:])
				return out.String()
			}
			out.WriteString(a[i : i+j+4])
			i += j + 4
		case (c == '.' || c == '$') && (i == 0 || chainBoundary(a[i-1])):
			n, repl := rewriteChain(a[i:])
			out.WriteString(repl)
			i += n
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String()
}

// chainBoundary reports whether a field chain may start after byte b.
func chainBoundary(b byte) bool {
	return !(identByte(b) || b == ')' || b == ']' || b == '.' || b == '$')
}

func identByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// rewriteChain reads a chain at the start of s (".a.b-c" or "$v.b-c") and
// returns its length and its replacement, which is the chain itself
// unless a segment has a hyphen.
func rewriteChain(s string) (int, string) {
	i := 0
	root := ""
	if s[0] == '$' {
		i = 1
		for i < len(s) && identByte(s[i]) {
			i++
		}
		root = s[:i]
	}
	var segs []string
	for i < len(s) && s[i] == '.' {
		n := segment(s[i+1:])
		if n == 0 {
			break
		}
		segs = append(segs, s[i+1:i+1+n])
		i += 1 + n
	}
	if i == 0 {
		return 1, s[:1]
	}
	first := -1
	for k, seg := range segs {
		if strings.Contains(seg, "-") {
			first = k
			break
		}
	}
	if first < 0 {
		return i, s[:i]
	}
	var b strings.Builder
	b.WriteString("(index ")
	switch {
	case root != "" && first == 0:
		b.WriteString(root)
	case root != "":
		b.WriteString(root + "." + strings.Join(segs[:first], "."))
	case first == 0:
		b.WriteString(".")
	default:
		b.WriteString("." + strings.Join(segs[:first], "."))
	}
	for _, seg := range segs[first:] {
		b.WriteString(` "` + seg + `"`)
	}
	b.WriteString(")")
	return i, b.String()
}

// segment returns the length of the name at the start of s: a letter or
// '_', then letters, digits, '_' and hyphens between them.
func segment(s string) int {
	if s == "" || !(s[0] == '_' || s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return 0
	}
	n := 1
	for n < len(s) {
		switch {
		case identByte(s[n]):
			n++
		case s[n] == '-' && n+1 < len(s) && identByte(s[n+1]):
			n++
		default:
			return n
		}
	}
	return n
}
