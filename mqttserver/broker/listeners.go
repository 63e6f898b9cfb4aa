package broker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"mqttdemo/mqttserver/livepage"
)

// DefaultTLSListen is where MQTT over TLS is served when -tls-cert and -tls-key are given.
const DefaultTLSListen = ":8883"

// endpoint is one bound listener, named for the "server started" line.
type endpoint struct {
	name string // mqtt, mqtts, ws, http
	url  string // e.g. tcp://127.0.0.1:1883
}

// addListeners binds every configured address now, so that a busy port fails the start with
// its name instead of a log line later, and :0 reports the port it got. mochi's own WebSocket
// and HTTP listeners bind only when served, so those two are ours.
func (b *Broker) addListeners(cfg Config) error {
	tcp, err := b.listen("mqtt", cfg.Listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	b.tcp = listeners.NewNet("tcp", connectDeadline{tcp, ConnectTimeout})
	if err := b.addMQTT(b.tcp, "mqtt", "tcp://"); err != nil {
		return err
	}
	if cfg.TLSListen != "" {
		conf, err := serverTLS(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return err
		}
		ln, err := b.listen("mqtts", cfg.TLSListen)
		if err != nil {
			return fmt.Errorf("-tls-listen: %w", err)
		}
		if err := b.addMQTT(listeners.NewNet("tls", tls.NewListener(connectDeadline{ln, ConnectTimeout}, conf)), "mqtts", "ssl://"); err != nil {
			return err
		}
	}
	if cfg.WSListen != "" {
		ln, err := b.listen("ws", cfg.WSListen)
		if err != nil {
			return fmt.Errorf("-ws-listen: %w", err)
		}
		if err := b.addMQTT(&wsListener{id: "ws", ln: ln}, "ws", "ws://"); err != nil {
			return err
		}
		b.endpoints[len(b.endpoints)-1].url += "/mqtt" // any path works; /mqtt is the usual one
	}
	if cfg.HTTPListen != "" {
		ln, err := b.listen("http", cfg.HTTPListen)
		if err != nil {
			return fmt.Errorf("-http-listen: %w", err)
		}
		metrics, err := metricsHandler(statsCollector{b.currentStats, b.listenerNames(), cfg.DataDir != "", b.listenerProblems})
		if err != nil {
			return err
		}
		// The timeouts free connections that send nothing, or hold on idle between requests.
		handler := statusHandler(b.currentStats, metrics, b.page, b.listenerProblems)
		if isLoopback(ln.Addr()) {
			handler = loopbackHostsOnly(handler)
		}
		b.http = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}
		b.httpLn = ln
		b.endpoints = append(b.endpoints, endpoint{"http", "http://" + ln.Addr().String()})
		if !isLoopback(ln.Addr()) {
			b.log.Warn("/stats and /metrics are open to anyone who can reach this address (the live page too, without -auth); "+
				"in a container, the engine's port publishing decides who can", "http", ln.Addr().String())
		}
	}
	return nil
}

// listen binds addr for the listener name. Its Accept waits out the errors that pass, and a
// death is reported on b.died (steadyListener).
func (b *Broker) listen(name, addr string) (*steadyListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := newSteadyListener(ln, name, b.log, b.listenerDied)
	b.listening = append(b.listening, l)
	return l, nil
}

// listenerDied logs a listener's death and hands it to Run, which stops the broker: a broker
// that lives on deaf is worse than one that exits for Docker or systemd to start again.
func (b *Broker) listenerDied(name string, err error) {
	b.log.Error(msgListenerDied, "listener", name, "error", err.Error())
	select {
	case b.died <- fmt.Errorf("listener %s stopped: %w", name, err):
	default: // one is enough to stop
	}
}

// listenerProblems are the listeners not accepting now, and why.
func (b *Broker) listenerProblems() map[string]string {
	var out map[string]string
	for _, l := range b.listening {
		if p := l.Problem(); p != "" {
			if out == nil {
				out = make(map[string]string)
			}
			out[l.name] = p
		}
	}
	return out
}

