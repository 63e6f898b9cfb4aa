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
	// aside: messages past the client's Receive Maximum, out of the session while mochi takes
	// it to resend (receivemax.go).
	asideMu sync.Mutex
	aside   []packets.Packet
}

func newStartup() *startup { return &startup{open: make(chan struct{}), taken: make(chan struct{})} }

func (g *startup) sessionTaken() { g.once.Do(func() { close(g.taken) }) }

// OnPacketEncode, at a resumed session's CONNACK, puts its queue in order (renumber) and
// readies it for mochi's resend (resume). It holds a new message (not DUP: the resent ones
// are) to a connection that is not established yet: only the connection's write loop sends
// those; mochi's own CONNACK and resend go out from the connection's goroutine, which lets them
// through when it is done. Then it keeps what goes out within the client's Maximum Packet Size
// and Receive Maximum; a message that is not to go out now is spoilt (Reserved), so that mochi
// cannot encode it and it stays in the session.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if serverDisconnectsOnlyV5(cl, &pk) {
		pk.FixedHeader.Type = packets.Reserved // mochi cannot encode it, and closes the connection
		return pk
	}
	if pk.FixedHeader.Type == packets.Connack {
		identifierRejected(cl, &pk)
		unsupportedLevel(&pk)
		if noCodeIn311(&pk); pk.FixedHeader.Type != packets.Connack {
			return pk
		}
		if h.nStarting.Load() > 0 {
			if v, ok := h.startups.Load(cl); ok && v.(*startup).renumber.CompareAndSwap(true, false) {
				renumber(cl.State.Inflight)
				h.resume(cl, v.(*startup))
			}
		}
		return pk
	}
	if pk.FixedHeader.Type != packets.Publish {
		return pk
	}
	if h.nStarting.Load() > 0 {
		if v, ok := h.startups.Load(cl); ok {
			if !pk.FixedHeader.Dup {
				h.wait(cl, v.(*startup).open, 0)
			} else if h.firstSend(cl.ID, pk.PacketID) {
				pk.FixedHeader.Dup = false // resent, but never sent before (dupfirst.go)
			}
		}
	}
	if tooLarge(cl, &pk) {
		h.discard(cl, &pk)
		pk.FixedHeader.Type = packets.Reserved
		return pk
	}
	if pk.FixedHeader.Qos > 0 {
		if f := h.flowOf(cl); f != nil && !f.admit(pk.PacketID) {
			f.compact(cl)
			h.markUnsent(cl, pk.PacketID)
			pk.FixedHeader.Type = packets.Reserved // it waits for a slot (release)
		}
	}
	return pk
}

// resume readies a resumed session's queue, at the CONNACK, for mochi's resend of all of it:
// it discards the messages too large for the client, and sets aside those past its Receive
// Maximum until the resend has begun.
func (h *Hook) resume(cl *mqtt.Client, g *startup) {
	msgs := cl.State.Inflight.GetAll(false) // in the order mochi resends them
	kept := msgs[:0]
	for _, m := range msgs {
		if tooLarge(cl, &m) {
			h.discard(cl, &m)
			continue
		}
		kept = append(kept, m)
	}
	h.firstSends(cl.ID, kept)
	f := h.flowOf(cl)
	if f == nil {
		return
	}
	aside := f.resume(kept)
	for _, m := range aside {
		cl.State.Inflight.Delete(m.PacketID)
	}
	g.asideMu.Lock()
	g.aside = aside
	g.asideMu.Unlock()
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
			// Past the wait, the messages set aside go back first (more than the client's Receive
			// Maximum may then go out, rather than one lost under a reused id).
			h.putBack(cl, g)
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
	h.startFlow(cl)
	g := newStartup()
	h.startups.Store(cl, g)
	h.nStarting.Add(1)
	old, resumes := Resumes(h.server, cl, pk)
	if !resumes {
		h.unsent.Delete(cl.ID)
		g.sessionTaken() // no session to resend
		return
	}
	if v, ok := h.startups.Load(old); ok {
		h.putBack(old, v.(*startup)) // mochi is about to copy old's session
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
	h.startups.Range(func(k, v any) bool {
		if cl := k.(*mqtt.Client); cl.Closed() {
			h.putBack(cl, v.(*startup))
			h.endFlow(cl)
			h.open(cl)
			if v, ok := h.newConns.LoadAndDelete(cl); ok {
				h.handOver(cl, v.(*queued)) // into its session, to be resent when the client is back
			}
		}
		return true
	})
}
