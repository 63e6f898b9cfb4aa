package broker

import (
	"errors"
	"io"
	"log/slog"
	"time"

	"mqttdemo/mqttserver/access"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/store"
	"mqttdemo/shared/config"
	"mqttdemo/shared/console"
)

// DefaultListen is the article's endpoint: every interface, MQTT's standard port.
const DefaultListen = ":1883"

// Config is the broker's configuration, filled by Load.
type Config struct {
	Listen    string
	LogLevel  slog.Level
	LogFormat string // "text" (coloured, for people) or "json" (for machines)
	Color     string // auto, always, never
	// HealthCheck makes the program a probe: connect to Listen, exit 0 if a broker answers.
	HealthCheck bool
	// HashPassword makes the program print the bcrypt hash of the password on stdin, for -auth files.
	HashPassword bool
	// DataDir keeps retained messages and persistent sessions across restarts; "" keeps them in memory.
	DataDir string
	// DataSetAside moves a damaged data file aside and starts with an empty one, instead of stopping.
	DataSetAside bool
	// TLSListen serves MQTT over TLS with TLSCert and TLSKey; "" when no certificate is given.
	TLSListen, TLSCert, TLSKey string
	// WSListen serves MQTT over WebSocket; "" is off.
	WSListen string
	// HTTPListen serves /healthz, /stats ($SYS counters as JSON), /metrics (Prometheus) and the
	// live page; "" is off.
	HTTPListen string
	// AuthFile is the YAML file of users and their topic permissions; "" lets anyone in.
	AuthFile string
	// GCPercent paces the garbage collector (GOGC); 0 leaves the runtime's setting (GOGC, 100).
	GCPercent int
	// MaxFailedLogins is the budget of password checks a second for logins from addresses
	// without a recent successful login; 0 (a Config built in code) is no budget.
	MaxFailedLogins int
	limits.Limits
	// memoryBase is the soft memory limit Run set for the messages (gc.go), raised with the
	// clients by the limits' ReleaseHook; 0 is none.
	memoryBase int64
	// noEvents leaves the events hook out: the baseline of BenchmarkEventLog.
	noEvents bool
	// blockingWrites hands mochi the bare connections (no limits.FlowControl): for tests of what
	// mochi's blocking writes did to the rest of the broker.
	blockingWrites bool
}

var program = config.Program{
	Name:    "mqttserver",
	Summary: "an MQTT broker that logs every client event",
	Example: "  mqttserver -listen 127.0.0.1:1883 -log-level debug\n  MQTT_LISTEN=:1884 mqttserver\n" +
		"  mqttserver -data /var/lib/mqttserver -auth users.yaml -tls-cert certs/server.crt -tls-key certs/server.key \\\n" +
		"             -ws-listen :1882 -http-listen :8080",
	Exit: "  0 stopped; 1 could not start or serve, the message says why (a damaged -data file: see " + store.SetAsideFlag + ";\n" +
		"  a listener stopped for good, e.g. its socket closed: the broker exits rather than live on deaf);\n" +
		"  2 bad flag or variable",
}

// NewLogger returns the logger cfg asks for, writing to w.
func NewLogger(cfg Config, w io.Writer, getenv func(string) string) *slog.Logger {
	return eventlog.NewLogger(cfg.logSettings(), w, getenv)
}

// logSettings is how the log looks.
func (c Config) logSettings() eventlog.Settings {
	return eventlog.Settings{Level: c.LogLevel, Format: c.LogFormat, Color: c.Color}
}

