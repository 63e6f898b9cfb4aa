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
	var t mochi.Tuning
	pending := flag.Int("max-pending-writes", 0, "experiment: MaximumClientWritesPending (0: mochi's 8192)")
	flag.IntVar(&t.ReadBuffer, "read-buffer", 0, "experiment: client read buffer `bytes` (0: mochi's 2048)")
	flag.IntVar(&t.WriteBuffer, "write-buffer", 0, "experiment: client write buffer `bytes` (0: mochi's 2048)")
	flag.Parse()
	t.MaxPendingWrites = int32(*pending)
	server, err := mochi.Start(*listen, t)
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
