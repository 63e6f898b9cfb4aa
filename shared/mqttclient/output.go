package mqttclient

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"mqttdemo/shared/console"
)

// Output is where a client prints. By default everything is a console line on stdout; with
// -json, stdout carries one JSON object per line (the messages, and with -debug the packets,
// told apart by the packets' "packet" field) and the console lines go to stderr, so that
// `| jq` sees only objects.
type Output struct {
	Con *console.Console

	mu  sync.Mutex // one object at a time: a message and a packet never mix
	enc *json.Encoder
}

// NewOutput makes the output c asks for (-json, -color).
func NewOutput(c *ClientConfig, stdout, stderr io.Writer, getenv func(string) string) *Output {
	talk := stdout
	if c.JSON {
		talk = stderr
	}
	o := &Output{Con: console.New(talk, console.UseColor(c.Color.String(), talk, getenv))}
	if c.JSON {
		o.enc = json.NewEncoder(stdout)
		o.enc.SetEscapeHTML(false)
	}
	return o
}

// NewJSONOutput writes objects to w and console lines to con (for tests).
func NewJSONOutput(con *console.Console, w io.Writer) *Output {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Output{Con: con, enc: enc}
}

// JSON reports whether the output is JSON objects (-json).
func (o *Output) JSON() bool { return o.enc != nil }

// Object writes v as one JSON object on one line (-json only).
func (o *Output) Object(v any) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// Packet is a Trace report (-debug): a console line, or with -json an object on stdout among
// the messages. It runs on paho's network goroutines, so an error is said, not returned.
func (o *Output) Packet(pk Packet) {
	if o.enc == nil {
		traceLine(o.Con, pk)
		return
	}
	if err := o.Object(pk); err != nil {
		o.Con.Line(console.StyleError, "ERROR", err.Error())
	}
}
