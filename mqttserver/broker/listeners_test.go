package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"mqttdemo/mqttserver/eventlog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// genCerts runs scripts/gen-certs.sh into a temporary directory and returns it.
func genCerts(t testing.TB) string {
	t.Helper()
	needTool(t, "openssl")
	dir := t.TempDir()
	out, err := exec.Command("../../scripts/gen-certs.sh", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	return dir
}

func certPool(t testing.TB, caFile string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return pool
}

func TestTLS(t *testing.T) {
	certs, other := genCerts(t), genCerts(t) // other: a CA the server's certificate is not from
	b, logs := startBroker(t, Config{
		TLSListen: "127.0.0.1:0",
		TLSCert:   filepath.Join(certs, "server.crt"),
		TLSKey:    filepath.Join(certs, "server.key"),
	})
	tlsAddr := b.endpointAddr(t, "mqtts")

	for _, c := range []struct {
		name, ca, host string
		ok             bool
	}{
		{"trusted CA, IP", "ca.crt", tlsAddr, true},
		{"trusted CA, localhost", "ca.crt", strings.Replace(tlsAddr, "127.0.0.1", "localhost", 1), true},
		{"untrusted CA", "", tlsAddr, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ca := filepath.Join(other, "ca.crt")
			if c.ca != "" {
				ca = filepath.Join(certs, c.ca)
			}
			opts := clientOpts(c.host, "tls-"+strings.ReplaceAll(c.name, " ", "-"))
			opts.Servers = nil
			opts.AddBroker("ssl://" + c.host).SetTLSConfig(&tls.Config{RootCAs: certPool(t, ca)})
			cl := paho.NewClient(opts)
			err := wait(cl.Connect())
			if c.ok != (err == nil) {
				t.Fatalf("connect over TLS: err = %v, want ok=%v", err, c.ok)
			}
			if err == nil {
				cl.Disconnect(100)
			}
		})
	}
	waitFor(t, "a TLS connection on the tls listener", func() bool {
		return logs.has(t, eventlog.MsgConnected, map[string]any{"listener": "tls"})
	})
}

// TestTLSMosquitto: mosquitto_pub and mosquitto_sub talk to the TLS listener with the dev CA.
func TestTLSMosquitto(t *testing.T) {
	needTool(t, "mosquitto_sub")
	certs := genCerts(t)
	b, logs := startBroker(t, Config{TLSListen: "127.0.0.1:0",
		TLSCert: filepath.Join(certs, "server.crt"), TLSKey: filepath.Join(certs, "server.key")})
	host, port := splitAddr(t, b.endpointAddr(t, "mqtts"))
	ca := filepath.Join(certs, "ca.crt")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", host, "-p", port, "--cafile", ca,
		"-t", "tls/test", "-C", "1", "-i", "mosq-tls")
	out := new(logBuffer)
	sub.Stdout = out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mosquitto_sub to subscribe", func() bool {
		return logs.has(t, eventlog.MsgSubscribed, map[string]any{"client": "mosq-tls"})
	})
	if o, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "--cafile", ca,
		"-t", "tls/test", "-m", "secret-channel").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, o)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	if got := strings.TrimSpace(out.String()); got != "secret-channel" {
		t.Errorf("mosquitto_sub got %q", got)
	}
}

