package access

import (
	"sync"
	"time"
)

// DefaultMaxFailedLogins is the broker's budget of password checks a second for logins from
// addresses it does not know (see loginBudget). A bcrypt check of the default cost takes about
// 50 ms of a core here, so 10 a second keep a guessing flood to half a core: one guess from
// each of 1,040 addresses at once had every one checked and slowed an honest login 17 times.
const DefaultMaxFailedLogins = 10

// maxBudgetWait is the longest a login waits for the budget; one that would wait longer is
// refused unchecked (CONNACK 3, server unavailable; 0x9F for MQTT 5) and may try again.
const maxBudgetWait = 2 * time.Second

// loginBudget is a token bucket of password checks, perSecond a second and as many at once,
// for the logins of addresses without a recent successful login: a guess spread over many
// addresses is slowed down as a whole, while a client that logged in before from its
// address is not slowed by others' guesses. A check that succeeds gives its token back, so
// the budget counts the checks of failing logins.
type loginBudget struct {
	mu        sync.Mutex
	perSecond float64 // 0 is no budget
	tokens    float64 // below zero: tokens promised to logins waiting for them
	at        time.Time
	now       func() time.Time
}

func newLoginBudget(perSecond int) *loginBudget {
	return &loginBudget{perSecond: float64(perSecond), tokens: float64(perSecond), now: time.Now}
}

// take takes a token for a check; it tells how long to wait for it, or !ok when that would
// be longer than maxWait (then nothing is taken).
func (b *loginBudget) take(maxWait time.Duration) (wait time.Duration, ok bool) {
	if b.perSecond <= 0 {
		return 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fill()
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	wait = time.Duration((1 - b.tokens) / b.perSecond * float64(time.Second))
	if wait > maxWait {
		return 0, false
	}
	b.tokens--
	return wait, true
}

// giveBack returns the token of a check that succeeded.
func (b *loginBudget) giveBack() {
	if b.perSecond <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fill()
	b.tokens = min(b.tokens+1, b.perSecond)
}

// fill adds the tokens earned since the last call, up to a second's worth.
func (b *loginBudget) fill() {
	now := b.now()
	if !b.at.IsZero() {
		b.tokens = min(b.tokens+now.Sub(b.at).Seconds()*b.perSecond, b.perSecond)
	}
	b.at = now
}