// acceptErrors counts the accept errors every listener waited out.
func (b *Broker) acceptErrors() int64 {
	var n int64
	for _, l := range b.listening {
		n += l.errors.Load()
	}
	return n
}

func (b *Broker) addMQTT(l listeners.Listener, name, scheme string) error {
	if b.flow != nil {
		l = b.flow.Listener(l)
	}
	if err := b.server.AddListener(l); err != nil {
		return fmt.Errorf("listener %s: %w", name, err)
	}
	b.endpoints = append(b.endpoints, endpoint{name, scheme + l.Address()})
	return nil
}

// serverTLS loads the certificate (with its chain) and key. TLS 1.2 is the oldest accepted,
// and only with forward-secret AEAD suites (TLS 1.3 has nothing else): no CBC, no RSA key exchange.
func serverTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}}, nil
}

// loopbackHostsOnly refuses (421) a request to a loopback listener whose Host names something
// else than this machine (none, from an HTTP/1.0 client, passes): a web page the user opens
// could rebind its own name to 127.0.0.1 (DNS rebinding) and read the live page's stream,
// /stats and /metrics through the user's browser.
func loopbackHostsOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if name, _, err := net.SplitHostPort(host); err == nil {
			host = name
		}
		host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
		if ip := net.ParseIP(host); host != "" && host != "localhost" && !strings.HasSuffix(host, ".localhost") && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "this listener is on loopback: ask for localhost or a loopback address", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLoopback tells whether addr is on this machine only.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// statusHandler serves /healthz (200 while every listener accepts; 503 and why while one does
// not: problems), /stats (the $SYS counters), /metrics (the same for Prometheus: metrics.go)
// and the live page (package livepage). /metrics asks for no password, as /stats.
func statusHandler(stats func() stats, metrics http.Handler, page *livepage.Page, problems func() map[string]string) http.Handler {
	mux := http.NewServeMux()
	if page != nil {
		page.Register(mux)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		failing := problems()
		if len(failing) == 0 {
			_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(struct {
			Status    string            `json:"status"`
			Listeners map[string]string `json:"listeners"`
		}{"failing", failing})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(stats())
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

// wsListener serves MQTT over WebSocket (binary frames, subprotocol "mqtt") on its own listener.
type wsListener struct {
	id        string
	ln        net.Listener
	server    *http.Server
	establish listeners.EstablishFn
	once      sync.Once
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

// Init prepares the HTTP server that upgrades requests to WebSocket connections.
func (l *wsListener) Init(*slog.Logger) error {
	upgrader := &websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Browsers send an Origin; MQTT credentials, not the page's origin, decide access.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	l.server = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := upgrader.Upgrade(w, r, nil)
			if err != nil {
				return // the upgrader has answered with an HTTP error
			}
			defer c.Close()
			// As on TCP: CONNECT within ConnectTimeout, then mochi's keep-alive deadline.
			_ = c.NetConn().SetDeadline(time.Now().Add(ConnectTimeout))
			_ = l.establish(l.id, &wsConn{Conn: c.NetConn(), ws: c})
		}),
	}
	return nil
}

// Serve accepts connections until Close; establish runs each MQTT session.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish  // set before the first connection is accepted
	_ = l.server.Serve(l.ln) // returns http.ErrServerClosed on Close
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = l.server.Shutdown(ctx) // also closes l.ln
	})
	closeClients(l.id)
}

// wsConn makes a WebSocket connection a net.Conn carrying the MQTT byte stream: MQTT packets
// may span or share binary messages, so reads continue across message boundaries.
type wsConn struct {
	net.Conn
	ws            *websocket.Conn
	r             io.Reader // the current message
	writeDeadline atomic.Pointer[time.Time]
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// SetWriteDeadline is kept for the next Write: the WebSocket sets its own deadline on every
// frame it writes, and its deadline may be set only by the goroutine that writes.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(&t)
	return nil
}

func (c *wsConn) Write(p []byte) (int, error) {
	if t := c.writeDeadline.Load(); t != nil {
		_ = c.ws.SetWriteDeadline(*t)
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
