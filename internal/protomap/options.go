package protomap

// Option changes how Decode reads a configuration.
type Option func(*options)

type options struct {
	templates bool
	prefix    string
}

// AllowTemplates makes a string containing "{{" or "${" (a template or an
// expression block) leave its field unset where
// a string is not a valid value (numbers, bools, enums, durations,
// timestamps, messages, maps): the configuration still holds a template, so
// it can be checked for unknown keys and well-formed values now and decoded
// in full once rendered. A repeated or map field with such a string among
// its elements is left unset as a whole, so that it is never half filled.
func AllowTemplates() Option {
	return func(o *options) { o.templates = true }
}

// Path sets the path that error paths begin with, such as "config" for
// errors like "config.max_age: ...". Without it a path begins with the
// top-level key.
func Path(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}
