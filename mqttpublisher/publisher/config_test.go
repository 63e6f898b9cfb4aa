package publisher

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"mqttdemo/shared/config"
	"mqttdemo/shared/config/configtest"
)

// every is each flag of the publisher with a value that is not its default.
var every = map[string]string{
	"broker":       "tcp://a:1,ssl://b:2",
	"id":           "pub-7",
	"username":     "alice",
	"password":     "s3cret",
	"cafile":       "ca.pem",
	"cert":         "c.pem",
	"key":          "k.pem",
	"insecure":     "true",
	"keepalive":    "45s",
	"clean":        "false",
	"will-topic":   "clients/pub-7",
	"will-payload": "gone",
	"will-qos":     "1",
	"will-retain":  "true",
	"color":        "never",
	"topic":        "sensors/t",
	"qos":          "2",
	"retain":       "true",
	"interval":     "250ms",
	"count":        "9",
	"message":      "n={n}",
	"stdin":        "true",
	"store":        "/tmp/store",
	"debug":        "true",
	"json":         "true",
}

func checkEvery(t *testing.T, cfg Config) {
	t.Helper()
	c := cfg.ClientConfig
	for _, g := range []struct {
		name      string
		got, want any
	}{
		{"broker", c.Brokers.Values(), []string{"tcp://a:1", "ssl://b:2"}},
		{"id", c.ID, "pub-7"},
		{"username", c.Username, "alice"},
		{"password", c.Password, "s3cret"},
		{"cafile", c.CAFile, "ca.pem"},
		{"cert", c.CertFile, "c.pem"},
		{"key", c.KeyFile, "k.pem"},
		{"insecure", c.Insecure, true},
		{"keepalive", time.Duration(c.KeepAlive), 45 * time.Second},
		{"clean", c.Clean, false},
		{"will-topic", c.WillTopic, "clients/pub-7"},
		{"will-payload", c.WillText, "gone"},
		{"will-qos", c.WillQoS, config.QoS(1)},
		{"will-retain", c.WillRetain, true},
		{"color", c.Color.String(), "never"},
		{"topic", cfg.Topic, "sensors/t"},
		{"qos", cfg.QoS, byte(2)},
		{"retain", cfg.Retain, true},
		{"interval", cfg.Interval, 250 * time.Millisecond},
		{"count", cfg.Count, 9},
		{"message", cfg.Message, "n={n}"},
		{"stdin", cfg.Stdin, true},
		{"store", cfg.Store, "/tmp/store"},
		{"debug", c.Debug, true},
		{"json", c.JSON, true},
	} {
		if !equal(g.got, g.want) {
			t.Errorf("-%s: got %v, want %v", g.name, g.got, g.want)
		}
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		return strings.Join(as, ",") == strings.Join(b.([]string), ",")
	}
	return a == b
}

// TestLoadEveryFlag sets every flag once from the command line and once from MQTT_* variables.
func TestLoadEveryFlag(t *testing.T) {
	configtest.EveryFlag(t, every, nil, Load, checkEvery)
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load(nil, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Topic != "mytopic" || cfg.QoS != 0 || cfg.Interval != time.Second || cfg.Count != 0 ||
		cfg.Message != "time:{time}" || cfg.Stdin || cfg.Store != "" || !cfg.Clean ||
		cfg.Brokers.String() != "tcp://127.0.0.1:1883" || !strings.HasPrefix(cfg.ID, "mqttpublisher-") {
		t.Errorf("unexpected defaults: %+v %+v", cfg, *cfg.ClientConfig)
	}
}

func TestLoadRejects(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-topic", "a/+"}, "may not contain + or #"},
		{[]string{"-topic", ""}, "must not be empty"},
		{[]string{"-count", "-1"}, "-count: must not be negative"},
		{[]string{"-store", "d"}, "-store needs -clean=false and a fixed -id"},
		{[]string{"-store", "d", "-clean=false"}, "-clean=false needs a fixed -id"},
		{[]string{"-interval", "-1s"}, "must not be negative"},
		{[]string{"-qos", "3"}, "QoS must be 0, 1 or 2"},
	} {
		var stderr bytes.Buffer
		_, err := Load(c.args, func(string) string { return "" }, &stderr)
		var usage *config.UsageError
		if !errors.As(err, &usage) || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("Load(%q) = %v, stderr %q; want a usage error saying %q", c.args, err, stderr.String(), c.want)
		}
	}
}
