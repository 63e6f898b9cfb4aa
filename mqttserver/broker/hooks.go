package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The messages of the events hook: the article's five client events, and start and stop.
const (
	msgConnected     = "client connected"
	msgDisconnected  = "client disconnected"
	msgPublished     = "message published"
	msgSubscribed    = "topic subscribed"
	msgUnsubscribed  = "topic unsubscribed"
	msgStarted       = "server started"
	msgStopped       = "server stopped"
	msgAuthFailed    = "authentication failed"
	msgPublishDenied = "publish denied"
	msgRestored      = "session restored"
)

// eventsHook logs one line per client event, as the article's MqttServer event handlers do.
// Hooks run on the client's own goroutine, so each one only formats a line and returns.
type eventsHook struct {
	mqtt.HookBase
	log *slog.Logger
}

func (h *eventsHook) ID() string { return "events" }

func (h *eventsHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnPublished,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnStopped,
	}, []byte{b})
}

func (h *eventsHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
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
	h.log.LogAttrs(context.Background(), slog.LevelInfo, msgConnected, attrs...)
}

func (h *eventsHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if cl.Net.Conn == nil {
		// Not a connection: mochi replaying a session from the -data store at start.
		level := slog.LevelInfo
		msg := msgRestored
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
	h.log.LogAttrs(context.Background(), slog.LevelInfo, msgDisconnected, attrs...)
}

// DisconnectReason names why a client went: "normal" (it sent DISCONNECT), "taken-over" (the
// same id connected again), "keepalive-timeout" (silent for 1.5× its keep-alive),
// "server-shutdown", "connection-lost" (closed without DISCONNECT) or "error".
func DisconnectReason(cl *mqtt.Client, err error) (reason, detail string) {
	cause := cl.StopCause()
	var netErr net.Error
	switch {
	case cl.IsTakenOver() || errors.Is(cause, packets.ErrSessionTakenOver) || errors.Is(err, packets.ErrSessionTakenOver):
		return "taken-over", ""
	case errors.Is(err, packets.ErrServerShuttingDown) || errors.Is(cause, packets.ErrServerShuttingDown):
		return "server-shutdown", ""
	case err == nil || errors.Is(cause, packets.CodeDisconnect):
		return "normal", ""
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return "keepalive-timeout", ""
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return "connection-lost", ""
	}
	return "error", err.Error()
}

func (h *eventsHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	h.log.LogAttrs(context.Background(), slog.LevelInfo, msgPublished,
		slog.String("client", cl.ID),
		slog.String("topic", pk.TopicName),
		slog.Int("qos", int(pk.FixedHeader.Qos)),
		slog.Bool("retain", pk.FixedHeader.Retain),
		slog.Int("bytes", len(pk.Payload)),
	)
}

func (h *eventsHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	for i, f := range pk.Filters {
		attrs := []slog.Attr{slog.String("client", cl.ID), slog.String("filter", f.Filter)}
		if i < len(reasonCodes) && reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
			attrs = append(attrs, slog.String("granted", "refused"))
		} else if i < len(reasonCodes) {
			attrs = append(attrs, slog.Int("granted_qos", int(reasonCodes[i])))
		}
		h.log.LogAttrs(context.Background(), slog.LevelInfo, msgSubscribed, attrs...)
	}
}

func (h *eventsHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if pk.PacketID == 0 {
		// Not an UNSUBSCRIBE from the client: mochi dropping a clean session's subscriptions.
		h.log.LogAttrs(context.Background(), slog.LevelDebug, "subscriptions removed with the session",
			slog.String("client", cl.ID), slog.Int("filters", len(pk.Filters)))
		return
	}
	for _, f := range pk.Filters {
		h.log.LogAttrs(context.Background(), slog.LevelInfo, msgUnsubscribed,
			slog.String("client", cl.ID), slog.String("filter", f.Filter))
	}
}

func (h *eventsHook) OnStopped() {
	h.log.LogAttrs(context.Background(), slog.LevelInfo, msgStopped)
}