// Load reads the configuration: defaults, then MQTT_* variables, then args.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := config.NewFlagSet(program, stderr)
	listen := config.NewChecked(DefaultListen, config.CheckListenAddress)
	level := config.NewChoice("info", "debug", "info", "warn", "error")
	format := config.NewChoice("text", "text", "json")
	color := console.NewColorChoice()
	fs.Var(listen, "listen", "TCP `address` to serve MQTT on (:1883 is every interface; 127.0.0.1:1883 only this machine)")
	fs.Var(level, "log-level", "least `level` logged: debug (every packet), info (client events), warn or error")
	fs.Var(format, "log-format", "log `format`: text (coloured lines for people) or json (one object per line)")
	fs.Var(color, "color", "colour the text log: `auto` (when a terminal), always or never")
	var health, hash bool
	fs.BoolVar(&health, "healthcheck", false, "do not serve: connect to -listen, exit 0 if a broker answers MQTT (and, with -http-listen, /healthz says every listener accepts), else 1 (a container healthcheck)")
	fs.BoolVar(&hash, "hash-password", false, "do not serve: read a password from standard input, print its bcrypt hash for an -auth file")
	var dataDir, authFile string
	fs.StringVar(&dataDir, "data", "", "keep retained messages and persistent sessions in `dir` (a bbolt file), so they survive a restart; empty: in memory")
	var setAside bool
	fs.BoolVar(&setAside, store.SetAsideFlag[1:], false, "when the -data file is damaged, rename it to mqttserver.db.damaged-TIME and start with no retained messages or stored sessions, instead of stopping")
	fs.StringVar(&authFile, "auth", "", "YAML `file` of users (password or bcrypt hash) and the topics each may publish and subscribe to; empty: anonymous access")
	maxFailedLogins := access.DefaultMaxFailedLogins
	fs.IntVar(&maxFailedLogins, "max-failed-logins", maxFailedLogins, "with -auth, password `checks` a second, all addresses together, for logins from addresses without a recent successful login "+
		"(a guessing flood spread over many addresses); past it they wait up to 2s, then are refused unchecked (CONNACK 3, 0x9F for MQTT 5), counted in /stats; 0 is no budget")
	tlsListen := config.NewChecked("", config.CheckListenAddress)
	wsListen := config.NewChecked("", config.CheckListenAddress)
	httpListen := config.NewChecked("", config.CheckListenAddress)
	var tlsCert, tlsKey string
	fs.Var(tlsListen, "tls-listen", "`address` to serve MQTT over TLS on (default "+DefaultTLSListen+" when -tls-cert and -tls-key are given)")
	fs.StringVar(&tlsCert, "tls-cert", "", "PEM `file` of the server certificate (and its chain) for -tls-listen; scripts/gen-certs.sh makes one")
	fs.StringVar(&tlsKey, "tls-key", "", "PEM `file` of the private key of -tls-cert")
	fs.Var(wsListen, "ws-listen", "`address` to serve MQTT over WebSocket on, e.g. :1882 (off when empty)")
	fs.Var(httpListen, "http-listen", "`address` to serve the live page (/), /healthz, /stats ($SYS counters, JSON) and /metrics (Prometheus) on, e.g. :8080 (off when empty); "+
		"at most 16 live pages at once, 4 per user (-auth) or address, past which a page is refused (429)")
	lim := limits.DefaultLimits()
	minKeepAlive := config.Duration(lim.MinKeepAlive)
	fs.IntVar(&lim.MaxPacketSize, "max-packet-size", lim.MaxPacketSize, "refuse (and disconnect) a client sending a packet over this many `bytes`, counted whole; "+
		"MQTT 5 clients are told it in the CONNACK (Maximum Packet Size) and told why they are disconnected (DISCONNECT 0x95); 0 is no limit")
	fs.IntVar(&lim.MaxPendingWrites, "max-pending-writes", lim.MaxPendingWrites, "`packets` queued for one client before messages to it are dropped (a slow reader); 8 bytes a slot")
	fs.Var(&minKeepAlive, "min-keepalive", "keep-alive `floor`: a client asking for less (but not 0) gets this, told to MQTT 5 clients in the CONNACK (Server Keep Alive); 0s is no floor")
	fs.IntVar(&lim.MaxTopicAliases, "max-topic-aliases", lim.MaxTopicAliases, "topic `aliases` one MQTT 5 client may set, told in the CONNACK (Topic Alias Maximum; the broker's Receive Maximum there is 1024, mochi's); "+
		"each holds a topic, so this bounds what one connection pins; an alias over it ends the connection (DISCONNECT 0x94); 0 is none")
	fs.IntVar(&lim.MaxTopicAliasBytes, "max-topic-alias-bytes", lim.MaxTopicAliasBytes, "`bytes` of the topics one MQTT 5 connection's aliases may hold together; "+
		"an alias that would take them past it ends the connection (DISCONNECT 0x97 quota exceeded), counted in /stats; 0 is no limit (the broker itself assigns no aliases)")
	fs.IntVar(&lim.MaxSubscriptions, "max-subscriptions", lim.MaxSubscriptions, "topic `filters` one session may hold, and one SUBSCRIBE may carry (copies included); "+
		"filters past it are refused (SUBACK 0x97 quota exceeded, 0x80 for MQTT 3.1.1), counted in /stats; 0 is no limit")
	fs.IntVar(&lim.MaxFilterLength, "max-filter-length", lim.MaxFilterLength, "longest topic filter in `bytes` a client may subscribe to; a longer one is refused "+
		"(SUBACK 0x8F topic filter invalid, 0x80 for MQTT 3.1.1), counted in /stats; 0 is no limit")
	fs.IntVar(&lim.MaxFilterLevels, "max-filter-levels", lim.MaxFilterLevels, "most `levels` of a topic filter a client may subscribe to (each a node of the topic tree); "+
		"a deeper one is refused as -max-filter-length refuses a long one; 0 is no limit")
	fs.IntVar(&lim.MaxClients, "max-clients", 0, "refuse connections past this `number` of connected clients (CONNACK 3); 0 is no limit")
	slowTimeout := config.Duration(lim.SlowClientTimeout)
	fs.IntVar(&lim.MaxQueuedBytes, "max-queued-bytes", lim.MaxQueuedBytes, "`bytes` that may wait unsent for one client: past half, QoS 0 messages to it are dropped while its socket takes nothing; past all, once the client has kept the broker writing for 20 ms, QoS 0 messages are dropped and a QoS 1/2 one disconnects it as a slow consumer")
	fs.Var(&slowTimeout, "slow-client-timeout", "disconnect a client that reads nothing of what waits for it for this `duration`; 0s is never")
	fs.IntVar(&lim.MaxQueuedMessages, "max-queued-messages", lim.MaxQueuedMessages, "QoS 1 and 2 `messages` one session holds unacknowledged, connected or not; past it, copies to it are dropped")
	fs.IntVar(&lim.MaxQueuedTotal, "max-queued-total", lim.MaxQueuedTotal, "`bytes` queued to all offline sessions together, counted as -max-queued-bytes counts them; past it, copies to offline sessions are dropped")
	fs.IntVar(&lim.MaxSessions, "max-sessions", lim.MaxSessions, "sessions kept, connected or not; a new client id past this `number` is refused (CONNACK 3); 0 is no limit")
	fs.IntVar(&lim.MaxRetained, "max-retained", lim.MaxRetained, "retained `messages` kept; past it, a retained message on a new topic is delivered but not retained (counted as dropped and logged); 0 is no limit")
	fs.IntVar(&lim.MaxRetainedBytes, "max-retained-bytes", lim.MaxRetainedBytes, "`bytes` of the topics and payloads of the retained messages kept; past it, a retained message is delivered but not retained; 0 is no limit")
	sessionExpiry := config.Duration(lim.SessionExpiry)
	fs.Var(&sessionExpiry, "session-expiry", "a persistent session ends this `duration` after its client went (MQTT 3.1.1; the most an MQTT 5 client may ask: one asking more is told this in the CONNACK)")
	maxExpiry := config.Duration(lim.MaxMessageExpiry)
	fs.Var(&maxExpiry, "max-message-expiry", "drop retained and queued messages older than this `duration`, counted as dropped and logged once a second; "+
		"0s (the default) keeps them until replaced, cleared, acknowledged or their session ends. A publisher's MQTT 5 message expiry is always honoured")
	gcPercent := DefaultGCPercent
	fs.IntVar(&gcPercent, "gc-percent", gcPercent, "the garbage collector's pace (as GOGC, which wins when set): the heap may grow this many `percent` "+
		"past what is live before a collection, and to 128 MiB while collections come less than 50 ms apart (until 1 s passes without one: then the garbage goes back to the system); a soft memory limit derived from -max-queued-total and -max-retained-bytes "+
		"(GOMEMLIMIT wins when set) makes it collect sooner near the limit; 0 leaves Go's default (100)")
	validate := func() error {
		lim.MinKeepAlive = time.Duration(minKeepAlive)
		lim.SlowClientTimeout = time.Duration(slowTimeout)
		lim.SessionExpiry = time.Duration(sessionExpiry)
		lim.MaxMessageExpiry = time.Duration(maxExpiry)
		if err := lim.Check(); err != nil {
			return err
		}
		switch {
		case gcPercent < 0:
			return &config.BadValue{Flag: "gc-percent", Why: "want 0 (Go's default) or more"}
		case maxFailedLogins < 0:
			return &config.BadValue{Flag: "max-failed-logins", Why: "want 0 (no budget) or more"}
		case (tlsCert == "") != (tlsKey == ""):
			return errors.New("-tls-cert and -tls-key go together: give both or neither")
		case tlsListen.String() != "" && tlsCert == "":
			return errors.New("-tls-listen needs -tls-cert and -tls-key")
		}
		return nil
	}
	if err := config.Load(fs, args, getenv, validate); err != nil {
		return Config{}, err
	}
	cfg := Config{Listen: listen.String(), LogFormat: format.String(), Color: color.String(), HealthCheck: health, HashPassword: hash,
		DataDir: dataDir, DataSetAside: setAside, AuthFile: authFile, MaxFailedLogins: maxFailedLogins, GCPercent: gcPercent,
		TLSListen: tlsListen.String(), TLSCert: tlsCert, TLSKey: tlsKey,
		WSListen: wsListen.String(), HTTPListen: httpListen.String(), Limits: lim}
	if cfg.TLSCert != "" && cfg.TLSListen == "" {
		cfg.TLSListen = DefaultTLSListen
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(level.String())); err != nil {
		return Config{}, err // unreachable: the choice admits only slog's level names
	}
	return cfg, nil
}
