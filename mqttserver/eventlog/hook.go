// Package eventlog is the broker's console: the hook that logs one line per client event (the
// article's MqttServer event handlers), the vocabulary of those lines (messages.go, also used by
// the other parts), the console and JSON formats, the cap on per-message lines and the writer
// that never makes a client wait for the terminal. It knows mochi's hooks and the health probe,
// and nothing of access control, storage or limits: they log through it.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/health"
)

// Hook logs one line per client event, as the article's MqttServer event handlers do.
// Hooks run on the client's own goroutine, so each one only formats a line and returns; the
// per-message lines are capped (see LinesPerSecond) and the writer behind the logger
// never blocks (see Writer).
type Hook struct {
	mqtt.HookBase
	log       *slog.Logger
	debug     bool              // log the per-packet events too
	topics    *mqtt.TopicsIndex // to tell a message nobody consumed, at debug
	published *LineCap
	dropped   *LineCap // write queue full
	lost      *LineCap // in flight, expired or its session ended
	refused   *LineCap // filters refused: one SUBSCRIBE may carry thousands
	provides  [256]bool
	probe     health.Visits // the -healthcheck probe's visits, kept to debug lines
}

// NewHook returns the events hook for log; the per-packet hooks are enabled only when log
// is at debug, so at info they cost nothing.
func NewHook(log *slog.Logger, topics *mqtt.TopicsIndex) *Hook {
	h := &Hook{
		log:       log,
		debug:     log.Enabled(context.Background(), slog.LevelDebug),
		topics:    topics,
		published: NewLineCap(log, slog.LevelInfo, MsgPublishedMore),
		dropped:   NewLineCap(log, slog.LevelWarn, MsgDropped, slog.String("reason", "client write queue full")),
		lost:      NewLineCap(log, slog.LevelWarn, MsgDropped, slog.String("reason", reasonInflightEnded)),
		refused:   NewLineCap(log, slog.LevelInfo, MsgSubRefusedMore),
	}
	for _, b := range eventsAtInfo {
		h.provides[b] = true
	}
	for _, b := range eventsAtDebug {
		h.provides[b] = h.debug
	}
	return h
}

func (h *Hook) ID() string { return "events" }

// Provides is asked for every hook on every event of every packet, so it is a table lookup.
func (h *Hook) Provides(b byte) bool { return h.provides[b] }

// eventsAtInfo are the hooks that log at info and above; eventsAtDebug only at debug.
var (
	eventsAtInfo = []byte{
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPublished, mqtt.OnPublishDropped,
		mqtt.OnQosDropped, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnWillSent,
		mqtt.OnClientExpired, mqtt.OnPacketIDExhausted, mqtt.OnStopped,
		mqtt.OnPacketRead, // at info too, to tell the probe's visits (OnSessionEstablished)
	}
	eventsAtDebug = []byte{
		mqtt.OnStarted, mqtt.OnConnect, mqtt.OnSessionEstablish, mqtt.OnPacketSent,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnRetainMessage, mqtt.OnRetainedExpired,
	}
)

// Init starts the once-a-second summaries of capped lines.
func (h *Hook) Init(any) error {
	h.published.Start()
	h.dropped.Start()
	h.lost.Start()
	h.refused.Start()
	return nil
}

// Stop writes the last summaries.
func (h *Hook) Stop() error {
	h.published.Close()
	h.dropped.Close()
	h.lost.Close()
	h.refused.Close()
	return nil
}

// OnSessionEstablished is MqttServer's ClientConnected: mochi calls it once the CONNECT is
// accepted and the session is set up, on the client's own goroutine.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	attrs := []slog.Attr{
		slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote),
		slog.String("listener", cl.Net.Listener),
		slog.Int("protocol", int(cl.Properties.ProtocolVersion)),
		slog.Bool("clean", pk.Connect.Clean),
		slog.Int("keepalive", int(cl.State.Keepalive)),
	}
	if len(cl.Properties.Username) > 0 {
		attrs = append(attrs, slog.String("username", string(cl.Properties.Username)))
	}
	h.connected(cl, pk, attrs)
}

// connected logs a client's arrival. The container health probe connects every few seconds:
// its visits are debug lines. A client that only looks like it is logged at info as soon as it
// does anything else (health.Visits).
func (h *Hook) connected(cl *mqtt.Client, pk packets.Packet, attrs []slog.Attr) {
	reveal := func() { h.log.LogAttrs(context.Background(), slog.LevelInfo, MsgConnected, attrs...) }
	if h.probe.Arrive(cl, pk, reveal) {
		h.log.LogAttrs(context.Background(), slog.LevelDebug, MsgConnected, attrs...)
		return
	}
	reveal()
}

