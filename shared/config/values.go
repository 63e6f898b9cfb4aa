package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// QoS is a flag value that accepts only the three MQTT quality-of-service levels.
type QoS byte

func (q *QoS) String() string { return strconv.Itoa(int(*q)) }

func (q *QoS) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 2 {
		return errors.New("QoS must be 0, 1 or 2")
	}
	*q = QoS(n)
	return nil
}

// Duration is a flag value for a time.Duration that may not be negative.
type Duration time.Duration

func (d *Duration) String() string { return time.Duration(*d).String() }

func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 500ms, 1s or 2m")
	}
	if v < 0 {
		return errors.New("must not be negative")
	}
	*d = Duration(v)
	return nil
}

// StringList is a repeatable flag. From the environment it takes a comma-separated list; the
// first use of the flag on the command line then replaces what the environment gave. Each use of
// the flag may be a comma-separated list too, unless Whole.
type StringList struct {
	values  []string
	check   func(string) error
	fromEnv bool
	whole   bool
}

// NewStringList returns a list holding defaults; check, if not nil, vets every value set.
func NewStringList(check func(string) error, defaults ...string) *StringList {
	return &StringList{values: defaults, check: check, fromEnv: true}
}

// Whole makes each use of the flag one value, commas included: a topic may hold one (mosquitto_sub
// -t 'a,b' subscribes to "a,b"). The environment's value is still a comma-separated list.
func (l *StringList) Whole() *StringList {
	l.whole = true
	return l
}

func (l *StringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, ",")
}

// Set takes one use of the flag.
func (l *StringList) Set(s string) error {
	if l.whole {
		return l.add([]string{s})
	}
	return l.setList(s)
}

// setList takes a comma-separated list (an environment variable's value).
func (l *StringList) setList(s string) error {
	var vs []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			vs = append(vs, v)
		}
	}
	return l.add(vs)
}

func (l *StringList) add(vs []string) error {
	for _, v := range vs {
		if v == "" {
			return errors.New("must not be empty")
		}
		if l.check != nil {
			if err := l.check(v); err != nil {
				return err
			}
		}
	}
	if len(vs) == 0 {
		return errors.New("must not be empty")
	}
	if l.fromEnv {
		l.values, l.fromEnv = nil, false
	}
	l.values = append(l.values, vs...)
	return nil
}

// Values returns the list.
func (l *StringList) Values() []string { return l.values }

// brokerSchemes are the URL schemes paho dials; mqtt:// and mqtts:// are the names other tools use.
var brokerSchemes = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "ws": true, "wss": true}

// CheckBrokerURL accepts scheme://host:port with a scheme paho can dial.
func CheckBrokerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("want a URL such as tcp://127.0.0.1:1883 (schemes tcp, ssl, ws, wss)")
	}
	if !brokerSchemes[u.Scheme] {
		return fmt.Errorf("unknown scheme %q: want tcp, ssl, ws or wss", u.Scheme)
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil || port == "" {
		return fmt.Errorf("%q has no port: want host:port, e.g. 127.0.0.1:1883", u.Host)
	}
	return checkPort(port, 1)
}

// CheckListenAddress accepts host:port or :port, as net.Listen does; port 0 picks a free port.
func CheckListenAddress(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil || port == "" {
		return fmt.Errorf("want host:port or :port, e.g. :1883")
	}
	return checkPort(port, 0)
}

// checkPort accepts a port number from least to 65535: a port out of range would only fail
// when a client dials it, and a client retries for ever.
func checkPort(port string, least int) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < least || n > 65535 {
		return fmt.Errorf("port %s: want a number from %d to 65535", port, least)
	}
	return nil
}

// CheckTopic accepts a topic name to publish to: not empty, no wildcards.
func CheckTopic(s string) error {
	if s == "" {
		return errors.New("topic must not be empty")
	}
	if strings.ContainsAny(s, "+#") {
		return errors.New("a topic to publish to may not contain + or #")
	}
	return checkTopicChars(s)
}

// CheckFilter accepts a topic filter to subscribe to: + for one level, # as the last level.
func CheckFilter(s string) error {
	if s == "" {
		return errors.New("topic filter must not be empty")
	}
	levels := strings.Split(s, "/")
	for i, lvl := range levels {
		if strings.Contains(lvl, "+") && lvl != "+" {
			return fmt.Errorf("%q: + must fill a whole level, as in a/+/c", s)
		}
		if strings.Contains(lvl, "#") && (lvl != "#" || i != len(levels)-1) {
			return fmt.Errorf("%q: # must be the last level, as in a/b/#", s)
		}
	}
	return checkTopicChars(s)
}

func checkTopicChars(s string) error {
	if len(s) > 65535 {
		return errors.New("topic is longer than 65535 bytes")
	}
	if strings.ContainsRune(s, 0) {
		return errors.New("topic must not contain the NUL character")
	}
	if !utf8.ValidString(s) {
		return errors.New("topic must be valid UTF-8")
	}
	// MQTT says a topic SHOULD NOT hold them and a receiver MAY take the packet for malformed:
	// Mosquitto ends the connection, and a QoS 0 message would be lost without a word.
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Errorf("topic must not contain control characters (U+%04X at byte %d)", r, i)
	}
	return nil
}

// Choice is a flag value that accepts one of a fixed set of words.
type Choice struct {
	value   string
	allowed []string
}

// NewChoice returns a Choice set to def, accepting only allowed.
func NewChoice(def string, allowed ...string) *Choice { return &Choice{value: def, allowed: allowed} }

func (c *Choice) String() string {
	if c == nil {
		return ""
	}
	return c.value
}

func (c *Choice) Set(s string) error {
	for _, a := range c.allowed {
		if s == a {
			c.value = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(c.allowed, ", "))
}

// Checked is a string flag value vetted by a check function.
type Checked struct {
	value string
	check func(string) error
}

// NewChecked returns a Checked set to def; check vets every value set.
func NewChecked(def string, check func(string) error) *Checked {
	return &Checked{value: def, check: check}
}

func (c *Checked) String() string {
	if c == nil {
		return ""
	}
	return c.value
}

func (c *Checked) Set(s string) error {
	if err := c.check(s); err != nil {
		return err
	}
	c.value = s
	return nil
}
