package access

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// verifiedMemory is how long a password bcrypt has verified is known without checking it again.
const verifiedMemory = time.Hour

// verifiedLogins remembers, for each user, the last password bcrypt verified, as an HMAC-SHA256
// under a key drawn at start (never written anywhere): a login with the same user and password
// is accepted without bcrypt and without the budget of checks (loginBudget), from any address,
// so that an honest client whose address changed is not held up by a guessing flood. It tells
// a guesser nothing: a match means the password is right, a mismatch goes through the budget
// and bcrypt as before, and a wrong password is never remembered nor forgets the right one.
//
// One entry per user of the auth file, dropped after verifiedMemory, and at a reload: an entry
// holds the Users it was verified under, and a reload stores new ones (a changed hash, a
// removed user).
type verifiedLogins struct {
	key []byte
	now func() time.Time

	mu      sync.Mutex
	entries map[string]verifiedLogin // by user name
}

type verifiedLogin struct {
	mac   []byte
	users *Users // the auth file in force when bcrypt verified it
	at    time.Time
}

func newVerifiedLogins() *verifiedLogins {
	key := make([]byte, sha256.Size)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24)
	return &verifiedLogins{key: key, now: time.Now, entries: make(map[string]verifiedLogin)}
}

// sum is the keyed hash of user and password; the user's length first, so that no two pairs
// give the same input.
func (v *verifiedLogins) sum(user, password []byte) []byte {
	m := hmac.New(sha256.New, v.key)
	_ = binary.Write(m, binary.BigEndian, uint32(len(user)))
	m.Write(user)
	m.Write(password)
	return m.Sum(nil)
}

// match tells whether password is the one bcrypt last verified for user under users, less
// than verifiedMemory ago. The comparison takes the same time whatever the password.
func (v *verifiedLogins) match(users *Users, user, password []byte) bool {
	if len(user) == 0 {
		return false
	}
	mac := v.sum(user, password)
	v.mu.Lock()
	e, ok := v.entries[string(user)]
	if ok && (e.users != users || v.now().Sub(e.at) >= verifiedMemory) {
		delete(v.entries, string(user))
		ok = false
	}
	v.mu.Unlock()
	return ok && hmac.Equal(mac, e.mac)
}

// remember notes that password is user's under users, as bcrypt has just verified.
func (v *verifiedLogins) remember(users *Users, user, password []byte) {
	if len(user) == 0 || users.Users[string(user)] == nil {
		return // anonymous: nothing to verify; the file has one entry a user
	}
	mac := v.sum(user, password)
	v.mu.Lock()
	v.entries[string(user)] = verifiedLogin{mac: mac, users: users, at: v.now()}
	v.mu.Unlock()
}

// reset forgets every password, at a reload.
func (v *verifiedLogins) reset() {
	v.mu.Lock()
	clear(v.entries)
	v.mu.Unlock()
}
