package mochifix

import (
	"errors"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// PacketIDs keeps the packet ids a client chooses apart from those the broker chooses for its
// messages to the client. MQTT lets each side choose its own (MQTT-2.3.1), but mochi keeps both
// in one map (Client.State.Inflight): a client's packet with the id of a message the broker is
// sending it was refused (SUBSCRIBE, UNSUBSCRIBE: 0x91) or took that message's place (PUBLISH:
// the broker's message was never resent).
//
// So each id the client chooses is given a broker id as its packet is read: one from mochi's own
// counter (NextPacketID), which no message to the client takes while the client's exchange lasts.
// mochi works with that id, and the answers it writes (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK)
// carry the client's id again. A QoS 2 exchange keeps its pair from PUBLISH to PUBCOMP, in the
// session: a resumed or taken-over session goes on with it, and the store keeps it across a
// restart (ClientID, Restore).
//
// Add it after the hooks that log packets as the client sent them and before every hook that
// looks packets up in the session (the store, the session limits, access).
type PacketIDs struct {
	mqtt.HookBase
	server   *mqtt.Server
	sessions sync.Map // client id → *idTable
}

// idTable is one session's pairs.
type idTable struct {
	mu    sync.Mutex
	owner *mqtt.Client      // the connection that last took the session up
	wire  map[uint16]uint16 // broker id → the client's id, until the exchange is complete
	qos2  map[uint16]uint16 // the client's id → broker id, from its QoS 2 PUBLISH to PUBCOMP
}

// errTakenOver is mochi's stop cause of a connection whose session was taken over, as an error
// once: converting the packets.Code at each call allocates.
var errTakenOver error = packets.ErrSessionTakenOver

// NewPacketIDs returns the hook for server.
func NewPacketIDs(server *mqtt.Server) *PacketIDs { return &PacketIDs{server: server} }

func (p *PacketIDs) ID() string { return "packet-ids" }

// Provides is asked for every hook on every event of every packet: a switch.
func (p *PacketIDs) Provides(b byte) bool {
	switch b {
	case mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnPacketProcessed, mqtt.OnQosComplete,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// clientChosen reports whether pk, read from a client, carries an id the client chose.
func clientChosen(pk packets.Packet) bool {
	switch pk.FixedHeader.Type {
	case packets.Publish, packets.Pubrel, packets.Subscribe, packets.Unsubscribe:
		return pk.PacketID != 0
	}
	return false // PUBACK, PUBREC and PUBCOMP answer the broker's messages
}

// answer reports whether pk, written to a client, answers a packet of the client.
func answer(t byte) bool {
	switch t {
	case packets.Puback, packets.Pubrec, packets.Pubcomp, packets.Suback, packets.Unsuback:
		return true
	}
	return false
}

func (p *PacketIDs) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !clientChosen(pk) {
		return pk, nil
	}
	t := p.table(cl.ID)
	exchange := pk.FixedHeader.Type == packets.Pubrel ||
		pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2
	if exchange {
		t.mu.Lock()
		id, ok := t.qos2[pk.PacketID]
		if ok && !exchangeHeld(cl, id) { // left from a session that ended: the id is free again
			delete(t.qos2, pk.PacketID)
			delete(t.wire, id)
			ok = false
		}
		t.mu.Unlock()
		if ok { // a PUBREL, or the PUBLISH again (DUP)
			pk.PacketID = id
			return pk, nil
		}
	}
	id, err := cl.NextPacketID()
	if err != nil {
		// Every id is in flight: under the client's own id the packet would take the place of
		// the broker's message with it. Ends the connection (mochi's answer to a full id space).
		return pk, packets.ErrRejectPacket
	}
	t.mu.Lock()
	t.wire[uint16(id)] = pk.PacketID
	if exchange && pk.FixedHeader.Type == packets.Publish {
		t.qos2[pk.PacketID] = uint16(id)
	}
	t.mu.Unlock()
	pk.PacketID = uint16(id)
	return pk, nil
}

// exchangeHeld reports whether the session holds the client's QoS 2 exchange under id: its
// PUBREC, or the PUBCOMP mochi could not send.
func exchangeHeld(cl *mqtt.Client, id uint16) bool {
	held, ok := cl.State.Inflight.Get(id)
	return ok && (held.FixedHeader.Type == packets.Pubrec || held.FixedHeader.Type == packets.Pubcomp)
}

// OnPacketEncode gives an answer the client's id back.
func (p *PacketIDs) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if !answer(pk.FixedHeader.Type) || pk.PacketID == 0 {
		return pk
	}
	v, ok := p.sessions.Load(cl.ID)
	if !ok {
		return pk
	}
	t := v.(*idTable)
	t.mu.Lock()
	if wire, ok := t.wire[pk.PacketID]; ok {
		pk.PacketID = wire
	}
	t.mu.Unlock()
	return pk
}

// OnPacketProcessed ends the pair of a packet that left nothing in flight under its id: a
// SUBSCRIBE, an UNSUBSCRIBE, a QoS 1 PUBLISH acknowledged (or refused), a QoS 2 PUBLISH refused,
// a PUBREL of no exchange.
// What mochi keeps (a PUBREC awaiting PUBREL, an answer it could not write and sends again at
// the next connection) keeps its pair until it is complete (OnQosComplete).
func (p *PacketIDs) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if cl.Net.Inline || !clientChosen(pk) { // an inline client has the id of the client it serves
		return
	}
	if held, ok := cl.State.Inflight.Get(pk.PacketID); ok && answer(held.FixedHeader.Type) {
		return
	}
	// Checked after the session: a take-over stops the connection, then moves what is in flight.
	if errors.Is(cl.StopCause(), errTakenOver) {
		return // the new connection has what mochi kept; a pair left over goes at its disconnect
	}
	p.end(cl.ID, pk.PacketID)
}

