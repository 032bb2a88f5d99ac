package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/wfeventbus/eventbus/bus"
)

// route is what publishing needs to know of a stream.
type route struct {
	id         int64
	name       string
	version    int64
	subjects   []string
	maxMsgSize int
}

// maxRouteCache bounds the remembered subject-to-stream answers.
const maxRouteCache = 10000

// routes caches which stream captures which subjects. The cache is only a
// guess: publishing passes the stream's version and the database refuses a
// stale one, after which the cache is reloaded. A subject no cached stream
// captures reloads it too, so a stream made by another process is found.
type routes struct {
	mu      sync.RWMutex
	streams []*route
	byID    map[int64]*route
	bySubj  map[string]*route
}

func (r *routes) init() {
	r.byID = map[int64]*route{}
	r.bySubj = map[string]*route{}
}

// find returns the cached stream capturing subject, or nil.
func (r *routes) find(subject string) *route {
	r.mu.RLock()
	rt, ok := r.bySubj[subject]
	if ok {
		r.mu.RUnlock()
		return rt
	}
	for _, s := range r.streams {
		for _, p := range s.subjects {
			if subjectMatches(p, subject) {
				rt = s
				break
			}
		}
		if rt != nil {
			break
		}
	}
	r.mu.RUnlock()
	if rt != nil {
		r.mu.Lock()
		if len(r.bySubj) >= maxRouteCache {
			clear(r.bySubj)
		}
		r.bySubj[subject] = rt
		r.mu.Unlock()
	}
	return rt
}

// byStream returns the cached route of stream id, or nil.
func (r *routes) byStream(id int64) *route {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

// reload reads every stream's route from the database.
func (b *Bus) reloadRoutes(ctx context.Context) error {
	rows, err := b.pool.Query(ctx, b.sql.routes)
	if err != nil {
		return fmt.Errorf("read streams: %w", mapError(err))
	}
	var list []*route
	for rows.Next() {
		rt := &route{}
		if err := rows.Scan(&rt.id, &rt.name, &rt.version, &rt.subjects, &rt.maxMsgSize); err != nil {
			rows.Close()
			return fmt.Errorf("read streams: %w", mapError(err))
		}
		list = append(list, rt)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read streams: %w", mapError(err))
	}
	byID := make(map[int64]*route, len(list))
	for _, rt := range list {
		byID[rt.id] = rt
	}
	b.routes.mu.Lock()
	b.routes.streams = list
	b.routes.byID = byID
	clear(b.routes.bySubj)
	b.routes.mu.Unlock()
	return nil
}

// route returns the stream capturing subject, reloading the cache once
// when none does; bus.ErrNoStream when still none does.
func (b *Bus) route(ctx context.Context, subject string) (*route, error) {
	if rt := b.routes.find(subject); rt != nil {
		return rt, nil
	}
	if err := b.reloadRoutes(ctx); err != nil {
		return nil, err
	}
	if rt := b.routes.find(subject); rt != nil {
		return rt, nil
	}
	return nil, fmt.Errorf("publish to %q: %w: declare a stream whose subjects match", subject, bus.ErrNoStream)
}
