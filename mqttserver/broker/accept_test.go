package broker

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// scriptedListener returns the errors of script from Accept, one a call, then a connection;
// a nil in script blocks Accept until Close.
type scriptedListener struct {
	mu     sync.Mutex
	script []error
	calls  int
	closed chan struct{}
	once   sync.Once
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	if len(l.script) == 0 {
		l.mu.Unlock()
		c, _ := net.Pipe()
		return c, nil
	}
	err := l.script[0]
	l.script = l.script[1:]
	l.mu.Unlock()
	if err == nil {
		<-l.closed
		return nil, net.ErrClosed
	}
	return nil, err
}

func (l *scriptedListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *scriptedListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// acceptErr is an Accept error as the net package returns it.
func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func TestSteadyListenerAccept(t *testing.T) {
	emfile := acceptErr(syscall.EMFILE)
	for _, c := range []struct {
		name      string
		script    []error
		wantConn  bool
		wantDied  bool
		wantLines []string // messages logged, in order
	}{
		{"out of files, then a connection", []error{emfile, emfile, emfile}, true, false,
			[]string{msgAcceptFailing, msgAcceptingAgain}},
		{"a connection's own error", []error{acceptErr(syscall.ECONNABORTED), acceptErr(syscall.EPROTO)}, true, false,
			[]string{msgAcceptFailing, msgAcceptingAgain}},
		{"closed underneath", []error{net.ErrClosed}, false, true, nil},
		{"not listening any more", []error{emfile, acceptErr(syscall.EINVAL)}, false, true, []string{msgAcceptFailing}},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := new(logBuffer)
			var died []string
			inner := &scriptedListener{script: c.script, closed: make(chan struct{})}
			l := newSteadyListener(inner, "mqtt", slog.New(slog.NewJSONHandler(logs, nil)),
				func(name string, err error) { died = append(died, name+": "+err.Error()) })
			conn, err := l.Accept()
			if (conn != nil) != c.wantConn || (err == nil) != c.wantConn {
				t.Fatalf("Accept = %v, %v; want a connection: %v", conn, err, c.wantConn)
			}
			if conn != nil {
				conn.Close()
			}
			if (len(died) > 0) != c.wantDied {
				t.Errorf("died = %q, want a death: %v", died, c.wantDied)
			}
			if inner.calls != len(c.script)+1 && c.wantConn {
				t.Errorf("%d calls of Accept, want %d", inner.calls, len(c.script)+1)
			}
			var msgs []string
			for _, r := range logs.records(t) {
				msgs = append(msgs, r["msg"].(string))
			}
			if strings.Join(msgs, "|") != strings.Join(c.wantLines, "|") {
				t.Errorf("logged %q, want %q", msgs, c.wantLines)
			}
			if p := l.Problem(); (p != "") != c.wantDied {
				t.Errorf("Problem() = %q after Accept, want one: %v", p, c.wantDied)
			}
		})
	}
}

// TestSteadyListenerHealthyAgainWithoutClients: once the errors stop, a listener whose Accept
// waits for a client is accepting: /healthz must not go on reporting it until a client comes.
// Before, the problem stayed until the next connection (seen in CI: /healthz 503 for 11 s after
// the descriptors were free, the MQTT port idle).
func TestSteadyListenerHealthyAgainWithoutClients(t *testing.T) {
	emfile := acceptErr(syscall.EMFILE)
	inner := &scriptedListener{script: []error{emfile, emfile, nil}, closed: make(chan struct{})} // nil: waits
	l := newSteadyListener(inner, "mqtt", slog.New(slog.DiscardHandler), func(string, error) {})
	done := make(chan struct{})
	go func() {
		_, _ = l.Accept()
		close(done)
	}()
	waitFor(t, "the errors reported", func() bool { return l.Problem() != "" })
	waitFor(t, "the listener healthy again, waiting for a client", func() bool { return l.Problem() == "" })
	_ = l.Close()
	<-done
}

// Close ends Accept while it waits between retries, and that is not a death.
func TestSteadyListenerCloseWhileFailing(t *testing.T) {
	script := make([]error, 1000)
	for i := range script {
		script[i] = acceptErr(syscall.EMFILE)
	}
	inner := &scriptedListener{script: script, closed: make(chan struct{})}
	var died bool
	l := newSteadyListener(inner, "http", slog.New(slog.DiscardHandler), func(string, error) { died = true })
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	waitFor(t, "a failing Accept", func() bool { return l.Problem() != "" })
	if !strings.Contains(l.Problem(), "too many open files") {
		t.Errorf("Problem() = %q, want the error", l.Problem())
	}
	_ = l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Accept did not return after Close")
	}
	if died {
		t.Error("Close reported as a death")
	}
}

func TestHealthzReportsListeners(t *testing.T) {
	for _, c := range []struct {
		name     string
		problems map[string]string
		code     int
		body     string
	}{
		{"all accepting", nil, http.StatusOK, `{"status":"ok"}`},
		{"one failing", map[string]string{"mqtt": "accept failing since …: too many open files"},
			http.StatusServiceUnavailable, `{"status":"failing","listeners":{"mqtt":"accept failing since …: too many open files"}}`},
	} {
		srv := httptest.NewServer(statusHandler(nil, nil, nil, func() map[string]string { return c.problems }))
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var got, want any
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		_ = json.Unmarshal([]byte(c.body), &want)
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		if resp.StatusCode != c.code || string(gotJSON) != string(wantJSON) {
			t.Errorf("%s: /healthz = %d %s, want %d %s", c.name, resp.StatusCode, gotJSON, c.code, wantJSON)
		}
	}
}

// A listener whose socket is closed under it is a death: logged, and handed to Run on Died.
func TestListenerDeathReported(t *testing.T) {
	b, logs := startBroker(t, Config{})
	_ = b.listening[0].Listener.Close() // the socket, not the steady listener around it
	select {
	case err := <-b.Died():
		if !strings.Contains(err.Error(), "listener mqtt stopped") {
			t.Errorf("Died() = %v, want the mqtt listener's death", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no death reported")
	}
	if !logs.has(t, msgListenerDied, map[string]any{"listener": "mqtt", "level": "ERROR"}) {
		t.Errorf("no %q line in the log", msgListenerDied)
	}
}

// TestCanaryListenerDiesAtFirstAcceptError: mochi's Net.Serve returns at the first Accept error,
// one that passes too (out of file descriptors), and the port is deaf for good (mochifix/doc.go).
func TestCanaryListenerDiesAtFirstAcceptError(t *testing.T) {
	inner := &scriptedListener{script: []error{acceptErr(syscall.EMFILE), nil}, closed: make(chan struct{})}
	t.Cleanup(func() { _ = inner.Close() })
	l := listeners.NewNet("canary", inner)
	_ = l.Init(slog.New(slog.DiscardHandler))
	served := make(chan struct{})
	go func() {
		defer close(served)
		l.Serve(func(string, net.Conn) error { return nil })
	}()
	select {
	case <-served:
	case <-time.After(waitTimeout):
		t.Fatal("mochi's Net.Serve no longer returns at the first Accept error: the mend in broker/accept.go may go (see doc.go)")
	}
}
