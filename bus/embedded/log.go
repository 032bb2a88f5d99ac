package embedded

import (
	"context"
	"fmt"
	"log/slog"
)

// serverLogger routes the server's logs to a slog.Logger and turns its fatal
// reports into a startup failure: the server calls Fatalf when it cannot
// start (for example when it cannot listen), and an embedded server must
// report that to Start rather than end the process.
type serverLogger struct {
	l *slog.Logger
	// fatal receives the first fatal report; later ones are only logged.
	fatal chan string
}

func newServerLogger(l *slog.Logger) *serverLogger {
	return &serverLogger{l: l.With("component", "nats-server"), fatal: make(chan string, 1)}
}

func (s *serverLogger) log(level slog.Level, format string, v []any) {
	if !s.l.Enabled(context.Background(), level) {
		return
	}
	s.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

// Noticef is the server's start-up banner and routine notices: debug, since
// the process that embeds the server reports what matters itself.
func (s *serverLogger) Noticef(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.log(slog.LevelWarn, format, v) }
func (s *serverLogger) Errorf(format string, v ...any)  { s.log(slog.LevelError, format, v) }
func (s *serverLogger) Debugf(format string, v ...any)  { s.log(slog.LevelDebug, format, v) }

// Tracef is protocol tracing; it is never enabled, and would be debug.
func (s *serverLogger) Tracef(format string, v ...any) { s.log(slog.LevelDebug, format, v) }

func (s *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	s.l.Error(msg)
	select {
	case s.fatal <- msg:
	default:
	}
}
