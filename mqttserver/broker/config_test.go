package broker

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"mqttdemo/mqttserver/limits"
	"mqttdemo/shared/config"
)

func TestLoad(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(Config) bool
	}{
		{"defaults", nil, nil, func(c Config) bool {
			return c.Listen == DefaultListen && c.TLSListen == "" && c.WSListen == "" && c.HTTPListen == "" &&
				c.DataDir == "" && c.AuthFile == "" && c.Limits == limits.DefaultLimits()
		}},
		{"tls listen defaults when a certificate is given", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem"}, nil,
			func(c Config) bool { return c.TLSListen == DefaultTLSListen }},
		{"every setting from the environment", nil, map[string]string{
			"MQTT_DATA": "/var/lib/mqtt", "MQTT_AUTH": "users.yaml", "MQTT_WS_LISTEN": ":1882",
			"MQTT_HTTP_LISTEN": ":8080", "MQTT_MAX_PACKET_SIZE": "4096", "MQTT_MAX_PENDING_WRITES": "64",
			"MQTT_MIN_KEEPALIVE": "10s", "MQTT_MAX_CLIENTS": "100", "MQTT_MAX_MESSAGE_EXPIRY": "720h",
		}, func(c Config) bool {
			return c.DataDir == "/var/lib/mqtt" && c.AuthFile == "users.yaml" && c.WSListen == ":1882" &&
				c.HTTPListen == ":8080" && c.MaxPacketSize == 4096 && c.MaxPendingWrites == 64 &&
				c.MinKeepAlive == 10*time.Second && c.MaxClients == 100 && c.MaxMessageExpiry == 720*time.Hour
		}},
		{"no message expiry cap by default", nil, nil, func(c Config) bool {
			return c.MaxMessageExpiry == 0 && c.Capabilities().MaximumMessageExpiryInterval == 0
		}},
		{"flags win over the environment", []string{"-ws-listen", ":9001"}, map[string]string{"MQTT_WS_LISTEN": ":1882"},
			func(c Config) bool { return c.WSListen == ":9001" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load(c.args, func(k string) string { return c.env[k] }, new(bytes.Buffer))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !c.check(cfg) {
				t.Errorf("Load gave %+v", cfg)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-cert", "c.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"-tls-listen", ":8883"}, "-tls-listen needs -tls-cert"},
		{[]string{"-ws-listen", "1882"}, "want host:port"},
		{[]string{"-max-pending-writes", "0"}, `invalid value "0" for flag -max-pending-writes: want at least 1`},
		{[]string{"-max-packet-size", "-1"}, `invalid value "-1" for flag -max-packet-size`},
		{[]string{"-min-keepalive", "30h"}, `invalid value "30h0m0s" for flag -min-keepalive`},
		{[]string{"-listen", ":65536"}, `invalid value ":65536" for flag -listen: port 65536`},
		{[]string{"-max-queued-bytes", "0"}, `invalid value "0" for flag -max-queued-bytes: want at least 1`},
		{[]string{"-max-queued-messages", "70000"}, `invalid value "70000" for flag -max-queued-messages`},
		{[]string{"-max-sessions", "-1"}, `invalid value "-1" for flag -max-sessions`},
		{[]string{"-max-queued-total", "0"}, `invalid value "0" for flag -max-queued-total: want at least 1`},
		{[]string{"-max-retained", "-1"}, `invalid value "-1" for flag -max-retained`},
		{[]string{"-max-retained-bytes", "-1"}, `invalid value "-1" for flag -max-retained-bytes`},
		{[]string{"-session-expiry", "0s"}, `invalid value "0s" for flag -session-expiry`},
		{[]string{"-slow-client-timeout", "-1s"}, `invalid value "-1s" for flag -slow-client-timeout`},
		{[]string{"-max-message-expiry", "-1s"}, `invalid value "-1s" for flag -max-message-expiry: must not be negative`},
	} {
		var stderr bytes.Buffer
		_, err := Load(c.args, noEnv, &stderr)
		var usage *config.UsageError
		if !errors.As(err, &usage) || !strings.Contains(lastLine(stderr.String()), c.want) {
			t.Errorf("Load(%q): err = %v, stderr %q; want a usage error ending with a line saying %q", c.args, err, stderr.String(), c.want)
		}
	}
	// A value from the environment is named by its variable.
	var stderr bytes.Buffer
	getenv := func(k string) string { return map[string]string{"MQTT_MAX_CLIENTS": "-1"}[k] }
	if _, err := Load(nil, getenv, &stderr); err == nil || !strings.Contains(lastLine(stderr.String()), `invalid value "-1" for MQTT_MAX_CLIENTS: want 0`) {
		t.Errorf("MQTT_MAX_CLIENTS=-1: err = %v, stderr %q", err, stderr.String())
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return lines[len(lines)-1]
}
