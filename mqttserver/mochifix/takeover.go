package mochifix

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// queued are the messages queued to a session while it is being taken over.
type queued struct {
	old  *mqtt.Client // the session being taken over
	prev *queued      // old's own list, if old was taken over in turn before it was established
	mu   sync.Mutex
	msgs []packets.Packet
	// handedOver: handed to the new connection; later messages go to it directly
	handedOver bool
}

// note adds pk to the list unless it was handed over already; it reports whether it did. pk is
// not copied: handOver tells by its payload whether mochi copied it with the session.
func (q *queued) note(pk packets.Packet) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.handedOver {
		q.msgs = append(q.msgs, pk)
	}
	return !q.handedOver
}

// OnQosDropped mends mochi's count of messages in flight ($SYS, /stats) at a session take-over:
// mochi copies the old session's messages to the new connection, then clears the old session
// and counts each of them as gone. When the new connection completed them they were counted
// again, and the count went below zero. mochi marks the old session taken over before it
// clears it only when the new connection inherits the messages (for a clean one, after).
func (h *Hook) OnQosDropped(cl *mqtt.Client, _ packets.Packet) {
	if cl.IsTakenOver() {
		atomic.AddInt64(&h.server.Info.Inflight, 1)
	}
}

// OnDisconnect waits, for a session that ends at disconnect and is being taken over, until mochi has
// marked it taken over. mochi closes the old connection first and marks it after, and the old
// connection's goroutine, right after this hook, ends such a session unless it is marked: it
// dropped the messages and subscriptions the new connection was about to inherit (an MQTT 5
// session with expiry 0 taken over by a lasting one: no resend, nothing stored), and it
// removed the client id from mochi's registry, where the new connection may be already.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		waitTakenOver(cl)
	}
	h.acks.Delete(cl)
	h.endFlow(cl)
	if expire && !errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		h.unsent.Delete(cl.ID) // the session ends with the connection
	}
	h.open(cl)
}

// OnClientExpired: the session ended.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.unsent.Delete(cl.ID)
	h.endFlow(cl)
}

// waitTakenOver waits until mochi marks cl taken over; at most acceptWait: the new connection's
// goroutine does it right after closing cl's connection, with no wait in between.
func waitTakenOver(cl *mqtt.Client) {
	deadline := time.Now().Add(acceptWait)
	for !cl.IsTakenOver() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// OnQosPublish notes a message queued to a session that is being taken over, and forwards one
// queued to a session already taken over: a publisher that looked the client up just before
// the take-over can queue to the old session after the new connection has been served.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, resends int) {
	// Only mochi's resend of the session queues a DUP PUBLISH, a PUBREL or a PUBREC.
	if (pk.FixedHeader.Dup || pk.FixedHeader.Type != packets.Publish) && h.nStarting.Load() > 0 {
		if v, ok := h.startups.Load(cl); ok {
			// Back in the session before publishers go on: a new message would take the first
			// free id, that of the first message set aside (receivemax.go).
			h.putBack(cl, v.(*startup)) // mochi has taken the queue to resend
			v.(*startup).sessionTaken()
		}
	}
	h.noteQueuedAway(cl, pk, resends)
	if t := pk.FixedHeader.Type; (t == packets.Puback || t == packets.Pubrec) && !h.starting(cl) {
		h.noteAck(cl, pk.PacketID) // not a resend: those come before the connection is established
	}
	if resends > 0 || pk.FixedHeader.Type != packets.Publish {
		return
	}
	if h.nTakeovers.Load() > 0 {
		// Handed over since it was looked up, it is forwarded below: noted now, it would never
		// be sent (TestNotedAfterHandOverIsForwarded).
		if v, ok := h.takeovers.Load(cl); ok && v.(*queued).note(pk) {
			return
		}
	}
	if !cl.IsTakenOver() {
		return
	}
	cur, ok := h.server.Clients.Get(cl.ID)
	if !ok || cur == cl || !KeepsSession(cur) { // a clean session does not inherit the old one's messages
		return
	}
	if have, ok := cur.State.Inflight.Get(pk.PacketID); ok && sameMessage(have, pk) {
		return // queued to the old session before mochi copied it: the new connection has it
	}
	if cl.State.Inflight.Delete(pk.PacketID) {
		atomic.AddInt64(&h.server.Info.Inflight, -1)
	}
	if v, ok := h.newConns.Load(cur); ok && v.(*queued).note(pk) { // cur is still being set up: with its list, after its CONNACK
		return
	}
	h.deliver(cur, pk.Copy(true))
}

// OnSessionEstablished runs once mochi has copied the old session to the new connection,
// registered it and resent what it copied: what the copy missed is sent now, under new ids.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if v, ok := h.startups.Load(cl); ok {
		h.putBack(cl, v.(*startup))
		v.(*startup).sessionTaken() // resent: publishers need not wait for what follows
	}
	defer h.open(cl) // after the missing messages: they are older than anything held
	if v, ok := h.newConns.LoadAndDelete(cl); ok {
		h.handOver(cl, v.(*queued))
	}
}

// handOver gives cl what was queued to the sessions it took over (q and the lists before it,
// oldest first) and did not come with the copy, and stops noting them.
func (h *Hook) handOver(cl *mqtt.Client, q *queued) {
	var chain []*queued
	for ; q != nil; q = q.prev {
		chain = append(chain, q)
	}
	for _, q := range slices.Backward(chain) {
		if h.takeovers.CompareAndDelete(q.old, q) { // not a later take-over's entry for the same session
			h.nTakeovers.Add(-1)
		}
		q.mu.Lock()
		for _, m := range q.msgs {
			if have, ok := cl.State.Inflight.Get(m.PacketID); ok && sameMessage(have, m) {
				if h.Persist != nil { // copied with the session, but after the store stopped writing the old one
					h.Persist(cl, have)
				}
				continue
			}
			h.deliver(cl, m)
		}
		q.handedOver = true
		q.mu.Unlock()
	}
}

// sameMessage reports whether have is m as mochi copied it with the session: the copy shares
// the payload's memory. The same content under the same id can be a different message (the
// old session's id counter goes on after the copy, and the new one may pick the same id); and
// Payloads (sharedpayloads.go) makes recent copies of equal content share memory: topic and
// publisher must match too.
func sameMessage(have, m packets.Packet) bool {
	if have.TopicName != m.TopicName || have.Origin != m.Origin {
		return false
	}
	if len(m.Payload) == 0 || len(have.Payload) == 0 {
		return len(have.Payload) == len(m.Payload)
	}
	return &have.Payload[0] == &m.Payload[0]
}

// deliver queues m to cl under a new packet id and sends it, as mochi's publishToClient does.
func (h *Hook) deliver(cl *mqtt.Client, m packets.Packet) {
	id, err := cl.NextPacketID()
	if err != nil {
		h.log.Error("message queued during a session take-over lost: no packet id left", "client", cl.ID, "topic", m.TopicName)
		return
	}
	m.PacketID = uint16(id)
	// DUP: it may have gone out on the old connection, and it is not held back by a connection
	// still being set up (a publisher forwarding here must not wait for that).
	m.FixedHeader.Dup = true
	m.Filters = nil // not part of a -data group any more (package store): stored and sent on its own
	if cl.State.Inflight.Set(m) {
		atomic.AddInt64(&h.server.Info.Inflight, 1)
	}
	h.OnQosPublish(cl, m, 0, 0) // this connection may be being taken over already
	if h.Persist != nil {
		h.Persist(cl, m) // -data: mochi calls only its hooks, and this one is ours
	}
	_ = cl.WritePacket(m) // a failed write leaves it in flight: resent at the next connection
}
