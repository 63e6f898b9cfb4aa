package mochifix

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Why this file: mochi adds a subscription (processSubscribe, server.go:1264), writes the SUBACK,
// then gives the subscriber the retained messages it finds (publishRetainedToClient,
// server.go:1126). A retained PUBLISH processed in between is retained before the scan and
// finds the subscription too: the subscriber gets it twice, live and as retained. A client
// that publishes as soon as another's SUBACK came makes it likely. Mosquitto handles one packet
// at a time and never does.
//
// The mend: a SUBSCRIBE is processed under retainGate's write lock, a retained PUBLISH, from
// the time it is retained to the time it has been delivered, under its read lock; retainHeld
// says which a client's packet holds (true: the write lock). Only retained messages wait, and
// only for subscriptions being served. What waits under the lock is short: mochi queues
// without waiting, the broker's connections write an answer only when the socket takes it at
// once, and a publisher to a connection being set up waits at most acceptWait (startup.go).

// OnSubscribe takes the gate for the SUBSCRIBE about to be processed; OnPacketProcessed gives
// it back (mochi calls both for every SUBSCRIBE it processes, except its own inline client's,
// which has no OnPacketProcessed).
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if !cl.Net.Inline {
		h.retainGate.Lock()
		h.retainHeld.Store(cl, true)
	}
	return pk
}

// OnPublish takes the gate for a retained PUBLISH: mochi retains and delivers it before
// OnPacketProcessed. Not for a client's QoS 1 or 2 message when the store delivers it first
// (-data): the store injects it through an inline publisher, whose PUBLISH takes the gate
// itself, inside this one, and a read lock taken twice by one goroutine may wait for ever.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain || pk.Ignore || h.DeliveredFirst && !cl.Net.Inline && pk.FixedHeader.Qos > 0 {
		return pk, nil
	}
	h.retainGate.RLock()
	h.retainHeld.Store(cl, false)
	return pk, nil
}

// OnWill takes the gate for a retained will sent now: mochi retains and delivers it before
// OnWillSent (sendLWT, server.go:1545). A delayed will is published later, from the server's
// loop, with no hook before it: not covered. The key is the client's will, not the client: a
// will may be sent while the client's own PUBLISH holds a share.
func (h *Hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.Retain && cl.Properties.Will.WillDelayInterval == 0 {
		h.retainGate.RLock()
		h.retainHeld.Store(&cl.Properties.Will, false)
	}
	return will, nil
}

// OnWillSent gives back what OnWill took.
func (h *Hook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if _, held := h.retainHeld.LoadAndDelete(&cl.Properties.Will); held {
		h.retainGate.RUnlock()
	}
}

// releaseRetainGate gives back what the client's packet took of the gate, first thing in
// OnPacketProcessed: what follows there may publish (ackNotSent).
func (h *Hook) releaseRetainGate(cl *mqtt.Client, pk packets.Packet) {
	if t := pk.FixedHeader.Type; t != packets.Subscribe && (t != packets.Publish || !pk.FixedHeader.Retain) {
		return // the usual case, without a look in the map
	}
	if whole, held := h.retainHeld.LoadAndDelete(cl); !held {
		return
	} else if whole.(bool) {
		h.retainGate.Unlock()
	} else {
		h.retainGate.RUnlock()
	}
}
