// Package harness runs the suite's real programs (and Mosquitto) as processes for end-to-end
// and interop tests: it builds the binaries once, starts them on free loopback ports, and
// waits for lines in their output with deadlines instead of sleeps.
package harness

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeout is how long a wait lasts before the test fails: long, because it is only reached
// when something is wrong, and a loaded 2-core CI machine can be slow.
const Timeout = 20 * time.Second

// Bins are the paths of the three programs, built once per test binary.
type Bins struct{ Server, Publisher, Subscriber string }

// binDir holds the programs Build and BuildExamples make; Main creates it and removes it.
var binDir string

// Main runs the tests of a package that uses the harness and then removes the programs it
// built (tens of megabytes a run). Every such package calls it from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mqttdemo-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	binDir = dir
	defer os.RemoveAll(dir)
	return m.Run()
}

// once builds one set of programs once per test binary.
type once struct {
	sync.Once
	bins Bins
	err  error
}

var suite, examples once

// get builds the programs on the first call; every call fails the test if that build failed.
func (o *once) get(tb testing.TB, dir string, pkgs ...string) Bins {
	tb.Helper()
	o.Do(func() { o.bins, o.err = build(dir, pkgs...) })
	if o.err != nil {
		tb.Fatal(o.err)
	}
	return o.bins
}

// Build compiles mqttserver, mqttpublisher and mqttsubscriber (with -race when the tests run
// with it) into a temporary directory shared by every test of this test binary, which Main
// removes at the end.
func Build(tb testing.TB) Bins {
	tb.Helper()
	return suite.get(tb, "", "mqttdemo/mqttserver", "mqttdemo/mqttpublisher", "mqttdemo/mqttsubscriber")
}

// BuildExamples compiles the three short programs of examples/ (server, publisher, subscriber)
// like Build. They are built inside their own module (the path is relative to tests/, where the
// tests run), which works with or without go.work.
func BuildExamples(tb testing.TB) Bins {
	tb.Helper()
	return examples.get(tb, "../examples", "./server", "./publisher", "./subscriber")
}

// build runs go build in dir (empty: the current directory) on three packages: a server, a
// publisher and a subscriber, in that order.
func build(dir string, pkgs ...string) (Bins, error) {
	if binDir == "" {
		return Bins{}, errors.New("harness: the package's TestMain must call harness.Main, which removes the programs after the tests")
	}
	out, err := os.MkdirTemp(binDir, "build-")
	if err != nil {
		return Bins{}, err
	}
	args := []string{"build", "-o", out + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return Bins{}, fmt.Errorf("go build: %v\n%s", err, msg)
	}
	bin := func(pkg string) string { return filepath.Join(out, filepath.Base(pkg)) }
	return Bins{Server: bin(pkgs[0]), Publisher: bin(pkgs[1]), Subscriber: bin(pkgs[2])}, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It is drawn below
// Linux's ephemeral range (32768-60999), from which every "listen on :0" and every outgoing
// connection takes its port: so no other test can take it between now and its use.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	tb.Fatal("no free port between 20000 and 32000")
	return 0
}

// Output collects a process's output; safe for concurrent use.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Lines returns the lines that match re.
func (o *Output) Lines(re *regexp.Regexp) []string {
	var out []string
	for _, l := range strings.Split(o.String(), "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// Proc is a running program.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Out    *Output // stdout and stderr together
	done   chan struct{}
	waited error
}

// Env is the environment of started programs: the test's own without MQTT_* variables (which
// would change their configuration), plain output, plus extra.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MQTT_") && !strings.HasPrefix(kv, "NO_COLOR=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "NO_COLOR=1"), extra...)
}

// Start runs bin with args and env (nil: Env()). The process is killed when the test ends, and
// its output is logged if the test failed.
func Start(tb testing.TB, name, bin string, env []string, args ...string) *Proc {
	tb.Helper()
	return launch(tb, name, bin, env, nil, nil, args)
}

