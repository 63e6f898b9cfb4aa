// Package broker is the mqttserver program: the configuration (config.go), the listeners
// (listeners.go: TCP, TLS, WebSocket, HTTP) and the assembly of the parts into one mochi-mqtt
// broker (run.go: New lists them in order). What each part does lives in its own package:
// eventlog, access, limits, store, mochifix, livepage and health; none of them knows this one.
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

	"mqttdemo/mqttserver/access"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/health"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/livepage"
	"mqttdemo/mqttserver/mochifix"
	"mqttdemo/mqttserver/store"
	"mqttdemo/shared/console"
)

// Broker is a configured mochi server with its listeners bound.
type Broker struct {
	server *mqtt.Server
	tcp    *listeners.Net
	// endpoints are the bound addresses, for the "server started" line.
	endpoints []endpoint
	http      *http.Server   // -http-listen: /healthz, /stats and the live page
	page      *livepage.Page // with -http-listen, or nil
	httpLn    net.Listener
	listening []*steadyListener // every listener, for /healthz
	died      chan error        // a listener's death, for Run to stop on
	log       *slog.Logger
	data      *store.Store // -data, or nil
	flow      *limits.FlowControl
	retained  *limits.RetainedHook // nil without retained-message limits
	access    *access.Hook
	subs      *limits.SubscriptionHook
	aliases   *limits.AliasBudget
	// for /stats: the counters of the hooks that drop messages or count traffic
	fixes   *mochifix.Hook
	traffic *limits.Traffic
	queues  *limits.QueueHook
	expiry  *limits.ExpiryHook

	closeOnce sync.Once // mochi's Close panics when called twice
	closeErr  error
}

