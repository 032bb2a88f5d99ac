package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

// EnsureStream creates the stream or updates it to cfg, and returns its
// configuration and state as the server holds them. A configuration the
// server refuses (for example a change of storage) wraps
// bus.ErrInvalidConfig.
func (b *Bus) EnsureStream(ctx context.Context, cfg bus.StreamConfig) (bus.StreamInfo, error) {
	jcfg, err := streamConfig(cfg)
	if err != nil {
		return bus.StreamInfo{}, fmt.Errorf("stream %q: %w", cfg.Name, err)
	}
	if err := b.ready(); err != nil {
		return bus.StreamInfo{}, err
	}
	s, err := retried(ctx, b, func(ctx context.Context, _ int) (jetstream.Stream, error) {
		return b.js.CreateOrUpdateStream(ctx, jcfg)
	})
	if err != nil {
		return bus.StreamInfo{}, fmt.Errorf("stream %q: %w", cfg.Name, mapEnsureError(err))
	}
	return fromStreamInfo(s.CachedInfo()), nil
}

// StreamInfo returns the stream's configuration and state.
func (b *Bus) StreamInfo(ctx context.Context, name string) (bus.StreamInfo, error) {
	if err := checkName("name", name); err != nil {
		return bus.StreamInfo{}, err
	}
	if err := b.ready(); err != nil {
		return bus.StreamInfo{}, err
	}
	s, err := retried(ctx, b, func(ctx context.Context, _ int) (jetstream.Stream, error) {
		return b.js.Stream(ctx, name)
	})
	if err != nil {
		return bus.StreamInfo{}, fmt.Errorf("stream %q: %w", name, mapError(err))
	}
	return fromStreamInfo(s.CachedInfo()), nil
}

// Streams returns every stream of the account.
func (b *Bus) Streams(ctx context.Context) ([]bus.StreamInfo, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	out, err := retried(ctx, b, func(ctx context.Context, _ int) ([]bus.StreamInfo, error) {
		lister := b.js.ListStreams(ctx)
		out := []bus.StreamInfo{}
		for si := range lister.Info() {
			out = append(out, fromStreamInfo(si))
		}
		return out, lister.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", mapError(err))
	}
	return out, nil
}

// DeleteStream deletes the stream, its messages and its consumers.
func (b *Bus) DeleteStream(ctx context.Context, name string) error {
	if err := checkName("name", name); err != nil {
		return err
	}
	if err := b.ready(); err != nil {
		return err
	}
	b.forgetConsumers(name, "")
	if _, err := retried(ctx, b, func(ctx context.Context, attempt int) (struct{}, error) {
		return struct{}{}, deleted(attempt, b.js.DeleteStream(ctx, name))
	}); err != nil {
		return fmt.Errorf("stream %q: %w", name, mapError(err))
	}
	return nil
}

// EnsureConsumer creates the durable pull consumer or updates it to cfg. A
// configuration the server refuses wraps bus.ErrInvalidConfig; a missing
// stream is bus.ErrNotFound.
func (b *Bus) EnsureConsumer(ctx context.Context, cfg bus.ConsumerConfig) (bus.ConsumerInfo, error) {
	jcfg, err := consumerConfig(cfg)
	if err != nil {
		return bus.ConsumerInfo{}, fmt.Errorf("consumer %q: %w", cfg.Durable, err)
	}
	if err := b.ready(); err != nil {
		return bus.ConsumerInfo{}, err
	}
	c, err := retried(ctx, b, func(ctx context.Context, _ int) (jetstream.Consumer, error) {
		return b.js.CreateOrUpdateConsumer(ctx, cfg.Stream, jcfg)
	})
	if err != nil {
		return bus.ConsumerInfo{}, fmt.Errorf("consumer %q on stream %q: %w", cfg.Durable, cfg.Stream, mapEnsureError(err))
	}
	b.cacheConsumer(cfg.Stream, c)
	return fromConsumerInfo(c.CachedInfo()), nil
}

// mapEnsureError maps an error of a create-or-update: besides the usual
// sentinels, a definition the server refuses wraps bus.ErrInvalidConfig.
func mapEnsureError(err error) error {
	mapped := mapError(err)
	if mapped == err && isConfigRefusal(err) {
		return fmt.Errorf("%w: %w", bus.ErrInvalidConfig, err)
	}
	return mapped
}

// ConsumerInfo returns the consumer's configuration and state.
func (b *Bus) ConsumerInfo(ctx context.Context, stream, name string) (bus.ConsumerInfo, error) {
	if err := checkName("stream_name", stream); err != nil {
		return bus.ConsumerInfo{}, err
	}
	if err := checkName("name", name); err != nil {
		return bus.ConsumerInfo{}, err
	}
	if err := b.ready(); err != nil {
		return bus.ConsumerInfo{}, err
	}
	c, err := b.lookupConsumer(ctx, stream, name)
	if err != nil {
		return bus.ConsumerInfo{}, fmt.Errorf("consumer %q on stream %q: %w", name, stream, mapError(err))
	}
	b.cacheConsumer(stream, c)
	return fromConsumerInfo(c.CachedInfo()), nil
}

// DeleteConsumer deletes the consumer.
func (b *Bus) DeleteConsumer(ctx context.Context, stream, name string) error {
	if err := checkName("stream_name", stream); err != nil {
		return err
	}
	if err := checkName("name", name); err != nil {
		return err
	}
	if err := b.ready(); err != nil {
		return err
	}
	b.forgetConsumers(stream, name)
	if _, err := retried(ctx, b, func(ctx context.Context, attempt int) (struct{}, error) {
		return struct{}{}, deleted(attempt, b.js.DeleteConsumer(ctx, stream, name))
	}); err != nil {
		return fmt.Errorf("consumer %q on stream %q: %w", name, stream, mapError(err))
	}
	return nil
}

// deleted is the outcome of a delete's attempt: a retry that finds nothing
// to delete means an earlier attempt, whose answer was lost, deleted it.
func deleted(attempt int, err error) error {
	if attempt > 1 && errors.Is(mapError(err), bus.ErrNotFound) {
		return nil
	}
	return err
}

// lookupConsumer asks the server for the consumer's handle.
func (b *Bus) lookupConsumer(ctx context.Context, stream, name string) (jetstream.Consumer, error) {
	return retried(ctx, b, func(ctx context.Context, _ int) (jetstream.Consumer, error) {
		return b.js.Consumer(ctx, stream, name)
	})
}
