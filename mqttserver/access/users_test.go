package access

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		allowed, filter string
		want            bool
	}{
		{"sensors/#", "sensors/kitchen/temp", true},
		{"sensors/#", "sensors", true}, // a/# also matches a
		{"sensors/#", "sensors/+/temp", true},
		{"sensors/#", "sensors/#", true},
		{"sensors/#", "#", false},
		{"sensors/#", "+/kitchen", false},
		{"sensors/+/temp", "sensors/kitchen/temp", true},
		{"sensors/+/temp", "sensors/+/temp", true},
		{"sensors/+/temp", "sensors/#", false},
		{"sensors/+/temp", "sensors/kitchen/temp/x", false},
		{"sensors/+/temp", "sensors/kitchen", false},
		{"a/b", "a/b", true},
		{"a/b", "a/+", false},
		{"a/b", "a/b/c", false},
		{"#", "anything/at/all", true},
		{"#", "$SYS/broker/uptime", false}, // wildcards do not reach $ topics
		{"+/uptime", "$SYS/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"jobs/#", "$share/workers/jobs/new", true},
		{"jobs/#", "$share/workers/#", false},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"+", "a/b", false},
		{"+/+", "a/b", true},
		{"a//c", "a//c", true},
		{"a/+/c", "a//c", true},
		{"#", "#", true},
	} {
		if got := covers(c.allowed, c.filter); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.allowed, c.filter, got, c.want)
		}
	}
	// It runs for every message delivered under -auth: no allocation.
	if n := testing.AllocsPerRun(100, func() { covers("sensors/+/temp/#", "$share/g/sensors/kitchen/temp/x") }); n != 0 {
		t.Errorf("covers allocates %v times per call", n)
	}
}

// TestRulesAllow: allow rules, deny rules that win over them, and the wildcard semantics of
// both: a filter is allowed when an allow rule covers all of it and no deny rule does.
func TestRulesAllow(t *testing.T) {
	anon := &Rules{Publish: []string{"#"}, Subscribe: []string{"#"}, DenySubscribe: []string{"test/nosubscribe"},
		DenyPublish: []string{"secret/#"}}
	for _, c := range []struct {
		rules *Rules
		topic string
		write bool
		want  bool
	}{
		{anon, "test/nosubscribe", false, false},
		{anon, "test/+", false, true}, // wider than the denied topic: granted, and withheld at delivery
		{anon, "#", false, true},
		{anon, "test/other", false, true},
		{anon, "test/nosubscribe", true, true}, // deny_subscribe does not touch publishing
		{anon, "secret/key", true, false},
		{anon, "secret", true, false}, // secret/# also matches secret
		{anon, "$SYS/x", false, false},
		{nil, "anything", false, false}, // no entry: nothing allowed
		{&Rules{}, "anything", true, false},
	} {
		if got := c.rules.allows(c.topic, c.write); got != c.want {
			t.Errorf("%+v.allows(%q, write=%v) = %v, want %v", c.rules, c.topic, c.write, got, c.want)
		}
	}
}

// TestAnonymousEntry: without an anonymous entry a client without a user name is refused; with
// one it is let in with those rules.
func TestAnonymousEntry(t *testing.T) {
	closed := &Users{Users: map[string]*User{"u": {Password: "p"}}}
	if ok, _ := closed.authenticate(nil, nil); ok {
		t.Error("anonymous let in without an anonymous entry")
	}
	open := &Users{Anonymous: &Rules{Subscribe: []string{"#"}}}
	if ok, _ := open.authenticate(nil, nil); !ok {
		t.Error("anonymous refused with an anonymous entry")
	}
	if !open.rules(nil).allows("a/b", false) || open.rules([]byte("u")) != nil {
		t.Error("anonymous rules not applied, or applied to a named user")
	}
}

func TestLoadUsersRejects(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"no password", "users:\n  a:\n    publish: [x]\n", "needs a password"},
		{"both", "users:\n  a:\n    password: p\n    bcrypt: $2a$10$abc\n", "not both"},
		{"bad hash", "users:\n  a:\n    bcrypt: nothash\n", "bcrypt"},
		{"bad filter", "users:\n  a:\n    password: p\n    subscribe: [a/#/b]\n", "# must be the last level"},
		{"typo", "users:\n  a:\n    password: p\n    publsh: [x]\n", "publsh"},
		{"empty", "users: {}\n", "no users"},
		{"bad deny filter", "anonymous:\n  deny_subscribe: [a+]\n", "anonymous"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth.yaml")
			if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadUsers(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("LoadUsers: err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	var out strings.Builder
	if err := HashPassword(strings.NewReader("pa ss\n"), &out); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("pa ss")); err != nil {
		t.Errorf("hash %q does not match the password: %v", hash, err)
	}
	if err := HashPassword(strings.NewReader(""), &out); err == nil {
		t.Error("an empty password was hashed")
	}
}

// password does, so the time to answer does not tell which user names exist.
func TestUnknownUserTakesAsLong(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := &Users{Users: map[string]*User{"known": {Bcrypt: string(hash)}}}
	calls := 0
	orig := compareHash
	compareHash = func(h, p []byte) error { calls++; return orig(h, p) }
	t.Cleanup(func() { compareHash = orig })

	for _, c := range []struct{ user, reason string }{
		{"known", "wrong password"},
		{"stranger", "unknown user"},
	} {
		calls = 0
		ok, reason := users.authenticate([]byte(c.user), []byte("guess"))
		if ok || reason != c.reason {
			t.Errorf("%s: ok=%v reason=%q, want refused with %q", c.user, ok, reason, c.reason)
		}
		if calls != 1 {
			t.Errorf("%s: %d bcrypt checks, want 1 (same cost as any refusal)", c.user, calls)
		}
	}
}
