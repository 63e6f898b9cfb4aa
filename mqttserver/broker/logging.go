package broker

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"unicode"

	"mqttdemo/shared"
)

// NewLogger returns the broker's logger: coloured lines for people (text) or one JSON object per
// line for machines (json), at cfg.LogLevel and above.
func NewLogger(cfg Config, stdout io.Writer, getenv func(string) string) *slog.Logger {
	return slog.New(newHandler(cfg, stdout, getenv, cfg.LogLevel))
}

func newHandler(cfg Config, w io.Writer, getenv func(string) string, level slog.Level) slog.Handler {
	if cfg.LogFormat == "json" {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	}
	return &consoleHandler{
		console: shared.NewConsole(w, shared.UseColor(cfg.Color, w, getenv)),
		level:   level,
	}
}

// libraryLogger is the logger handed to mochi. Its own info lines ("mochi mqtt starting", …)
// repeat ours, so below debug it speaks only of warnings and errors.
func libraryLogger(cfg Config, w io.Writer, getenv func(string) string) *slog.Logger {
	level := max(cfg.LogLevel, slog.LevelWarn)
	if cfg.LogLevel <= slog.LevelDebug {
		level = slog.LevelDebug
	}
	return slog.New(quietListeners{newHandler(cfg, w, getenv, level)}).With("source", "mochi")
}

// quietListeners turns mochi's listener warnings (a blank message with the error that ended a
// connection: a refused login, a reset, …) into debug lines: the events hook has already said
// what happened at info.
type quietListeners struct{ slog.Handler }

func (h quietListeners) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l) || l == slog.LevelWarn && h.Handler.Enabled(ctx, slog.LevelDebug)
}

func (h quietListeners) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "" && r.Level == slog.LevelWarn {
		r.Level, r.Message = slog.LevelDebug, "connection ended"
		if !h.Handler.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietListeners) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietListeners{h.Handler.WithAttrs(attrs)}
}

func (h quietListeners) WithGroup(name string) slog.Handler {
	return quietListeners{h.Handler.WithGroup(name)}
}

// eventStyles gives each event message of the hook its tag and colour on the console.
var eventStyles = map[string]struct {
	tag   string
	style shared.Style
}{
	msgConnected:     {"CONNECTED", shared.StyleGood},
	msgDisconnected:  {"DISCONNECTED", shared.StyleWarn},
	msgPublished:     {"PUBLISHED", shared.StyleMessage},
	msgSubscribed:    {"SUBSCRIBED", shared.StyleSubscribe},
	msgUnsubscribed:  {"UNSUBSCRIBED", shared.StyleUnsubscribe},
	msgStarted:       {"STARTED", shared.StyleGood},
	msgStopped:       {"STOPPED", shared.StyleInfo},
	msgAuthFailed:    {"AUTH-FAILED", shared.StyleError},
	msgPublishDenied: {"DENIED", shared.StyleError},
	msgRestored:      {"RESTORED", shared.StyleGood},
}

// consoleHandler is a slog.Handler that prints "15:04:05.000 TAG message key=value …".
type consoleHandler struct {
	console *shared.Console
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
	if ev, ok := eventStyles[r.Message]; ok {
		tag, style, text = ev.tag, ev.style, ""
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
	h.console.Line(style, tag, b.String())
	return nil
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

func levelStyle(l slog.Level) shared.Style {
	switch {
	case l >= slog.LevelError:
		return shared.StyleError
	case l >= slog.LevelWarn:
		return shared.StyleWarn
	case l >= slog.LevelInfo:
		return shared.StyleInfo
	}
	return shared.StyleDim
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
