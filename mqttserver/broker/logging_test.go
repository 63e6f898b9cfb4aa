package broker

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/shared"
)

// blockedWriter blocks every Write until release is closed, like a pipe nobody reads.
type blockedWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestAsyncWriterNeverBlocks(t *testing.T) {
	out := &blockedWriter{release: make(chan struct{})}
	w := newAsyncWriter(out)
	var dropped atomic.Int64
	w.onDrop = func(n int) { dropped.Add(int64(n)) }
	line := []byte(strings.Repeat("x", 1023) + "\n")
	n := 2 * maxBufferedLogs / len(line) // twice what may wait
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			_, _ = w.Write(line)
		}
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Write blocked behind a stalled output")
	}
	close(out.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	written := out.buf.Len() / len(line)
	if written == 0 || written >= n {
		t.Errorf("%d of %d lines written; want some, and the excess dropped", written, n)
	}
	if got := dropped.Load(); got == 0 || int(got)+written < n-1 {
		t.Errorf("dropped %d, written %d of %d lines", got, written, n)
	}
}

func TestAsyncWriterCloseFlushes(t *testing.T) {
	var buf logBuffer
	w := newAsyncWriter(&buf)
	_, _ = io.WriteString(w, "one\n")
	_ = w.Close()
	_, _ = io.WriteString(w, "two\n") // after Close: written straight through
	if got := buf.String(); got != "one\ntwo\n" {
		t.Errorf("output %q, want %q", got, "one\ntwo\n")
	}
}

// TestPublishFloodIsSummarised: past LinesPerSecond, published messages are counted into
// "more messages published" lines; together the lines account for every message.
func TestPublishFloodIsSummarised(t *testing.T) {
	b, logs := startBroker(t, Config{})
	floodAndCount(t, logs, connect(t, clientOpts(b.Addr(), "flood")), "flood/x", msgPublished, msgPublishedMore)
}

// floodAndCount publishes 3000 QoS 0 messages to topic (well under a second, even on a loaded
// machine), then waits until the lines msg and the counts of the summary lines add up to 3000,
// and checks that a summary came.
func floodAndCount(t *testing.T, logs *logBuffer, c paho.Client, topic, msg, summary string) {
	t.Helper()
	const total = 3000
	for i := range total {
		tok := c.Publish(topic, 0, false, "m")
		if i == total-1 {
			if err := wait(tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() (lines, summed int) {
		for _, r := range logs.records(t) {
			switch r["msg"] {
			case msg:
				lines++
			case summary:
				summed += int(r["count"].(float64))
			}
		}
		return
	}
	waitFor(t, "every message to be logged or counted", func() bool { l, s := count(); return l+s == total })
	if lines, summed := count(); summed == 0 {
		t.Errorf("%d lines and no summary line", lines)
	}
}

// TestNoPasswordInDebugLogs: at debug every packet is logged, and mochi logs a whole packet when
// a client breaks the protocol with a second CONNECT; the password must appear in neither form.
func TestNoPasswordInDebugLogs(t *testing.T) {
	b, logs := startBroker(t, Config{AuthFile: writeAuthFile(t)}) // JSON at debug
	connect(t, clientOpts(b.Addr(), "a").SetUsername("alice").SetPassword(alicePassword))
	_ = wait(paho.NewClient(clientOpts(b.Addr(), "w").SetUsername("alice").SetPassword(wrongPassword)).Connect())

	// A raw client: CONNECT with the password, then a second CONNECT (a protocol violation).
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pk := connectWithPassword("raw", "alice", alicePassword)
	if _, err := conn.Write(pk); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil || ack[3] != 0 {
		t.Fatalf("CONNACK % x, %v", ack, err)
	}
	_, _ = conn.Write(pk)
	waitFor(t, "the raw client to be disconnected", func() bool {
		return logs.has(t, msgDisconnected, map[string]any{"client": "raw"})
	})

	text := logs.String()
	if !strings.Contains(text, `"msg":"packet received"`) {
		t.Fatal("no per-packet debug lines: the test does not test what it should")
	}
	assertNoPasswords(t, text)
	for _, p := range []string{alicePassword, wrongPassword} {
		if strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(p))) {
			t.Errorf("a password appears base64-encoded in the log")
		}
	}
}

// connectWithPassword is an MQTT 3.1.1 CONNECT with a user name and password.
func connectWithPassword(id, user, pass string) []byte {
	return rawmqtt.Connect{ID: id, Clean: true, KeepAlive: 30, User: user, Password: pass}.Encode()
}

// TestConsoleSummaryLine: the text log says the coalesced count in words.
func TestConsoleSummaryLine(t *testing.T) {
	var buf bytes.Buffer
	h := &consoleHandler{console: shared.NewConsole(&buf, false), level: slog.LevelDebug}
	log := slog.New(h)
	log.Info(msgPublishedMore, "count", 12345)
	if got := buf.String(); !strings.Contains(got, "PUBLISHED") || !strings.Contains(got, "… 12345 more messages published in the last second") {
		t.Errorf("console line %q", got)
	}
}

// TestConsoleLibraryLines: mochi's own "client disconnected" keeps its level tag, not our event's.
func TestConsoleLibraryLines(t *testing.T) {
	var buf bytes.Buffer
	cfg := Config{LogFormat: "text", LogLevel: slog.LevelDebug}
	libraryLogger(cfg, &buf, false).Debug(msgDisconnected, "client", "c")
	if got := buf.String(); strings.Contains(got, "DISCONNECTED") || !strings.Contains(got, "DEBUG") {
		t.Errorf("mochi's line printed as %q", got)
	}
}
