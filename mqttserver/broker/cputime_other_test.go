//go:build !unix

package broker

import "time"

// cpuTime is not measured here (no getrusage): BenchmarkEventLog's cpu-ns/op reads 0.
func cpuTime() time.Duration { return 0 }
