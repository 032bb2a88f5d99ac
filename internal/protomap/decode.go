package protomap

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// maxDepth bounds the nesting of messages, maps and lists, so that a
// self-referencing Go map ends in an error instead of a stack overflow.
const maxDepth = 1000

// Decode reads src into dst by the rules of the package documentation.
//
// Only the fields named in src are written; the others keep their values,
// so dst may hold defaults. A nested message is decoded into the message
// already in its field, while a repeated or map field is replaced as a
// whole. When dst is google.protobuf.Struct or Value, src becomes its
// content.
//
// The error lists every problem found, joined with errors.Join: each is a
// *FieldError (see FieldErrors) wrapping ErrUnknownField,
// ErrDuplicateField, ErrWrongType, ErrInvalidValue or ErrOutOfRange. The
// problems are ordered by path, keys sorted as strings and list elements by
// index, so the same input always gives the same error. After an error dst
// holds the fields that could be decoded.
func Decode(src map[string]any, dst proto.Message, opts ...Option) error {
	if dst == nil {
		return errors.New("protomap: Decode into a nil message")
	}
	m := dst.ProtoReflect()
	if !m.IsValid() {
		return fmt.Errorf("protomap: Decode into a nil %s", m.Descriptor().FullName())
	}
	d := decoder{}
	for _, opt := range opts {
		opt(&d.opts)
	}
	if wk := wellKnownOf(m.Descriptor()); wk != wkStruct && wk != wkValue {
		d.message(m, src)
		return errors.Join(d.errs...)
	}
	val, st := d.messageValue(m.Descriptor(), src, m.Type().New)
	if st == set {
		proto.Reset(dst)
		proto.Merge(dst, val.Message().Interface())
	}
	return errors.Join(d.errs...)
}

// DecodeStruct is Decode of the content of a google.protobuf.Struct, the
// form in which configurations cross gRPC.
func DecodeStruct(src *structpb.Struct, dst proto.Message, opts ...Option) error {
	return Decode(src.AsMap(), dst, opts...)
}

// decoder holds the state of one Decode call.
type decoder struct {
	opts  options
	path  []segment
	depth int
	errs  []error
}

// status is what became of one value.
type status uint8

const (
	set    status = iota // decoded; store it
	skip                 // nil, blank or a template: leave the field unset
	failed               // reported; leave the field unset
)

func (d *decoder) push(s segment) { d.path = append(d.path, s) }
func (d *decoder) pop()           { d.path = d.path[:len(d.path)-1] }

// fail records err as a problem with the value at the current path.
func (d *decoder) fail(err error) {
	d.errs = append(d.errs, &FieldError{Path: renderPath(d.opts.prefix, d.path), Err: err})
}

// enter counts one more level of nesting; it reports false, having
// recorded an error, when there are too many.
func (d *decoder) enter() bool {
	if d.depth >= maxDepth {
		d.fail(fmt.Errorf("%w: nested more than %d levels deep", ErrInvalidValue, maxDepth))
		return false
	}
	d.depth++
	return true
}

func (d *decoder) leave() { d.depth-- }

// template reports whether v is a string holding a template and templates
// are allowed.
func (d *decoder) template(v any) bool {
	s, ok := v.(string)
	return ok && d.opts.templates && (strings.Contains(s, "{{") || strings.Contains(s, "${"))
}

// message decodes the map v into the fields of m.
func (d *decoder) message(m protoreflect.Message, v any) {
	entries, ok := mapEntries(v)
	if !ok {
		d.fail(wrongType(v, "a map of fields"))
		return
	}
	if !d.enter() {
		return
	}
	defer d.leave()
	fields := m.Descriptor().Fields()
	var seen []seenField
	for _, e := range entries {
		if strings.HasPrefix(e.key, "_") {
			continue
		}
		d.push(segment{kind: segField, key: e.key})
		fd := lookupField(fields, e.key)
		switch {
		case fd == nil:
			err := ErrUnknownField
			if near := suggestField(fields, e.key); near != "" {
				err = fmt.Errorf("%w; did you mean %q?", ErrUnknownField, near)
			}
			d.fail(err)
		case d.conflict(seen, fd, e.key):
		default:
			seen = append(seen, seenField{fd: fd, key: e.key})
			d.field(m, fd, e.val)
		}
		d.pop()
	}
}

