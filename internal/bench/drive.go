package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// measurement is what one scenario measured.
type measurement struct {
	Messages int64
	Elapsed  time.Duration
	Latency  Percentiles
	// CPU is the CPU time host and plugin used while the messages moved
	// (see cpuTime); 0 when not measured.
	CPU time.Duration
}

// cpuPerMessage is CPU divided by Messages.
func (m measurement) cpuPerMessage() time.Duration {
	if m.Messages <= 0 {
		return 0
	}
	return m.CPU / time.Duration(m.Messages)
}

// rate is messages per second.
func (m measurement) rate() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Messages) / m.Elapsed.Seconds()
}

// op performs one operation and reports how many messages it moved.
type op func(ctx context.Context) (messages int, err error)

// drive runs op in a loop on workers goroutines: unmeasured for warmup,
// then for measure. Only operations that complete inside the measured
// window count, each with its latency; the window is closed when measure
// ends, or, when no operation has completed in it by then, as the first one
// does; operations still running then are waited for but not counted.
// cpu, read as the window opens and closes, gives the CPU time spent in it.
// The first error ends the run.
func drive(ctx context.Context, workers int, warmup, measure time.Duration, cpu func() time.Duration, do op) (measurement, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		done      atomic.Bool
		startNano atomic.Int64
		endNano   atomic.Int64
		total     atomic.Int64
		lat       samples
		errOnce   sync.Once
		firstErr  error
		wg        sync.WaitGroup
		// counted closes when the first operation inside the window
		// completes.
		counted     = make(chan struct{})
		countedOnce sync.Once
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	for range workers {
		wg.Go(func() {
			mine := lat.shard(4096)
			var n int64
			defer func() {
				total.Add(n)
				lat.keep(mine)
			}()
			for !done.Load() && ctx.Err() == nil {
				t0 := time.Now()
				moved, err := do(ctx)
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				t1 := time.Now()
				if s := startNano.Load(); s != 0 && t0.UnixNano() >= s {
					if e := endNano.Load(); e == 0 || t1.UnixNano() <= e {
						n += int64(moved)
						mine = append(mine, t1.Sub(t0))
						countedOnce.Do(func() { close(counted) })
					}
				}
			}
		})
	}
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	ok := sleep(warmup)
	cpu0 := cpu()
	start := time.Now()
	startNano.Store(start.UnixNano())
	if ok && sleep(measure) {
		// A window in which no operation completed, because one takes
		// longer than the window on a loaded machine, stays open until one
		// does: a rate needs at least one.
		select {
		case <-counted:
		case <-ctx.Done():
		}
	}
	end := time.Now()
	endNano.Store(end.UnixNano())
	cpu1 := cpu()
	done.Store(true)
	wg.Wait()
	if firstErr != nil {
		return measurement{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return measurement{}, err
	}
	m := measurement{Messages: total.Load(), Elapsed: end.Sub(start), Latency: lat.percentiles(), CPU: cpu1 - cpu0}
	if m.Messages == 0 {
		return m, fmt.Errorf("nothing completed in %s", measure)
	}
	return m, nil
}
