package eventlog

import (
	"io"
	"sync"
	"time"
)

// Output settings: how often buffered log lines are written, how much is written at once, and
// how much may wait before lines are dropped (only when the output cannot keep up at all).
const (
	FlushInterval   = 50 * time.Millisecond
	flushSize       = 64 << 10
	maxBufferedLogs = 8 << 20
)

// Writer takes log lines into memory and writes them from its own goroutine every
// FlushInterval (sooner past flushSize bytes), so a client goroutine logging an event never
// waits for a terminal, a pipe or a disk. When the output stalls and maxBufferedLogs bytes
// wait, new lines are dropped and counted: the broker keeps serving instead of blocking.
type Writer struct {
	out io.Writer

	mu      sync.Mutex
	buf     []byte // waiting to be written
	spare   []byte // the previous buffer, reused
	dropped int
	closed  bool

	closeOnce sync.Once
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	// onDrop reports lines dropped since the last flush (through the writer itself).
	onDrop func(n int)
}

func NewWriter(out io.Writer) *Writer {
	w := &Writer{out: out, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// Write copies p (one log line) into the buffer; it never blocks on the output.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed { // after Close: write through, for the last lines of the program
		defer w.mu.Unlock()
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > maxBufferedLogs {
		w.dropped++
		w.mu.Unlock()
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= flushSize
	w.mu.Unlock()
	if full {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (w *Writer) loop() {
	defer close(w.done)
	tick := time.NewTicker(FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-w.wake:
		case <-w.stop:
			w.flush()
			return
		}
		w.flush()
	}
}

func (w *Writer) flush() {
	w.mu.Lock()
	buf, dropped := w.buf, w.dropped
	w.buf, w.spare, w.dropped = w.spare[:0], nil, 0
	w.mu.Unlock()
	if len(buf) > 0 {
		_, _ = w.out.Write(buf) // a log that cannot be written has nowhere to report it
	}
	w.mu.Lock()
	if cap(buf) <= flushSize*4 { // keep a normal-sized buffer, let a flood's go
		w.spare = buf[:0]
	}
	w.mu.Unlock()
	if dropped > 0 && w.onDrop != nil {
		w.onDrop(dropped)
	}
}

// Close writes what is buffered and makes later writes go straight to the output.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
		w.mu.Lock()
		defer w.mu.Unlock()
		w.closed = true
		if len(w.buf) > 0 { // written between the last flush and now
			_, _ = w.out.Write(w.buf)
			w.buf = nil
		}
	})
	return nil
}
