// Command mqttserver is an MQTT broker (mochi-mqtt) that logs every client event: connected,
// disconnected, published, subscribed, unsubscribed. Run it, then mqttsubscriber and
// mqttpublisher in two other terminals. mqttserver -h lists the flags.
package main

import (
	"mqttdemo/mqttserver/broker"
	"mqttdemo/shared/cli"
)

func main() { cli.Main("mqttserver", broker.Run) }
