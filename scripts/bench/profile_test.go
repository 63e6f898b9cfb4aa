package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"mqttdemo/bench/mochi"
	"mqttdemo/mqttserver/broker"
)

// BenchmarkBroker floods one broker in this process (1→1, 64 B) so `go test -cpuprofile` shows
// where its CPU goes: mqttserver exactly as the binary runs (broker.Run, log to /dev/null) at
// info and at warn, and bare mochi. One op is one delivered message; the client is in the
// profile too (functions of package main).
//
//	go test -run '^$' -bench 'Broker/qos0' -cpuprofile cpu.out mqttdemo/bench
//	go tool pprof -top -focus 'mochi|broker|slog' cpu.out
func BenchmarkBroker(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		for _, br := range []string{"mqttserver-info", "mqttserver-warn", "baremochi"} {
			b.Run(fmt.Sprintf("qos%d/%s", qos, br), func(b *testing.B) {
				addr := startInProcess(b, br)
				w := workload{Scn: oneToOne, QoS: qos, Size: 64}
				s, err := connectSession(context.Background(), addr, w, "prof")
				if err != nil {
					b.Fatal(err)
				}
				defer s.close()
				s.limit = uint64(b.N)
				b.ResetTimer()
				got, err := s.run(context.Background(), time.Hour)
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

func startInProcess(tb testing.TB, which string) string {
	tb.Helper()
	addr, err := freeAddr()
	if err != nil {
		tb.Fatal(err)
	}
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
