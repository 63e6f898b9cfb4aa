package livepage

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestStreamsPerViewer: one viewer (an address without -auth, a user with it) holds at most
// liveEach streams; the next is refused with 429 and a reason, and another viewer still gets one.
// Before, liveViewers streams from one address locked every other viewer out (503).
func TestStreamsPerViewer(t *testing.T) {
	for _, c := range []struct {
		name      string
		auth      bool
		first     func(i int) (addr, user string) // the viewer that opens its maximum, i-th stream
		other     [2]string                       // another viewer: addr, user
		wantInMsg string
	}{
		{"address without -auth", false, func(int) (string, string) { return "192.0.2.1", "" },
			[2]string{"192.0.2.2", ""}, "address 192.0.2.1"},
		{"user with -auth, from several addresses", true, func(i int) (string, string) { return "192.0.2." + string(rune('1'+i)), "alice" },
			[2]string{"192.0.2.1", "bob"}, "user alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := New(mqtt.New(nil), new(LineRing))
			if c.auth {
				p.CheckUser = func(_, _, _ string) bool { return true }
			}
			mux := http.NewServeMux()
			p.Register(mux)
			// The test's connections all come from 127.0.0.1: the header says whose each is.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.RemoteAddr = r.Header.Get("X-Test-Remote") + ":40000"
				mux.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close) // after the streams are closed (cleanups run last first)
			open := func(addr, user string) *http.Response {
				t.Helper()
				req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
				req.Header.Set("X-Test-Remote", addr)
				if user != "" {
					req.SetBasicAuth(user, "pw")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				return resp
			}
			// A stream is open once its first snapshot came.
			streaming := func(resp *http.Response) bool {
				t.Helper()
				if resp.StatusCode != http.StatusOK {
					return false
				}
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				return err == nil && line == "event: snapshot\n"
			}
			var held []*http.Response
			for i := range liveEach {
				resp := open(c.first(i))
				if !streaming(resp) {
					t.Fatalf("stream %d of %d: %s", i+1, liveEach, resp.Status)
				}
				held = append(held, resp)
			}
			// As many more as the whole page allows: each refused, so none is taken from others.
			var let []string
			for i := liveEach; i < liveViewers; i++ {
				refused := open(c.first(i))
				var body []byte
				if refused.StatusCode != http.StatusOK { // not a stream, which would never end
					body, _ = io.ReadAll(refused.Body)
				}
				if refused.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), c.wantInMsg) {
					let = append(let, fmt.Sprintf("stream %d: %s %q", i+1, refused.Status, body))
				}
			}
			if len(let) > 0 {
				t.Errorf("one viewer's streams past %d not refused with 429 naming %s: %q", liveEach, c.wantInMsg, let)
			}
			if got, want := p.Refused(), int64(liveViewers-liveEach); got != want {
				t.Errorf("Refused() = %d, want %d", got, want)
			}
			if other := open(c.other[0], c.other[1]); !streaming(other) {
				t.Errorf("another viewer's stream: %s, want one", other.Status)
			}
			// A page closed frees its place.
			held[0].Body.Close()
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp := open(c.first(0))
				if streaming(resp) {
					break
				}
				resp.Body.Close()
				if time.Now().After(deadline) {
					t.Fatalf("no stream after one of the viewer's was closed: %s", resp.Status)
				}
				time.Sleep(20 * time.Millisecond) // polling, not synchronisation
			}
		})
	}
}
