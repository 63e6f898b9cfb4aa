package limits

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/mochifix"
	"mqttdemo/shared/config"
)

// Why this file: mochi bounds a session's queue only by a count of packets (8192 by default)
// and copies each message, payload and an 800-byte packet, for every session it is queued to;
// sessions of MQTT 3.1.1 clients never expire and their number has no cap. 100 offline
// sessions given 3,000 messages of 1 KB grew the broker by 1.4 GB. Here each session is bounded
// in messages (-max-queued-messages, mochi's own limit made a flag) and, offline, in bytes
// (-max-queued-bytes, this hook), the number of sessions is capped (-max-sessions) and a 3.1.1 session expires
// (-session-expiry, mochi's maximum session expiry). All offline sessions together are bounded
// too (-max-queued-total): 1,000 offline sessions each within its bytes still held gigabytes.
// The copies of a message queued to offline sessions share one payload (mochifix.Payloads).
// Every message dropped is counted in $SYS/broker/messages/dropped and logged.

// Defaults of the session limits.
const (
	// DefaultMaxQueuedMessages is mochi's own default. Mosquitto's max_queued_messages is 1000,
	// but it counts copies queued beyond 20 in flight, where mochi counts every copy sent and
	// not yet acknowledged: at 1000 a fast subscriber lost 465 copies in the 4→1 QoS 1 flood of
	// scripts/bench (Mosquitto 3000), at 8192 none. Offline sessions are bounded by
	// -max-queued-bytes first.
	DefaultMaxQueuedMessages = 8192
	// DefaultMaxSessions caps the sessions the broker keeps, connected or not.
	DefaultMaxSessions = 100_000
	// DefaultSessionExpiry is how long a persistent session outlives its connection.
	DefaultSessionExpiry = 24 * time.Hour
	// DefaultMaxQueuedTotal bounds the bytes queued to all offline sessions together, counted
	// as -max-queued-bytes counts them. The broker grows by more than the copies kept: mochi
	// copies each payload before it is shared, and the garbage waits for the collector. 1,000
	// offline sessions sent 2,000 messages of 4 KB grew it by 190 MB at 128 MiB, 269 MB at 256.
	DefaultMaxQueuedTotal = 128 << 20
)

// QueuedOverhead is what mochi holds per queued copy besides its payload: the 800-byte packet
// in a map slot, and a map keeps up to twice the slots it uses. It is counted against
// -max-queued-bytes, so that the limit bounds memory, not only payloads.
const QueuedOverhead = 2048

// queuedCost is what a copy queued to a session counts against -max-queued-bytes.
func queuedCost(pk packets.Packet) int { return len(pk.Payload) + len(pk.TopicName) + QueuedOverhead }

// checkSessions vets the session limits.
func (l Limits) checkSessions() error {
	switch {
	case l.MaxQueuedMessages < 1 || l.MaxQueuedMessages > math.MaxUint16:
		return &config.BadValue{Flag: "max-queued-messages", Why: fmt.Sprintf("want 1 to %d", math.MaxUint16)}
	case l.MaxQueuedTotal < 1:
		return &config.BadValue{Flag: "max-queued-total", Why: "want at least 1"}
	case l.MaxSessions < 0:
		return &config.BadValue{Flag: "max-sessions", Why: "want 0 (no limit) or more"}
	case l.SessionExpiry < time.Second || l.SessionExpiry > math.MaxUint32*time.Second:
		return &config.BadValue{Flag: "session-expiry", Why: fmt.Sprintf("want 1s to %v", math.MaxUint32*time.Second)}
	}
	return nil
}

// QueueHook bounds the bytes queued to an offline session and to all of them, refuses sessions
// past -max-sessions and sums up the messages mochi drops at -max-queued-messages.
type QueueHook struct {
	mqtt.HookBase
	server      *mqtt.Server
	log         *slog.Logger
	maxBytes    int
	maxTotal    int
	maxSessions int
	// Stored forgets a message dropped here in the -data file; nil without -data.
	Stored       func(cl *mqtt.Client, pk packets.Packet)
	dropped      *eventlog.LineCap // per message, past the byte limit
	droppedTotal *eventlog.LineCap // per message, past the limit of all offline sessions
	payloads     *mochifix.Payloads

	mu    sync.Mutex
	bytes map[string]int // client id → bytes queued to its offline session, counted when first needed
	total int            // the sum of bytes

	seen atomic.Int64 // mochi's count of messages it dropped at its limit, already summed up
	stop chan struct{}
	done chan struct{}

	// messages dropped past -max-queued-bytes and -max-queued-total, since the start
	lostBytes, lostTotal atomic.Int64
}

func NewQueueHook(server *mqtt.Server, l Limits, log *slog.Logger) *QueueHook {
	return &QueueHook{server: server, log: log, maxBytes: l.MaxQueuedBytes, maxTotal: l.MaxQueuedTotal, maxSessions: l.MaxSessions,
		dropped:      eventlog.NewLineCap(log, slog.LevelWarn, eventlog.MsgDropped, slog.String("reason", ReasonSessionBytes)),
		droppedTotal: eventlog.NewLineCap(log, slog.LevelWarn, eventlog.MsgDropped, slog.String("reason", ReasonTotalBytes)),
		payloads:     mochifix.NewPayloads(),
		bytes:        make(map[string]int), stop: make(chan struct{}), done: make(chan struct{})}
}

// The reasons in the "message dropped" lines of this hook.
const (
	ReasonSessionBytes    = "session queue full (-max-queued-bytes)"
	ReasonSessionMessages = "session queue full (-max-queued-messages)"
	ReasonTotalBytes      = "offline queues full (-max-queued-total)"
)

