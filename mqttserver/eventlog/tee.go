package eventlog

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"mqttdemo/shared/console"
)

// Tee returns log with its events also written, as the console's text lines at info and
// above, to lines.
func Tee(log *slog.Logger, lines io.Writer) *slog.Logger {
	text := &consoleHandler{console: console.New(lines, false), level: slog.LevelInfo}
	return slog.New(teeHandler{log.Handler(), text})
}

// teeHandler hands each record to both handlers, each at its own level.
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errA, errB error
	if t.a.Enabled(ctx, r.Level) {
		errA = t.a.Handle(ctx, r)
	}
	if t.b.Enabled(ctx, r.Level) {
		errB = t.b.Handle(ctx, r)
	}
	return errors.Join(errA, errB)
}

func (t teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(attrs), t.b.WithAttrs(attrs)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t.a.WithGroup(name), t.b.WithGroup(name)}
}