// seenField is a field that a key of the current message has set.
type seenField struct {
	fd  protoreflect.FieldDescriptor
	key string
}

// conflict reports, and records, whether fd was already set by another key
// or shares a oneof with a field that was.
func (d *decoder) conflict(seen []seenField, fd protoreflect.FieldDescriptor, key string) bool {
	oneof := fd.ContainingOneof()
	if oneof != nil && oneof.IsSynthetic() {
		oneof = nil
	}
	for _, s := range seen {
		switch {
		case s.fd == fd:
			d.fail(fmt.Errorf("%w: %q and %q both set %s; keep one", ErrDuplicateField, s.key, key, fd.Name()))
			return true
		case oneof != nil && s.fd.ContainingOneof() == oneof:
			d.fail(fmt.Errorf("%w: %q and %q are alternatives (oneof %s); set only one", ErrDuplicateField, s.key, key, oneof.Name()))
			return true
		}
	}
	return false
}

// lookupField finds the field named key, by its proto name or JSON name.
func lookupField(fields protoreflect.FieldDescriptors, key string) protoreflect.FieldDescriptor {
	if fd := fields.ByName(protoreflect.Name(key)); fd != nil {
		return fd
	}
	return fields.ByJSONName(key)
}

// field decodes v into the field fd of m.
func (d *decoder) field(m protoreflect.Message, fd protoreflect.FieldDescriptor, v any) {
	switch {
	case v == nil:
	case fd.IsList():
		d.list(m, fd, v)
	case fd.IsMap():
		d.mapField(m, fd, v)
	case fd.Message() != nil && wellKnownOf(fd.Message()) == notWellKnown:
		// Decoded into the message already there, keeping its other
		// fields; checked first so that a wrong value adds no message.
		if d.template(v) {
			return
		}
		if !isMap(v) {
			d.fail(wrongType(v, "a map of fields"))
			return
		}
		d.message(m.Mutable(fd).Message(), v)
	default:
		if val, st := d.single(fd, v, func() protoreflect.Message { return m.NewField(fd).Message() }); st == set {
			m.Set(fd, val)
		}
	}
}

// list decodes the list v, or a single value as a list of one, into the
// repeated field fd of m.
func (d *decoder) list(m protoreflect.Message, fd protoreflect.FieldDescriptor, v any) {
	if isMap(v) {
		if !d.template(v) {
			d.fail(wrongType(v, "a list"))
		}
		return
	}
	elems, isList := listElems(v)
	if !isList {
		elems = []any{v}
	}
	list := m.NewField(fd).List()
	complete := true
	for i, e := range elems {
		if isList {
			d.push(segment{kind: segIndex, index: i})
		}
		var val protoreflect.Value
		st := set
		switch {
		case e == nil && fd.Message() != nil && wellKnownOf(fd.Message()) == wkValue:
			val = adopt(list.NewElement().Message(), structpb.NewNullValue())
		case e == nil:
			d.fail(fmt.Errorf("%w: got null, want an element", ErrWrongType))
			st = failed
		default:
			val, st = d.single(fd, e, func() protoreflect.Message { return list.NewElement().Message() })
		}
		switch st {
		case set:
			list.Append(val)
		case skip:
			complete = false
		}
		if isList {
			d.pop()
		}
	}
	if complete {
		m.Set(fd, protoreflect.ValueOfList(list))
	}
}

// mapField decodes the map v into the map field fd of m.
func (d *decoder) mapField(m protoreflect.Message, fd protoreflect.FieldDescriptor, v any) {
	if d.template(v) {
		return
	}
	entries, ok := mapEntries(v)
	if !ok {
		d.fail(wrongType(v, "a map"))
		return
	}
	mp := m.NewField(fd).Map()
	keyFd, valFd := fd.MapKey(), fd.MapValue()
	isValue := valFd.Message() != nil && wellKnownOf(valFd.Message()) == wkValue
	complete := true
	for _, e := range entries {
		d.push(segment{kind: segKey, key: e.key})
		key, err := mapKey(keyFd, e.key)
		switch {
		case err != nil:
			d.fail(err)
		case e.val == nil && isValue:
			mp.Set(key, adopt(mp.NewValue().Message(), structpb.NewNullValue()))
		case e.val == nil:
		default:
			val, st := d.single(valFd, e.val, func() protoreflect.Message { return mp.NewValue().Message() })
			switch st {
			case set:
				mp.Set(key, val)
			case skip:
				complete = false
			}
		}
		d.pop()
	}
	if complete {
		m.Set(fd, protoreflect.ValueOfMap(mp))
	}
}

