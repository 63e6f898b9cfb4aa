package eventlog

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"unicode"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/shared/console"
)

// Settings say how the log looks: the least level written, "text" (coloured lines for people)
// or "json" (one object per line for machines), and when to colour: auto, always or never.
type Settings struct {
	Level  slog.Level
	Format string
	Color  string
}

// NewLogger returns the broker's logger, writing to w as s says.
func NewLogger(s Settings, w io.Writer, getenv func(string) string) *slog.Logger {
	return slog.New(newHandler(s, w, console.UseColor(s.Color, w, getenv), s.Level))
}

// NewLoggers returns the broker's logger and mochi's, both writing to stdout through one
// Writer (Close it last, to write the final lines).
func NewLoggers(s Settings, stdout io.Writer, getenv func(string) string) (log, library *slog.Logger, out *Writer) {
	color := console.UseColor(s.Color, stdout, getenv) // asked of the terminal, not of the buffer
	out = NewWriter(stdout)
	log = slog.New(newHandler(s, out, color, s.Level))
	out.onDrop = func(n int) {
		log.Warn("log lines dropped: the output could not keep up", "count", n)
	}
	return log, LibraryLogger(s, out, color), out
}

func newHandler(s Settings, w io.Writer, color bool, level slog.Level) slog.Handler {
	if s.Format == "json" {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	}
	return &consoleHandler{console: console.New(w, color), level: level}
}

// LibraryLogger is the logger handed to mochi. Its own info lines ("mochi mqtt starting", …)
// repeat ours, so below debug it speaks only of warnings and errors.
func LibraryLogger(s Settings, w io.Writer, color bool) *slog.Logger {
	level := max(s.Level, slog.LevelWarn)
	if s.Level <= slog.LevelDebug {
		level = slog.LevelDebug
	}
	return slog.New(libraryHandler{newHandler(s, w, color, level)}).With("source", "mochi")
}

// libraryHandler adapts mochi's log lines. Its warning about keep-alives of 5 s or less (0
// included, before it knows the client id) becomes debug. Its listener warnings (a blank message with the error
// that ended a connection: a refused login, a reset, …) become debug lines, since the events hook
// has said what happened at info. And mochi logs whole packets in some lines ("error processing
// packet" with a second CONNECT, for one): a CONNECT carries the password, so a packet is
// replaced by its type, id and topic.
type libraryHandler struct{ slog.Handler }

func (h libraryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l) || l == slog.LevelWarn && h.Handler.Enabled(ctx, slog.LevelDebug)
}

func (h libraryHandler) Handle(ctx context.Context, r slog.Record) error {
	level, msg := r.Level, r.Message
	switch {
	case msg == "" && level == slog.LevelWarn:
		level, msg = slog.LevelDebug, "connection ended"
	case msg == mqtt.ErrMinimumKeepalive.Error():
		level = slog.LevelDebug // the keep-alive floor (-min-keepalive) deals with it
	case msg == "client store quota reached":
		level = slog.LevelDebug // one per message: summed up once a second (package limits)
	}
	if !h.Handler.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactPacket(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func redactPacket(a slog.Attr) slog.Attr {
	switch pk := a.Value.Any().(type) {
	case packets.Packet:
		return slog.String(a.Key, describePacket(pk))
	case *packets.Packet:
		return slog.String(a.Key, describePacket(*pk))
	}
	return a
}

func describePacket(pk packets.Packet) string {
	s := packets.PacketNames[pk.FixedHeader.Type]
	if pk.PacketID != 0 {
		s += " id=" + strconv.Itoa(int(pk.PacketID))
	}
	if pk.TopicName != "" {
		s += " topic=" + pk.TopicName
	}
	return s
}

func (h libraryHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	for i := range attrs {
		attrs[i] = redactPacket(attrs[i])
	}
	return libraryHandler{h.Handler.WithAttrs(attrs)}
}

func (h libraryHandler) WithGroup(name string) slog.Handler {
	return libraryHandler{h.Handler.WithGroup(name)}
}

// consoleHandler is a slog.Handler that prints "15:04:05.000 TAG message key=value …".
type consoleHandler struct {
	console *console.Console
	level   slog.Leveler
	attrs   []slog.Attr
}

func (h *consoleHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *consoleHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup is not used by the broker or mochi; groups are flattened.
func (h *consoleHandler) WithGroup(string) slog.Handler { return h }

func (h *consoleHandler) Handle(_ context.Context, r slog.Record) error {
	tag, style, text := levelTag(r.Level), levelStyle(r.Level), r.Message
	if ev, ok := eventStyles[r.Message]; ok && !h.library() {
		tag, style, text = ev.tag, ev.style, ""
	}
	if what, ok := summaries[r.Message]; ok { // say it in words: "… 12345 more messages published in the last second"
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "count" {
				text = "… " + a.Value.String() + " more " + what + " in the last second"
			}
			return true
		})
		r = slog.NewRecord(r.Time, r.Level, "", r.PC)
	}
	var b strings.Builder
	b.WriteString(text)
	add := func(a slog.Attr) bool {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(quoteIfNeeded(a.Value.String()))
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if b.Len() == 0 {
		b.WriteString(r.Message) // an event with nothing to add, such as "server stopped"
	}
	h.console.Line(style, tag, b.String())
	return nil
}

// library tells mochi's handler (its lines carry source=mochi): mochi's own "client
// disconnected" is not our event.
func (h *consoleHandler) library() bool {
	for _, a := range h.attrs {
		if a.Key == "source" {
			return true
		}
	}
	return false
}

func levelTag(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

func levelStyle(l slog.Level) console.Style {
	switch {
	case l >= slog.LevelError:
		return console.StyleError
	case l >= slog.LevelWarn:
		return console.StyleWarn
	case l >= slog.LevelInfo:
		return console.StyleInfo
	}
	return console.StyleDim
}

func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
