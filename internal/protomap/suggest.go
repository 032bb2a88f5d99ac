package protomap

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// suggestField returns the proto name of the field of fields spelled most
// like key, or "" when none is close. Case is ignored.
func suggestField(fields protoreflect.FieldDescriptors, key string) string {
	key = strings.ToLower(key)
	best, bestDist := "", maxSuggestDistance(key)+1
	for i := range fields.Len() {
		fd := fields.Get(i)
		for _, name := range [...]string{string(fd.Name()), fd.JSONName()} {
			if d := editDistance(key, strings.ToLower(name)); d < bestDist {
				best, bestDist = string(fd.Name()), d
			}
		}
	}
	return best
}

// suggestName returns the name of names spelled most like s, or "" when
// none is close. names are expected in lower case.
func suggestName(names []string, s string) string {
	s = strings.ToLower(s)
	best, bestDist := "", maxSuggestDistance(s)+1
	for _, name := range names {
		if d := editDistance(s, name); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// maxSuggestDistance is how many edits a misspelling of s may be from the
// name it suggests: one for short words, growing with their length, at
// most three.
func maxSuggestDistance(s string) int {
	return min(1+len(s)/5, 3)
}

// editDistance is the Levenshtein distance between a and b, counted in
// bytes.
func editDistance(a, b string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			next := min(row[j]+1, row[j-1]+1, diag+cost)
			diag, row[j] = row[j], next
		}
	}
	return row[len(b)]
}
