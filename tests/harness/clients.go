package harness

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartSplit is Start with standard output kept apart: p.Out has both streams, stdout only
// what the program wrote there (the subscriber's -json objects, say).
func StartSplit(tb testing.TB, name, bin string, env []string, args ...string) (p *Proc, stdout *Output) {
	tb.Helper()
	stdout = new(Output)
	p = launch(tb, name, bin, env, nil, stdout, args)
	return p, stdout
}

type teeWriter struct{ a, b *Output }

func (t teeWriter) Write(p []byte) (int, error) {
	t.a.Write(p)
	return t.b.Write(p)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill(tb testing.TB) {
	tb.Helper()
	_ = p.Cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(Timeout):
		tb.Fatalf("%s did not die within %s", p.Name, Timeout)
	}
}

// WriteMosquittoConfig writes a Mosquitto configuration listening on 127.0.0.1:port with the
// given lines (no allow_anonymous default: the caller says) and returns its path.
func WriteMosquittoConfig(tb testing.TB, port int, lines ...string) string {
	tb.Helper()
	conf := filepath.Join(tb.TempDir(), "mosquitto.conf")
	all := []string{fmt.Sprintf("listener %d 127.0.0.1", port), "log_dest stdout"}
	if os.Geteuid() == 0 {
		// As root, Mosquitto would switch to the user mosquitto, who cannot read the test's
		// private temporary directories (password file, persistence).
		all = append(all, "user root")
	}
	all = append(all, lines...)
	if err := os.WriteFile(conf, []byte(strings.Join(all, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return conf
}

// RunMosquitto starts Mosquitto with conf and waits until it accepts connections on port.
func RunMosquitto(tb testing.TB, conf string, port int) *Proc {
	tb.Helper()
	p := Start(tb, "mosquitto", Mosquitto(tb), Env(), "-c", conf)
	WaitListening(tb, port)
	return p
}

// WaitListening waits until something accepts TCP connections on 127.0.0.1:port.
func WaitListening(tb testing.TB, port int) {
	tb.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	Eventually(tb, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, "something to listen on %s", addr)
}

// MosquittoPasswd writes a Mosquitto password file holding user and password.
func MosquittoPasswd(tb testing.TB, user, password string) string {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "passwd")
	out, err := exec.Command(Tool(tb, "mosquitto_passwd"), "-b", "-c", file, user, password).CombinedOutput()
	if err != nil {
		tb.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	return file
}

// ServerHasFlag reports whether mqttserver -h lists -name (flags other branches are adding).
func ServerHasFlag(tb testing.TB, name string) bool {
	tb.Helper()
	out, _ := exec.Command(Build(tb).Server, "-h").CombinedOutput()
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "-"+name {
			return true
		}
	}
	return false
}