func TestWebSocketRoundTrip(t *testing.T) {
	b, _ := startBroker(t, Config{WSListen: "127.0.0.1:0"})
	ws := b.endpointAddr(t, "ws") // host:port/mqtt
	var got received
	opts := clientOpts("", "ws-client").SetDefaultPublishHandler(got.handler)
	opts.Servers = nil
	opts.AddBroker("ws://" + ws)
	c := connect(t, opts)
	if err := wait(c.Subscribe("ws/#", 1, nil)); err != nil {
		t.Fatalf("subscribe over WebSocket: %v", err)
	}
	tcp := connect(t, clientOpts(b.Addr(), "tcp-client"))
	payload := strings.Repeat("x", 100_000) // spans many WebSocket frames and reads
	if err := wait(tcp.Publish("ws/big", 1, false, payload)); err != nil {
		t.Fatal(err)
	}
	if err := wait(c.Publish("ws/small", 1, false, "hi")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both messages over WebSocket", func() bool { return len(got.list()) == 2 })
	for _, m := range got.list() {
		if m != "ws/big "+payload && m != "ws/small hi" {
			t.Errorf("received %.40q…", m)
		}
	}
}

// TestLoopbackHTTPAnswersLocalNames: on a loopback listener the HTTP endpoints answer a request
// for localhost or a loopback address, and refuse (421) one for another name, which is what a
// web page that rebinds its own name to 127.0.0.1 sends (DNS rebinding); on other addresses
// every name is answered.
func TestLoopbackHTTPAnswersLocalNames(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		b, _ := startBroker(t, Config{HTTPListen: listen, Listen: "127.0.0.1:0"})
		_, port, err := net.SplitHostPort(b.endpointAddr(t, "http"))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			host string
			code int
		}{
			{"127.0.0.1:" + port, http.StatusOK},
			{"localhost:" + port, http.StatusOK},
			{"LocalHost.", http.StatusOK},
			{"[::1]:" + port, http.StatusOK},
			{"page.localhost", http.StatusOK},
			{"attacker.example:" + port, http.StatusMisdirectedRequest},
			{"127.0.0.1.attacker.example", http.StatusMisdirectedRequest},
		} {
			for _, path := range []string{"/healthz", "/stats", "/metrics"} {
				req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+port+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = c.host
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				want := c.code
				if listen != "127.0.0.1:0" {
					want = http.StatusOK
				}
				if resp.StatusCode != want {
					t.Errorf("-http-listen %s, Host %q, %s: %s, want %d", listen, c.host, path, resp.Status, want)
				}
			}
		}
	}
}

func TestHTTPHealthAndStats(t *testing.T) {
	b, _ := startBroker(t, Config{HTTPListen: "127.0.0.1:0"})
	base := "http://" + b.endpointAddr(t, "http")
	connect(t, clientOpts(b.Addr(), "counted"))

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", resp.Status)
	}

	var stats struct {
		Version          string `json:"version"`
		ClientsConnected int64  `json:"clients_connected"`
	}
	waitFor(t, "/stats to count the client", func() bool {
		resp, err := http.Get(base + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
			t.Fatalf("/stats is not JSON: %v", err)
		}
		return stats.ClientsConnected == 1
	})
	if stats.Version == "" {
		t.Errorf("/stats has no version: %+v", stats)
	}
}

func TestStartedLineListsEveryListener(t *testing.T) {
	certs := genCerts(t)
	_, logs := startBroker(t, Config{TLSListen: "127.0.0.1:0", WSListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		TLSCert: filepath.Join(certs, "server.crt"), TLSKey: filepath.Join(certs, "server.key")})
	for _, r := range logs.records(t) {
		if r["msg"] != eventlog.MsgStarted {
			continue
		}
		for key, scheme := range map[string]string{"mqtt": "tcp://", "mqtts": "ssl://", "ws": "ws://", "http": "http://"} {
			if s, _ := r[key].(string); !strings.HasPrefix(s, scheme+"127.0.0.1:") {
				t.Errorf("started line %s = %q, want %s127.0.0.1:port", key, s, scheme)
			}
		}
		return
	}
	t.Fatal("no server started line")
}

func TestBusyPortFailsStart(t *testing.T) {
	b, _ := startBroker(t, Config{})
	cfg := Config{Listen: "127.0.0.1:0", WSListen: b.Addr(), LogFormat: "json"}
	_, err := New(cfg, eventlog.NewLogger(cfg.logSettings(), new(logBuffer), noEnv), eventlog.NewLogger(cfg.logSettings(), new(logBuffer), noEnv))
	if err == nil || !strings.Contains(err.Error(), "-ws-listen") {
		t.Fatalf("New with a busy -ws-listen port: err = %v, want it to name -ws-listen", err)
	}
}

// endpointAddr is the host:port (and path) of a listener named in the started line.
func (b *Broker) endpointAddr(t testing.TB, name string) string {
	t.Helper()
	for _, e := range b.endpoints {
		if e.name == name {
			_, a, _ := strings.Cut(e.url, "://")
			return a
		}
	}
	t.Fatalf("no %s listener", name)
	return ""
}
