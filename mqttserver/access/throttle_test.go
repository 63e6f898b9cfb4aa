package access

import (
	"testing"
	"time"
)

// TestLoginThrottle: free failures, then waits that double, taken in turns; a clean address
// never waits; a user name under attack slows other failing addresses; success forgets.
func TestLoginThrottle(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	th := newLoginThrottle()
	th.now = func() time.Time { return now }
	admit := func(host, user string) time.Duration {
		t.Helper()
		wait, _, ok := th.admit(host, user)
		if !ok {
			t.Fatalf("%s/%s refused unchecked", host, user)
		}
		th.done(host)
		return wait
	}
	for i := range freeLoginFailures {
		if w := admit("10.0.0.1", "reader"); w != 0 {
			t.Fatalf("free failure %d waited %s", i+1, w)
		}
		th.failed("10.0.0.1", "reader")
	}
	if w := admit("10.0.0.1", "reader"); w != firstLoginDelay {
		t.Errorf("after %d failures: wait %s, want %s", freeLoginFailures, w, firstLoginDelay)
	}
	// A second attempt at once takes its turn after the first.
	if w := admit("10.0.0.1", "reader"); w != 2*firstLoginDelay {
		t.Errorf("a second attempt at once: wait %s, want %s", w, 2*firstLoginDelay)
	}
	if w, suspect, ok := th.admit("10.0.0.9", "reader"); w != 0 || suspect || !ok {
		t.Errorf("a clean address: wait %s suspect %v ok %v, want no wait", w, suspect, ok)
	}
	// A second login from it while the first is checked takes its turn (suspect).
	if _, suspect, _ := th.admit("10.0.0.9", "reader"); !suspect {
		t.Error("two logins at once from one address: the second is not suspect")
	}
	th.done("10.0.0.9")
	th.done("10.0.0.9")
	// Another address that failed once waits for the user name's turn.
	th.failed("10.0.0.2", "reader")
	if w := admit("10.0.0.2", "reader"); w <= 0 {
		t.Error("a failing address guessing an attacked user name did not wait")
	}
	// Past maxLoginDelay of queue: refused unchecked.
	for range 20 {
		th.failed("10.0.0.3", "x")
	}
	refused := false
	for range 10 {
		if _, _, ok := th.admit("10.0.0.3", "x"); !ok {
			refused = true
		} else {
			th.done("10.0.0.3")
		}
	}
	if !refused {
		t.Error("a flood from one address was never refused unchecked")
	}
	// A success of another user (the guesser's own account) forgives nothing; one of the user
	// the failures were for does.
	th.succeeded("10.0.0.1", "mine")
	if w, _, _ := th.admit("10.0.0.1", "reader"); w == 0 {
		t.Error("a success of another user reset the address's failures")
	}
	th.done("10.0.0.1")
	now = now.Add(maxLoginDelay)
	th.succeeded("10.0.0.1", "reader")
	if w, suspect, _ := th.admit("10.0.0.1", "reader"); w != 0 || suspect {
		t.Errorf("after a success: wait %s, suspect %v", w, suspect)
	}
	th.done("10.0.0.1")
	now = now.Add(loginMemory + maxLoginDelay + time.Second)
	if w, suspect, _ := th.admit("10.0.0.3", "x"); w != 0 || suspect {
		t.Errorf("after %s: wait %s, suspect %v; failures should be forgotten", loginMemory, w, suspect)
	}
	th.done("10.0.0.3")
}

func TestLoginDelay(t *testing.T) {
	for _, c := range []struct {
		count int
		want  time.Duration
	}{{0, 0}, {freeLoginFailures - 1, 0}, {freeLoginFailures, firstLoginDelay}, {freeLoginFailures + 1, 2 * firstLoginDelay}, {100, maxLoginDelay}} {
		if got := loginDelay(c.count); got != c.want {
			t.Errorf("loginDelay(%d) = %s, want %s", c.count, got, c.want)
		}
	}
}
