package subscriber

import (
	"io"
	"time"

	"mqttdemo/shared/cli"
	"mqttdemo/shared/config"
	"mqttdemo/shared/mqttclient"
)

// Config is the subscriber's configuration, filled by Load.
type Config struct {
	*mqttclient.ClientConfig
	Topics  []string
	QoS     byte
	Count   int
	Timeout time.Duration
}

var program = config.Program{
	Name:    "mqttsubscriber",
	Summary: "subscribes to MQTT topics (by default mytopic) and prints every message that arrives",
	Example: "  mqttsubscriber -topic mytopic -topic 'sensors/+/temp' -qos 1\n" +
		"  mqttsubscriber -topic '#' -json -count 5 -timeout 10s",
	Exit: cli.ClientExit("no message within -timeout, or another error"),
}

// Load reads the configuration: defaults, then MQTT_* variables, then args.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := config.NewFlagSet(program, stderr)
	cfg := Config{ClientConfig: mqttclient.AddClientFlags(fs, program.Name)}
	topics := config.NewStringList(config.CheckFilter, mqttclient.DefaultTopic).Whole()
	var qos config.QoS
	var timeout config.Duration
	fs.Var(topics, "topic", "topic `filter` to subscribe to, + and # wildcards allowed; repeat for more")
	fs.Var(&qos, "qos", "highest quality of service to receive at: `0`, 1 or 2")
	fs.IntVar(&cfg.Count, "count", 0, "exit after `N` messages (0: run until interrupted)")
	fs.Var(&timeout, "timeout", "exit with status 1 when no message arrives for this `long`, counted from the start and from each message (0: wait for ever)")
	validate := func() error {
		if cfg.Count < 0 {
			return &config.BadValue{Flag: "count", Why: "must not be negative (0 means no limit)"}
		}
		return cfg.ClientConfig.Validate()
	}
	if err := config.Load(fs, args, getenv, validate); err != nil {
		return Config{}, err
	}
	cfg.Topics, cfg.QoS, cfg.Timeout = topics.Values(), byte(qos), time.Duration(timeout)
	return cfg, nil
}
