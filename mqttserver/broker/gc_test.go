package broker

import (
	"runtime/debug"
	"testing"

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
	if base := paceGC(cfg, func(k string) string { return env[k] }); base != 0 {
		t.Errorf("with GOMEMLIMIT set, paceGC set a limit of %d", base)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the GC percent became %d", got)
	}
	base := paceGC(cfg, func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("without GOGC, the GC percent is %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != memoryLimit(cfg) || base != got {
		t.Errorf("memory limit %d, want %d", got, memoryLimit(cfg))
	}
}
