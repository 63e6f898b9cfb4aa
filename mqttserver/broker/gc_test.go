package broker

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
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
		roots    uint64 // stacks and globals
		since    time.Duration
		busy     bool
		want     int
		wantBusy bool
	}{
		{"collections far apart", live, 0, 2 * idleGCInterval, false, 400, false},
		{"collections close together", live, 0, busyGCInterval / 2, false, floor, true},
		{"busy, a little slower", live, 0, busyGCInterval * 2, true, floor, true},
		{"busy, then idle", live, 0, idleGCInterval, true, 400, false},
		{"a big live heap", busyHeapFloor, 0, busyGCInterval / 2, false, 400, true},
		{"the floor below -gc-percent", busyHeapFloor / 2, 0, busyGCInterval / 2, false, 400, true},
		{"stacks as big as the live heap", live, live, busyGCInterval / 2, false, (busyHeapFloor - live) * 100 / (2 * live), true},
		{"a tiny live heap: within SetGCPercent's int32", 1, 0, busyGCInterval / 2, false, math.MaxInt32, true},
	} {
		got, busy := gcPercentFor(400, c.live, c.roots, c.since, c.busy)
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
	collectUntilRaised(t, 400)
	stop()
	if got := gcPercent(); got != 400 {
		t.Errorf("after stop, the percent is %d, want 400", got)
	}
}

// TestGCFloorSettles: once collections stop coming, the floor goes back to -gc-percent by itself,
// so a burst's garbage does not stay resident until Go's forced collection (a 160 MB QoS 0
// flood to nobody left the broker at 196 MB RSS, 34 MB without the floor).
func TestGCFloorSettles(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	stop := startGCFloor(400)
	defer stop()
	collectUntilRaised(t, 400)
	deadline := time.Now().Add(10 * idleGCInterval)
	for gcPercent() != 400 {
		if time.Now().After(deadline) {
			t.Fatalf("the percent is still %d %v after the last collection", gcPercent(), 10*idleGCInterval)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// collectUntilRaised collects back to back until the floor raises the percent above base.
func collectUntilRaised(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() == base {
		if time.Now().After(deadline) {
			t.Fatal("the percent never rose while collections came close together")
		}
		runtime.GC()
	}
}

// gcPercent reads the GC percent without changing it.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestGCFloorBoundsTheHeapGoal: the busy floor lets the heap grow to busyHeapFloor, not more.
// The runtime scales GOGC from the live heap plus the goroutines' stacks and the globals, and a
// broker holds two goroutines a connection: a percent worked out from the live heap alone set
// the goal several times the floor.
func TestGCFloorBoundsTheHeapGoal(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	// 1,000 goroutines with 16 KiB of stack each in use, as idle connections hold.
	stacks := make(chan struct{})
	var ready sync.WaitGroup
	for range 1000 {
		ready.Add(1)
		go deepStack(16, &ready, stacks)
	}
	ready.Wait()
	defer close(stacks)
	stop := startGCFloor(400)
	defer stop()
	collectUntilRaised(t, 400)
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(s)
	goal, live, scan := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()+s[3].Value.Uint64()
	if base := live + (live+scan)*4; base > busyHeapFloor {
		t.Skipf("the goal at -gc-percent 400 (%d) is above the floor already", base)
	}
	if goal > busyHeapFloor+busyHeapFloor/10 {
		t.Errorf("heap goal %d MiB with the floor on (live %d MiB, stacks and globals %d MiB), want at most %d MiB",
			goal>>20, live>>20, scan>>20, busyHeapFloor>>20)
	}
}

// deepStack holds about kib KiB of stack until stop is closed.
func deepStack(kib int, ready *sync.WaitGroup, stop chan struct{}) byte {
	var frame [1000]byte
	frame[kib%len(frame)] = byte(kib)
	if kib == 0 {
		ready.Done()
		<-stop
		return frame[0]
	}
	return frame[kib%len(frame)] + deepStack(kib-1, ready, stop)
}
