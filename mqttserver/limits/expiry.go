package limits

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
)

// Why this file: mochi's MaximumMessageExpiryInterval (one day by default) deleted every
// retained and queued message a day after it was stored, without a word, and was forwarded to
// MQTT 5 subscribers as the Message Expiry Interval of every message that had none. The broker
// sets it to 0 (Capabilities); then mochi keeps a message until it is replaced, cleared,
// acknowledged or its session ends, and expires only what a publisher gave an expiry, which is
// what Mosquitto does. mochi checks that expiry once a second only: a resumed session was sent,
// and a new subscriber given, a message that had expired up to two seconds before. ExpiryHook
// takes those out first, and applies the operator's cap (-max-message-expiry) if there is one.

// The reasons in the summary lines of this hook.
const (
	ReasonMaxExpiry       = "older than -max-message-expiry"
	ReasonPublisherExpiry = "its message expiry interval passed"
)

// ExpiryHook removes expired messages before mochi would send them, and those older than
// -max-message-expiry once a second. It counts what it removes and logs the counts once a
// second: a cap reached by many messages would otherwise flood the log.
type ExpiryHook struct {
	mqtt.HookBase
	server *mqtt.Server
	log    *slog.Logger
	max    int64 // seconds; 0 is no cap

	// Dropped forgets a queued message this hook removed (the -data file, the session limits);
	// RetainedDropped a retained one. Either may be nil.
	Dropped         func(cl *mqtt.Client, pk packets.Packet)
	RetainedDropped func(topic string)

	expired atomic.Int64 // messages whose publisher's expiry passed, removed since the last summary
	capped  atomic.Int64 // messages older than the cap, removed since the last summary
	lost    atomic.Int64 // messages older than the cap, removed since the start
	stop    chan struct{}
	done    chan struct{}
}

// NewExpiryHook returns the hook of l's -max-message-expiry.
func NewExpiryHook(server *mqtt.Server, l Limits, log *slog.Logger) *ExpiryHook {
	return &ExpiryHook{server: server, log: log, max: int64((l.MaxMessageExpiry + time.Second - 1) / time.Second),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (h *ExpiryHook) ID() string { return "message-expiry" }

// Lost counts the messages removed as older than -max-message-expiry since the start, as
// they are counted in $SYS (once a second); those whose publisher's expiry passed are not lost.
func (h *ExpiryHook) Lost() int64 { return h.lost.Load() }

func (h *ExpiryHook) Provides(b byte) bool { return b == mqtt.OnConnect || b == mqtt.OnSubscribe }

func (h *ExpiryHook) Init(any) error {
	go h.loop()
	return nil
}

func (h *ExpiryHook) Stop() error {
	close(h.stop)
	<-h.done
	return nil
}

// expiry tells whether a message has expired at now (unix seconds), and for which reason: the
// publisher's MQTT 5 Message Expiry Interval (mochi's Expiry, [MQTT-3.3.2-5]), or the cap,
// counted from when the broker received it. Expiry is -1 for a message mochi holds back for
// the client's receive maximum.
func (h *ExpiryHook) expiry(pk packets.Packet, now int64) (expired, capped bool) {
	if pk.Expiry > 0 && pk.Expiry < now {
		return true, false
	}
	return false, h.max > 0 && now-pk.Created > h.max
}

// OnConnect takes the expired messages out of the session a client is about to resume, which
// mochi resends without looking at their expiry.
func (h *ExpiryHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.Connect.Clean {
		return nil
	}
	if existing, ok := h.server.Clients.Get(cl.ID); ok {
		h.expireQueued(existing, time.Now().Unix())
	}
	return nil
}

// OnSubscribe takes out the expired retained messages the new subscription would be sent.
func (h *ExpiryHook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	now := time.Now().Unix()
	var seen map[string]bool // filters sent more than once are looked at once
	if len(pk.Filters) > 1 {
		seen = make(map[string]bool, len(pk.Filters))
	}
	for _, f := range pk.Filters {
		if mqtt.IsSharedFilter(f.Filter) || seen[f.Filter] {
			continue // no retained messages for shared subscriptions; a copy's were taken out
		}
		if seen != nil {
			seen[f.Filter] = true
		}
		for _, r := range h.server.Topics.Messages(f.Filter) {
			h.expireRetained(r, now)
		}
	}
	return pk
}

// expireQueued removes the expired messages queued to a session. Acknowledgement states
// (PUBREC, PUBREL) are not messages and are kept: dropping them would break exactly once.
func (h *ExpiryHook) expireQueued(cl *mqtt.Client, now int64) {
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		expired, capped := h.expiry(pk, now)
		if !(expired || capped) || !cl.State.Inflight.Delete(pk.PacketID) {
			continue
		}
		atomic.AddInt64(&h.server.Info.Inflight, -1)
		if h.Dropped != nil {
			h.Dropped(cl, pk)
		}
		h.count(expired)
	}
}

// expireRetained removes a retained message if it has expired. Like mochi's own sweep, it can
// remove a message that replaced the one it looked at an instant before (the check of Created
// only narrows that window).
func (h *ExpiryHook) expireRetained(pk packets.Packet, now int64) {
	expired, capped := h.expiry(pk, now)
	if !(expired || capped) {
		return
	}
	retained := h.server.Topics.Retained
	if cur, ok := retained.Get(pk.TopicName); !ok || cur.Created != pk.Created {
		return
	}
	retained.Delete(pk.TopicName)
	atomic.StoreInt64(&h.server.Info.Retained, int64(retained.Len()))
	if h.RetainedDropped != nil {
		h.RetainedDropped(pk.TopicName)
	}
	h.count(expired)
}

func (h *ExpiryHook) count(expired bool) {
	if expired {
		h.expired.Add(1)
	} else {
		h.capped.Add(1)
	}
}

// loop applies the cap once a second, and sums up what was removed.
func (h *ExpiryHook) loop() {
	everySecond(h.stop, h.done, func(stopping bool) {
		if h.max > 0 && !stopping {
			h.sweep(time.Now().Unix())
		}
		h.sumUp()
	})
}

// sweep removes every retained and queued message older than the cap.
func (h *ExpiryHook) sweep(now int64) {
	for _, pk := range h.server.Topics.Retained.GetAll() {
		h.expireRetained(pk, now)
	}
	for _, cl := range h.server.Clients.GetAll() {
		h.expireQueued(cl, now)
	}
}

// sumUp logs what was removed since the last summary. The messages removed by the cap are
// lost, though MQTT would have kept them: they are counted as dropped in $SYS (and /stats), and
// logged as a warning.
func (h *ExpiryHook) sumUp() {
	if n := h.expired.Swap(0); n > 0 {
		h.log.LogAttrs(context.Background(), slog.LevelInfo, eventlog.MsgMessagesExpired, slog.Int64("count", n),
			slog.String("reason", ReasonPublisherExpiry))
	}
	if n := h.capped.Swap(0); n > 0 {
		h.lost.Add(n)
		atomic.AddInt64(&h.server.Info.MessagesDropped, n)
		h.log.LogAttrs(context.Background(), slog.LevelWarn, eventlog.MsgDropped, slog.Int64("count", n),
			slog.String("reason", ReasonMaxExpiry))
	}
}
