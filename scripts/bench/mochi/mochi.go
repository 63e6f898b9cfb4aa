// Package mochi is the benchmark's bare mochi-mqtt broker: the library version and capabilities
// mqttserver uses, an allow-all auth hook and nothing else (no events hook, library log at error
// level), so the benchmark can tell what our hooks and logging cost.
package mochi

import (
	"fmt"
	"log/slog"
	"os"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Tuning holds the settings an experiment may change; zero values keep mochi's defaults (what
// the benchmark measures).
type Tuning struct {
	MaxPendingWrites int32 // Capabilities.MaximumClientWritesPending (mochi: 8192)
	ReadBuffer       int   // Options.ClientNetReadBufferSize (mochi: 2048)
	WriteBuffer      int   // Options.ClientNetWriteBufferSize (mochi: 2048)
}

// Start serves MQTT on addr until Close; Serve returns once the listener is bound.
func Start(addr string, t Tuning) (*mqtt.Server, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	if t.MaxPendingWrites > 0 {
		caps.MaximumClientWritesPending = t.MaxPendingWrites
	}
	server := mqtt.New(&mqtt.Options{
		Logger:                   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Capabilities:             caps,
		ClientNetReadBufferSize:  t.ReadBuffer,
		ClientNetWriteBufferSize: t.WriteBuffer,
	})
	// mochi refuses every client unless a hook allows it.
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("add allow hook: %w", err)
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if err := server.Serve(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return server, nil
}
