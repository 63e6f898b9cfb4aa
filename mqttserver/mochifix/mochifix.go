package mochifix

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
)

// Hook mends mochi's flaws of session resume and session take-over (doc.go lists them with
// mochi's lines and the tests; PacketIDs, packetids.go, mends the packet ids). It is one hook
// because mochi calls the same hook points for all of them; its code is split by flaw:
//   - startup.go: new messages wait until the connection has had its CONNACK and its resent queue;
//   - resendorder.go: a resumed session's queue is resent in the order it was queued;
//   - takeover.go: what is queued to a session being taken over reaches the new connection;
//   - unsentack.go: a message whose acknowledgement could not be written is delivered anyway;
//   - receivemax.go: no more messages in flight to a client than its Receive Maximum;
//   - toolarge.go: a message larger than the client's Maximum Packet Size is discarded;
//   - dupfirst.go: a message sent the first time goes without DUP.
type Hook struct {
	mqtt.HookBase
	server    *mqtt.Server
	log       *slog.Logger
	takeovers sync.Map // *mqtt.Client (old session) → *queued, until the new one is established
	newConns  sync.Map // *mqtt.Client (new connection) → *queued, the same list
	startups  sync.Map // *mqtt.Client (new connection) → *startup, until it is established
	// Persist stores a message this hook queues (-data), or is nil.
	Persist func(cl *mqtt.Client, pk packets.Packet)
	// DeliveredFirst: a message is delivered before mochi acknowledges it (-data, package store).
	DeliveredFirst bool
	// acks: *mqtt.Client → *ackSlot, the acknowledgement mochi recorded for the client's
	// PUBLISH being processed.
	acks sync.Map
	// Dropped is told of a queued message the Hook discards (the store deletes it), or is nil.
	Dropped func(cl *mqtt.Client, pk packets.Packet)
	flows   sync.Map // *mqtt.Client → *flow, of a client that set a Receive Maximum
	unsent  sync.Map // client id → *unsentIDs, the session's messages never sent
	// tooLargeLines caps the lines of messages discarded as too large for their client.
	tooLargeLines *eventlog.LineCap
	tooLarge      atomic.Int64 // messages discarded as too large, since the start
	// Counts of the entries above, so that the hooks called for every packet and every message
	// (OnPacketProcessed, OnQosPublish, OnPacketEncode) skip the map when nothing is pending,
	// as is usual.
	nTakeovers, nStarting, nFlow atomic.Int32
}

// WriteBufferSize is the mochi option (Options.ClientNetWriteBufferSize) a server with the Hook
// needs: 1, so that mochi writes every packet through. mochi keeps a packet in its write buffer
// while more wait in the client's queue and flushes it with the next write (WritePacket,
// clients.go:603–630); the Hook (and the store) spoil a packet in OnPacketEncode to hold it, and
// when the held one was that next write, what waited in the buffer (a PINGRESP, an earlier
// PUBLISH) stayed unsent until the client sent something else. The broker's connection layer
// (package limits) gathers the writes instead.
const WriteBufferSize = 1

// acceptWait bounds how long a publisher waits for a connection to be ready for its message;
// past it the message is queued anyway, as mochi would. It takes no more than a commit (-data).
const acceptWait = 2 * time.Second

// New returns the mends for server; add it before the other hooks.
func New(server *mqtt.Server, log *slog.Logger) *Hook {
	return &Hook{server: server, log: log,
		tooLargeLines: eventlog.NewLineCap(log, slog.LevelWarn, eventlog.MsgDropped, slog.String("reason", ReasonTooLarge))}
}

// Init starts the once-a-second summary of the capped lines; Stop writes the last.
func (h *Hook) Init(any) error {
	h.tooLargeLines.Start()
	return nil
}

func (h *Hook) Stop() error {
	h.tooLargeLines.Close()
	return nil
}

func (h *Hook) ID() string { return "mochi-fixes" }

// Provides is asked for every hook on every event of every packet: a switch.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPacketProcessed, mqtt.OnDisconnect, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnQosPublish, mqtt.OnPacketEncode, mqtt.OnACLCheck, mqtt.OnQosDropped, mqtt.OnClientExpired:
		return true
	}
	return false
}