// mapKey converts a key written as a string to the key type of a map field.
func mapKey(fd protoreflect.FieldDescriptor, key string) (protoreflect.MapKey, error) {
	var v protoreflect.Value
	switch fd.Kind() {
	case protoreflect.StringKind:
		s, err := stringValue(key)
		if err != nil {
			return protoreflect.MapKey{}, err
		}
		v = protoreflect.ValueOfString(s)
	case protoreflect.BoolKind:
		b, ok := parseBool(strings.TrimSpace(key))
		if !ok {
			return protoreflect.MapKey{}, fmt.Errorf("%w: key %s is not a bool", ErrInvalidValue, show(key))
		}
		v = protoreflect.ValueOfBool(b)
	default:
		val, st, err := scalar(fd, key)
		if st == skip {
			err = fmt.Errorf("%w: key %s is not a %s", ErrInvalidValue, show(key), fd.Kind())
		}
		if err != nil {
			return protoreflect.MapKey{}, err
		}
		v = val
	}
	return v.MapKey(), nil
}

// single decodes one value of the type of fd (an element's type for a
// repeated or map field). newMsg makes the message to fill when the type
// is a message.
func (d *decoder) single(fd protoreflect.FieldDescriptor, v any, newMsg func() protoreflect.Message) (protoreflect.Value, status) {
	if md := fd.Message(); md != nil {
		return d.messageValue(md, v, newMsg)
	}
	if d.template(v) && fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.BytesKind {
		return protoreflect.Value{}, skip
	}
	val, st, err := scalar(fd, v)
	if err != nil {
		d.fail(err)
	}
	return val, st
}

// messageValue decodes v as a message of type md, made by newMsg.
func (d *decoder) messageValue(md protoreflect.MessageDescriptor, v any, newMsg func() protoreflect.Message) (protoreflect.Value, status) {
	wk := wellKnownOf(md)
	if wk != wkValue && d.template(v) {
		return protoreflect.Value{}, skip
	}
	switch wk {
	case wkDuration:
		dur, err := durationValue(v)
		if st := d.check(err); st != set {
			return protoreflect.Value{}, st
		}
		msg := newMsg()
		setSecondsNanos(msg, int64(dur/1e9), int32(dur%1e9))
		return protoreflect.ValueOfMessage(msg), set
	case wkTimestamp:
		t, err := timestampValue(v)
		if st := d.check(err); st != set {
			return protoreflect.Value{}, st
		}
		msg := newMsg()
		setSecondsNanos(msg, t.Unix(), int32(t.Nanosecond()))
		return protoreflect.ValueOfMessage(msg), set
	case wkValue:
		val, ok := d.toValue(v)
		if !ok {
			return protoreflect.Value{}, failed
		}
		return adopt(newMsg(), val), set
	case wkStruct:
		s, ok := d.toStruct(v)
		if !ok {
			return protoreflect.Value{}, failed
		}
		return adopt(newMsg(), s), set
	case wkListValue:
		elems, ok := listElems(v)
		if !ok {
			d.fail(wrongType(v, "a list"))
			return protoreflect.Value{}, failed
		}
		l, ok := d.toList(elems)
		if !ok {
			return protoreflect.Value{}, failed
		}
		return adopt(newMsg(), l), set
	case wkWrapper:
		inner := md.Fields().ByNumber(1)
		val, st, err := scalar(inner, v)
		if err != nil {
			d.fail(err)
		}
		if st != set {
			return protoreflect.Value{}, st
		}
		msg := newMsg()
		msg.Set(inner, val)
		return protoreflect.ValueOfMessage(msg), set
	}
	if !isMap(v) {
		d.fail(wrongType(v, "a map of fields"))
		return protoreflect.Value{}, failed
	}
	msg := newMsg()
	d.message(msg, v)
	return protoreflect.ValueOfMessage(msg), set
}

