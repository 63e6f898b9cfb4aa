package eventlog

import (
	"bytes"
	"io"
	"log/slog"
	"mqttdemo/shared/console"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	w := NewWriter(out)
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
	case <-time.After(10 * time.Second):
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
	var buf bytes.Buffer // Close waits for the writer goroutine
	w := NewWriter(&buf)
	_, _ = io.WriteString(w, "one\n")
	_ = w.Close()
	_, _ = io.WriteString(w, "two\n") // after Close: written straight through
	if got := buf.String(); got != "one\ntwo\n" {
		t.Errorf("output %q, want %q", got, "one\ntwo\n")
	}
}

// TestConsoleSummaryLine: the text log says the coalesced count in words.
func TestConsoleSummaryLine(t *testing.T) {
	var buf bytes.Buffer
	h := &consoleHandler{console: console.New(&buf, false), level: slog.LevelDebug}
	log := slog.New(h)
	log.Info(MsgPublishedMore, "count", 12345)
	if got := buf.String(); !strings.Contains(got, "PUBLISHED") || !strings.Contains(got, "… 12345 more messages published in the last second") {
		t.Errorf("console line %q", got)
	}
}

// TestConsoleLibraryLines: mochi's own "client disconnected" keeps its level tag, not our event's.
func TestConsoleLibraryLines(t *testing.T) {
	var buf bytes.Buffer
	LibraryLogger(Settings{Format: "text", Level: slog.LevelDebug}, &buf, false).Debug(MsgDisconnected, "client", "c")
	if got := buf.String(); strings.Contains(got, "DISCONNECTED") || !strings.Contains(got, "DEBUG") {
		t.Errorf("mochi's line printed as %q", got)
	}
}
