// Command baremochi is the benchmark's reference: mochi-mqtt v2.7.9 with the same capabilities
// as mqttserver, an allow-all auth hook and nothing else (no events hook, library log at error
// level), so the benchmark can tell what our hooks and logging cost.
//
//	baremochi -listen 127.0.0.1:1883
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baremochi:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:1883", "TCP `address` to serve MQTT on")
	flag.Parse()
	server := mqtt.New(&mqtt.Options{
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Capabilities: mqtt.NewDefaultServerCapabilities(),
	})
	// mochi refuses every client unless a hook allows it.
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return fmt.Errorf("add allow hook: %w", err)
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *listen})); err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	if err := server.Serve(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	return server.Close()
}