// check records err and turns it into a status.
func (d *decoder) check(err error) status {
	switch {
	case err == nil:
		return set
	case errors.Is(err, errBlank):
		return skip
	}
	d.fail(err)
	return failed
}

// scalar converts v to a value of fd's scalar kind. A blank string gives
// skip and no error.
func scalar(fd protoreflect.FieldDescriptor, v any) (protoreflect.Value, status, error) {
	var (
		val protoreflect.Value
		err error
	)
	kind := fd.Kind()
	switch kind {
	case protoreflect.BoolKind:
		var b bool
		b, err = boolValue(v)
		val = protoreflect.ValueOfBool(b)
	case protoreflect.EnumKind:
		var n protoreflect.EnumNumber
		n, err = enumValue(fd.Enum(), v)
		val = protoreflect.ValueOfEnum(n)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		var n int64
		n, err = intValue(v, 32, kind.String())
		val = protoreflect.ValueOfInt32(int32(n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		var n int64
		n, err = intValue(v, 64, kind.String())
		val = protoreflect.ValueOfInt64(n)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		var n uint64
		n, err = uintValue(v, 32, kind.String())
		val = protoreflect.ValueOfUint32(uint32(n))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		var n uint64
		n, err = uintValue(v, 64, kind.String())
		val = protoreflect.ValueOfUint64(n)
	case protoreflect.FloatKind:
		var f float64
		f, err = floatValue(v, 32, kind.String())
		val = protoreflect.ValueOfFloat32(float32(f))
	case protoreflect.DoubleKind:
		var f float64
		f, err = floatValue(v, 64, kind.String())
		val = protoreflect.ValueOfFloat64(f)
	case protoreflect.StringKind:
		var s string
		s, err = stringValue(v)
		val = protoreflect.ValueOfString(s)
	case protoreflect.BytesKind:
		var b []byte
		b, err = bytesValue(v)
		val = protoreflect.ValueOfBytes(b)
	default:
		err = fmt.Errorf("%w: fields of kind %s are not supported", ErrWrongType, kind)
	}
	switch {
	case err == nil:
		return val, set, nil
	case errors.Is(err, errBlank):
		return protoreflect.Value{}, skip, nil
	}
	return protoreflect.Value{}, failed, err
}

// entry is one key and value of a configuration map.
type entry struct {
	key string
	val any
	// typ breaks ties between keys of different types that print alike
	// (1 and "1" in a map[any]any), so the order stays deterministic.
	typ string
}

// mapEntries returns the entries of any Go map sorted by key, keys other
// than strings formatted with fmt; ok is false when v is not a map.
func mapEntries(v any) (entries []entry, ok bool) {
	switch m := v.(type) {
	case map[string]any:
		entries = make([]entry, 0, len(m))
		for k, val := range m {
			entries = append(entries, entry{key: k, val: val})
		}
	case map[string]string:
		entries = make([]entry, 0, len(m))
		for k, val := range m {
			entries = append(entries, entry{key: k, val: val})
		}
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Map {
			return nil, false
		}
		entries = make([]entry, 0, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			k := iter.Key()
			if k.Kind() == reflect.Interface && !k.IsNil() {
				k = k.Elem()
			}
			e := entry{val: iter.Value().Interface()}
			if k.Kind() == reflect.String {
				e.key = k.String()
			} else {
				e.key = fmt.Sprint(k.Interface())
			}
			e.typ = k.Type().String()
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.typ, b.typ))
	})
	return entries, true
}

// isMap reports whether v is a Go map.
func isMap(v any) bool {
	switch v.(type) {
	case map[string]any, map[string]string:
		return true
	case nil, string, bool, float64, int, []any:
		return false
	}
	return reflect.ValueOf(v).Kind() == reflect.Map
}

// listElems returns the elements of a Go slice or array other than []byte;
// ok is false when v is not one.
func listElems(v any) (elems []any, ok bool) {
	switch l := v.(type) {
	case []any:
		return l, true
	case []string:
		elems = make([]any, len(l))
		for i, s := range l {
			elems[i] = s
		}
		return elems, true
	case nil, string, []byte, bool, float64, int, map[string]any:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if k := rv.Kind(); k != reflect.Slice && k != reflect.Array {
		return nil, false
	}
	elems = make([]any, rv.Len())
	for i := range elems {
		elems[i] = rv.Index(i).Interface()
	}
	return elems, true
}
