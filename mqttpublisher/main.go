// Command mqttpublisher publishes "time:<now>" to the topic mytopic every second, as the
// article's publisher does, and reports each message once the broker has it. mqttpublisher -h
// lists the flags: topic, QoS, retain, interval, count, message template, JSON output, TLS,
// credentials, will.
package main

import (
	"mqttdemo/mqttpublisher/publisher"
	"mqttdemo/shared/cli"
)

func main() { cli.Main("mqttpublisher", publisher.Run) }
