package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// floodAddresses is how many loopback addresses guess once each in TestSecurityLoginFloodFromManyAddresses.
const floodAddresses = 1040

// TestSecurityLoginFloodFromManyAddresses: one wrong guess from each of 1,040 fresh loopback
// addresses at once, as a botnet spreads its guesses so that no address is slowed down. An
// honest login (a user with the right password, from an address that logged in before and
// never failed) stays within twice its time without the flood, and the failures are summed up
// in a line a second, not logged one by one. On the broker without a budget for failing
// logins, every guess was checked at once (979 ms against 56 ms for the honest login). The
// same user logging in from addresses never seen (127.4.0.x: a client whose address changed)
// stays within twice the normal time too: its password was verified before, so it waits for
// no budget; without that it waited for the budget with the guesses, up to 2 s, or was refused.
func TestSecurityLoginFloodFromManyAddresses(t *testing.T) {
	if raceDetector {
		t.Skip("a timing test: run it without -race (.ci/run does)")
	}
	probe, err := net.Listen("tcp", "127.3.0.1:0")
	if err != nil {
		t.Skipf("no loopback addresses beyond 127.0.0.1 here (%v): Linux routes all of 127.0.0.0/8", err)
	}
	probe.Close()
	auth := writeFile(t, t.TempDir(), "users.yaml", accessUsers(t, ""))
	server, url := harness.StartServer(t, nil, "-auth", auth, "-http-listen", "127.0.0.1:0")
	addr := hostPort(url)
	median := func(n int) time.Duration { return medianLogin(t, addr, n) }
	// normal: at least a login with its bcrypt check, the first; the others are accepted
	// without (the password verified before), in well under a millisecond.
	normal := max(honestLogin(t, addr), median(7))

	var sent, answered atomic.Int64
	var wg sync.WaitGroup
	for i := range floodAddresses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := net.IPv4(127, 3, byte(i/250), byte(1+i%250))
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: from}}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			connect := encodeConnect(connectOpts{id: fmt.Sprint("guesser-", i), user: "reader", pass: wrongPassword})
			if _, err := c.Write(connect); err != nil {
				return
			}
			sent.Add(1)
			if _, err := rawmqtt.Read(c); err == nil {
				answered.Add(1)
			}
		}()
	}
	start := time.Now()
	harness.Eventually(t, func() bool { return sent.Load() >= floodAddresses/2 }, "the guesses to be sent")
	// In turns, from 127.0.0.1 and from an address never seen, while the guesses hold the
	// budget for the next 2 s: the flood's connections slow both alike.
	var known, moved []time.Duration
	for i := range 7 {
		moved = append(moved, loginFrom(t, addr, fmt.Sprint("127.4.0.", 1+i)))
		known = append(known, honestLogin(t, addr))
	}
	slices.Sort(moved)
	slices.Sort(known)
	during := known[3]
	wg.Wait()
	flood := time.Since(start)
	server.WaitFor(t, `THROTTLED\s+failed=`)
	normal = max(normal, median(7)) // as TestSecurityLoginThrottle: a busy machine is not the flood's doing
	t.Logf("honest login: %s normally, %s during one guess from each of %d addresses (%d sent, %d answered)",
		normal, during, floodAddresses, sent.Load(), answered.Load())
	t.Logf("the same login from addresses never seen: %s during the flood", moved[3])
	if limit := 2*normal + 30*time.Millisecond; during > limit {
		t.Errorf("honest login took %s during the flood, over twice its normal %s", during, normal)
	}
	// Served as from an address that logged in before: the flood's thousand connections at
	// once slow both alike on a busy machine.
	if limit := 2*max(normal, during) + 30*time.Millisecond; moved[3] > limit {
		t.Errorf("honest login from a new address took %s during the flood, over twice its %s from a known address", moved[3], max(normal, during))
	}
	// 5 lines a second at most (access.loggedLoginFailures), the seconds begun counted whole.
	if n, most := len(server.Out.Lines(re(`AUTH-FAILED`))), 5*(int(flood/time.Second)+2); n > most {
		t.Errorf("%d failed logins logged one by one in %s: a flood must be summed up (at most %d)", n, flood, most)
	}
	if got := statsCounter(t, server, "logins_refused"); got == 0 {
		t.Errorf("/stats logins_refused = 0 after a flood of %d guesses", floodAddresses)
	}
}

// loginFrom is the time of an honest login from the address from; a refusal counts as a
// minute.
func loginFrom(t *testing.T, addr, from string) time.Duration {
	t.Helper()
	start := time.Now()
	c, code := rawConnect(t, addr, connectOpts{id: "honest-" + from, user: "reader", pass: readerPassword, from: from})
	took := time.Since(start)
	c.Close()
	if code != 0 {
		t.Errorf("honest login from %s: CONNACK %#02x", from, code)
		return time.Minute
	}
	return took
}

// statsCounter reads the counter name from /stats of server, started with -http-listen.
func statsCounter(t *testing.T, server *harness.Proc, name string) int64 {
	t.Helper()
	m := regexp.MustCompile(`http=(http://\S+)`).FindStringSubmatch(server.WaitFor(t, `STARTED`))
	if m == nil {
		t.Fatal("no http= address on the started line")
	}
	client := http.Client{Timeout: harness.Timeout}
	resp, err := client.Get(m[1] + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatalf("/stats: %v", err)
	}
	n, _ := stats[name].(float64)
	return int64(n)
}
