package jetstream

import (
	"errors"
	"strings"
	"time"
)

// ackMeta is what a delivery's ack reply subject says about it. JetStream
// writes it as
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>
//
// or, from servers with domains, as
//
//	$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>[.<token>...]
type ackMeta struct {
	stream, consumer string
	delivered        uint64
	streamSeq        uint64
	consumerSeq      uint64
	timestamp        time.Time
}

var errNotJetStream = errors.New("not a JetStream delivery: the reply is not an ack subject")

const ackPrefix = "$JS.ACK."

// parseAckReply reads reply without allocating.
func parseAckReply(reply string) (ackMeta, error) {
	rest, ok := strings.CutPrefix(reply, ackPrefix)
	if !ok {
		return ackMeta{}, errNotJetStream
	}
	var tok [7]string
	switch n := strings.Count(rest, ".") + 1; {
	case n == 7:
	case n >= 9:
		// Skip the domain and the account hash.
		_, rest, _ = strings.Cut(rest, ".")
		_, rest, _ = strings.Cut(rest, ".")
	default:
		return ackMeta{}, errNotJetStream
	}
	for i := range tok {
		tok[i], rest, _ = strings.Cut(rest, ".")
	}
	m := ackMeta{stream: tok[0], consumer: tok[1]}
	var ok1, ok2, ok3, ok4 bool
	m.delivered, ok1 = parseUint(tok[2])
	m.streamSeq, ok2 = parseUint(tok[3])
	m.consumerSeq, ok3 = parseUint(tok[4])
	var ns uint64
	ns, ok4 = parseUint(tok[5])
	if m.stream == "" || m.consumer == "" || !ok1 || !ok2 || !ok3 || !ok4 {
		return ackMeta{}, errNotJetStream
	}
	m.timestamp = time.Unix(0, int64(ns))
	return m, nil
}

// parseUint parses a decimal number without sign.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
