// Package broker is the mqttserver program: a mochi-mqtt broker that logs every client event.
package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"mqttdemo/shared"
)

// Broker is a configured mochi server with its listeners bound.
type Broker struct {
	server *mqtt.Server
	tcp    *listeners.TCP
	log    *slog.Logger
}

// New assembles a broker from cfg and binds its listeners; Start serves them.
func New(cfg Config, log, libraryLog *slog.Logger) (*Broker, error) {
	server := mqtt.New(&mqtt.Options{
		Logger:       libraryLog,
		Capabilities: mqtt.NewDefaultServerCapabilities(),
	})
	b := &Broker{server: server, log: log}
	// Before the others: it mends mochi's packet-id and resend-order flaws (mochifixes.go).
	if err := server.AddHook(&packetIDHook{server: server, log: log}, nil); err != nil {
		return nil, fmt.Errorf("add mochi fixes hook: %w", err)
	}
	if err := server.AddHook(&eventsHook{log: log}, nil); err != nil {
		return nil, fmt.Errorf("add events hook: %w", err)
	}
	// mochi refuses every client unless a hook allows it; the article's broker is open.
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("add allow-all hook: %w", err)
	}
	log.Warn("anonymous access: any client may connect, publish and subscribe to any topic")
	b.tcp = listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Listen})
	if err := server.AddListener(b.tcp); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return b, nil
}

// Addr is the address the MQTT TCP listener is bound to (useful after -listen 127.0.0.1:0).
func (b *Broker) Addr() string { return b.tcp.Address() }

// Start serves the listeners in the background.
func (b *Broker) Start() error {
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	b.log.Info(msgStarted, "mqtt", "tcp://"+b.Addr())
	return nil
}

// Close disconnects every client and stops the listeners.
func (b *Broker) Close() error { return b.server.Close() }

// Run is the whole mqttserver program.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.HealthCheck {
		return HealthCheck(cfg.Listen)
	}
	log := NewLogger(cfg, stdout, getenv)
	b, err := New(cfg, log, libraryLogger(cfg, stdout, getenv))
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		_ = b.Close()
		return err
	}
	enter := shared.EnterPresses(stdin)
	if enter != nil {
		log.Info("press Enter to stop the server")
	}
	select {
	case <-ctx.Done():
	case <-enter:
	}
	return b.Close()
}
