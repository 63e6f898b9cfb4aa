package mochifix

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi resends a resumed session's whole queue with DUP set (ResendInflightMessages,
// clients.go:311), also the messages it never sent: those queued while the client was away,
// or held back for its Receive Maximum. DUP says the message may have been received before
// (MQTT-3.3.1-1); Mosquitto sends those with DUP 0. So the Hook notes, per session, the ids of
// the messages queued and not sent, and clears DUP when one goes out the first time.

// unsentIDs are the packet ids of a session's messages that were never sent.
type unsentIDs struct {
	mu  sync.Mutex
	ids map[uint16]struct{}
}

// markUnsent notes that cl's message id was queued and not sent. The limits and mochi's expiry
// take messages out of an offline session without telling: when the ids noted pass twice what
// the session holds, those no longer in it are forgotten, so that a session whose messages
// keep being dropped does not collect every id.
func (h *Hook) markUnsent(cl *mqtt.Client, id uint16) {
	v, ok := h.unsent.Load(cl.ID)
	if !ok {
		v, _ = h.unsent.LoadOrStore(cl.ID, &unsentIDs{ids: map[uint16]struct{}{}})
	}
	u := v.(*unsentIDs)
	u.mu.Lock()
	u.ids[id] = struct{}{}
	if len(u.ids) > 2*cl.State.Inflight.Len()+64 {
		for id := range u.ids {
			if _, ok := cl.State.Inflight.Get(id); !ok {
				delete(u.ids, id)
			}
		}
	}
	u.mu.Unlock()
}

// firstSend reports whether the session's message id is sent for the first time, and forgets it.
func (h *Hook) firstSend(clientID string, id uint16) bool {
	v, ok := h.unsent.Load(clientID)
	if !ok {
		return false
	}
	u := v.(*unsentIDs)
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok = u.ids[id]
	delete(u.ids, id)
	return ok
}

// firstSends takes, at a resume, the ids of the queue msgs that were never sent, and forgets
// the ids of messages no longer queued (mochi and the limits take expired and dropped
// messages out without telling): such an id may name a message sent since.
func (h *Hook) firstSends(clientID string, msgs []packets.Packet) map[uint16]struct{} {
	v, ok := h.unsent.Load(clientID)
	if !ok {
		return nil
	}
	u := v.(*unsentIDs)
	u.mu.Lock()
	defer u.mu.Unlock()
	first := map[uint16]struct{}{}
	queued := make(map[uint16]struct{}, len(msgs))
	for _, m := range msgs {
		if m.FixedHeader.Type != packets.Publish {
			continue
		}
		queued[m.PacketID] = struct{}{}
		if _, ok := u.ids[m.PacketID]; ok {
			first[m.PacketID] = struct{}{}
		}
	}
	for id := range u.ids {
		if _, ok := queued[id]; !ok {
			delete(u.ids, id)
		}
	}
	return first
}

// noteQueuedAway notes a message queued to a session whose client is away (OnQosPublish).
func (h *Hook) noteQueuedAway(cl *mqtt.Client, pk packets.Packet, resends int) {
	if resends > 0 || pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup || pk.FixedHeader.Qos == 0 {
		return
	}
	if cl.Net.Inline || !cl.Closed() || cl.IsTakenOver() || !KeepsSession(cl) {
		return
	}
	h.markUnsent(cl, pk.PacketID)
}
