package eventlog

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// LinesPerSecond caps each kind of per-message line ("message published", "message dropped",
// "publish denied"); past it, a flood is summed up in one line a second, so logging stays
// cheap at any message rate.
const LinesPerSecond = 100

// LineCap lets LinesPerSecond lines of one kind through each second and, once a second, logs
// how many it held back: summary, with the attribute count and attrs.
type LineCap struct {
	n, more atomic.Int64 // lines in this second; lines held back in it
	log     *slog.Logger
	level   slog.Level
	summary string
	attrs   []slog.Attr
	stop    chan struct{}
	done    chan struct{}
}

func NewLineCap(log *slog.Logger, level slog.Level, summary string, attrs ...slog.Attr) *LineCap {
	return &LineCap{log: log, level: level, summary: summary, attrs: attrs,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Allow tells whether to log this line; if not, it is counted for the summary.
func (c *LineCap) Allow() bool {
	if c.n.Add(1) <= LinesPerSecond {
		return true
	}
	c.more.Add(1)
	return false
}

// Start begins the once-a-second summary; Close writes the last one and ends it.
func (c *LineCap) Start() { go c.loop() }

func (c *LineCap) Close() {
	close(c.stop)
	<-c.done
}

func (c *LineCap) loop() {
	defer close(c.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		stopping := false
		select {
		case <-tick.C:
		case <-c.stop:
			stopping = true
		}
		c.n.Store(0)
		if n := c.more.Swap(0); n > 0 {
			c.log.LogAttrs(context.Background(), c.level, c.summary, append([]slog.Attr{slog.Int64("count", n)}, c.attrs...)...)
		}
		if stopping {
			return
		}
	}
}
