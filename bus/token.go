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
	// Issuer identifies the bus that handed the delivery out, for a
	// backend that settles its own deliveries differently from those of
	// another bus sharing its key; may be empty.
	Issuer string
	// Expires is when the delivery stops being settleable as its issuer
	// saw it, in Unix milliseconds; 0 when the token does not say.
	Expires uint64
}

const (
	tokenPrefix  = "ebt1."
	tokenMACSize = 16
	tokenKeySize = 32
)

var b64 = base64.RawURLEncoding.Strict()

// MinTokenKeySize is the shortest token key a codec accepts, in bytes.
const MinTokenKeySize = 16

// TokenCodec issues and checks ack tokens. Tokens are opaque to users,
// self-describing to the bus, and signed with the codec's key, so a token
// that was altered or made up is rejected rather than acting on some other
// message. Codecs sharing a key accept each other's tokens: that is how
// the replicas of an app settle each other's deliveries.
type TokenCodec struct {
	// keys[0] signs; every key verifies.
	keys []*macKey
}

// macKey is one key and a pool of MACs keyed with it: a MAC per token is
// on the delivery hot path.
type macKey struct {
	key  []byte
	macs sync.Pool // of hash.Hash
}

func newMACKey(key []byte) *macKey {
	k := &macKey{key: append([]byte(nil), key...)}
	k.macs.New = func() any { return hmac.New(sha256.New, k.key) }
	return k
}

// NewTokenCodec returns a codec that signs with key and accepts tokens
// signed with key or with any of previous, the keys being rotated out. A
// nil key draws a random one, so only this codec accepts the tokens it
// issues. Every key must be at least MinTokenKeySize bytes; errors wrap
// ErrInvalidConfig and never hold a key.
func NewTokenCodec(key []byte, previous ...[]byte) (*TokenCodec, error) {
	if key == nil {
		if len(previous) > 0 {
			return nil, fmt.Errorf("%w: previous token keys are accepted only beside a current token key", ErrInvalidConfig)
		}
		key = make([]byte, tokenKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
	}
	if len(key) < MinTokenKeySize {
		return nil, fmt.Errorf("%w: token key: %d bytes, at least %d are needed", ErrInvalidConfig, len(key), MinTokenKeySize)
	}
	c := &TokenCodec{keys: []*macKey{newMACKey(key)}}
	for i, p := range previous {
		if len(p) < MinTokenKeySize {
			return nil, fmt.Errorf("%w: previous token key %d: %d bytes, at least %d are needed", ErrInvalidConfig, i+1, len(p), MinTokenKeySize)
		}
		c.keys = append(c.keys, newMACKey(p))
	}
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
	if t.Issuer != "" || t.Expires != 0 {
		body = appendString(body, t.Issuer)
		body = binary.AppendUvarint(body, t.Expires)
	}

	var sb strings.Builder
	sb.Grow(len(tokenPrefix) + b64.EncodedLen(len(body)) + 1 + b64.EncodedLen(tokenMACSize))
	sb.WriteString(tokenPrefix)
	sb.WriteString(b64.EncodeToString(body))
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(c.keys[0].mac(body)))
	return sb.String()
}

// Decode checks token, signed with any of the codec's keys, and returns
// what it says. Every failure wraps ErrInvalidToken.
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
	if err != nil || !c.signed(body, mac) {
		return Token{}, fmt.Errorf("%w: signature does not match (altered, or issued by a bus with another token key)", ErrInvalidToken)
	}
	var t Token
	r := tokenReader{buf: body}
	t.Backend = r.string()
	t.Stream = r.string()
	t.Consumer = r.string()
	t.StreamSeq = r.uvarint()
	t.Delivery = r.uvarint()
	t.Reply = r.string()
	if len(r.buf) != 0 && !r.bad {
		t.Issuer = r.string()
		t.Expires = r.uvarint()
		// Encode leaves the pair out when both are zero: a token that
		// spells them out is not one it wrote.
		if t.Issuer == "" && t.Expires == 0 {
			r.bad = true
		}
	}
	if r.bad || len(r.buf) != 0 {
		return Token{}, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	return t, nil
}

// signed reports whether mac is body's MAC under any of the codec's keys.
func (c *TokenCodec) signed(body, mac []byte) bool {
	if len(mac) != tokenMACSize {
		return false
	}
	for _, k := range c.keys {
		if hmac.Equal(mac, k.mac(body)) {
			return true
		}
	}
	return false
}

func (k *macKey) mac(body []byte) []byte {
	h := k.macs.Get().(hash.Hash)
	defer k.macs.Put(h)
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
