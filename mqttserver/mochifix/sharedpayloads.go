package mochifix

import (
	"bytes"
	"hash/maphash"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Why this file: mochi queues to each session its own copy of a message, payload included
// (Packet.Copy, packets/packets.go:185, from publishToClient, server.go:1029): a 4 KB message
// queued to 1,000 offline sessions held 4 MB. Payloads puts the copies of one message on one
// payload, as Mosquitto stores a message once. mochi never writes into a payload after it is
// read (it encodes, copies and compares them), nor does any hook of the broker, so the copies
// may share it.

// minShared is the smallest payload worth sharing: below it the slice header saved is most of
// what sharing would save.
const minShared = 64

// recentPayloads is how many payloads Payloads remembers. mochi makes every copy of a message
// in one loop (publishToSubscribers), so the copies of a message meet its payload while it is
// among the last few; a payload forgotten meanwhile only gets one more copy.
const recentPayloads = 64

// Payloads remembers the payloads of the last messages queued, to make later copies of the same
// message share them. It holds at most recentPayloads payloads besides what sessions hold.
type Payloads struct {
	seed maphash.Seed

	mu     sync.Mutex
	recent map[uint64][]byte // payload hash → the payload copies share
	ring   [recentPayloads]uint64
	next   int // the oldest in ring, forgotten next
}

func NewPayloads() *Payloads {
	return &Payloads{seed: maphash.MakeSeed(), recent: make(map[uint64][]byte, recentPayloads)}
}

// Share makes the copy pk, which mochi has just queued to cl (OnQosPublish), point at the
// payload of an earlier copy of the same message, and lets the payload of its own copy go. It
// must be called only for a client whose connection is closed: a connected client's copy is
// also on its way to the socket, and its acknowledgement could remove it meanwhile.
func (p *Payloads) Share(cl *mqtt.Client, pk packets.Packet) {
	if len(pk.Payload) < minShared {
		return
	}
	shared := p.shared(pk.Payload)
	if &shared[0] == &pk.Payload[0] {
		return // the first copy: its payload is the one shared
	}
	pk.Payload = shared
	if cl.State.Inflight.Set(pk) { // it was gone meanwhile (dropped, expired): leave it gone
		cl.State.Inflight.Delete(pk.PacketID)
	}
}

// shared returns the payload remembered with the same bytes as b, or remembers b.
func (p *Payloads) shared(b []byte) []byte {
	h := maphash.Bytes(p.seed, b)
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.recent[h]; ok && bytes.Equal(s, b) {
		return s
	}
	if _, ok := p.recent[h]; !ok { // a new hash takes the oldest's place
		delete(p.recent, p.ring[p.next])
		p.ring[p.next] = h
		p.next = (p.next + 1) % recentPayloads
	}
	p.recent[h] = b
	return b
}
