package bus

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Token is what an ack token says about its delivery.
type Token struct {
	// Backend names the backend that issued the token ("jetstream", ...).
	Backend  string
	Stream   string
	Consumer string
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
	// Delivery is the delivery count of the delivery the token settles.
	Delivery uint64
	// Reply is the backend's own settlement address (for JetStream the ack
	// reply subject); may be empty.
	Reply string
}

const (
	tokenPrefix  = "ebt1."
	tokenMACSize = 16
	tokenKeySize = 32
)

var b64 = base64.RawURLEncoding.Strict()

// TokenCodec issues and checks ack tokens. Tokens are opaque to users,
// self-describing to the bus, and signed with the codec's key, so a token
// that was altered or made up is rejected rather than acting on some other
// message.
type TokenCodec struct {
	key  []byte
	macs sync.Pool // of hash.Hash keyed with key: a MAC per token is on the delivery hot path
}

// NewTokenCodec returns a codec signing with key; a nil key draws a random
// one, so only this codec accepts the tokens it issues.
func NewTokenCodec(key []byte) (*TokenCodec, error) {
	if key == nil {
		key = make([]byte, tokenKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("%w: token key must be at least 16 bytes", ErrInvalidConfig)
	}
	c := &TokenCodec{key: append([]byte(nil), key...)}
	c.macs.New = func() any { return hmac.New(sha256.New, c.key) }
	return c, nil
}

// Encode returns the token for t.
func (c *TokenCodec) Encode(t Token) string {
	body := make([]byte, 0, 32+len(t.Backend)+len(t.Stream)+len(t.Consumer)+len(t.Reply))
	body = appendString(body, t.Backend)
	body = appendString(body, t.Stream)
	body = appendString(body, t.Consumer)
	body = binary.AppendUvarint(body, t.StreamSeq)
	body = binary.AppendUvarint(body, t.Delivery)
	body = appendString(body, t.Reply)

	var sb strings.Builder
	sb.Grow(len(tokenPrefix) + b64.EncodedLen(len(body)) + 1 + b64.EncodedLen(tokenMACSize))
	sb.WriteString(tokenPrefix)
	sb.WriteString(b64.EncodeToString(body))
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(c.mac(body)))
	return sb.String()
}

// Decode checks token and returns what it says. Every failure wraps
// ErrInvalidToken.
func (c *TokenCodec) Decode(token string) (Token, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: not an eventbus ack token", ErrInvalidToken)
	}
	bodyPart, macPart, ok := strings.Cut(rest, ".")
	if !ok {
		return Token{}, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	body, err := b64.DecodeString(bodyPart)
	if err != nil {
		return Token{}, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	mac, err := b64.DecodeString(macPart)
	if err != nil || !hmac.Equal(mac, c.mac(body)) {
		return Token{}, fmt.Errorf("%w: signature does not match (altered, or issued by another bus)", ErrInvalidToken)
	}
	var t Token
	r := tokenReader{buf: body}
	t.Backend = r.string()
	t.Stream = r.string()
	t.Consumer = r.string()
	t.StreamSeq = r.uvarint()
	t.Delivery = r.uvarint()
	t.Reply = r.string()
	if r.bad || len(r.buf) != 0 {
		return Token{}, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	return t, nil
}

func (c *TokenCodec) mac(body []byte) []byte {
	h := c.macs.Get().(hash.Hash)
	defer c.macs.Put(h)
	h.Reset()
	h.Write(body)
	return h.Sum(make([]byte, 0, sha256.Size))[:tokenMACSize]
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type tokenReader struct {
	buf []byte
	bad bool
}

func (r *tokenReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *tokenReader) string() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.buf)) {
		r.bad = true
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}
