// Package protomap decodes loosely typed configuration maps into protobuf
// messages.
//
// A configuration written in YAML, or carried as a google.protobuf.Struct,
// arrives as map[string]any in which every number may be a float64 and every
// value rendered from a template is a string. Decode reads such a map into
// any protobuf message through protoreflect: it is lenient about values —
// "30" for an int32, "yes" for a bool, "workqueue" for
// RETENTION_POLICY_WORKQUEUE, "1m30s" for a google.protobuf.Duration, a
// single string for a repeated field — and strict about names: a key that
// names no field is an error, with a suggestion when a field is spelled
// closely.
//
// Every problem is reported, not only the first: Decode returns all of them
// joined, each a *FieldError carrying the path of the field
// (config.messages[2].subject) and wrapping one of the sentinel errors of
// this package.
//
// Accepted values, by field type:
//
//   - bool: a bool, 0 or 1, or one of the strings true, false, 1, 0, yes,
//     no, on, off (any case, surrounding spaces ignored).
//   - integers: an integral number or a base-10 string ("42", "1e3" too); a
//     fraction or a value outside the field's range is an error.
//   - float and double: a number or a numeric string.
//   - string: a string; numbers and bools are formatted ("2" for 2).
//   - bytes: a string, taken as its UTF-8 bytes.
//   - enum: the value's full name (RETENTION_POLICY_WORKQUEUE), its name
//     without the prefix all values of the enum share (WORKQUEUE), in any
//     case and with '-' for '_' (by-start-sequence), or its number.
//   - google.protobuf.Duration: a Go duration string ("250ms", "1m30s"); a
//     bare number is rejected because its unit would be a guess.
//   - google.protobuf.Timestamp: an RFC 3339 string.
//   - google.protobuf.Value, Struct and ListValue: any JSON-shaped value, a
//     map and a list respectively.
//   - wrapper messages (google.protobuf.Int32Value, ...): their wrapped
//     value, by the rules above.
//   - other messages: a map, decoded recursively.
//   - repeated fields: a list; a single non-list value counts as a list of
//     one.
//   - map fields: a map; keys are converted to the map's key type and values
//     decoded by the rules of the value type.
//
// A nil value leaves its field as it was, and so does an empty or blank
// string for a field that is not a string or bytes field: that is what an
// empty YAML value or a template rendered from a missing value produces.
// Keys beginning with "_" name no field and are skipped in every message,
// so callers can carry their own annotations (_config_dir) in a config.
//
// With AllowTemplates a string containing "{{" or "${" where a non-string value is
// expected also leaves its field as it was, so that a configuration can be
// checked before its templates are rendered and decoded again after.
package protomap
