package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wfeventbus/eventbus/bus"
)

// This package adds no sentinel errors of its own: every failure a caller
// can react to is one of bus's (bus.ErrNotFound, bus.ErrInvalidConfig,
// bus.ErrInvalidToken, bus.ErrStaleToken, bus.ErrPayloadTooLarge,
// bus.ErrNotConnected, bus.ErrNoStream, bus.ErrWrongLastSequence,
// bus.ErrClosed), wrapped around the pgx error that caused it.

// configError wraps bus.ErrInvalidConfig and names the field.
func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", bus.ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// SQLSTATE codes the backend's functions raise.
const (
	// codeNotFound: the consumer or stream named is gone (no_data_found).
	codeNotFound = "P0002"
)

// mapError translates a pgx error into the bus sentinel it means, keeping
// the original in the chain. Errors with no bus meaning come back as they
// are.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, bus.ErrNotConnected) || errors.Is(err, bus.ErrNotFound) {
		return err
	}
	if isConnectionError(err) {
		return fmt.Errorf("%w: %w", bus.ErrNotConnected, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeNotFound {
		return fmt.Errorf("%w: %s", bus.ErrNotFound, pgErr.Message)
	}
	return err
}

// isConnectionError reports a failure of the connection rather than of the
// statement: the server cannot be reached, is shutting down or starting up,
// or the connection broke.
func isConnectionError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-57P03: admin shutdown,
		// crash shutdown, cannot connect now; 53300: too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	if errors.Is(err, pgx.ErrTxClosed) {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err)
}