// launch starts the process with stdin (nil: /dev/null) and arranges its end with the test.
// Its output goes to p.Out, and its standard output also to stdout when that is not nil.
func launch(tb testing.TB, name, bin string, env []string, stdin *os.File, stdout *Output, args []string) *Proc {
	tb.Helper()
	if env == nil {
		env = Env()
	}
	p := &Proc{Name: name, Cmd: exec.Command(bin, args...), Out: new(Output), done: make(chan struct{})}
	p.Cmd.Env = env
	if stdin != nil {
		p.Cmd.Stdin = stdin
	}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if stdout != nil {
		p.Cmd.Stdout = teeWriter{stdout, p.Out}
	}
	if err := p.Cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waited = p.Cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
		if tb.Failed() {
			tb.Logf("--- output of %s %s:\n%s", name, strings.Join(args, " "), p.Out.String())
		}
	})
	return p
}

// WaitFor waits until a line of the output matches pattern and returns the first such line.
func (p *Proc) WaitFor(tb testing.TB, pattern string) string {
	tb.Helper()
	re := regexp.MustCompile(pattern)
	var line string
	Eventually(tb, func() bool {
		if l := p.Out.Lines(re); len(l) > 0 {
			line = l[0]
			return true
		}
		return false
	}, "%s to print a line matching %q", p.Name, pattern)
	return line
}

// WaitCount waits until n lines of the output match pattern.
func (p *Proc) WaitCount(tb testing.TB, pattern string, n int) []string {
	tb.Helper()
	re := regexp.MustCompile(pattern)
	var lines []string
	Eventually(tb, func() bool {
		lines = p.Out.Lines(re)
		return len(lines) >= n
	}, "%s to print %d lines matching %q", p.Name, n, pattern)
	return lines
}

// Signal sends sig to the process.
func (p *Proc) Signal(tb testing.TB, sig os.Signal) {
	tb.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("signal %s: %v", p.Name, err)
	}
}

// Exit waits for the process to end and returns its exit status (-1 if killed by a signal).
func (p *Proc) Exit(tb testing.TB) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(Timeout):
		tb.Fatalf("%s did not exit within %s", p.Name, Timeout)
	}
	var exit *exec.ExitError
	if errors.As(p.waited, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1
		}
		return exit.ExitCode()
	}
	if p.waited != nil {
		tb.Fatalf("%s: %v", p.Name, p.waited)
	}
	return 0
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startedRE finds the MQTT address on the started line, text (mqtt=tcp://…) or JSON ("mqtt":"tcp://…").
var startedRE = regexp.MustCompile(`mqtt(?:=|":")tcp://([^\s"]+)`)

// StartServer runs mqttserver on a free loopback port (unless args set -listen) and waits until
// it serves; it returns the process and the broker URL.
func StartServer(tb testing.TB, env []string, args ...string) (*Proc, string) {
	tb.Helper()
	b := Build(tb)
	if !hasFlag(args, "listen") {
		args = append([]string{"-listen", "127.0.0.1:0"}, args...)
	}
	p := Start(tb, "mqttserver", b.Server, env, args...)
	line := p.WaitFor(tb, `STARTED|"server started"`)
	m := startedRE.FindStringSubmatch(line)
	if m == nil {
		tb.Fatalf("no mqtt=tcp:// address in %q", line)
	}
	return p, "tcp://" + m[1]
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "-"+name || a == "--"+name || strings.HasPrefix(a, "-"+name+"=") || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}

// Eventually polls cond until it is true or Timeout passes, then fails the test with the message.
func Eventually(tb testing.TB, cond func() bool, format string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for "+format, append([]any{Timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
		runtime.Gosched()
	}
}

// Mosquitto is the reference broker's executable, where Debian installs it.
func Mosquitto(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	Missing(tb, "mosquitto")
	return ""
}

// Tool finds a helper program such as mosquitto_pub.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, name)
	}
	return p
}

// Missing skips the test when a tool is missing on a developer's machine, and fails it in CI,
// where scripts/install-deps.sh must have installed it.
func Missing(tb testing.TB, name string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is not installed (scripts/install-deps.sh installs it)", name)
	}
	tb.Skipf("%s is not installed: run scripts/install-deps.sh", name)
}

// StartMosquitto runs the reference broker on a free loopback port, open to anonymous clients,
// with extra config lines (persistence, …), and returns the process and its URL.
func StartMosquitto(tb testing.TB, extraConfig ...string) (*Proc, string) {
	tb.Helper()
	port := FreePort(tb)
	conf := WriteMosquittoConfig(tb, port, append([]string{"allow_anonymous true"}, extraConfig...)...)
	return RunMosquitto(tb, conf, port), fmt.Sprintf("tcp://127.0.0.1:%d", port)
}
