package mqttclient

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Store wraps paho's message store to learn what paho's tokens do not say reliably.
//
// Outgoing: paho keeps a QoS 1/2 PUBLISH under "o.<id>" until the PUBACK (QoS 1) or PUBCOMP
// (QoS 2) arrives, and deletes it then. Its token is not a safe signal: after a reconnect paho
// resends the message with a new token and completes the old one with no error, before the
// broker has said anything. Acked gives a channel closed on the real acknowledgement.
//
// Incoming: paho stores a QoS 2 PUBLISH under "i.<id>" and replaces it with the PUBREL when the
// broker releases the message. Until then a PUBLISH with the same id is a resend of the same
// message (MQTT 3.1.1, 4.3.3) that paho would deliver again; Released tells when that window closes.
type Store struct {
	mqtt.Store
	mu         sync.Mutex
	acked      map[uint16]chan struct{}
	onRelease  func(id uint16)
	onComplete func(id uint16)
	// unreleased numbers each outgoing QoS 2 PUBLISH stored and not yet answered with PUBREC,
	// so that a connection can tell a repeat of the same message from a new one that reuses
	// the id (see KeepReleases).
	unreleased map[uint16]uint64
	stored     uint64 // the last number given
	// sessionPresent is the flag of the last CONNACK that accepted the connection (KeepReleases
	// reads it off the wire: paho's reconnect handler does not pass it on).
	sessionPresent atomic.Bool
}

// NewStore wraps inner: mqtt.NewMemoryStore() or, to keep messages across restarts, a file store.
func NewStore(inner mqtt.Store) *Store {
	return &Store{Store: inner, acked: make(map[uint16]chan struct{}), unreleased: make(map[uint16]uint64)}
}

// NewFileStore returns a Store on a paho file store in dir, which it creates if needed (paho's
// own Open panics when it cannot).
func NewFileStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("-store: %w", err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("-store %s is not writable: %w", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return NewStore(mqtt.NewFileStore(dir)), nil
}

// OnRelease sets fn to run (on paho's goroutine: it must not block) when the broker releases an
// incoming QoS 2 message.
func (s *Store) OnRelease(fn func(id uint16)) {
	s.mu.Lock()
	s.onRelease = fn
	s.mu.Unlock()
}

// OnComplete sets fn to run (on paho's goroutine: it must not block) when the PUBCOMP that ends
// the exchange of an incoming QoS 2 message has been written. Only with KeepReleases.
func (s *Store) OnComplete(fn func(id uint16)) {
	s.mu.Lock()
	s.onComplete = fn
	s.mu.Unlock()
}

// completed reports the PUBCOMP for incoming message id written (see OnComplete).
func (s *Store) completed(id uint16) {
	s.mu.Lock()
	fn := s.onComplete
	s.mu.Unlock()
	if fn != nil {
		fn(id)
	}
}

// Put implements mqtt.Store. A PUBLISH is kept as a copy, and Get returns copies: paho writes
// a packet to the network (which sets its length field) while its resume marks the same
// packet DUP when a Publish races with a reconnect (a data race,
// eclipse-paho/paho.mqtt.golang#703). The stored packets are then the store's alone.
func (s *Store) Put(key string, m packets.ControlPacket) {
	m = copyPublish(m)
	s.Store.Put(key, m)
	id, out, ok := parseKey(key)
	if !ok {
		return
	}
	switch m := m.(type) {
	case *packets.PublishPacket:
		if out {
			s.mu.Lock()
			s.acked[id] = make(chan struct{}) // an id is reused only after the last use was acknowledged
			s.track(id, m.Qos)
			s.mu.Unlock()
		}
	case *packets.PubrelPacket:
		if out {
			s.mu.Lock()
			delete(s.unreleased, id)
			s.mu.Unlock()
		} else {
			s.mu.Lock()
			fn := s.onRelease
			s.mu.Unlock()
			if fn != nil {
				fn(id)
			}
		}
	}
}

// track numbers a QoS 2 PUBLISH just stored under id; s.mu is held.
func (s *Store) track(id uint16, qos byte) {
	if qos != 2 {
		delete(s.unreleased, id)
		return
	}
	s.stored++
	s.unreleased[id] = s.stored
}

// Get implements mqtt.Store: a PUBLISH comes back as a copy (see Put).
func (s *Store) Get(key string) packets.ControlPacket {
	return copyPublish(s.Store.Get(key))
}

// copyPublish returns a copy of m if it is a PUBLISH (the payload is shared: paho never
// changes it), else m.
func copyPublish(m packets.ControlPacket) packets.ControlPacket {
	if p, ok := m.(*packets.PublishPacket); ok {
		c := *p
		return &c
	}
	return m
}

// Del implements mqtt.Store.
func (s *Store) Del(key string) {
	s.Store.Del(key)
	if id, out, ok := parseKey(key); ok && out {
		s.mu.Lock()
		if ch, ok := s.acked[id]; ok {
			close(ch)
			delete(s.acked, id)
		}
		delete(s.unreleased, id)
		s.mu.Unlock()
	}
}

// unreleasedPublish returns the number of the QoS 2 PUBLISH stored under id, and false when
// none waits for its PUBREC: the broker has received it, or it was never stored.
func (s *Store) unreleasedPublish(id uint16) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.unreleased[id]
	return n, ok
}

// Reset implements mqtt.Store. Paho resets the store when a clean session starts: nothing is
// left to acknowledge.
func (s *Store) Reset() {
	s.Store.Reset()
	s.mu.Lock()
	for id, ch := range s.acked {
		close(ch)
		delete(s.acked, id)
	}
	clear(s.unreleased)
	s.mu.Unlock()
}

// Acked returns a channel that is closed when the broker acknowledges the outgoing message id
// for good, and false if no such message is waiting (it was acknowledged already, or never stored).
// Call it right after Publish, from the goroutine that published.
func (s *Store) Acked(id uint16) (<-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.acked[id]
	return ch, ok
}

// Stored is an outgoing message found in the store, left unacknowledged by an earlier run.
type Stored struct {
	ID      uint16
	Topic   string
	Payload string
	QoS     byte
}

// Outgoing opens the store and lists the outgoing messages it holds, in the order paho resends them, so that
// their acknowledgement can be awaited like that of new ones.
func (s *Store) Outgoing() []Stored {
	s.Store.Open()
	var out []Stored
	for _, key := range s.Store.All() {
		id, isOut, ok := parseKey(key)
		if !ok || !isOut {
			continue
		}
		st := Stored{ID: id}
		publish := false
		switch p := s.Store.Get(key).(type) {
		case *packets.PublishPacket:
			st.Topic, st.Payload, st.QoS = p.TopicName, string(p.Payload), p.Qos
			publish = true
		case *packets.PubrelPacket:
			st.QoS = 2 // received by the broker; only the release is left
		default:
			continue
		}
		s.mu.Lock()
		s.acked[id] = make(chan struct{})
		if publish {
			s.track(id, st.QoS)
		}
		s.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// parseKey splits paho's "o.<id>" / "i.<id>" keys.
func parseKey(key string) (id uint16, outbound, ok bool) {
	dir, num, found := strings.Cut(key, ".")
	if !found || (dir != "o" && dir != "i") {
		return 0, false, false
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil {
		return 0, false, false
	}
	return uint16(n), dir == "o", true
}
