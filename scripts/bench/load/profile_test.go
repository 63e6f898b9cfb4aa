package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"mqttdemo/bench/mochi"
	"mqttdemo/mqttserver/broker"
)

// BenchmarkBroker floods one broker in this process (1→1, 64 B and 4 KB) so `go test -cpuprofile` shows
// where its CPU goes: mqttserver exactly as the binary runs (broker.Run, log to /dev/null) at
// info and at warn, and bare mochi. One op is one delivered message; the client is in the
// profile too (functions of package load).
//
//	go test -run '^$' -bench 'Broker/64B/qos0' -cpuprofile cpu.out mqttdemo/bench/load
//	go tool pprof -top -focus 'mochi|broker|slog' cpu.out
func BenchmarkBroker(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, qos := range []byte{0, 1} {
			for _, br := range []string{"mqttserver-info", "mqttserver-warn", "baremochi"} {
				b.Run(fmt.Sprintf("%s/qos%d/%s", sizeName(size), qos, br), func(b *testing.B) {
					addr := startInProcess(b, br)
					w := Workload{Scn: OneToOne, QoS: qos, Size: size}
					s, err := Connect(context.Background(), addr, w, "prof")
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					s.limit = uint64(b.N)
					b.ResetTimer()
					got, err := s.Run(context.Background(), time.Hour)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(got.Throughput(), "msg/s")
					if lost := got.Expected - got.Delivered; lost > 0 {
						b.ReportMetric(float64(lost), "lost")
					}
				})
			}
		}
	}
}

func startInProcess(tb testing.TB, which string) string {
	tb.Helper()
	// A free port for the broker: broker.Run takes an address, not a listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	switch which {
	case "baremochi":
		server, err := mochi.Start(addr, mochi.Tuning{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { server.Close() })
	default:
		level := map[string]string{"mqttserver-info": "info", "mqttserver-warn": "warn"}[which]
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			tb.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- broker.Run(ctx, []string{"-listen", addr, "-log-level", level}, func(string) string { return "" }, nil, devnull, devnull)
		}()
		tb.Cleanup(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				tb.Error(err)
			}
			devnull.Close()
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s does not listen on %s", which, addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkIdleConnMemory splits the memory of idle connections (held by a broker in this
// process) into goroutine stacks and heap, per connection, which RSS alone cannot tell:
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 1x mqttdemo/bench/load
//
// The idle clients (this process too) hold no goroutine and about 0.5 KB of heap each.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	for _, br := range []string{"mqttserver-info", "mqttserver-warn", "baremochi"} {
		b.Run(br, func(b *testing.B) {
			addr := startInProcess(b, br)
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				conns, err := OpenIdle(context.Background(), addr, n, 0)
				defer conns.Close()
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(time.Second) // let the broker's goroutines reach their idle state
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stackB/conn")
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heapB/conn")
				b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/conn")
			}
		})
	}
}
