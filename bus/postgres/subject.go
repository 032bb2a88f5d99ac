package postgres

import (
	"regexp"
	"strings"
)

// subjectProblem says what is wrong with subject, or "" when nothing is.
// Subjects follow NATS: tokens separated by '.', none empty; with wild set,
// a token may be '*' (any one token) or, as the last, '>' (one or more).
func subjectProblem(subject string, wild bool) string {
	if subject == "" {
		return "is empty"
	}
	start := 0
	for i := 0; i <= len(subject); i++ {
		if i < len(subject) && subject[i] != '.' {
			if c := subject[i]; c <= ' ' || c == 0x7f {
				return "may not contain whitespace or control characters"
			}
			continue
		}
		switch tok := subject[start:i]; {
		case tok == "":
			return "has an empty token"
		case tok == "*" || tok == ">":
			if !wild {
				return "may not contain wildcards"
			}
			if tok == ">" && i != len(subject) {
				return "has '>' before its last token"
			}
		case strings.ContainsAny(tok, "*>"):
			return "has a wildcard that is not a whole token"
		}
		start = i + 1
	}
	return ""
}

// subjectMatches reports whether the literal subject matches pattern.
func subjectMatches(pattern, subject string) bool {
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		stok, srest, smore := strings.Cut(subject, ".")
		switch {
		case ptok == ">":
			return true
		case ptok != "*" && ptok != stok:
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// subjectsOverlap reports whether some subject matches both patterns.
func subjectsOverlap(a, b string) bool {
	for {
		atok, arest, amore := strings.Cut(a, ".")
		btok, brest, bmore := strings.Cut(b, ".")
		switch {
		case atok == ">" || btok == ">":
			return true
		case atok != "*" && btok != "*" && atok != btok:
			return false
		case !amore || !bmore:
			return amore == bmore
		}
		a, b = arest, brest
	}
}

// subjectRegex returns a PostgreSQL regular expression matching exactly the
// subjects that match any of patterns.
func subjectRegex(patterns []string) string {
	var b strings.Builder
	b.WriteString("^(")
	for i, p := range patterns {
		if i > 0 {
			b.WriteByte('|')
		}
		for j, tok := range strings.Split(p, ".") {
			if j > 0 {
				b.WriteString(`\.`)
			}
			switch tok {
			case "*":
				b.WriteString(`[^.]+`)
			case ">":
				b.WriteString(`.+`)
			default:
				b.WriteString(regexp.QuoteMeta(tok))
			}
		}
	}
	b.WriteString(")$")
	return b.String()
}
