package protomap

import "errors"

// Errors wrapped by every *FieldError that Decode returns; match them with
// errors.Is.
var (
	// ErrUnknownField: a key names no field of the message. The error
	// suggests the closest field name when one is spelled similarly; fix
	// the key or remove it.
	ErrUnknownField = errors.New("unknown field")

	// ErrDuplicateField: two keys set the same field (its proto name and
	// its JSON name, such as max_age and maxAge) or two fields of one
	// oneof. Keep one of them.
	ErrDuplicateField = errors.New("duplicate field")

	// ErrWrongType: the value is of a kind the field cannot take, such as a
	// list for a number or a bare number for a duration. The error says
	// what the field wants.
	ErrWrongType = errors.New("wrong type")

	// ErrInvalidValue: the value has an acceptable kind but not an
	// acceptable content, such as "abc" for a number, 1.5 for an integer or
	// a name no enum value has. The error says what is accepted.
	ErrInvalidValue = errors.New("invalid value")

	// ErrOutOfRange: a number does not fit the field (300 for a uint8-sized
	// value, -1 for an unsigned field), a duration is negative or a
	// timestamp lies outside the years 1 to 9999.
	ErrOutOfRange = errors.New("out of range")
)

// FieldError is one problem with one field of a decoded configuration.
type FieldError struct {
	// Path locates the value in the configuration, beginning with the
	// prefix given by Path: "config.credentials.tls_ca_file",
	// "config.messages[2].subject", "config.headers.x-id". Keys appear as
	// written in the configuration.
	Path string
	// Err wraps one of the sentinel errors of this package and says what
	// is wrong.
	Err error
}

// Error returns the path and the problem, such as
// `config.max_age: wrong type: got number 30; write a unit, such as "30s"`.
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns Err, so that errors.Is matches the sentinel it wraps.
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrors returns every *FieldError within err, in the order Decode
// reported them; nil when there is none. It looks through errors joined by
// errors.Join and wrapped by fmt.Errorf, so it works on what a caller
// returns around a Decode error too.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *FieldError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}
