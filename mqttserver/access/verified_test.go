package access

import (
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestVerifiedLogins: a password bcrypt verified matches again, for its user only and under
// the auth file it was verified with; a wrong one never matches and is never remembered, nor
// does it make the right one forgotten; an hour later, or after a reload, it is checked again.
func TestVerifiedLogins(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	users := &Users{Users: map[string]*User{"reader": {Password: "right"}, "writer": {Password: "other"}}}
	v := newVerifiedLogins()
	v.now = func() time.Time { return now }
	match := func(u *Users, user, password string) bool { return v.match(u, []byte(user), []byte(password)) }

	if match(users, "reader", "right") {
		t.Fatal("a password never verified matches")
	}
	v.remember(users, []byte("reader"), []byte("right"))
	v.remember(users, []byte("stranger"), []byte("x")) // not in the file: not remembered
	v.remember(users, nil, nil)                        // anonymous: nothing to remember
	for _, c := range []struct {
		user, password string
		want           bool
	}{
		{"reader", "right", true},
		{"reader", "wrong", false},
		{"reader", "righ", false},
		{"readerr", "ight", false}, // the same bytes split elsewhere
		{"writer", "right", false},
		{"stranger", "x", false},
		{"", "", false},
	} {
		if got := match(users, c.user, c.password); got != c.want {
			t.Errorf("%s/%s: match %v, want %v", c.user, c.password, got, c.want)
		}
	}
	if !match(users, "reader", "right") {
		t.Error("a wrong password made the right one forgotten")
	}
	if len(v.entries) != 1 {
		t.Errorf("%d entries, want 1 (reader)", len(v.entries))
	}

	reloaded := &Users{Users: map[string]*User{"reader": {Password: "new"}}}
	if match(reloaded, "reader", "right") {
		t.Error("a password verified under the old auth file matches after a reload")
	}
	v.remember(reloaded, []byte("reader"), []byte("new"))
	v.reset()
	if match(reloaded, "reader", "new") {
		t.Error("a password matches after reset")
	}

	v.remember(users, []byte("reader"), []byte("right"))
	now = now.Add(verifiedMemory)
	if match(users, "reader", "right") {
		t.Errorf("a password verified %s ago matches", verifiedMemory)
	}
	if len(v.entries) != 0 {
		t.Errorf("%d entries after expiry, want 0", len(v.entries))
	}
}

// TestVerifiedLoginSkipsBcryptAndBudget: once bcrypt has verified a user's password, the same
// login from an address never seen is accepted without bcrypt, even with the budget of checks
// spent; a wrong password is still checked by bcrypt (and waits for the budget: refused here,
// unchecked); after a reload the right one is checked again.
func TestVerifiedLoginSkipsBcryptAndBudget(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := &Users{Users: map[string]*User{"reader": {Bcrypt: string(hash)}}}
	calls := 0
	orig := compareHash
	compareHash = func(h, p []byte) error { calls++; return orig(h, p) }
	t.Cleanup(func() { compareHash = orig })
	h := &Hook{logins: newLoginThrottle(), budget: newLoginBudget(1), verified: newVerifiedLogins(),
		suspectChecks: make(chan struct{}, 1), stop: make(chan struct{})}
	login := func(users *Users, host, password string) (bool, error) {
		ok, _, _, err := h.checkLogin(users, host, []byte("reader"), []byte(password), false)
		return ok, err
	}

	if ok, err := login(users, "10.0.0.1", "right"); !ok || err != nil || calls != 1 {
		t.Fatalf("first login: ok %v, %v, %d bcrypt checks; want ok and 1", ok, err, calls)
	}
	h.budget.tokens = -100 // a flood has spent the budget for seconds to come
	for _, host := range []string{"10.0.0.2", "10.0.0.3"} {
		if ok, err := login(users, host, "right"); !ok || err != nil || calls != 1 {
			t.Errorf("verified login from %s: ok %v, %v, %d bcrypt checks; want ok and still 1", host, ok, err, calls)
		}
	}
	if ok, err := login(users, "10.0.0.4", "wrong"); ok || err != errThrottled {
		t.Errorf("wrong password from a new address: ok %v, %v; want refused unchecked (budget spent)", ok, err)
	}
	h.budget.tokens = 1
	if ok, _ := login(users, "10.0.0.5", "wrong"); ok || calls != 2 {
		t.Errorf("wrong password: ok %v, %d bcrypt checks; want refused, checked (2)", ok, calls)
	}
	reloaded := &Users{Users: map[string]*User{"reader": {Bcrypt: string(hash)}}}
	h.budget.tokens = 1
	if ok, _ := login(reloaded, "10.0.0.1", "right"); !ok || calls != 3 {
		t.Errorf("after a reload: ok %v, %d bcrypt checks; want ok, checked again (3)", ok, calls)
	}
}
