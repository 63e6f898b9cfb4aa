package access

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mqttdemo/mqttserver/eventlog"
)

// The login throttle's steps: the first freeLoginFailures failures from an address (or for a
// user name) cost nothing more; each one after that makes the next attempt from there wait
// twice as long, from firstLoginDelay up to maxLoginDelay. An attempt that would have to wait
// longer than maxLoginDelay (many at once from one address) is refused at once, unchecked.
// Failures are forgotten loginMemory after the last one, or at a successful login.
const (
	freeLoginFailures = 3
	firstLoginDelay   = 100 * time.Millisecond
	maxLoginDelay     = 10 * time.Second
	loginMemory       = 15 * time.Minute
	maxLoginEntries   = 100_000 // addresses and user names remembered at once
	// refusedLoginDelay holds the answer to an attempt refused unchecked, so that a client
	// retrying at once does not turn the refusals into a flood of its own.
	refusedLoginDelay = time.Second
	// loggedLoginFailures failures from one address are logged one by one, and as many a
	// second from all addresses together; the rest are summed up once a second.
	loggedLoginFailures = 5
	// knownMemory is how long an address whose last login succeeded skips the budget of
	// failing logins (loginBudget).
	knownMemory = 24 * time.Hour
)

// loginThrottle slows down password guessing without slowing anyone else: an address with no
// recent failure never waits, so a guessing flood from other addresses does not starve honest
// clients, and the waits spend no CPU (a bcrypt check does). A user name under attack slows
// down further attempts from addresses that have failed before, so guesses spread over many
// addresses are slowed too. And the password checks of suspect addresses take turns (see
// Hook.login), so that they cannot take every core.
type loginThrottle struct {
	mu      sync.Mutex
	entries map[string]*loginFailures // "ip 127.0.0.2", "user reader"
	now     func() time.Time
	// known: addresses whose last login succeeded, and when
	known map[string]time.Time
	// lines: failures logged one by one in this second, from all addresses
	lines int
	// for the once-a-second summary: failures not logged one by one, attempts that waited,
	// attempts refused unchecked
	slowed, waited, refused atomic.Int64
	// since the start, for /stats: failed logins, logins refused unchecked
	failedTotal, refusedTotal atomic.Int64
}

type loginFailures struct {
	count int
	next  time.Time // no attempt is checked before this
	last  time.Time
	// Of an address: its checks running now (several at once make it suspect), and the user
	// name its failures were for (mixed: more than one), so that only a success of that same
	// user forgives them: a login to an account of the guesser's own must not.
	checking int
	user     string
	mixed    bool
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{entries: make(map[string]*loginFailures), known: make(map[string]time.Time), now: time.Now}
}

// loginDelay is the wait that count failures impose on the next attempt.
func loginDelay(count int) time.Duration {
	if count < freeLoginFailures {
		return 0
	}
	d := firstLoginDelay
	for i := freeLoginFailures; i < count && d < maxLoginDelay; i++ {
		d *= 2
	}
	return min(d, maxLoginDelay)
}

// admit tells how long a login from host as user must wait before its password is checked,
// and whether host is suspect (it failed recently); ok is false if it would wait longer than
// maxLoginDelay. Waiting attempts take their turns one after another, each a delay apart.
func (t *loginThrottle) admit(host, user string) (wait time.Duration, suspect, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	addr := t.entry("ip "+host, now)
	if addr == nil {
		if len(t.entries) >= maxLoginEntries && !t.sweep(now) {
			return 0, false, true
		}
		addr = &loginFailures{last: now}
		t.entries["ip "+host] = addr
	}
	if addr.count == 0 {
		addr.checking++
		return 0, addr.checking > 1, true // a burst of logins from one address takes turns too
	}
	name := t.entry("user "+user, now)
	slot := later(now, addr.next)
	if name != nil {
		slot = later(slot, name.next)
	}
	if wait = slot.Sub(now); wait > maxLoginDelay {
		t.refusedUnchecked()
		return 0, true, false
	}
	addr.next = slot.Add(loginDelay(addr.count))
	if name != nil {
		name.next = slot.Add(loginDelay(name.count))
	}
	if wait > 0 {
		t.waited.Add(1)
	}
	addr.checking++
	return wait, true, true
}

