package broker

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"mqttdemo/mqttserver/limits"
)

func TestMemoryLimit(t *testing.T) {
	lim := limits.DefaultLimits()
	for _, c := range []struct {
		name             string
		gc, total, bytes int
		want             int64
	}{
		{"defaults", DefaultGCPercent, lim.MaxQueuedTotal, lim.MaxRetainedBytes, int64(lim.MaxQueuedTotal+lim.MaxRetainedBytes) + 64<<20},
		{"gc left to Go", 0, lim.MaxQueuedTotal, lim.MaxRetainedBytes, 0},
		{"retained unbounded", DefaultGCPercent, lim.MaxQueuedTotal, 0, 0},
	} {
		cfg := Config{GCPercent: c.gc}
		cfg.MaxQueuedTotal, cfg.MaxRetainedBytes = c.total, c.bytes
		if got := memoryLimit(cfg); got != c.want {
			t.Errorf("%s: memoryLimit = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestPaceGCLeavesTheEnvironment: GOGC and GOMEMLIMIT, when set, win over the flag.
func TestPaceGCLeavesTheEnvironment(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	cfg := Config{GCPercent: 400}
	cfg.MaxQueuedTotal, cfg.MaxRetainedBytes = 1<<20, 1<<20
	env := map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}
	base, stop := paceGC(cfg, func(k string) string { return env[k] })
	stop()
	if base != 0 {
		t.Errorf("with GOMEMLIMIT set, paceGC set a limit of %d", base)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the GC percent became %d", got)
	}
	base, stop = paceGC(cfg, func(string) string { return "" })
	stop()
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("without GOGC, the GC percent is %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != memoryLimit(cfg) || base != got {
		t.Errorf("memory limit %d, want %d", got, memoryLimit(cfg))
	}
}

func TestGCPercentFor(t *testing.T) {
	const live = 8 << 20
	floor := (busyHeapFloor - live) * 100 / live
	for _, c := range []struct {
		name     string
		live     uint64
		since    time.Duration
		busy     bool
		want     int
		wantBusy bool
	}{
		{"collections far apart", live, 2 * idleGCInterval, false, 400, false},
		{"collections close together", live, busyGCInterval / 2, false, floor, true},
		{"busy, a little slower", live, busyGCInterval * 2, true, floor, true},
		{"busy, then idle", live, idleGCInterval, true, 400, false},
		{"a big live heap", busyHeapFloor, busyGCInterval / 2, false, 400, true},
		{"the floor below -gc-percent", busyHeapFloor / 2, busyGCInterval / 2, false, 400, true},
	} {
		got, busy := gcPercentFor(400, c.live, c.since, c.busy)
		if got != c.want || busy != c.wantBusy {
			t.Errorf("%s: gcPercentFor = %d, %v; want %d, %v", c.name, got, busy, c.want, c.wantBusy)
		}
	}
}

// TestGCFloorFollowsCollections: collections close together raise the percent, stop restores
// -gc-percent.
func TestGCFloorFollowsCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	stop := startGCFloor(400)
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() == 400 {
		if time.Now().After(deadline) {
			t.Fatal("the percent never rose while collections came close together")
		}
		runtime.GC()
	}
	stop()
	if got := gcPercent(); got != 400 {
		t.Errorf("after stop, the percent is %d, want 400", got)
	}
}

// gcPercent reads the GC percent without changing it.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
