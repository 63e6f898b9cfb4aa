package broker

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"mqttdemo/mqttserver/eventlog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mustBuild builds the mqttserver binary once for the package's tests.
func mustBuild(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binary; skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mqttserver-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mqttserver")
		out, err := exec.Command("go", "build", "-o", binPath, "mqttdemo/mqttserver").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("build mqttserver: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// process is a running mqttserver binary whose JSON log lines are collected.
type process struct {
	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{}
}

// startBinary runs mqttserver with args (plus -log-format json) and waits for "server started";
// it returns the process and the attributes of that line (mqtt, mqtts, ws, http addresses).
func startBinary(t testing.TB, args ...string) (*process, map[string]any) {
	t.Helper()
	bin := mustBuild(t)
	cmd := exec.Command(bin, append([]string{"-log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: new(logBuffer), done: make(chan struct{})}
	cmd.Stderr = p.logs
	started := make(chan map[string]any, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			_, _ = p.logs.Write(append(sc.Bytes(), '\n'))
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == eventlog.MsgStarted {
				started <- m
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mqttserver %s log:\n%s", strings.Join(args, " "), p.logs)
		}
	})
	var m map[string]any
	waitFor(t, "the server started line", func() bool {
		select {
		case m = <-started:
			return true
		case <-p.done:
			t.Fatalf("mqttserver exited before it started:\n%s", p.logs)
		default:
		}
		return false
	})
	return p, m
}

// addr is the host:port of a URL attribute of the started line, e.g. "tcp://127.0.0.1:1883".
func addr(t testing.TB, started map[string]any, key string) string {
	t.Helper()
	s, _ := started[key].(string)
	_, hostPort, ok := strings.Cut(s, "://")
	if !ok {
		t.Fatalf("started line has no %s address: %v", key, started)
	}
	return hostPort
}

// kill sends SIGKILL and waits for the process to end.
func (p *process) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	_ = p.cmd.Wait()
}

func TestBinaryHealthCheck(t *testing.T) {
	p, started := startBinary(t, "-listen", "127.0.0.1:0", "-auth", writeAuthFile(t))
	a := addr(t, started, "mqtt")
	probe := func() int {
		cmd := exec.Command(mustBuild(t), "-healthcheck", "-listen", a)
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := probe(); code != 0 {
		t.Errorf("-healthcheck against a running broker (with -auth): exit %d, want 0", code)
	}
	p.kill(t)
	if code := probe(); code != 1 {
		t.Errorf("-healthcheck with no broker: exit %d, want 1", code)
	}
}

// TestBinaryJSONLogs: at debug, with a client logging in, every line of the real binary is a
// JSON object, none holds the password, and SIGTERM still writes the last lines.
func TestBinaryJSONLogs(t *testing.T) {
	needTool(t, "mosquitto_pub")
	p, started := startBinary(t, "-listen", "127.0.0.1:0", "-log-level", "debug", "-auth", writeAuthFile(t))
	host, port := splitAddr(t, addr(t, started, "mqtt"))
	for _, pass := range []string{alicePassword, wrongPassword} {
		_ = exec.Command("mosquitto_pub", "-h", host, "-p", port, "-u", "alice", "-P", pass,
			"-t", "sensors/x", "-m", "1", "-q", "1").Run()
	}
	waitFor(t, "the refused login", func() bool { return p.logs.has(t, eventlog.MsgAuthFailed, nil) })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	records := p.logs.records(t) // fails on a line that is not JSON
	if len(records) == 0 || records[len(records)-1]["msg"] == nil {
		t.Fatal("no log lines")
	}
	if !p.logs.has(t, eventlog.MsgStopped, nil) || !p.logs.has(t, eventlog.MsgPublished, map[string]any{"topic": "sensors/x"}) {
		t.Error("the log lacks the published message or the stop line")
	}
	assertNoPasswords(t, p.logs.String())
}