// done ends a login that admit let through, whatever its outcome.
func (t *loginThrottle) done(host string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := "ip " + host
	if e := t.entries[key]; e != nil {
		e.checking = max(e.checking-1, 0)
		if e.count == 0 && e.checking == 0 {
			delete(t.entries, key)
		}
	}
}

// failed counts a failed login; it reports whether the address is past the failures logged
// one by one, so that the caller leaves the line to the summary.
func (t *loginThrottle) failed(host, user string) (slowed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failedTotal.Add(1)
	delete(t.known, host)
	now := t.now()
	for _, key := range []string{"ip " + host, "user " + user} {
		e := t.entry(key, now)
		if e == nil {
			if len(t.entries) >= maxLoginEntries && !t.sweep(now) {
				continue
			}
			e = &loginFailures{}
			t.entries[key] = e
		}
		e.count++
		e.last = now
		e.next = later(e.next, now.Add(loginDelay(e.count)))
		if key[0] != 'i' {
			continue
		}
		if e.count > 1 && e.user != user {
			e.mixed = true
		}
		e.user = user
		slowed = e.count > loggedLoginFailures
	}
	if slowed || t.lines >= loggedLoginFailures {
		t.slowed.Add(1)
		return true
	}
	t.lines++
	return false
}

// succeeded forgets the failures of user, and those of host if they were all for user.
func (t *loginThrottle) succeeded(host, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, "user "+user)
	e := t.entries["ip "+host]
	if e != nil && (e.mixed || e.user != user) && e.count > 0 {
		return // another user's failures are not forgiven, nor is the address known
	}
	if e != nil {
		e.count, e.next = 0, time.Time{}
	}
	now := t.now()
	if _, ok := t.known[host]; !ok && len(t.known) >= maxLoginEntries {
		for h, at := range t.known {
			if now.Sub(at) > knownMemory {
				delete(t.known, h)
			}
		}
		if len(t.known) >= maxLoginEntries {
			return
		}
	}
	t.known[host] = now
}

// isKnown tells whether the last login from host, within knownMemory, succeeded.
func (t *loginThrottle) isKnown(host string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.known[host]
	return ok && t.now().Sub(at) <= knownMemory
}

// refusedUnchecked counts a login refused without a password check.
func (t *loginThrottle) refusedUnchecked() {
	t.refused.Add(1)
	t.refusedTotal.Add(1)
}

// entry returns the failures remembered for key, or nil.
func (t *loginThrottle) entry(key string, now time.Time) *loginFailures {
	e := t.entries[key]
	if e != nil && e.checking == 0 && now.Sub(e.last) > loginMemory && !now.Before(e.next) {
		delete(t.entries, key)
		return nil
	}
	return e
}

// sweep forgets old failures; it reports whether there is room for a new entry.
func (t *loginThrottle) sweep(now time.Time) bool {
	for key := range t.entries {
		t.entry(key, now)
	}
	return len(t.entries) < maxLoginEntries
}

// summarize logs, once a second while there are any, how many failed logins were not logged one
// by one, how many logins waited and how many were refused unchecked, until stop is closed.
func (t *loginThrottle) summarize(log *slog.Logger, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-stop:
			return
		}
		failed, waited, refused := t.slowed.Swap(0), t.waited.Swap(0), t.refused.Swap(0)
		t.mu.Lock()
		t.lines = 0
		tracked := len(t.entries)
		t.mu.Unlock()
		if failed+waited+refused == 0 {
			continue
		}
		log.Warn(eventlog.MsgLoginsSlowed, "failed", failed, "waited", waited, "refused_unchecked", refused,
			"addresses_and_users", tracked)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
