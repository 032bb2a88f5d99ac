package wfplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// maxLineBytes bounds a buffered partial line, so a plugin that writes
// without newlines cannot grow the host's memory.
const maxLineBytes = 64 << 10

// stderrTail forwards a plugin's stderr lines to a logger and keeps the
// last lines for crash reports.
type stderrTail struct {
	log *slog.Logger

	mu    sync.Mutex
	lines []string // ring buffer
	next  int
	full  bool
}

func newStderrTail(log *slog.Logger, keep int) *stderrTail {
	return &stderrTail{log: log, lines: make([]string, keep)}
}

// writer returns an io.Writer for one stream. Each stream keeps its own
// partial line so two streams never splice their lines.
func (t *stderrTail) writer(stream string) *lineWriter {
	return &lineWriter{tail: t, stream: stream}
}

func (t *stderrTail) line(stream, l string) {
	l = strings.TrimRight(l, "\r")
	if l == "" {
		return
	}
	t.mu.Lock()
	t.lines[t.next] = l
	t.next = (t.next + 1) % len(t.lines)
	if t.next == 0 {
		t.full = true
	}
	t.mu.Unlock()
	if msg, level, attrs, ok := parseJSONRecord(l); ok {
		t.log.LogAttrs(context.Background(), level, msg, attrs...)
		return
	}
	if msg, level, attrs, ok := parseTextRecord(l); ok {
		t.log.LogAttrs(context.Background(), level, msg, attrs...)
		return
	}
	t.log.Log(context.Background(), levelOfLine(l), l, "stream", stream)
}

// parseTextRecord reads a line written by slog's text handler
// (time=... level=WARN msg="..." key=value ...), so that a plugin logging
// text records, as the plugin binary built for the engine does, has them
// arrive as records of their own, with their level, message and attributes,
// rather than as one host record quoting the whole line. Attribute values
// arrive as the strings they were written as; the time is the host's.
func parseTextRecord(l string) (msg string, level slog.Level, attrs []slog.Attr, ok bool) {
	if !strings.HasPrefix(l, "time=") && !strings.HasPrefix(l, "level=") {
		return "", 0, nil, false
	}
	var haveMsg, haveLevel bool
	for rest := l; rest != ""; {
		key, r, ok := textToken(rest, true)
		if !ok || !strings.HasPrefix(r, "=") {
			return "", 0, nil, false
		}
		val, r, ok := textToken(r[1:], false)
		if !ok {
			return "", 0, nil, false
		}
		if r != "" {
			if r[0] != ' ' {
				return "", 0, nil, false
			}
			r = r[1:]
		}
		rest = r
		switch key {
		case "time":
		case "level":
			if level.UnmarshalText([]byte(val)) != nil {
				return "", 0, nil, false
			}
			haveLevel = true
		case "msg":
			msg, haveMsg = val, true
		default:
			attrs = append(attrs, slog.String(key, val))
		}
	}
	return msg, level, attrs, haveMsg && haveLevel
}

// textToken reads a key (up to '=') or a value (up to ' ') of a text
// record, unquoting it when it is quoted, and returns what follows it.
func textToken(s string, key bool) (tok, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", false
		}
		tok, err = strconv.Unquote(q)
		return tok, s[len(q):], err == nil
	}
	end := " "
	if key {
		end = "= "
	}
	i := strings.IndexAny(s, end)
	switch {
	case i < 0:
		return s, "", !key
	case key && (i == 0 || s[i] != '='):
		return "", "", false
	}
	return s[:i], s[i:], true
}

// parseJSONRecord reads a line written by slog's JSON handler (or any JSON
// object with "msg" and "level"), so a plugin's structured logs keep their
// level and attributes in the host's log instead of arriving as text.
func parseJSONRecord(l string) (msg string, level slog.Level, attrs []slog.Attr, ok bool) {
	if !strings.HasPrefix(l, "{") {
		return "", 0, nil, false
	}
	var rec map[string]any
	if json.Unmarshal([]byte(l), &rec) != nil {
		return "", 0, nil, false
	}
	msg, okMsg := rec["msg"].(string)
	lv, okLevel := rec["level"].(string)
	if !okMsg || !okLevel || level.UnmarshalText([]byte(lv)) != nil {
		return "", 0, nil, false
	}
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if k != "msg" && k != "level" && k != "time" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, rec[k]))
	}
	return msg, level, attrs, true
}

// snapshot returns the kept lines, oldest first.
func (t *stderrTail) snapshot() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]string(nil), t.lines[:t.next]...)
	}
	out := make([]string, 0, len(t.lines))
	out = append(out, t.lines[t.next:]...)
	return append(out, t.lines[:t.next]...)
}

// levelOfLine guesses the level of a log line written by slog (text or
// JSON), hclog or the Go runtime; anything else is info.
func levelOfLine(l string) slog.Level {
	switch {
	case strings.Contains(l, "level=ERROR"), strings.Contains(l, `"level":"ERROR"`), strings.Contains(l, `"@level":"error"`),
		strings.Contains(l, "[ERROR]"), strings.HasPrefix(l, "panic: "), strings.HasPrefix(l, "fatal error: "):
		return slog.LevelError
	case strings.Contains(l, "level=WARN"), strings.Contains(l, `"level":"WARN"`), strings.Contains(l, `"@level":"warn"`),
		strings.Contains(l, "[WARN]"):
		return slog.LevelWarn
	case strings.Contains(l, "level=DEBUG"), strings.Contains(l, `"level":"DEBUG"`), strings.Contains(l, `"@level":"debug"`),
		strings.Contains(l, "[DEBUG]"), strings.Contains(l, "[TRACE]"):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// lineWriter splits a byte stream into lines for a stderrTail.
type lineWriter struct {
	tail   *stderrTail
	stream string

	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) > maxLineBytes {
				w.tail.line(w.stream, string(w.buf))
				w.buf = w.buf[:0]
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.tail.line(w.stream, string(w.buf))
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flush emits a pending partial line.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.tail.line(w.stream, string(w.buf))
		w.buf = w.buf[:0]
	}
}

// LogWriter returns a writer that logs every line written to it to logger
// as a Client logs the stderr of a plugin process: a line that is a JSON
// log record (slog's JSON handler writes them) keeps its message, level and
// attributes, sorted by key; any other line is logged at the level it
// names, with stream=stderr. A plugin that runs in its host's process and
// logs through slog's JSON handler to this writer is logged exactly as the
// same plugin in a process of its own. Write only whole lines.
func LogWriter(logger *slog.Logger) io.Writer {
	return newStderrTail(logger, 1).writer("stderr")
}