// New assembles a broker from cfg and binds its listeners; Start serves them. The parts are
// mochi hooks, added in this order: the mochi mends, the subscription limits, the event log,
// the live page, the limits, access control, the data store, and the session limits and
// message expiry that count what the store keeps.
func New(cfg Config, log, libraryLog *slog.Logger) (_ *Broker, err error) {
	if cfg.Limits == (limits.Limits{}) {
		cfg.Limits = limits.DefaultLimits() // a Config built in code without limits gets the flags' defaults
	}
	if err := cfg.Limits.Check(); err != nil {
		return nil, err
	}
	server := mqtt.New(&mqtt.Options{
		Logger:       libraryLog,
		Capabilities: cfg.Limits.Capabilities(),
		// mochi's per-connection read buffer (2 KiB by default) is held by every idle connection;
		// while data flows, the connection layer reads ahead in 64 KiB (package limits).
		ClientNetReadBufferSize: limits.IdleReadBuffer,
		// Every packet written through: the mends hold a packet by spoiling it (mochifix).
		ClientNetWriteBufferSize: mochifix.WriteBufferSize,
	})
	var page *livepage.Page
	if cfg.HTTPListen != "" { // the live page: its own copy of the event lines
		lines := new(livepage.LineRing)
		log = eventlog.Tee(log, lines)
		page = livepage.New(server, lines)
	}
	b := &Broker{server: server, log: log, page: page, died: make(chan error, 1), traffic: limits.NewTraffic()}
	if !cfg.blockingWrites {
		b.flow = limits.NewFlowControl(server, cfg.Limits, b.traffic, log)
	}
	var data *store.Store
	defer func() {
		if err != nil { // free the ports and the data file for another attempt
			b.closeListeners()
			if data != nil {
				_ = data.Stop()
			}
		}
	}()
	add := func(name string, h mqtt.Hook) error {
		if err := server.AddHook(h, nil); err != nil {
			return fmt.Errorf("add %s hook: %w", name, err)
		}
		return nil
	}
	// First: the mends must see each packet and message before the other hooks do.
	fixes := mochifix.New(server, log)
	if err := add("mochi fixes", fixes); err != nil {
		return nil, err
	}
	b.fixes = fixes
	// Before the event log: it puts back the filters it refuses (limits.SubscriptionHook).
	b.subs = limits.NewSubscriptionHook(cfg.Limits)
	if err := add("subscription limits", b.subs); err != nil {
		return nil, err
	}
	if !cfg.noEvents {
		if err := add("events", eventlog.NewHook(log, server.Topics)); err != nil {
			return nil, err
		}
	}
	if page != nil {
		if err := add("live page", page); err != nil {
			return nil, err
		}
	}
	// After the hooks that log packets as the client sent them, before those that look them up.
	ids := mochifix.NewPacketIDs(server)
	if err := add("packet ids", ids); err != nil {
		return nil, err
	}
	if b.aliases, err = limits.AddPacketLimits(server, cfg.Limits, b.traffic, log); err != nil {
		return nil, err
	}
	// Before the store, which keeps what is retained: it may take the retain flag off.
	if b.retained = limits.NewRetainedHook(server, cfg.Limits, log); b.retained != nil {
		if err := add("retained limits", b.retained); err != nil {
			return nil, err
		}
	}
	if b.flow != nil {
		if err := add("flow-control", b.flow.Hook()); err != nil {
			return nil, err
		}
	}
	if b.access, err = access.Add(server, cfg.AuthFile, cfg.MaxFailedLogins, log); err != nil {
		return nil, err
	}
	if page != nil && cfg.AuthFile != "" { // the page asks for the same users, with HTTP basic auth
		page.CheckUser = b.access.PageLogin
		page.Recheck = b.access.PageViewer // a reload ends the streams of viewers it removes
		// The packet flow's payloads: the viewer's read rules in force, as for a subscriber.
		page.MayRead = func(user, topic string) bool {
			return b.access.OnACLCheck(&mqtt.Client{Properties: mqtt.ClientProperties{Username: []byte(user)}}, topic, false)
		}
		b.access.Reloaded = page.Reloaded
	}
	queues := limits.NewQueueHook(server, cfg.Limits, log)
	expiry := limits.NewExpiryHook(server, cfg.Limits, log)
	b.queues, b.expiry = queues, expiry
	expiry.Dropped = queues.OnQosDropped
	if cfg.DataDir != "" {
		if data, err = store.Add(server, cfg.DataDir, cfg.DataSetAside, log); err != nil {
			return nil, err
		}
		log.Info("retained messages and persistent sessions are kept on disk", "file", filepath.Join(cfg.DataDir, store.DataFile))
		fixes.Persist = func(cl *mqtt.Client, pk packets.Packet) { data.StoreInflight(cl, pk, pk.Created) }
		fixes.DeliveredFirst = true
		fixes.Dropped = data.OnQosDropped
		data.IDs = ids
		b.access.Withheld = data.OnQosDropped
		queues.Stored = data.OnQosDropped // a message dropped here is deleted from the file too
		expiry.Dropped = func(cl *mqtt.Client, pk packets.Packet) {
			data.OnQosDropped(cl, pk)
			queues.OnQosDropped(cl, pk)
		}
		expiry.RetainedDropped = data.OnRetainedExpired
	}
	if b.retained != nil {
		dropped := expiry.RetainedDropped
		expiry.RetainedDropped = func(topic string) {
			if dropped != nil {
				dropped(topic)
			}
			b.retained.Forget(topic)
		}
	}
	// After the store, so that the store has the message the session limits drop.
	if err := add("session limits", queues); err != nil {
		return nil, err
	}
	if err := add("message expiry", expiry); err != nil {
		return nil, err
	}
	release := limits.NewReleaseHook(server)
	release.MemoryBase = cfg.memoryBase
	if err := add("memory release", release); err != nil {
		return nil, err
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
	if b.data != nil && b.retained != nil {
		b.retained.Recount() // those loaded from the data file
	}
	if b.data != nil {
		sessions, subs, inflight, retained := store.Recount(b.server)
		b.log.Info(eventlog.MsgLoaded, "sessions", sessions, "subscriptions", subs,
			"queued", inflight, "retained", retained)
	}
	if b.http != nil {
		go func() { _ = b.http.Serve(b.httpLn) }()
	}
	attrs := make([]any, 0, 2*len(b.endpoints))
	for _, e := range b.endpoints {
		attrs = append(attrs, e.name, e.url)
	}
	b.log.Info(eventlog.MsgStarted, attrs...)
	if b.page != nil {
		b.page.Announce(b.log, b.httpLn.Addr())
	}
	return nil
}

// Died receives an error when a listener stops for a reason that will not pass (steadyListener
// waits out the others): the broker no longer serves everything it was asked to.
func (b *Broker) Died() <-chan error { return b.died }

// Reload reads the -auth file again; a file that does not load leaves the rules in force.
func (b *Broker) Reload() error { return b.access.Reload() }

// Close disconnects every client and stops the listeners. It may be called more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		if b.http != nil {
			_ = b.http.Close()
		}
		b.closeErr = b.server.Close()
		if b.data != nil && b.closeErr == nil {
			b.closeErr = b.data.Unsaved() // exit non-zero: a service manager sees the failing disk
		}
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
		if err := health.Check(cfg.Listen); err != nil || cfg.HTTPListen == "" {
			return err
		}
		return health.CheckHTTP(cfg.HTTPListen) // the other listeners too
	}
	if cfg.HashPassword {
		return access.HashPassword(stdin, stdout)
	}
	log, libraryLog, out := eventlog.NewLoggers(cfg.logSettings(), stdout, getenv)
	defer out.Close()
	var stopGC func()
	cfg.memoryBase, stopGC = paceGC(cfg, getenv)
	defer stopGC()
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
		log.Info(console.EnterPrompt(stdin, "stop the server"))
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
		case err := <-b.Died(): // exit non-zero, for Docker's restart policy or systemd
			_ = b.Close()
			return err
		}
	}
}
