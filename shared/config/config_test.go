package config_test

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"mqttdemo/shared/cli"
	"mqttdemo/shared/config"
	"mqttdemo/shared/mqttclient"
)

// testFlags declares a few flags of each kind, as a program does.
func testFlags(stderr *bytes.Buffer) (*flag.FlagSet, *mqttclient.ClientConfig, *config.QoS, *config.Duration, *config.StringList) {
	fs := config.NewFlagSet(config.Program{Name: "prog", Summary: "does things", Example: "  prog -qos 1"}, stderr)
	cc := mqttclient.AddClientFlags(fs, "prog")
	qos := new(config.QoS)
	interval := config.Duration(time.Second)
	topics := config.NewStringList(config.CheckFilter, mqttclient.DefaultTopic).Whole()
	fs.Var(qos, "qos", "QoS")
	fs.Var(&interval, "interval", "interval")
	fs.Var(topics, "topic", "topics")
	fs.Int("count", 0, "count")
	return fs, cc, qos, &interval, topics
}

func TestLoadOrder(t *testing.T) {
	for _, c := range []struct {
		name       string
		env        map[string]string
		args       []string
		wantQoS    config.QoS
		wantBroker string
		wantTopics string
		wantEvery  time.Duration
	}{
		{"defaults", nil, nil, 0, mqttclient.DefaultBroker, "mytopic", time.Second},
		{"environment", map[string]string{"MQTT_QOS": "1", "MQTT_BROKER": "tcp://h:1", "MQTT_INTERVAL": "2s"}, nil, 1, "tcp://h:1", "mytopic", 2 * time.Second},
		{"flags beat environment", map[string]string{"MQTT_QOS": "1"}, []string{"-qos", "2"}, 2, mqttclient.DefaultBroker, "mytopic", time.Second},
		{"list from environment", map[string]string{"MQTT_TOPIC": "a/+, b/#"}, nil, 0, mqttclient.DefaultBroker, "a/+|b/#", time.Second},
		{"flags replace environment list", map[string]string{"MQTT_TOPIC": "a,b"}, []string{"-topic", "c", "-topic", "d"}, 0, mqttclient.DefaultBroker, "c|d", time.Second},
		{"a topic flag holding a comma", nil, []string{"-topic", "a,b", "-topic", " c"}, 0, mqttclient.DefaultBroker, "a,b| c", time.Second},
		{"comma-separated brokers", nil, []string{"-broker", "tcp://a:1,tcp://b:2"}, 0, "tcp://a:1,tcp://b:2", "mytopic", time.Second},
		{"a CA file with a TLS broker among others", nil, []string{"-cafile", "ca.crt", "-broker", "tcp://a:1,mqtts://b:8883"}, 0,
			"tcp://a:1,mqtts://b:8883", "mytopic", time.Second},
		{"repeated broker flags", nil, []string{"-broker", "tcp://a:1", "-broker", "ssl://b:2"}, 0, "tcp://a:1,ssl://b:2", "mytopic", time.Second},
		{"empty variable is unset", map[string]string{"MQTT_QOS": ""}, nil, 0, mqttclient.DefaultBroker, "mytopic", time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			fs, cc, qos, interval, topics := testFlags(&stderr)
			getenv := func(k string) string { return c.env[k] }
			if err := config.Load(fs, c.args, getenv, cc.Validate); err != nil {
				t.Fatalf("Load: %v\n%s", err, stderr.String())
			}
			got := strings.Join(topics.Values(), "|")
			if *qos != c.wantQoS || cc.Brokers.String() != c.wantBroker || got != c.wantTopics || time.Duration(*interval) != c.wantEvery {
				t.Errorf("got qos %v broker %q topics %q interval %v; want %v %q %q %v",
					*qos, cc.Brokers, got, time.Duration(*interval), c.wantQoS, c.wantBroker, c.wantTopics, c.wantEvery)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in the one error line
	}{
		{"qos 3", nil, []string{"-qos", "3"}, `invalid value "3" for flag -qos: QoS must be 0, 1 or 2`},
		{"qos from environment", map[string]string{"MQTT_QOS": "9"}, nil, `invalid value "9" for MQTT_QOS: QoS must be 0, 1 or 2`},
		{"negative interval", nil, []string{"-interval", "-1s"}, `invalid value "-1s" for flag -interval: must not be negative`},
		{"broken interval", nil, []string{"-interval", "soon"}, `invalid value "soon" for flag -interval: want a duration`},
		{"broker without scheme", nil, []string{"-broker", "localhost:1883"}, `invalid value "localhost:1883" for flag -broker`},
		{"broker with unknown scheme", nil, []string{"-broker", "http://h:80"}, `unknown scheme "http"`},
		{"broker without port", nil, []string{"-broker", "tcp://h"}, `has no port`},
		{"unknown flag", nil, []string{"-nope"}, "flag provided but not defined: -nope"},
		{"stray argument", nil, []string{"extra"}, `unexpected argument "extra"`},
		{"bad wildcard", nil, []string{"-topic", "a/#/b"}, "# must be the last level"},
		{"partial plus", nil, []string{"-topic", "a+/b"}, "+ must fill a whole level"},
		{"persistent needs id", nil, []string{"-clean=false"}, "-clean=false needs a fixed -id"},
		{"cert without key", nil, []string{"-cert", "c.pem"}, "-cert and -key go together"},
		{"will options without topic", nil, []string{"-will-payload", "bye"}, "need -will-topic"},
		{"will topic with wildcard", nil, []string{"-will-topic", "a/#"}, "may not contain + or #"},
		{"keepalive below a second", nil, []string{"-keepalive", "500ms"}, `invalid value "500ms" for flag -keepalive: MQTT counts keep-alive in whole seconds`},
		{"keepalive from environment", map[string]string{"MQTT_KEEPALIVE": "100ms"}, nil, `invalid value "100ms" for MQTT_KEEPALIVE: MQTT counts`},
		{"keepalive flag beats environment", map[string]string{"MQTT_KEEPALIVE": "100ms"}, []string{"-keepalive", "200ms"}, `invalid value "200ms" for flag -keepalive`},
		{"number", nil, []string{"-count", "abc"}, `invalid value "abc" for flag -count: want a whole number`},
		{"number from environment", map[string]string{"MQTT_COUNT": "abc"}, nil, `invalid value "abc" for MQTT_COUNT: want a whole number`},
		{"number too large", nil, []string{"-count", "99999999999999999999"}, `for flag -count: the number is too large`},
		{"boolean", nil, []string{"-clean=maybe"}, `invalid boolean value "maybe" for -clean: want true or false`},
		{"port out of range", nil, []string{"-broker", "tcp://127.0.0.1:99999"}, `invalid value "tcp://127.0.0.1:99999" for flag -broker: port 99999: want a number from 1 to 65535`},
		{"port 0", map[string]string{"MQTT_BROKER": "tcp://h:0"}, nil, `invalid value "tcp://h:0" for MQTT_BROKER: port 0`},
		{"colour word", nil, []string{"-color", "pink"}, "want one of auto, always, never"},
		{"control character in a topic", nil, []string{"-topic", "a/\x1b[2J"}, "must not contain control characters (U+001B at byte 2)"},
		{"control character in the will topic", nil, []string{"-will-topic", "w/\u0085"}, "must not contain control characters (U+0085"},
		{"password without user name", map[string]string{"MQTT_PASSWORD": "s3cret"}, nil, "-password needs -username"},
		{"CA file for a plain broker", nil, []string{"-cafile", "ca.crt"}, "for a broker reached over TLS"},
		{"-insecure for a plain broker", nil, []string{"-insecure", "-broker", "ws://h:1"}, "for a broker reached over TLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			fs, cc, _, _, _ := testFlags(&stderr)
			err := config.Load(fs, c.args, func(k string) string { return c.env[k] }, cc.Validate)
			var usage *config.UsageError
			if !errors.As(err, &usage) {
				t.Fatalf("Load = %v, want a *UsageError", err)
			}
			// Two lines: the short usage, then the error, last, where it stays in sight.
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 2 || lines[0] != "Usage: prog [flags]  (prog -h lists every flag)" ||
				!strings.HasPrefix(lines[1], "prog: ") || !strings.Contains(lines[1], c.want) {
				t.Errorf("got:\n%s\nwant the short usage, then a line with %q", stderr.String(), c.want)
			}
			if got := cli.ExitCode("prog", err, new(bytes.Buffer)); got != cli.ExitUsage {
				t.Errorf("exit status %d, want %d", got, cli.ExitUsage)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	fs, cc, _, _, _ := testFlags(&stderr)
	err := config.Load(fs, []string{"-h"}, func(string) string { return "" }, cc.Validate)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Load(-h) = %v, want flag.ErrHelp", err)
	}
	if cli.ExitCode("prog", err, new(bytes.Buffer)) != cli.ExitOK {
		t.Error("-h must exit 0")
	}
	for _, want := range []string{"prog: does things", "-broker URL", "-will-payload from MQTT_WILL_PAYLOAD", "Example:"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestValidateGivesID(t *testing.T) {
	var stderr bytes.Buffer
	fs, cc, _, _, _ := testFlags(&stderr)
	if err := config.Load(fs, nil, func(string) string { return "" }, cc.Validate); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cc.ID, "prog-") || len(cc.ID) != len("prog-")+6 {
		t.Errorf("default id %q, want prog-<6 hex>", cc.ID)
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"qos": "MQTT_QOS", "will-topic": "MQTT_WILL_TOPIC", "log-level": "MQTT_LOG_LEVEL"} {
		if got := config.EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestVersion: -version asks for the version (the program prints it and exits 0); MQTT_VERSION,
// which would otherwise be read as every flag's variable is, does not.
func TestVersion(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want error
	}{
		{"flag", nil, []string{"-version"}, config.ErrVersion},
		{"with others", nil, []string{"-qos", "1", "-version"}, config.ErrVersion},
		{"not from the environment", map[string]string{"MQTT_VERSION": "true"}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			fs, cc, _, _, _ := testFlags(&stderr)
			err := config.Load(fs, c.args, func(k string) string { return c.env[k] }, cc.Validate)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("Load: %v, want %v", err, c.want)
			}
			if code := cli.ExitCode("prog", err, &stderr); code != 0 || stderr.Len() > 0 {
				t.Errorf("exit status %d, stderr %q; want 0 and nothing", code, stderr.String())
			}
		})
	}
}
