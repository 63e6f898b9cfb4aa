package limits

import (
	"runtime/debug"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Why this file: a connection costs about 27 KB while it lasts, mostly its goroutines' stacks;
// when it closes, a persistent session keeps only its state (about 7 KB, and the 8-byte slots
// of mochi's write queue, -max-pending-writes, which mochi keeps with the session though
// nothing writes to it any more). Go keeps the freed stacks for reuse and hands them back to
// the OS only as the heap grows towards its next collection: 20,000 clients that connected
// and left held 29 KB each of resident memory for good (Mosquitto 0.7 KB). When many
// connections have gone, ReleaseHook hands that memory back at once.

// releaseAfter is how many fewer connections than the peak since the last release make a
// release worth its cost (a full collection): a steady churn of connections never triggers it,
// as the count of connected clients stays where it is.
const releaseAfter = 1000

// ReleaseHook returns freed memory to the OS, once a second at most, when the connected
// clients have fallen by releaseAfter and a quarter from their peak since the last release.
//
// It also keeps the garbage collector's soft memory limit (debug.SetMemoryLimit) above what
// the clients need: MemoryBase, when not 0, is the limit for the messages the budgets allow,
// and once a second the hook adds what the connected clients (their goroutines' stacks) and the
// kept sessions take. A fixed limit below that made the collector run without end.
type ReleaseHook struct {
	mqtt.HookBase
	server     *mqtt.Server
	MemoryBase int64
	limit      int64        // the soft memory limit set last (the loop's goroutine only)
	peak       atomic.Int64 // connected clients at most since the last release
	stop       chan struct{}
	done       chan struct{}
}

// What one connection and one kept session take, with room for the garbage they make.
const (
	memoryPerConnection = 64 << 10
	memoryPerSession    = 16 << 10
)

func NewReleaseHook(server *mqtt.Server) *ReleaseHook {
	return &ReleaseHook{server: server, stop: make(chan struct{}), done: make(chan struct{})}
}

func (h *ReleaseHook) ID() string { return "memory-release" }

func (h *ReleaseHook) Provides(b byte) bool { return b == mqtt.OnSessionEstablished }

// OnSessionEstablished notes the peak of connected clients, which a check once a second misses
// when many clients come and go within it.
func (h *ReleaseHook) OnSessionEstablished(*mqtt.Client, packets.Packet) {
	now := atomic.LoadInt64(&h.server.Info.ClientsConnected)
	for peak := h.peak.Load(); now > peak && !h.peak.CompareAndSwap(peak, now); peak = h.peak.Load() {
	}
}

func (h *ReleaseHook) Init(any) error {
	go everySecond(h.stop, h.done, func(stopping bool) {
		if !stopping {
			h.check()
		}
	})
	return nil
}

func (h *ReleaseHook) Stop() error {
	close(h.stop)
	<-h.done
	return nil
}

func (h *ReleaseHook) check() {
	now := atomic.LoadInt64(&h.server.Info.ClientsConnected)
	if h.MemoryBase > 0 {
		limit := h.MemoryBase + now*memoryPerConnection + int64(h.server.Clients.Len())*memoryPerSession
		if limit != h.limit {
			debug.SetMemoryLimit(limit)
			h.limit = limit
		}
	}
	if peak := h.peak.Load(); peak-now >= releaseAfter && now <= peak*3/4 {
		debug.FreeOSMemory()
		h.peak.Store(now)
	}
}
