package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mqttdemo/tests/harness"
)

// TestJobControl runs the programs as jobs of an interactive shell on a terminal: started with &,
// they keep running (a program that read its terminal from the background would be stopped by
// the kernel); Ctrl-Z then bg leaves them running; after fg, Enter works as the article says.
func TestJobControl(t *testing.T) {
	b := harness.Build(t)
	port := strconv.Itoa(harness.FreePort(t))
	sh := harness.StartShell(t, t.TempDir(), harness.Env(
		"PATH="+filepath.Dir(b.Server)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MQTT_LISTEN=127.0.0.1:"+port,
		"MQTT_BROKER=tcp://127.0.0.1:"+port,
	))
	run := func(line string) string {
		t.Helper()
		out, status := sh.Run(t, line)
		if status != 0 {
			t.Fatalf("%q: exit status %d\n%s", line, status, out)
		}
		return out
	}
	running := func(want int) {
		t.Helper()
		out := run("jobs -l")
		if n := strings.Count(out, "Running"); n != want || strings.Contains(out, "Stopped") {
			t.Fatalf("jobs -l shows %d running, want %d, none stopped:\n%s", n, want, out)
		}
	}
	published := 0
	// publish sends a message from the foreground; the subscriber in the background must print it.
	publish := func() {
		t.Helper()
		published++
		msg := "message-" + strconv.Itoa(published)
		from := len(sh.Screen())
		run("mqttpublisher -count 1 -qos 1 -message " + msg)
		sh.WaitFor(t, from, `RECEIVED .* `+msg)
	}

	from := len(sh.Screen())
	// In the background the terminal's Enter goes to the shell: the prompt says fg comes first.
	run("mqttserver &")
	sh.WaitFor(t, from, "running in the background: after fg, press Enter to stop the server")
	from = len(sh.Screen())
	run("mqttsubscriber -qos 1 &")
	sh.WaitFor(t, from, "running in the background: after fg, press Enter to unsubscribe")
	publish()
	running(2)

	// Ctrl-Z, then bg: the subscriber runs on in the background.
	from = len(sh.Screen())
	sh.Type(t, "fg %2")
	sh.WaitFor(t, from, `mqttsubscriber -qos 1\n`) // bash names the job it brings to the foreground
	sh.Press(t, "\x1a")
	sh.WaitPrompt(t)
	run("bg %2")
	publish()
	running(2)

	// fg, then Enter twice: the subscriber unsubscribes, then ends.
	from = len(sh.Screen())
	sh.Type(t, "fg %2")
	sh.WaitFor(t, from, `mqttsubscriber -qos 1\n`)
	sh.Press(t, "\n")
	sh.WaitFor(t, from, "UNSUBSCRIBED")
	sh.Press(t, "\n")
	if status := sh.WaitPrompt(t); status != 0 {
		t.Fatalf("mqttsubscriber ended with status %d after Enter", status)
	}

	// The broker: fg, then Enter stops it.
	from = len(sh.Screen())
	sh.Type(t, "fg %1")
	sh.WaitFor(t, from, `mqttserver\n`)
	sh.Press(t, "\n")
	sh.WaitFor(t, from, "STOPPED")
	if status := sh.WaitPrompt(t); status != 0 {
		t.Fatalf("mqttserver ended with status %d after Enter", status)
	}
	if left := sh.Left(); len(left) > 0 {
		t.Fatalf("still running: %v", left)
	}
}
