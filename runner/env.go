package runner

import "regexp"

// envRef matches ${NAME} and ${NAME:-default}. Other ${ ... } forms (the
// engine's expression blocks, such as ${ body.name }) do not match and are
// left as written.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// expand replaces environment references in s: ${NAME} by the variable's
// value (empty when unset), ${NAME:-default} by the value or, when the
// variable is unset or empty, by default.
func (p *parser) expand(s string) string {
	return expandEnv(s, p.env)
}

func expandEnv(s string, lookup LookupEnv) string {
	if len(s) < 4 {
		return s
	}
	return envRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		var val string
		var ok bool
		if lookup != nil {
			val, ok = lookup(m[1])
		}
		hasDefault := len(ref) > len(m[1])+3
		if hasDefault && (!ok || val == "") {
			return m[2]
		}
		return val
	})
}
