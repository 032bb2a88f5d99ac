package eventbus

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wfeventbus/eventbus/bus"
)

// MaxParsedPayload is the largest payload, in bytes, that a pipeline also
// gets parsed as json. A larger one comes as text only: parsed, it would
// travel twice in the pipeline's data, and a parsed tree takes up to
// several times its text's size on the wire. It is NATS's default
// max_payload, so on a broker with default settings every JSON payload is
// parsed; a pipeline can parse a larger one with step.json_parse.
const MaxParsedPayload = 1 << 20

// messageData is what a pipeline sees of a message, in JSON-shaped values
// only (a google.protobuf.Struct rejects anything else): payload as text,
// json with the parsed payload when it is JSON of at most MaxParsedPayload
// bytes, payload_base64 instead of payload when it is not UTF-8, headers as
// strings, numbers as numbers. Strings are valid UTF-8, as protobuf
// requires of a Struct's: a subject or header that is not has its invalid
// bytes replaced by U+FFFD.
func messageData(m *bus.Message) map[string]any {
	d := make(map[string]any, 14)
	d["subject"] = validUTF8(m.Subject)
	d["stream"] = m.Stream
	d["consumer"] = m.Consumer
	d["sequence"] = float64(m.StreamSequence)
	d["consumer_sequence"] = float64(m.ConsumerSequence)
	d["delivery_count"] = float64(m.DeliveryCount)
	d["redelivered"] = m.DeliveryCount > 1
	d["ack_token"] = m.AckToken
	d["headers"] = headerData(m.Headers)
	if !m.PublishedAt.IsZero() {
		d["published_at"] = m.PublishedAt.UTC().Format(time.RFC3339Nano)
	}
	addPayload(d, m.Payload)
	return d
}

func addPayload(d map[string]any, p []byte) {
	if !utf8.Valid(p) {
		d["payload_base64"] = base64.StdEncoding.EncodeToString(p)
		return
	}
	d["payload"] = string(p)
	if len(p) > 0 && len(p) <= MaxParsedPayload {
		// Unmarshal checks the whole body before decoding any of it, so a
		// body that is not JSON costs one scan and sets nothing.
		var v any
		if json.Unmarshal(p, &v) == nil {
			d["json"] = v
		}
	}
}

// headerData flattens headers to strings; several values of one header are
// joined with ", ".
func headerData(h bus.Headers) map[string]any {
	out := make(map[string]any, len(h))
	for k, vs := range h {
		out[validUTF8(k)] = validUTF8(strings.Join(vs, ", "))
	}
	return out
}

// validUTF8 returns s with every invalid byte sequence replaced by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