func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if cl.Net.Conn == nil {
		// Not a connection: mochi replaying a session from the -data store at start.
		level := slog.LevelInfo
		msg := MsgRestored
		if expire {
			level, msg = slog.LevelDebug, "stale clean session discarded"
		}
		h.log.LogAttrs(context.Background(), level, msg, slog.String("client", cl.ID),
			slog.String("username", string(cl.Properties.Username)))
		return
	}
	reason, detail := DisconnectReason(cl, err)
	attrs := []slog.Attr{
		slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote),
		slog.String("reason", reason),
	}
	if detail != "" {
		attrs = append(attrs, slog.String("error", detail))
	}
	attrs = append(attrs, slog.Bool("session_kept", !expire))
	level := slog.LevelInfo
	if h.probe.Leave(cl, reason == "normal") {
		level = slog.LevelDebug
	}
	h.log.LogAttrs(context.Background(), level, MsgDisconnected, attrs...)
}

// DisconnectReason names why a client went: "normal" (it sent DISCONNECT), "taken-over" (the
// same id connected again), "keepalive-timeout" (silent for 1.5× its keep-alive),
// "server-shutdown", "connection-lost" (closed without DISCONNECT), the reason an error names
// itself (ReasonError: "slow-consumer" from package limits) or "error".
func DisconnectReason(cl *mqtt.Client, err error) (reason, detail string) {
	cause := cl.StopCause()
	var netErr net.Error
	var named ReasonError
	switch {
	case cl.IsTakenOver() || errors.Is(cause, packets.ErrSessionTakenOver) || errors.Is(err, packets.ErrSessionTakenOver):
		return "taken-over", ""
	case errors.Is(err, packets.ErrServerShuttingDown) || errors.Is(cause, packets.ErrServerShuttingDown):
		return "server-shutdown", ""
	case err == nil || errors.Is(cause, packets.CodeDisconnect):
		return "normal", ""
	case errors.As(err, &named):
		return named.DisconnectReason(), ""
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return "keepalive-timeout", ""
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return "connection-lost", ""
	}
	return "error", err.Error()
}

// ReasonError is an error that ends a connection and names the reason the disconnect line gives.
type ReasonError interface {
	error
	DisconnectReason() string
}

func (h *Hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if pk.Ignore { // -data delivered it ahead of the ack, and this was logged then (package store)
		return
	}
	if h.debug && h.unconsumed(pk.TopicName) {
		h.log.LogAttrs(context.Background(), slog.LevelDebug, "message not consumed: no subscriber",
			slog.String("client", cl.ID), slog.String("topic", pk.TopicName))
	}
	if !h.published.Allow() {
		return
	}
	h.log.LogAttrs(context.Background(), slog.LevelInfo, MsgPublished,
		slog.String("client", cl.ID),
		slog.String("topic", pk.TopicName),
		slog.Int("qos", int(pk.FixedHeader.Qos)),
		slog.Bool("retain", pk.FixedHeader.Retain),
		slog.Int("bytes", len(pk.Payload)),
	)
}

func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	for i, f := range pk.Filters {
		if i >= len(reasonCodes) {
			break
		}
		if code := reasonCodes[i]; code >= packets.ErrUnspecifiedError.Code {
			if !h.refused.Allow() {
				continue
			}
			// 0x80 for MQTT 3.1.1; MQTT 5 says why (0x87 not authorised, 0x97 quota exceeded, …)
			h.log.LogAttrs(context.Background(), slog.LevelInfo, MsgSubRefused, slog.String("client", cl.ID),
				slog.String("filter", f.Filter), slog.String("code", fmt.Sprintf("%#02x", code)))
			continue
		}
		h.log.LogAttrs(context.Background(), slog.LevelInfo, MsgSubscribed, slog.String("client", cl.ID),
			slog.String("filter", f.Filter), slog.Int("granted_qos", int(reasonCodes[i])))
	}
}

func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if pk.PacketID == 0 {
		// Not an UNSUBSCRIBE from the client: mochi dropping a clean session's subscriptions.
		h.log.LogAttrs(context.Background(), slog.LevelDebug, "subscriptions removed with the session",
			slog.String("client", cl.ID), slog.Int("filters", len(pk.Filters)))
		return
	}
	for _, f := range pk.Filters {
		h.log.LogAttrs(context.Background(), slog.LevelInfo, MsgUnsubscribed,
			slog.String("client", cl.ID), slog.String("filter", f.Filter))
	}
}

func (h *Hook) unconsumed(topic string) bool {
	subs := h.topics.Subscribers(topic)
	return len(subs.Subscriptions) == 0 && len(subs.Shared) == 0 && len(subs.InlineSubscriptions) == 0
}

// OnPublishDropped: mochi dropped a message for a client whose write queue was full
// (-max-pending-writes). Counted into the once-a-second summary past the cap.
func (h *Hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if !h.dropped.Allow() {
		return
	}
	h.log.LogAttrs(context.Background(), slog.LevelWarn, MsgDropped, slog.String("client", cl.ID),
		slog.String("topic", pk.TopicName), slog.String("reason", "client write queue full"))
}

