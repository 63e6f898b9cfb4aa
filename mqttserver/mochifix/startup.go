package mochifix

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// startup holds new messages to a connection being established.
type startup struct {
	open chan struct{} // closed once the connection is established
	// taken is closed once mochi has taken the session's messages to resend them (or
	// established the connection): a message queued before would be sent twice.
	taken chan struct{}
	once  sync.Once
	// renumber: the connection takes a session over; its queue is put in order at its CONNACK.
	renumber atomic.Bool
}

func newStartup() *startup { return &startup{open: make(chan struct{}), taken: make(chan struct{})} }

func (g *startup) sessionTaken() { g.once.Do(func() { close(g.taken) }) }

// OnPacketEncode puts a resumed session's queue in order at its CONNACK (renumber), and holds a
// new message (not DUP: the resent ones are) to a connection that is not established yet. Only the connection's write loop sends those; mochi's own CONNACK and resend
// go out from the connection's goroutine, which lets them through when it is done.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if h.nStarting.Load() > 0 && pk.FixedHeader.Type == packets.Connack {
		if v, ok := h.startups.Load(cl); ok && v.(*startup).renumber.CompareAndSwap(true, false) {
			renumber(cl.State.Inflight)
		}
		return pk
	}
	if h.nStarting.Load() == 0 || pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup {
		return pk
	}
	v, ok := h.startups.Load(cl)
	if !ok {
		return pk
	}
	h.wait(cl, v.(*startup).open, 0)
	return pk
}

// OnACLCheck, asked before mochi queues a message to cl (read), makes the publisher wait until
// mochi has taken cl's session to resend it: queued in between, after mochi registered the
// connection, the message would be in both the session and the write queue and go out twice,
// the second time after the DUP resend, and a QoS 2 subscriber that had completed the first
// would take the second, under the same id, as a new message. It decides nothing: the auth
// hooks do.
func (h *Hook) OnACLCheck(cl *mqtt.Client, _ string, write bool) bool {
	if write || h.nStarting.Load() == 0 {
		return false
	}
	if v, ok := h.startups.Load(cl); ok {
		g := v.(*startup)
		if !h.wait(cl, g.taken, acceptWait) {
			g.sessionTaken() // the next publisher does not wait again
		}
	}
	return false
}

// wait waits until ready is closed, cl closes (set up failed before OnSessionEstablished), or
// limit passes (0: no limit); it reports false for the limit.
func (h *Hook) wait(cl *mqtt.Client, ready <-chan struct{}, limit time.Duration) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ready:
			return true
		case <-tick.C:
			if cl.Closed() {
				h.open(cl)
				return true
			}
			if limit > 0 && time.Since(start) > limit {
				return false
			}
		}
	}
}

// starting reports whether cl is not established yet.
func (h *Hook) starting(cl *mqtt.Client) bool {
	if h.nStarting.Load() == 0 {
		return false
	}
	_, ok := h.startups.Load(cl)
	return ok
}

// open lets new messages through to cl.
func (h *Hook) open(cl *mqtt.Client) {
	if h.nStarting.Load() == 0 {
		return
	}
	if v, ok := h.startups.LoadAndDelete(cl); ok {
		h.nStarting.Add(-1)
		g := v.(*startup)
		g.sessionTaken()
		close(g.open)
	}
}

// OnSessionEstablish runs before mochi takes over the old session: it notes the take-over, and
// sets up the startup that holds new messages until the connection is established.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.sweep()
	g := newStartup()
	h.startups.Store(cl, g)
	h.nStarting.Add(1)
	if pk.Connect.Clean {
		g.sessionTaken() // no session to resend
		return
	}
	old, ok := h.server.Clients.Get(pk.Connect.ClientIdentifier)
	if !ok || old == cl {
		g.sessionTaken()
		return
	}
	q := &queued{old: old}
	if v, ok := h.newConns.LoadAndDelete(old); ok { // old never got to OnSessionEstablished
		q.prev = v.(*queued)
	}
	if _, replaced := h.takeovers.Swap(old, q); !replaced {
		h.nTakeovers.Add(1)
	}
	h.newConns.Store(cl, q)
	g.renumber.Store(true)
}

// sweep hands over the take-overs and ends the startups of connections that closed before they were
// established (a failed CONNACK write, for one): mochi calls neither OnSessionEstablished nor
// OnDisconnect for them.
func (h *Hook) sweep() {
	if h.nStarting.Load() == 0 {
		return
	}
	h.startups.Range(func(k, _ any) bool {
		if cl := k.(*mqtt.Client); cl.Closed() {
			h.open(cl)
			if v, ok := h.newConns.LoadAndDelete(cl); ok {
				h.handOver(cl, v.(*queued)) // into its session, to be resent when the client is back
			}
		}
		return true
	})
}
