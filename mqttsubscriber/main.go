// Command mqttsubscriber subscribes to the topic mytopic, as the article's subscriber does, and
// prints every message that arrives. In a terminal, Enter unsubscribes and Enter again exits.
// mqttsubscriber -h lists the flags: topics, QoS, count, timeout, JSON output, TLS, credentials.
package main

import (
	"mqttdemo/mqttsubscriber/subscriber"
	"mqttdemo/shared/cli"
)

func main() { cli.Main("mqttsubscriber", subscriber.Run) }
