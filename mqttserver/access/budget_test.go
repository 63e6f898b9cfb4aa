package access

import (
	"fmt"
	"testing"
	"time"
)

// TestLoginBudget: a second's worth of checks at once, then one each 1/perSecond, promised in
// turn; a login that would wait past the limit takes nothing; a check that succeeded gives its
// token back; 0 is no budget.
func TestLoginBudget(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b := newLoginBudget(10)
	b.now = func() time.Time { return now }
	var got []string
	take := func() {
		w, ok := b.take(300 * time.Millisecond)
		got = append(got, fmt.Sprint(w, ok))
	}
	for range 10 {
		take()
	}
	take()                                // the 11th waits a tenth of a second
	take()                                // the 12th after it
	take()                                // the 13th: 300 ms
	take()                                // the 14th would wait 400 ms: refused
	now = now.Add(200 * time.Millisecond) // two tokens earned, both promised already
	take()                                // 200 ms
	b.giveBack()                          // a check that succeeded
	take()                                // 200 ms again
	want := []string{"0s true", "0s true", "0s true", "0s true", "0s true", "0s true", "0s true", "0s true", "0s true", "0s true",
		"100ms true", "200ms true", "300ms true", "0s false", "200ms true", "200ms true"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits:\n got %q\nwant %q", got, want)
	}
	now = now.Add(time.Hour) // at most a second's worth saved up
	if b.fill(); b.tokens != 10 {
		t.Errorf("after an hour: %v tokens, want 10", b.tokens)
	}
	off := newLoginBudget(0)
	for range 100 {
		if w, ok := off.take(0); w != 0 || !ok {
			t.Fatalf("no budget: wait %s ok %v", w, ok)
		}
	}
}

// TestKnownAddresses: an address whose last login succeeded is known (it skips the budget);
// a failure from it, or a success while it has failures for another user, does not make it so.
func TestKnownAddresses(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	th := newLoginThrottle()
	th.now = func() time.Time { return now }
	th.succeeded("10.0.0.1", "reader")
	th.failed("10.0.0.2", "reader")
	th.succeeded("10.0.0.2", "mine") // the guesser's own account
	th.succeeded("10.0.0.3", "reader")
	th.failed("10.0.0.3", "reader")
	for _, c := range []struct {
		host string
		want bool
	}{{"10.0.0.1", true}, {"10.0.0.2", false}, {"10.0.0.3", false}, {"10.0.0.4", false}} {
		if got := th.isKnown(c.host); got != c.want {
			t.Errorf("isKnown(%s) = %v, want %v", c.host, got, c.want)
		}
	}
	now = now.Add(knownMemory + time.Second)
	if th.isKnown("10.0.0.1") {
		t.Errorf("still known after %s", knownMemory)
	}
}

// TestFailureLinesPerSecond: the failures of many addresses are logged one by one only up to
// loggedLoginFailures a second; the rest go to the summary.
func TestFailureLinesPerSecond(t *testing.T) {
	th := newLoginThrottle()
	var lines int
	for i := range 100 {
		if !th.failed(fmt.Sprint("10.1.0.", i), "reader") {
			lines++
		}
	}
	if lines != loggedLoginFailures || th.slowed.Load() != 100-loggedLoginFailures {
		t.Errorf("%d lines one by one and %d summed up, want %d and %d", lines, th.slowed.Load(), loggedLoginFailures, 100-loggedLoginFailures)
	}
}
