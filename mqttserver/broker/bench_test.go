package broker

import (
	"bufio"
	"io"
	"log/slog"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/rawmqtt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkEventLog measures what logging costs the broker's throughput (one QoS 0 message
// from a publisher to a subscriber per op, over loopback TCP): without the events hook, with it
// at debug writing a line for every packet in and out (nothing capped) into a file as text and
// as JSON, and at info, where the per-message lines are capped at eventlog.LinesPerSecond and
// the rest only counted, so that it shows what the default level costs. The publisher keeps at
// most window messages ahead of the subscriber, so the broker is saturated but never drops;
// every message must arrive, and a variant that logs every message fails if it wrote less than
// a line a message. The live-page variants run without a page, with one open, and with one
// drawing the publisher's or the subscriber's packets (the packet flow, ?watch=).
//
//	go test -run '^$' -bench EventLog -benchtime 200000x mqttdemo/mqttserver/broker
func BenchmarkEventLog(b *testing.B) {
	for _, c := range []struct {
		name   string
		cfg    Config
		level  slog.Level
		viewer bool   // a live page open during the run
		watch  string // the client whose packets it draws (?watch=)
	}{
		{"no-events-hook", Config{noEvents: true, LogFormat: "json"}, slog.LevelInfo, false, ""},
		{"events-text-debug", Config{LogFormat: "text"}, slog.LevelDebug, false, ""},
		{"events-json-debug", Config{LogFormat: "json"}, slog.LevelDebug, false, ""},
		{"events-text-info-capped", Config{LogFormat: "text"}, slog.LevelInfo, false, ""},
		// With -http-listen: the live page counts every message and copies the event lines.
		{"events-text-livepage", Config{LogFormat: "text", HTTPListen: "127.0.0.1:0"}, slog.LevelInfo, false, ""},
		{"events-text-livepage-open", Config{LogFormat: "text", HTTPListen: "127.0.0.1:0"}, slog.LevelInfo, true, ""},
		// The packet flow: every PUBLISH the publisher sends, or the subscriber receives, captured.
		{"events-text-livepage-watching-publisher", Config{LogFormat: "text", HTTPListen: "127.0.0.1:0"}, slog.LevelInfo, true, "bench-pub"},
		{"events-text-livepage-watching-subscriber", Config{LogFormat: "text", HTTPListen: "127.0.0.1:0"}, slog.LevelInfo, true, "bench-sub"},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := c.cfg
			cfg.Listen, cfg.LogLevel, cfg.Limits = "127.0.0.1:0", c.level, limits.DefaultLimits()
			f, err := os.Create(filepath.Join(b.TempDir(), "broker.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			out := eventlog.NewWriter(f)
			defer out.Close()
			broker, err := New(cfg, eventlog.NewLogger(cfg.logSettings(), out, noEnv), eventlog.LibraryLogger(cfg.logSettings(), out, false))
			if err != nil {
				b.Fatal(err)
			}
			if err := broker.Start(); err != nil {
				b.Fatal(err)
			}
			defer broker.Close()
			if c.viewer {
				resp, err := http.Get("http://" + broker.endpointAddr(b, "http") + "/events?watch=" + c.watch)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				go func() { _, _ = io.Copy(io.Discard, resp.Body) }() // ends when the broker closes
			}
			benchFlow(b, broker.Addr())
			b.StopTimer()
			broker.Close()
			out.Close()
			info, err := f.Stat()
			if err != nil {
				b.Fatal(err)
			}
			perOp := float64(info.Size()) / float64(b.N)
			b.ReportMetric(perOp, "logB/op")
			// A "packet in" and a "packet out" line, each longer than 40 bytes, for every message.
			if !cfg.noEvents && c.level == slog.LevelDebug && perOp < 2*40 {
				b.Fatalf("%.0f log bytes a message: the lines of every packet were not written, logging was not measured", perOp)
			}
		})
	}
}

// benchFlow sends b.N messages from a raw MQTT publisher to a raw subscriber.
func benchFlow(b *testing.B, addr string) {
	const window = 1000
	sub := rawConnect(b, addr, "bench-sub", true)
	defer sub.Close()
	if _, err := sub.Write(rawmqtt.Subscribe(1, "bench/#", 0)); err != nil {
		b.Fatal(err)
	}
	subR := rawmqtt.NewReader(bufio.NewReaderSize(sub, 64<<10))
	if fh, _, err := subR.Next(); err != nil || fh.Type != packets.Suback {
		b.Fatalf("SUBACK: type %d, %v", fh.Type, err)
	}
	progress := make(chan int, 1)
	subErr := make(chan error, 1)
	go func() {
		got := 0
		for got < b.N {
			fh, _, err := subR.Next()
			if err != nil {
				subErr <- err
				return
			}
			if fh.Type == packets.Publish {
				got++
				if got%100 == 0 || got == b.N {
					select {
					case <-progress:
					default:
					}
					progress <- got
				}
			}
		}
	}()

	pub := rawConnect(b, addr, "bench-pub", true)
	defer pub.Close()
	w := bufio.NewWriterSize(pub, 64<<10)
	publish := rawmqtt.Publish("bench/msg", 0, 0, make([]byte, 64))

	b.ResetTimer()
	cpu0 := cpuTime()
	received := 0
	deadline := time.Now().Add(time.Minute)
	for sent := 0; sent < b.N; sent++ {
		for sent-received >= window {
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			select {
			case received = <-progress:
			case err := <-subErr:
				b.Fatalf("subscriber: %v", err)
			case <-time.After(time.Until(deadline)):
				b.Fatalf("stalled: %d sent, %d received", sent, received)
			}
		}
		if _, err := w.Write(publish); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	for received < b.N {
		select {
		case received = <-progress:
		case err := <-subErr:
			b.Fatalf("subscriber: %v", err)
		case <-time.After(time.Until(deadline)):
			b.Fatalf("messages lost: %d sent, %d received", b.N, received)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// CPU time of the process (broker, publisher and subscriber) per message: steadier than
	// wall time on a machine shared with other work.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
