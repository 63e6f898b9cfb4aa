package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"mqttdemo/shared"
)

// Users is the -auth file: who may connect, and which topics each user may publish and
// subscribe to. Anything not listed is denied.
//
//	users:
//	  sensor:
//	    password: s3cret                  # plain text, for demos
//	    publish: [sensors/#]
//	  dashboard:
//	    bcrypt: $2a$10$...                 # from: mqttserver -hash-password
//	    subscribe: [sensors/+/temperature, alerts/#]
type Users struct {
	Users map[string]User `yaml:"users"`
}

// User is one entry of the -auth file.
type User struct {
	Password  string   `yaml:"password"` // plain text
	Bcrypt    string   `yaml:"bcrypt"`   // a bcrypt hash ($2a$, $2b$ or $2y$)
	Publish   []string `yaml:"publish"`  // topic filters the user may publish to
	Subscribe []string `yaml:"subscribe"`
}

// HashPassword reads one line (the password) from r and writes its bcrypt hash to w.
func HashPassword(r io.Reader, w io.Writer) error {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return errors.New("hash-password: no password on standard input")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash-password: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", hash)
	return err
}

// LoadUsers reads and checks an -auth file.
func LoadUsers(path string) (*Users, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a typo such as "publsh" must not silently deny everything
	var u Users
	if err := dec.Decode(&u); err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	if len(u.Users) == 0 {
		return nil, fmt.Errorf("auth file %s: no users", path)
	}
	for name, user := range u.Users {
		if err := user.check(); err != nil {
			return nil, fmt.Errorf("auth file %s: user %q: %w", path, name, err)
		}
	}
	return &u, nil
}

func (u User) check() error {
	switch {
	case u.Password == "" && u.Bcrypt == "":
		return errors.New("needs a password or a bcrypt hash")
	case u.Password != "" && u.Bcrypt != "":
		return errors.New("give a password or a bcrypt hash, not both")
	case u.Bcrypt != "":
		if _, err := bcrypt.Cost([]byte(u.Bcrypt)); err != nil {
			return fmt.Errorf("bcrypt: %w", err)
		}
	}
	for _, f := range append(append([]string(nil), u.Publish...), u.Subscribe...) {
		if err := shared.CheckFilter(f); err != nil {
			return err
		}
	}
	return nil
}

// unknownUserHash is checked, in vain, for a user not in the file, so that answering takes as
// long as for a wrong password: otherwise the time to answer tells which user names exist.
const unknownUserHash = "$2a$10$76AKT6hH9JxYuLQeqAF8c.pjn092LwcStrVPv6j0dpiMDoQMmOonK"

// compareHash is bcrypt's check (a variable so that a test can count the calls).
var compareHash = bcrypt.CompareHashAndPassword

// authenticate tells whether password is the user's; reason says why not.
func (u *Users) authenticate(username, password []byte) (ok bool, reason string) {
	if len(username) == 0 {
		return false, "no username"
	}
	user, found := u.Users[string(username)]
	switch {
	case !found:
		_ = compareHash([]byte(unknownUserHash), password)
		return false, "unknown user"
	case user.Bcrypt != "":
		if compareHash([]byte(user.Bcrypt), password) != nil {
			return false, "wrong password"
		}
	case subtle.ConstantTimeCompare([]byte(user.Password), password) != 1:
		return false, "wrong password"
	}
	return true, ""
}

// addAccess lets clients in: those of the -auth file, or anyone (with a warning) without one.
func addAccess(server *mqtt.Server, authFile string, log *slog.Logger) error {
	if authFile == "" {
		// mochi refuses every client unless a hook allows it; the article's broker is open.
		if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
			return fmt.Errorf("add allow-all hook: %w", err)
		}
		log.Warn("anonymous access: any client may connect, publish and subscribe to any topic")
		return nil
	}
	users, err := LoadUsers(authFile)
	if err != nil {
		return err
	}
	if err := server.AddHook(&authHook{users: users, log: log,
		denied: newLineCap(log, slog.LevelInfo, msgDeniedMore)}, nil); err != nil {
		return fmt.Errorf("add auth hook: %w", err)
	}
	log.Info("access restricted to the users of the auth file", "file", authFile, "users", len(users.Users))
	return nil
}

// authHook checks CONNECT credentials and every publish and subscribe against the -auth file.
type authHook struct {
	mqtt.HookBase
	users  *Users
	log    *slog.Logger
	denied *lineCap // a client publishing in a loop to a forbidden topic must not flood the log
}

// Init starts the summary of capped "publish denied" lines; Stop writes the last one.
func (h *authHook) Init(any) error {
	h.denied.start()
	return nil
}

func (h *authHook) Stop() error {
	h.denied.close()
	return nil
}

func (h *authHook) ID() string { return "auth-file" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate refuses unknown users and wrong passwords; mochi then answers CONNACK
// 0x04 (bad user name or password; 0x86 for MQTT 5). The password is never logged.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	ok, reason := h.users.authenticate(pk.Connect.Username, pk.Connect.Password)
	if ok {
		return true
	}
	level := slog.LevelInfo
	if cl.ID == healthCheckID && len(pk.Connect.Username) == 0 {
		level = slog.LevelDebug // our own -healthcheck probe: a refusal is its expected answer
	}
	h.log.LogAttrs(context.Background(), level, msgAuthFailed,
		slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote),
		slog.String("username", string(pk.Connect.Username)),
		slog.String("reason", reason))
	return false
}

// OnACLCheck is asked for each PUBLISH a client sends (write), each filter it subscribes to
// and each message delivered to it (read). A filter is allowed only when every topic it can
// match is allowed, so "#" is refused to a user who may read only "sensors/#".
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := h.users.Users[string(cl.Properties.Username)]
	allowed := user.Subscribe
	if write {
		allowed = user.Publish
	}
	for _, f := range allowed {
		if covers(f, topic) {
			return true
		}
	}
	if write && h.denied.allow() {
		h.log.LogAttrs(context.Background(), slog.LevelInfo, msgPublishDenied,
			slog.String("client", cl.ID),
			slog.String("username", string(cl.Properties.Username)),
			slog.String("topic", topic))
	}
	return false
}

// covers reports whether every topic that filter can match is also matched by allowed
// (a topic name is a filter that matches only itself). As MQTT says, a first level + or #
// does not reach topics starting with $, such as $SYS.
func covers(allowed, filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok { // $share/group/filter
		if _, f, ok := strings.Cut(rest, "/"); ok {
			filter = f
		}
	}
	a, f := strings.Split(allowed, "/"), strings.Split(filter, "/")
	if strings.HasPrefix(f[0], "$") && (a[0] == "+" || a[0] == "#") {
		return false
	}
	for i, level := range a {
		switch {
		case level == "#":
			return true // also covers the parent: a/# matches a
		case i >= len(f), f[i] == "#":
			return false
		case level == "+":
			continue
		case level != f[i]: // includes a + in filter against a literal level
			return false
		}
	}
	return len(f) == len(a)
}
