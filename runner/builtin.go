package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
)

// parseLevel reads a step.log level; "" is info. It returns nil for a
// name that is no level.
func parseLevel(s string) *slog.Level {
	var l slog.Level
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		l = slog.LevelDebug
	case "", "info":
		l = slog.LevelInfo
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil
	}
	return &l
}

// runBuiltin runs a built-in step with its rendered config.
func (r *Runner) runBuiltin(ctx context.Context, pipeline string, s *Step, cfg map[string]any) (StepResult, error) {
	switch s.Type {
	case StepLog:
		lvl := parseLevel(formatValue(cfg["level"]))
		if lvl == nil {
			return StepResult{}, fmt.Errorf("%w: step.log level %q is not debug, info, warn or error", ErrInvalidValue, formatValue(cfg["level"]))
		}
		r.log.Log(ctx, *lvl, formatValue(cfg["message"]), "pipeline", pipeline, "step", s.Name)
		return StepResult{Output: map[string]any{}}, nil
	case StepSet:
		values, _ := cfg["values"].(map[string]any)
		return StepResult{Output: maps.Clone(values)}, nil
	case StepFail:
		msg := formatValue(cfg["message"])
		if msg == "" {
			msg = "step.fail ran"
		}
		return StepResult{}, errors.New(msg)
	}
	return StepResult{}, fmt.Errorf("%w: %q is no built-in step", ErrUnknownType, s.Type)
}
