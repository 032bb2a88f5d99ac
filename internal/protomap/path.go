package protomap

import (
	"strconv"
	"strings"
	"unicode"
)

// segment is one step of the path to the value being decoded.
type segment struct {
	kind  segmentKind
	key   string
	index int
}

type segmentKind uint8

const (
	segField segmentKind = iota // a key of a message
	segKey                      // a key of a map field, Struct or Value
	segIndex                    // an element of a list
)

// renderPath writes prefix followed by segs: fields and simple map keys
// after a dot (credentials.tls_ca_file, headers.x-id), other map keys
// quoted in brackets (labels["a.b"]), list indexes in brackets
// (messages[2]).
func renderPath(prefix string, segs []segment) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, s := range segs {
		switch s.kind {
		case segIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		default:
			if !simpleKey(s.key) {
				b.WriteByte('[')
				b.WriteString(strconv.Quote(s.key))
				b.WriteByte(']')
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		}
	}
	return b.String()
}

// simpleKey reports whether key can be written after a dot without
// ambiguity: letters, digits, '_' and '-' only.
func simpleKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if r != '_' && r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}