// OnQosComplete ends the pair of a QoS 1 or 2 exchange of the client's once mochi has written
// its last answer (PUBACK, PUBCOMP), also when it is sent again at a later connection.
func (p *PacketIDs) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrel, packets.Pubcomp:
		p.end(cl.ID, pk.PacketID)
	}
}

// end forgets the pair of broker id id. (mochi also completes the broker's own messages here, by
// their ids, which are never in the table while a pair holds them.)
func (p *PacketIDs) end(clientID string, id uint16) {
	v, ok := p.sessions.Load(clientID)
	if !ok {
		return
	}
	t := v.(*idTable)
	t.mu.Lock()
	if wire, ok := t.wire[id]; ok {
		delete(t.wire, id)
		if t.qos2[wire] == id {
			delete(t.qos2, wire)
		}
	}
	t.mu.Unlock()
}

// OnSessionEstablish starts a new table when the connection starts a new session: a clean
// start, or no session left to resume.
func (p *PacketIDs) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if _, resumes := Resumes(p.server, cl, pk); !resumes {
		p.sessions.Delete(cl.ID)
	}
}

func (p *PacketIDs) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	t := p.table(cl.ID)
	t.mu.Lock()
	t.owner = cl
	t.mu.Unlock()
}

// OnDisconnect forgets the table of a session that ends, unless a newer connection has it. Of
// a session kept, it drops the pairs (but QoS 2's) that left nothing in flight: a packet that
// failed mochi's checks ended the connection before it was processed.
func (p *PacketIDs) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline || cl.IsTakenOver() || errors.Is(cl.StopCause(), errTakenOver) {
		return // the new connection has the session and its table
	}
	v, ok := p.sessions.Load(cl.ID)
	if !ok {
		return
	}
	t := v.(*idTable)
	t.mu.Lock()
	mine := t.owner == cl || t.owner == nil
	if mine && !expire {
		// Not the QoS 2 pairs: a connection that ended by itself can be taken over meanwhile,
		// and mochi then empties its session after copying it; a QoS 2 pair whose exchange the
		// session no longer holds is dropped when the client's id comes again (OnPacketRead).
		for id, wire := range t.wire {
			if t.qos2[wire] == id {
				continue
			}
			if held, ok := cl.State.Inflight.Get(id); !ok || !answer(held.FixedHeader.Type) {
				delete(t.wire, id)
			}
		}
	}
	t.mu.Unlock()
	if mine && expire {
		p.sessions.CompareAndDelete(cl.ID, v)
	}
}

func (p *PacketIDs) OnClientExpired(cl *mqtt.Client) { p.sessions.Delete(cl.ID) }

// ClientID returns the id the client chose for its exchange that the broker keeps under id, or id.
func (p *PacketIDs) ClientID(clientID string, id uint16) uint16 {
	if v, ok := p.sessions.Load(clientID); ok {
		t := v.(*idTable)
		t.mu.Lock()
		defer t.mu.Unlock()
		if wire, ok := t.wire[id]; ok {
			return wire
		}
	}
	return id
}

// Restore records that the client's QoS 2 exchange with its id wire is kept under id (a stored
// session loaded at start).
func (p *PacketIDs) Restore(clientID string, wire, id uint16) {
	t := p.table(clientID)
	t.mu.Lock()
	t.wire[id], t.qos2[wire] = wire, id
	t.mu.Unlock()
}

func (p *PacketIDs) table(clientID string) *idTable {
	if v, ok := p.sessions.Load(clientID); ok {
		return v.(*idTable)
	}
	v, _ := p.sessions.LoadOrStore(clientID, &idTable{wire: map[uint16]uint16{}, qos2: map[uint16]uint16{}})
	return v.(*idTable)
}
