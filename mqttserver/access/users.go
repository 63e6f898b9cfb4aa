package access

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"mqttdemo/shared/config"
)

// Users is the -auth file: who may connect, and which topics each may publish and subscribe
// to. Anything not allowed is denied, and a deny rule wins over any allow rule.
//
//	anonymous:                            # clients that give no user name; absent: refused
//	  subscribe: ["#"]
//	  deny_subscribe: [test/nosubscribe]
//	users:
//	  sensor:
//	    password: s3cret                  # plain text, for demos
//	    publish: [sensors/#]
//	  dashboard:
//	    bcrypt: $2a$10$...                 # from: mqttserver -hash-password
//	    subscribe: [sensors/+/temperature, alerts/#]
type Users struct {
	Anonymous *Rules           `yaml:"anonymous"`
	Users     map[string]*User `yaml:"users"` // pointers: the rules are looked up per message, without a copy
}

// User is one entry of the -auth file.
type User struct {
	Password string `yaml:"password"` // plain text
	Bcrypt   string `yaml:"bcrypt"`   // a bcrypt hash ($2a$, $2b$ or $2y$)
	Rules    `yaml:",inline"`
}

// Rules are the topic filters a client may and may not publish and subscribe to.
type Rules struct {
	Publish       []string `yaml:"publish"`
	Subscribe     []string `yaml:"subscribe"`
	DenyPublish   []string `yaml:"deny_publish"`
	DenySubscribe []string `yaml:"deny_subscribe"`
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
	if len(u.Users) == 0 && u.Anonymous == nil {
		return nil, fmt.Errorf("auth file %s: no users and no anonymous entry", path)
	}
	if u.Anonymous != nil {
		if err := u.Anonymous.check(); err != nil {
			return nil, fmt.Errorf("auth file %s: anonymous: %w", path, err)
		}
	}
	for name, user := range u.Users {
		if user == nil {
			return nil, fmt.Errorf("auth file %s: user %q: needs a password or a bcrypt hash", path, name)
		}
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
	return u.Rules.check()
}

func (r Rules) check() error {
	for _, list := range [][]string{r.Publish, r.Subscribe, r.DenyPublish, r.DenySubscribe} {
		for _, f := range list {
			if err := config.CheckFilter(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// rules are the rules of a client that gave username (empty: anonymous); nil if it has none.
func (u *Users) rules(username []byte) *Rules {
	if len(username) == 0 {
		return u.Anonymous
	}
	if user := u.Users[string(username)]; user != nil {
		return &user.Rules
	}
	return nil
}

// mayView tells whether user may open the live page: it shows every topic, so only a user who
// may read everything anyway (subscribe to "#", no deny_subscribe rule).
func (u *Users) mayView(user string) bool {
	rules := u.rules([]byte(user))
	return rules.allows("#", false) && len(rules.DenySubscribe) == 0
}

// allows tells whether the rules let a client publish (write) or subscribe to topic, which may
// be a filter. A filter is allowed when an allow rule covers every topic it can match and no
// deny rule does; a wider filter that a deny rule only overlaps is allowed, and the messages it
// would match on denied topics are withheld at delivery (asked with the topic name).
func (r *Rules) allows(topic string, write bool) bool {
	if r == nil {
		return false
	}
	allow, deny := r.Subscribe, r.DenySubscribe
	if write {
		allow, deny = r.Publish, r.DenyPublish
	}
	for _, f := range deny {
		if covers(f, topic) {
			return false
		}
	}
	for _, f := range allow {
		if covers(f, topic) {
			return true
		}
	}
	return false
}

// unknownUserHash is checked, in vain, for a user not in the file, so that answering takes as
// long as for a wrong password: otherwise the time to answer tells which user names exist.
const unknownUserHash = "$2a$10$76AKT6hH9JxYuLQeqAF8c.pjn092LwcStrVPv6j0dpiMDoQMmOonK"

// compareHash is bcrypt's check (a variable so that a test can count the calls).
var compareHash = bcrypt.CompareHashAndPassword

// authenticate tells whether password is the user's; reason says why not.
func (u *Users) authenticate(username, password []byte) (ok bool, reason string) {
	if len(username) == 0 {
		if u.Anonymous != nil {
			return true, ""
		}
		return false, "no username"
	}
	user := u.Users[string(username)]
	switch {
	case user == nil:
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

// covers reports whether every topic that filter can match is also matched by allowed
// (a topic name is a filter that matches only itself). As MQTT says, a first level + or #
// does not reach topics starting with $, such as $SYS.
func covers(allowed, filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok { // $share/group/filter
		if _, f, ok := strings.Cut(rest, "/"); ok {
			filter = f
		}
	}
	// Level by level, without splitting: it runs for every message delivered under -auth.
	if first, _, _ := strings.Cut(allowed, "/"); strings.HasPrefix(filter, "$") && (first == "+" || first == "#") {
		return false
	}
	a, f, fEnded := allowed, filter, false
	for {
		level, aRest, aMore := strings.Cut(a, "/")
		if level == "#" {
			return true // also covers the parent: a/# matches a
		}
		if fEnded {
			return false
		}
		fLevel, fRest, fMore := strings.Cut(f, "/")
		if fLevel == "#" || level != "+" && level != fLevel { // a + in filter against a literal level too
			return false
		}
		if !aMore {
			return !fMore
		}
		a, f, fEnded = aRest, fRest, !fMore
	}
}
