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

// Start serves MQTT on addr until Close; Serve returns once the listener is bound.
func Start(addr string) (*mqtt.Server, error) {
	server := mqtt.New(&mqtt.Options{
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Capabilities: mqtt.NewDefaultServerCapabilities(),
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
