// Command baremochi is the benchmark's reference mochi-mqtt broker (package mochi): same library
// and capabilities as mqttserver, allow-all auth, no events hook, no logging.
//
//	baremochi -listen 127.0.0.1:1883
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"mqttdemo/bench/mochi"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1883", "TCP `address` to serve MQTT on")
	flag.Parse()
	server, err := mochi.Start(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baremochi:", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	if err := server.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "baremochi:", err)
		os.Exit(1)
	}
}
