package publisher

import (
	"errors"
	"io"
	"time"

	"mqttdemo/shared/cli"
	"mqttdemo/shared/config"
	"mqttdemo/shared/mqttclient"
)

// Config is the publisher's configuration, filled by Load.
type Config struct {
	*mqttclient.ClientConfig
	Topic    string
	QoS      byte
	Retain   bool
	Interval time.Duration
	Count    int
	Message  string // template, see Render
	Stdin    bool
	Store    string
}

var program = config.Program{
	Name:    "mqttpublisher",
	Summary: "publishes a message to an MQTT topic every interval (by default time:<now> to mytopic every second)",
	Example: "  mqttpublisher -topic mytopic -qos 1 -count 10\n  echo hello | mqttpublisher -stdin -retain\n" +
		"  MQTT_BROKER=tcp://broker.example:1883 mqttpublisher",
	Exit: cli.ClientExit("it ran to its end (-count, -stdin) with a message dropped or unacknowledged, or another error"),
}

// Load reads the configuration: defaults, then MQTT_* variables, then args.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := config.NewFlagSet(program, stderr)
	cfg := Config{ClientConfig: mqttclient.AddClientFlags(fs, program.Name)}
	topic := config.NewChecked(mqttclient.DefaultTopic, config.CheckTopic)
	var qos config.QoS
	interval := config.Duration(time.Second)
	fs.Var(topic, "topic", "`topic` to publish to")
	fs.Var(&qos, "qos", "quality of service: `0` at most once, 1 at least once, 2 exactly once")
	fs.BoolVar(&cfg.Retain, "retain", false, "ask the broker to keep the last message for new subscribers")
	fs.Var(&interval, "interval", "`time` between messages; 0 sends as fast as the broker acknowledges (at most 16 waiting at QoS 1/2)")
	fs.IntVar(&cfg.Count, "count", 0, "stop after `N` messages (0: run until interrupted)")
	fs.StringVar(&cfg.Message, "message", DefaultMessage, "message `template`: {time} is the time (RFC 3339, ms), {n} the message number, {id} the client id")
	fs.BoolVar(&cfg.Stdin, "stdin", false, "publish each line read from standard input instead of -message")
	fs.StringVar(&cfg.Store, "store", "", "`directory` that keeps unacknowledged QoS 1/2 messages across a restart of the publisher (with -clean=false and -id)")
	validate := func() error {
		if cfg.Count < 0 {
			return &config.BadValue{Flag: "count", Why: "must not be negative (0 means no limit)"}
		}
		if cfg.Store != "" && cfg.Clean {
			return errors.New("-store needs -clean=false and a fixed -id: with a clean session paho empties the store when it connects")
		}
		return cfg.ClientConfig.Validate()
	}
	if err := config.Load(fs, args, getenv, validate); err != nil {
		return Config{}, err
	}
	cfg.Topic, cfg.QoS, cfg.Interval = topic.String(), byte(qos), time.Duration(interval)
	return cfg, nil
}
