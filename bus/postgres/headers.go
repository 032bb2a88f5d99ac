package postgres

import (
	"encoding/binary"
	"errors"

	"github.com/wfeventbus/eventbus/bus"
)

// Headers are stored as bytea in a compact form: the number of keys, then
// per key its name and its values, each length-prefixed (uvarints).

// encodeHeaders returns the stored form of h plus the correlation id, nil
// when there is nothing to store.
func encodeHeaders(h bus.Headers, correlationID string) []byte {
	n := len(h)
	if correlationID != "" {
		if _, ok := h[bus.CorrelationIDHeader]; !ok {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	size := 8
	for k, vs := range h {
		size += len(k) + 8
		for _, v := range vs {
			size += len(v) + 4
		}
	}
	size += len(correlationID) + 24
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(n))
	for k, vs := range h {
		if k == bus.CorrelationIDHeader && correlationID != "" {
			continue
		}
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	if correlationID != "" {
		b = appendString(b, bus.CorrelationIDHeader)
		b = binary.AppendUvarint(b, 1)
		b = appendString(b, correlationID)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errBadHeaders = errors.New("stored headers are malformed")

// decodeHeaders reads the stored form back; nil for none.
func decodeHeaders(b []byte) (bus.Headers, error) {
	if len(b) == 0 {
		return nil, nil
	}
	r := reader{buf: b}
	n := r.uvarint()
	if r.bad || n > uint64(len(b)) {
		return nil, errBadHeaders
	}
	h := make(bus.Headers, n)
	for range n {
		k := r.string()
		nv := r.uvarint()
		if r.bad || nv > uint64(len(r.buf)) {
			return nil, errBadHeaders
		}
		vs := make([]string, nv)
		for i := range vs {
			vs[i] = r.string()
		}
		h[k] = vs
	}
	if r.bad || len(r.buf) != 0 {
		return nil, errBadHeaders
	}
	return h, nil
}

type reader struct {
	buf []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.buf)) {
		r.bad = true
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}
