package subscriber

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"mqttdemo/shared/config"
	"mqttdemo/shared/config/configtest"
)

// every is each flag of the subscriber with a value that is not its default.
var every = map[string]string{
	"broker":       "ws://a:1/mqtt,wss://b:2/mqtt",
	"id":           "sub-7",
	"username":     "bob",
	"password":     "pw",
	"cafile":       "ca.pem",
	"cert":         "c.pem",
	"key":          "k.pem",
	"insecure":     "true",
	"keepalive":    "0s",
	"clean":        "false",
	"will-topic":   "clients/sub-7",
	"will-payload": "bye",
	"will-qos":     "2",
	"will-retain":  "true",
	"color":        "always",
	"topic":        "a/+/c,d/#",
	"qos":          "1",
	"count":        "3",
	"timeout":      "1m30s",
	"json":         "true",
}

func checkEvery(t *testing.T, cfg Config) {
	t.Helper()
	c := cfg.ClientConfig
	got := []any{strings.Join(c.Brokers.Values(), ","), c.ID, c.Username, c.Password, c.CAFile, c.CertFile, c.KeyFile,
		c.Insecure, time.Duration(c.KeepAlive), c.Clean, c.WillTopic, c.WillText, c.WillQoS, c.WillRetain, c.Color.String(),
		strings.Join(cfg.Topics, ","), cfg.QoS, cfg.Count, cfg.Timeout, cfg.JSON}
	want := []any{"ws://a:1/mqtt,wss://b:2/mqtt", "sub-7", "bob", "pw", "ca.pem", "c.pem", "k.pem",
		true, time.Duration(0), false, "clients/sub-7", "bye", config.QoS(2), true, "always",
		"a/+/c,d/#", byte(1), 3, 90 * time.Second, true}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// TestLoadEveryFlag sets every flag once from the command line and once from MQTT_* variables.
func TestLoadEveryFlag(t *testing.T) {
	configtest.EveryFlag(t, every, map[string][]string{"topic": {"a/+/c", "d/#"}}, Load, checkEvery)
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load(nil, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Topics, ",") != "mytopic" || cfg.QoS != 0 || cfg.Count != 0 || cfg.Timeout != 0 || cfg.JSON ||
		!cfg.Clean || !strings.HasPrefix(cfg.ID, "mqttsubscriber-") {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestLoadRejects(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-topic", "a/#/b"}, "# must be the last level"},
		{[]string{"-topic", "a/b+"}, "+ must fill a whole level"},
		{[]string{"-count", "-2"}, "-count: must not be negative"},
		{[]string{"-timeout", "-1s"}, "must not be negative"},
		{[]string{"-clean=false"}, "-clean=false needs a fixed -id"},
	} {
		var stderr bytes.Buffer
		_, err := Load(c.args, func(string) string { return "" }, &stderr)
		var usage *config.UsageError
		if !errors.As(err, &usage) || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("Load(%q) = %v, stderr %q; want a usage error saying %q", c.args, err, stderr.String(), c.want)
		}
	}
}
