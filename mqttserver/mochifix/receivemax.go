package mochifix

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// flow keeps a connection within the client's Receive Maximum (MQTT-4.9.0-2): at most max
// QoS 1 and 2 messages sent and not yet acknowledged (PUBACK, PUBCOMP, or a PUBREC with an
// error); the others wait in the session, in the order queued, and go out as acknowledgements
// free slots. mochi's own send quota is switched off (OnSessionEstablish): it took a message
// sent from a freed slot out of the session, so its acknowledgement freed nothing and delivery
// stopped after twice the maximum, and it sent the waiting messages out of order.
type flow struct {
	mu        sync.Mutex
	max       int
	inflight  map[uint16]struct{} // sent, not acknowledged
	held      []uint16            // in the session, not sent; oldest first
	releasing bool                // the read goroutine is writing a held message
}

// startFlow switches mochi's send quota off for cl and takes over its Receive Maximum. mochi
// sets the quota from Props.ReceiveMaximum again when it copies a resumed session
// (inheritClientSession, server.go:577), so that is zeroed too; nothing else reads it.
func (h *Hook) startFlow(cl *mqtt.Client) {
	receiveMax := int(cl.Properties.Props.ReceiveMaximum)
	if cl.Net.Inline || receiveMax == 0 {
		return // absent: 65,535, more than a session holds
	}
	cl.Properties.Props.ReceiveMaximum = 0
	cl.State.Inflight.ResetSendQuota(0)
	if _, loaded := h.flows.Swap(cl, &flow{max: receiveMax, inflight: map[uint16]struct{}{}}); !loaded {
		h.nFlow.Add(1)
	}
}

func (h *Hook) flowOf(cl *mqtt.Client) *flow {
	if h.nFlow.Load() == 0 {
		return nil
	}
	if v, ok := h.flows.Load(cl); ok {
		return v.(*flow)
	}
	return nil
}

func (h *Hook) endFlow(cl *mqtt.Client) {
	if h.nFlow.Load() == 0 {
		return
	}
	if _, ok := h.flows.LoadAndDelete(cl); ok {
		h.nFlow.Add(-1)
	}
}

// admit decides, as a new QoS 1 or 2 PUBLISH to the client is encoded, whether it goes out now
// (sent on, or resent at the CONNACK: already counted) or waits for a slot.
func (f *flow) admit(id uint16) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.inflight[id]; ok {
		return true
	}
	if len(f.held) == 0 && !f.releasing && len(f.inflight) < f.max {
		f.inflight[id] = struct{}{}
		return true
	}
	f.held = append(f.held, id)
	return false
}

// compact drops from held the ids no longer queued as a PUBLISH in the session (expired, dropped)
// and those held twice, once held has grown past twice what the session holds: a client that
// acknowledges nothing while its messages expire would otherwise collect ids without end, and
// the same id held twice would go out twice.
func (f *flow) compact(cl *mqtt.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.held) <= 2*cl.State.Inflight.Len()+2*f.max {
		return
	}
	seen := make(map[uint16]struct{}, len(f.held))
	kept := f.held[:0]
	for _, id := range f.held {
		if _, dup := seen[id]; dup {
			continue
		}
		if pk, ok := cl.State.Inflight.Get(id); ok && pk.FixedHeader.Type == packets.Publish {
			seen[id] = struct{}{}
			kept = append(kept, id)
		}
	}
	f.held = kept
}

// acked frees the slot of the client's acknowledgement pk, if it frees one.
func (f *flow) acked(pk packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubcomp:
	case packets.Pubrec:
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			return // the message stays in flight until PUBCOMP
		}
	default:
		return
	}
	f.mu.Lock()
	delete(f.inflight, pk.PacketID)
	f.mu.Unlock()
}

// release sends the held messages that free slots allow, oldest first, from the client's read
// goroutine (after an acknowledgement). A new message meanwhile waits behind them (admit).
func (h *Hook) release(cl *mqtt.Client, f *flow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.releasing && len(f.held) > 0 && len(f.inflight) < f.max {
		id := f.held[0]
		f.held = f.held[1:]
		if _, sent := f.inflight[id]; sent {
			continue // held twice (an id reused after its message expired): sent already
		}
		pk, ok := cl.State.Inflight.Get(id)
		if !ok || pk.FixedHeader.Type != packets.Publish {
			continue // expired or dropped while it waited
		}
		if tooLarge(cl, &pk) {
			h.discard(cl, &pk)
			continue
		}
		f.inflight[id] = struct{}{}
		f.releasing = true
		f.mu.Unlock()
		pk.FixedHeader.Dup = !h.firstSend(cl.ID, id)
		err := cl.WritePacket(pk)
		f.mu.Lock()
		f.releasing = false
		if err != nil {
			return // the connection ends; the session keeps the message
		}
	}
	if len(f.held) == 0 {
		f.held = nil // let a long queue's array go
	}
}

// resume splits a resumed session's queue at the CONNACK, before mochi resends it whole
// (ResendInflightMessages, clients.go:304): the PUBRELs and the first messages up to the
// Receive Maximum are resent, the rest wait (held) and are taken out of the session until the
// resend has begun (putBack). msgs is the queue in the order mochi resends it.
func (f *flow) resume(msgs []packets.Packet) (aside []packets.Packet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		if m.FixedHeader.Type == packets.Pubrel {
			f.inflight[m.PacketID] = struct{}{}
		}
	}
	for _, m := range msgs {
		if m.FixedHeader.Type != packets.Publish {
			continue
		}
		if len(f.inflight) < f.max {
			f.inflight[m.PacketID] = struct{}{}
			continue
		}
		f.held = append(f.held, m.PacketID)
		aside = append(aside, m)
	}
	return aside
}

// putBack returns the messages set aside at the CONNACK to the session (once).
func (h *Hook) putBack(cl *mqtt.Client, g *startup) {
	g.asideMu.Lock()
	aside := g.aside
	g.aside = nil
	g.asideMu.Unlock()
	for _, m := range aside {
		if _, ok := cl.State.Inflight.Get(m.PacketID); !ok {
			cl.State.Inflight.Set(m)
		}
	}
}

// onAck frees the slot of a client's acknowledgement and sends what waited for it.
func (h *Hook) onAck(cl *mqtt.Client, pk packets.Packet) {
	if f := h.flowOf(cl); f != nil {
		f.acked(pk)
		h.release(cl, f)
	}
}