// OnQosDropped: a QoS 1 or 2 message left a client's in-flight store undelivered: it expired
// (MQTT 5 message expiry), its clean session ended, or the client refused it; capped like the
// other per-message lines. When a persistent session moves to a new connection mochi clears the
// old one's copy too: that is no loss, so it is only a debug line. mochi's expiry sweep calls
// this twice for each message, the second time with only its packet id (server.go:1738): that
// call is not a second loss.
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == 0 {
		return
	}
	if cl.IsTakenOver() {
		h.log.LogAttrs(context.Background(), slog.LevelDebug, "in-flight message moved to the new connection",
			slog.String("client", cl.ID), slog.Int("packet_id", int(pk.PacketID)))
		return
	}
	if !h.lost.Allow() {
		return
	}
	h.log.LogAttrs(context.Background(), slog.LevelWarn, MsgDropped, slog.String("client", cl.ID),
		slog.Int("packet_id", int(pk.PacketID)), slog.String("reason", reasonInflightEnded))
}

const reasonInflightEnded = "in-flight message expired or its session ended"

func (h *Hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.log.LogAttrs(context.Background(), slog.LevelInfo, MsgWillSent, slog.String("client", cl.ID),
		slog.String("topic", pk.TopicName), slog.Int("qos", int(pk.FixedHeader.Qos)), slog.Bool("retain", pk.FixedHeader.Retain))
}

// OnClientExpired: a disconnected persistent session was kept past its expiry and deleted.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.log.LogAttrs(context.Background(), slog.LevelInfo, MsgExpired, slog.String("client", cl.ID))
}

func (h *Hook) OnPacketIDExhausted(cl *mqtt.Client, pk packets.Packet) {
	h.log.LogAttrs(context.Background(), slog.LevelWarn, "packet ids exhausted: message not sent",
		slog.String("client", cl.ID), slog.String("topic", pk.TopicName))
}

// The hooks below are enabled at debug only (see Provides): one line per packet or step.

func (h *Hook) OnStarted() {
	h.log.LogAttrs(context.Background(), slog.LevelDebug, "listeners serving")
}

// OnConnect is the article's ValidatingConnection before the credentials are checked. The
// password is never logged, only whether one was given.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	h.log.LogAttrs(context.Background(), slog.LevelDebug, "client connecting",
		slog.String("client", cl.ID), slog.String("remote", cl.Net.Remote),
		slog.String("username", string(pk.Connect.Username)), slog.Bool("password", pk.Connect.PasswordFlag),
		slog.Bool("clean", pk.Connect.Clean), slog.Bool("will", pk.Connect.WillFlag))
	return nil
}

// OnSessionEstablish is the article's PreparingSession: credentials accepted, session not yet set up.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.log.LogAttrs(context.Background(), slog.LevelDebug, "preparing session",
		slog.String("client", cl.ID), slog.Bool("clean", pk.Connect.Clean))
}

// OnPacketRead is the article's InterceptingInboundPacket.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.probe.Sent(cl, pk)
	if h.debug {
		h.log.LogAttrs(context.Background(), slog.LevelDebug, MsgPacketIn, packetAttrs(cl, pk)...)
	}
	return pk, nil
}

// OnPacketSent is the article's InterceptingOutboundPacket, after the bytes are written.
// (mochi has consumed the buffer by then, so b is empty.)
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	h.log.LogAttrs(context.Background(), slog.LevelDebug, MsgPacketOut, packetAttrs(cl, pk)...)
}

// packetAttrs describes a packet without its payload or credentials: CONNECT packets carry a
// password, so only the packet type, id and topic are ever logged.
func packetAttrs(cl *mqtt.Client, pk packets.Packet) []slog.Attr {
	attrs := []slog.Attr{slog.String("client", cl.ID), slog.String("type", packets.PacketNames[pk.FixedHeader.Type])}
	if pk.PacketID != 0 {
		attrs = append(attrs, slog.Int("packet_id", int(pk.PacketID)))
	}
	if pk.TopicName != "" {
		attrs = append(attrs, slog.String("topic", pk.TopicName))
	}
	return attrs
}

// OnQosPublish is the article's ApplicationMessageEnqueued for QoS 1 and 2: stored in flight
// for a client (and sent, if it is connected).
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	h.log.LogAttrs(context.Background(), slog.LevelDebug, "message in flight",
		slog.String("client", cl.ID), slog.String("type", packets.PacketNames[pk.FixedHeader.Type]),
		slog.Int("packet_id", int(pk.PacketID)), slog.Int("resends", resends))
}

// OnQosComplete is the article's ClientAcknowledgedPublishPacket.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.log.LogAttrs(context.Background(), slog.LevelDebug, "message acknowledged",
		slog.String("client", cl.ID), slog.Int("packet_id", int(pk.PacketID)))
}

// OnRetainMessage is the article's RetainedMessageChanged (r is 1 stored, 0 unchanged, -1 deleted).
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	change := "stored"
	if r < 0 {
		change = "deleted"
	}
	h.log.LogAttrs(context.Background(), slog.LevelDebug, "retained message "+change,
		slog.String("client", cl.ID), slog.String("topic", pk.TopicName))
}

func (h *Hook) OnRetainedExpired(topic string) {
	h.log.LogAttrs(context.Background(), slog.LevelDebug, "retained message expired", slog.String("topic", topic))
}

func (h *Hook) OnStopped() {
	h.log.LogAttrs(context.Background(), slog.LevelInfo, MsgStopped)
}
