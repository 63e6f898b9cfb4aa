package broker

import (
	"math"
	"runtime/debug"
)

// DefaultGCPercent is -gc-percent's default. A broker's heap is mostly messages in passage:
// collecting when it has grown by 400% instead of Go's 100% cut the collector's share of a 4 KB
// message flood by about a third and raised the throughput 1.1–1.6× (docs/benchmarks.md); the
// soft memory limit (memoryLimit) keeps the ceiling where the broker's budgets put it.
const DefaultGCPercent = 400

// paceGC applies cfg.GCPercent and the soft memory limit, unless the environment sets GOGC or
// GOMEMLIMIT (the runtime has applied those already). It returns the limit it set, or 0: the
// limits' ReleaseHook raises it with the clients connected and the sessions kept.
func paceGC(cfg Config, getenv func(string) string) int64 {
	if cfg.GCPercent > 0 && getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	limit := memoryLimit(cfg)
	if limit == 0 || getenv("GOMEMLIMIT") != "" {
		return 0
	}
	debug.SetMemoryLimit(limit)
	return limit
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
