// Package broker is the mqttserver program: a mochi-mqtt broker that logs every client event.
package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/shared/console"
)

// Broker is a configured mochi server with its listeners bound.
type Broker struct {
	server *mqtt.Server
	tcp    *listeners.Net
	// endpoints are the bound addresses, for the "server started" line.
	endpoints []endpoint
	http      *http.Server // -http-listen: /healthz, /stats and the live page
	page      *livePage    // with -http-listen, or nil
	httpLn    net.Listener
	log       *slog.Logger
	data      *store // -data, or nil
	flow      *flowControl
	access    *accessHook

	closeOnce sync.Once // mochi's Close panics when called twice
	closeErr  error
}

// New assembles a broker from cfg and binds its listeners; Start serves them.
func New(cfg Config, log, libraryLog *slog.Logger) (_ *Broker, err error) {
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits() // a Config built in code without limits gets the flags' defaults
	}
	if err := cfg.Limits.check(); err != nil {
		return nil, err
	}
	caps := cfg.Limits.capabilities()
	cfg.Limits.sessionCapabilities(caps)
	server := mqtt.New(&mqtt.Options{
		Logger:       libraryLog,
		Capabilities: caps,
		// mochi's per-connection read buffer (2 KiB by default) is held by every idle connection;
		// while data flows, the connection layer reads ahead in 64 KiB (slowclients.go).
		ClientNetReadBufferSize: idleReadBuffer,
	})
	var page *livePage
	if cfg.HTTPListen != "" { // the live page: its own copy of the event lines (livepage.go)
		lines := new(lineRing)
		log = teeLog(log, lines)
		page = newLivePage(server, lines)
	}
	b := &Broker{server: server, log: log, page: page}
	if !cfg.blockingWrites {
		b.flow = newFlowControl(server, cfg.Limits, log)
	}
	var data *store
	defer func() {
		if err != nil { // free the ports and the data file for another attempt
			b.closeListeners()
			if data != nil {
				_ = data.Stop()
			}
		}
	}()
	// Before the others: it mends mochi's packet-id and resend-order flaws (mochifixes.go).
	fixes := &packetIDHook{server: server, log: log}
	if err := server.AddHook(fixes, nil); err != nil {
		return nil, fmt.Errorf("add mochi fixes hook: %w", err)
	}
	if !cfg.noEvents {
		if err := server.AddHook(newEventsHook(log, server.Topics), nil); err != nil {
			return nil, fmt.Errorf("add events hook: %w", err)
		}
	}
	if page != nil {
		if err := server.AddHook(page, nil); err != nil {
			return nil, fmt.Errorf("add live page hook: %w", err)
		}
	}
	if err := addLimits(server, cfg.Limits, log); err != nil {
		return nil, err
	}
	if b.flow != nil {
		if err := server.AddHook(&flowHook{flow: b.flow}, nil); err != nil {
			return nil, fmt.Errorf("add flow-control hook: %w", err)
		}
	}
	if b.access, err = addAccess(server, cfg.AuthFile, log); err != nil {
		return nil, err
	}
	if page != nil && cfg.AuthFile != "" { // the page asks for the same users, with HTTP basic auth
		page.checkUser = b.access.pageLogin
	}
	if cfg.DataDir != "" {
		if data, err = addStorage(server, cfg.DataDir, cfg.DataSetAside, log); err != nil {
			return nil, err
		}
		log.Info("retained messages and persistent sessions are kept on disk", "file", filepath.Join(cfg.DataDir, DataFile))
		fixes.persist = func(cl *mqtt.Client, pk packets.Packet) { data.storeInflight(cl, pk, pk.Created) }
		fixes.deliveredFirst = true
		b.access.withheld = data.OnQosDropped
	}
	// After the store: a message it stored and this hook drops is deleted from the file too.
	queues := newQueueHook(server, cfg.Limits, log)
	if data != nil {
		queues.stored = data.OnQosDropped
	}
	if err := server.AddHook(queues, nil); err != nil {
		return nil, fmt.Errorf("add session limits hook: %w", err)
	}
	if err := b.addListeners(cfg); err != nil {
		return nil, err
	}
	b.data = data
	return b, nil
}

// Addr is the address the MQTT TCP listener is bound to (useful after -listen 127.0.0.1:0).
func (b *Broker) Addr() string { return b.tcp.Address() }

// Start serves the listeners in the background.
func (b *Broker) Start() error {
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if b.data != nil {
		sessions, subs, inflight, retained := recount(b.server)
		b.log.Info(msgLoaded, "sessions", sessions, "subscriptions", subs,
			"queued", inflight, "retained", retained)
	}
	if b.http != nil {
		go func() { _ = b.http.Serve(b.httpLn) }()
	}
	attrs := make([]any, 0, 2*len(b.endpoints))
	for _, e := range b.endpoints {
		attrs = append(attrs, e.name, e.url)
	}
	b.log.Info(msgStarted, attrs...)
	if b.page != nil {
		b.page.announce(b.log, b.httpLn.Addr())
	}
	return nil
}

// Reload reads the -auth file again; a file that does not load leaves the rules in force.
func (b *Broker) Reload() error { return b.access.Reload() }

// Close disconnects every client and stops the listeners. It may be called more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		if b.http != nil {
			_ = b.http.Close()
		}
		b.closeErr = b.server.Close()
	})
	return b.closeErr
}

// closeListeners frees the addresses bound by a New that failed later.
func (b *Broker) closeListeners() {
	b.server.Listeners.CloseAll(func(string) {})
	if b.httpLn != nil {
		_ = b.httpLn.Close()
	}
}

// Run is the whole mqttserver program.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.HealthCheck {
		return HealthCheck(cfg.Listen)
	}
	if cfg.HashPassword {
		return HashPassword(stdin, stdout)
	}
	log, libraryLog, out := newLoggers(cfg, stdout, getenv)
	defer out.Close()
	b, err := New(cfg, log, libraryLog)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		_ = b.Close()
		return err
	}
	enter := console.EnterPresses(stdin)
	if enter != nil {
		log.Info("press Enter to stop the server")
	}
	var hangup chan os.Signal // SIGHUP reloads the -auth file, as it does Mosquitto's files
	if cfg.AuthFile != "" {
		hangup = make(chan os.Signal, 1)
		signal.Notify(hangup, syscall.SIGHUP)
		defer signal.Stop(hangup)
	}
	for {
		select {
		case <-ctx.Done():
			return b.Close()
		case <-enter:
			return b.Close()
		case <-hangup:
			_ = b.Reload() // a bad file is logged and changes nothing
		}
	}
}
