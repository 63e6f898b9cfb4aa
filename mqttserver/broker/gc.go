package broker

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// DefaultGCPercent is -gc-percent's default. A broker's heap is mostly messages in passage:
// collecting when it has grown by 400% instead of Go's 100% cut the collector's share of a 4 KB
// message flood by about a third and raised the throughput 1.1–1.6× (docs/benchmarks.md); the
// soft memory limit (memoryLimit) keeps the ceiling where the broker's budgets put it.
const DefaultGCPercent = 400

// paceGC applies cfg.GCPercent, with the busy floor (gcFloor), and the soft memory limit, unless
// the environment sets GOGC or GOMEMLIMIT (the runtime has applied those already). It returns
// the limit it set, or 0: the limits' ReleaseHook raises it with the clients connected and the
// sessions kept; and stop, which ends the floor.
func paceGC(cfg Config, getenv func(string) string) (limit int64, stop func()) {
	stop = func() {}
	if cfg.GCPercent > 0 && getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
		stop = startGCFloor(cfg.GCPercent)
	}
	limit = memoryLimit(cfg)
	if limit == 0 || getenv("GOMEMLIMIT") != "" {
		return 0, stop
	}
	debug.SetMemoryLimit(limit)
	return limit, stop
}

// memoryLimit is what the broker's budgets let messages hold (offline queues and retained
// messages), plus 64 MiB for the rest: 256 MiB by default, with no client; the ReleaseHook adds
// what clients and sessions need. 0 (no limit) when a budget is off.
func memoryLimit(cfg Config) int64 {
	if cfg.GCPercent == 0 || cfg.MaxQueuedTotal <= 0 || cfg.MaxRetainedBytes <= 0 {
		return 0
	}
	held := int64(cfg.MaxQueuedTotal) + int64(cfg.MaxRetainedBytes)
	if held > math.MaxInt64-64<<20 {
		return 0
	}
	return held + 64<<20
}

// While collections come less than busyGCInterval apart, messages are churning through a small
// live heap (a flood of 64 KB messages leaves four payload-sized copies of garbage each, all
// mochi's): each cycle's fixed cost, and the pages the runtime returns to the system between
// cycles and takes back at the next message, cost more than the collection itself. The heap may
// then grow to busyHeapFloor before the next collection, until collections come idleGCInterval
// apart again. The soft memory limit still caps it. (64 KB floods: docs/benchmarks.md.)
const (
	busyGCInterval = 50 * time.Millisecond
	idleGCInterval = time.Second
	busyHeapFloor  = 128 << 20
)

// gcPercentFor is the GC percent after a collection since the previous one, with live bytes left
// live and roots bytes of goroutine stacks and globals to scan, and whether the busy floor is
// on. The runtime lets the heap grow by the percent of live and roots together, and a broker's
// stacks (two goroutines a connection) may outweigh its live heap (TestGCFloorBoundsTheHeapGoal).
func gcPercentFor(base int, live, roots uint64, since time.Duration, busy bool) (int, bool) {
	switch {
	case since < busyGCInterval:
		busy = true
	case since >= idleGCInterval:
		busy = false
	}
	if !busy || live == 0 || live >= busyHeapFloor {
		return base, busy
	}
	return max(base, int(min((busyHeapFloor-live)*100/(live+roots), math.MaxInt32))), busy
}

// gcFloor applies gcPercentFor after each collection, from a finalizer, and a timer ends it once
// collections stop coming (settled).
type gcFloor struct {
	base int
	// mu makes "not stopped, so set the percent" one step against stop's restoring it.
	mu      sync.Mutex
	stopped bool
	last    time.Time
	busy    bool
	percent int
	heap    []metrics.Sample // live, stacks, globals
	// settle runs idleGCInterval after the floor went up: a burst that stopped would otherwise
	// leave its garbage (up to busyHeapFloor) resident until Go's forced collection, 2 minutes.
	settle *time.Timer
}

// gcTick is collected once a cycle; its pointer keeps it out of the tiny allocator, whose
// objects' finalizers may never run.
type gcTick struct{ f *gcFloor }

// startGCFloor watches the collections until stop is called, with base the -gc-percent.
func startGCFloor(base int) (stop func()) {
	f := &gcFloor{base: base, last: time.Now(), percent: base,
		heap: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
	f.arm()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.stopped {
			f.stopped = true
			debug.SetGCPercent(base)
			if f.settle != nil {
				f.settle.Stop()
			}
		}
	}
}

func (f *gcFloor) arm() { runtime.SetFinalizer(&gcTick{f: f}, (*gcTick).collected) }

func (t *gcTick) collected() {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return // not armed again
	}
	now := time.Now()
	metrics.Read(f.heap)
	var heap [3]uint64
	for i, s := range f.heap {
		if s.Value.Kind() == metrics.KindUint64 {
			heap[i] = s.Value.Uint64()
		}
	}
	var percent int
	percent, f.busy = gcPercentFor(f.base, heap[0], heap[1]+heap[2], now.Sub(f.last), f.busy)
	f.last = now
	if percent != f.percent {
		f.percent = percent
		debug.SetGCPercent(percent)
	}
	if percent > f.base {
		if f.settle == nil {
			f.settle = time.AfterFunc(idleGCInterval, f.settled)
		} else {
			f.settle.Reset(idleGCInterval)
		}
	}
	f.arm()
}

// settled ends the floor once no collection came for idleGCInterval, and hands the burst's
// garbage back to the system.
func (f *gcFloor) settled() {
	f.mu.Lock()
	quiet := !f.stopped && f.busy && time.Since(f.last) >= idleGCInterval
	if quiet {
		f.busy, f.percent = false, f.base
		debug.SetGCPercent(f.base)
	}
	f.mu.Unlock()
	if quiet {
		debug.FreeOSMemory() // a collection (whose finalizer takes mu) and the pages returned
	}
}