func (h *QueueHook) ID() string { return "session-limits" }

// Lost counts, since the start, the messages dropped past -max-queued-bytes and past
// -max-queued-total (those past -max-queued-messages are mochi's InflightDropped).
func (h *QueueHook) Lost() (sessionBytes, total int64) {
	return h.lostBytes.Load(), h.lostTotal.Load()
}

func (h *QueueHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnQosPublish, mqtt.OnQosDropped, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	case mqtt.OnConnect:
		return h.maxSessions > 0
	}
	return false
}

func (h *QueueHook) Init(any) error {
	h.dropped.Start()
	h.droppedTotal.Start()
	go h.loop()
	return nil
}

func (h *QueueHook) Stop() error {
	close(h.stop)
	<-h.done
	h.dropped.Close()
	h.droppedTotal.Close()
	return nil
}

// loop sums up, once a second, the messages mochi dropped because a session held
// -max-queued-messages: mochi counts them (inflight_dropped in /stats) and logs each at debug
// (see libraryHandler); here they join $SYS/broker/messages/dropped and one warning line.
func (h *QueueHook) loop() { everySecond(h.stop, h.done, func(bool) { h.sumUp() }) }

// everySecond calls fn once a second, and once more (stopping) when stop is closed; then it
// closes done.
func everySecond(stop <-chan struct{}, done chan<- struct{}, fn func(stopping bool)) {
	defer close(done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			fn(false)
		case <-stop:
			fn(true)
			return
		}
	}
}

func (h *QueueHook) sumUp() {
	total := atomic.LoadInt64(&h.server.Info.InflightDropped)
	if n := total - h.seen.Swap(total); n > 0 {
		atomic.AddInt64(&h.server.Info.MessagesDropped, n)
		h.log.LogAttrs(context.Background(), slog.LevelWarn, eventlog.MsgDropped, slog.Int64("count", n),
			slog.String("reason", ReasonSessionMessages))
	}
}

// OnConnect refuses a new client id when -max-sessions sessions are kept; a client resuming
// its session is always let in.
func (h *QueueHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if _, ok := h.server.Clients.Get(cl.ID); ok || h.server.Clients.Len() < h.maxSessions {
		return nil
	}
	code := packets.ErrQuotaExceeded
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.ErrServerUnavailable // CONNACK 3 in MQTT 3.1.1
	}
	h.log.LogAttrs(context.Background(), slog.LevelWarn, eventlog.MsgConnectRefused, slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote), slog.String("reason", "-max-sessions sessions kept"),
		slog.Int("max_sessions", h.maxSessions))
	_ = h.server.SendConnack(cl, code, false, nil)
	return code
}

// OnQosPublish drops a copy just queued to an offline session past -max-queued-bytes or
// -max-queued-total, and makes a copy kept share its payload with the other copies of its
// message. A connected client's copies are bounded where they wait to be written
// (slowclients.go).
func (h *QueueHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, resends int) {
	if resends > 0 || !cl.Closed() || pk.FixedHeader.Type != packets.Publish || cl.IsTakenOver() || !mochifix.KeepsSession(cl) {
		return // a clean session ending drops its queue whole (OnQosDropped)
	}
	cost := queuedCost(pk)
	h.mu.Lock()
	queued, ok := h.bytes[cl.ID]
	if !ok {
		for _, q := range cl.State.Inflight.GetAll(false) {
			queued += queuedCost(q)
		}
		queued -= cost // pk is in already
		h.total += queued
	}
	reason, lines, count := "", h.dropped, &h.lostBytes
	switch {
	case queued+cost > h.maxBytes:
		reason = ReasonSessionBytes
	case h.total+cost > h.maxTotal:
		reason, lines, count = ReasonTotalBytes, h.droppedTotal, &h.lostTotal
	default:
		queued += cost
		h.total += cost
	}
	h.bytes[cl.ID] = queued
	h.mu.Unlock()
	if reason == "" {
		h.payloads.Share(cl, pk)
		return
	}
	if cl.State.Inflight.Delete(pk.PacketID) {
		atomic.AddInt64(&h.server.Info.Inflight, -1)
	}
	if h.Stored != nil {
		h.Stored(cl, pk)
	}
	count.Add(1)
	atomic.AddInt64(&h.server.Info.MessagesDropped, 1)
	if lines.Allow() {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, eventlog.MsgDropped, slog.String("client", cl.ID),
			slog.String("topic", pk.TopicName), slog.String("reason", reason))
	}
}

// OnQosDropped: an offline session's message expired. (mochi's expiry sweep calls it a second
// time with only the packet id: not counted twice.)
func (h *QueueHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == 0 {
		return
	}
	h.mu.Lock()
	if n, ok := h.bytes[cl.ID]; ok {
		left := max(0, n-queuedCost(pk))
		h.bytes[cl.ID] = left
		h.total -= n - left
	}
	h.mu.Unlock()
}

// The count is kept only while a session is offline: its client's acknowledgements change it.
func (h *QueueHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.forget(cl) }
func (h *QueueHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool)          { h.forget(cl) }
func (h *QueueHook) OnClientExpired(cl *mqtt.Client)                        { h.forget(cl) }

func (h *QueueHook) forget(cl *mqtt.Client) {
	h.mu.Lock()
	h.total -= h.bytes[cl.ID]
	delete(h.bytes, cl.ID)
	h.mu.Unlock()
}
