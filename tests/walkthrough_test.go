package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"mqttdemo/tests/harness"
)

// A walkthrough is a console block of the README or docs/*.md marked with
// <!-- walkthrough: NAME --> on the line before its ```console fence. Lines starting with "$ "
// are commands; the lines after a command are output it must print, in order.
//
// The test runs every walkthrough as a reader would, with three liberties: "go run ./PROGRAM"
// runs the binary built once for all tests; the ports 1883, 1882, 8883 and 8080 become free
// ports; and what changes from run to run (times, ids, durations, ports) is compared loosely.
// A command ending in "&" runs in the background as job %1, %2, …; its output lines below it are
// waited for. An output line that starts with "[N] " is one that job N prints (later): the test
// waits for it. Programs may be named bare (mqttserver): the built binaries come first in PATH.
// In an output line, "…" stands for any text. "kill [-SIGNAL] %N" signals job N (TERM, INT, 9 or KILL, STOP) and, but for STOP,
// waits for it to end. A command must exit 0: show a failure with "; echo exit status $?".
type walkthrough struct {
	file, name string
	line       int
	steps      []step
}

type step struct {
	command string
	want    []string
}

var walkthroughMark = regexp.MustCompile(`^<!-- walkthrough: (\S+) -->$`)

func readWalkthroughs(t *testing.T) []walkthrough {
	t.Helper()
	files, _ := filepath.Glob("../docs/*.md")
	files = append([]string{"../README.md"}, files...)
	var all []walkthrough
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			m := walkthroughMark.FindStringSubmatch(strings.TrimSpace(lines[i]))
			if m == nil {
				continue
			}
			if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "```console" {
				t.Fatalf("%s:%d: a walkthrough mark must stand right before a ```console block", f, i+1)
			}
			w := walkthrough{file: filepath.Base(f), name: m[1], line: i + 1}
			for i += 2; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				switch l := lines[i]; {
				case strings.HasPrefix(l, "$ "):
					w.steps = append(w.steps, step{command: strings.TrimPrefix(l, "$ ")})
				case strings.TrimSpace(l) == "" || strings.TrimSpace(l) == "...":
				case len(w.steps) == 0:
					t.Fatalf("%s:%d: output before the first command", f, i+1)
				default:
					last := &w.steps[len(w.steps)-1]
					last.want = append(last.want, l)
				}
			}
			all = append(all, w)
		}
	}
	return all
}

func TestWalkthroughs(t *testing.T) {
	all := readWalkthroughs(t)
	if len(all) == 0 {
		t.Fatal("no walkthroughs found in README.md and docs/")
	}
	b := harness.Build(t)
	for _, w := range all {
		t.Run(w.file+"/"+w.name, func(t *testing.T) { runWalkthrough(t, b, w) })
	}
}

// variable parts of the output: times, RFC 3339 stamps, durations, generated ids, ports, and the
// host of a listener (the test binds 127.0.0.1 where a reader's broker binds every interface).
var loosely = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<stamp>"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d\.\d{3}\b`), "<time>"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|us|ms|s)\b`), "<duration>"},
	{regexp.MustCompile(`\b(mqttpublisher|mqttsubscriber)-[0-9a-f]{6}\b`), "$1-<id>"},
	{regexp.MustCompile(`:\d{2,5}\b`), ":<port>"},
	{regexp.MustCompile(`\[::\]|\b127\.0\.0\.1\b|\b0\.0\.0\.0\b|\blocalhost\b`), "<host>"},
	{regexp.MustCompile(`[ \t]+`), " "},
}

func normalise(s string) string {
	for _, l := range loosely {
		s = l.re.ReplaceAllString(s, l.with)
	}
	return strings.TrimSpace(s)
}

func runWalkthrough(t *testing.T, b harness.Bins, w walkthrough) {
	dir := t.TempDir()
	// The pages run scripts/… from the root of the repository.
	scripts, err := filepath.Abs("../scripts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(scripts, filepath.Join(dir, "scripts")); err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	for _, p := range []string{"1883", "1882", "8883", "8080"} {
		ports[p] = strconv.Itoa(harness.FreePort(t))
	}
	portRE := regexp.MustCompile(`\b(1883|1882|8883|8080)\b`)
	env := harness.Env(
		"PATH="+filepath.Dir(b.Server)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MQTT_BROKER=tcp://127.0.0.1:"+ports["1883"],
		"MQTT_LISTEN=127.0.0.1:"+ports["1883"],
		"HOME="+dir,
	)
	programs := strings.NewReplacer(
		"go run ./mqttserver", b.Server,
		"go run ./mqttpublisher", b.Publisher,
		"go run ./mqttsubscriber", b.Subscriber,
	)
	killRE := regexp.MustCompile(`^kill(?: -(\w+))? %(\d+)$`)
	var jobs []*harness.Proc

	for _, s := range w.steps {
		cmdline := programs.Replace(portRE.ReplaceAllStringFunc(s.command, func(p string) string { return ports[p] }))
		where := fmt.Sprintf("%s:%d %q", w.file, w.line, s.command)
		if m := killRE.FindStringSubmatch(s.command); m != nil {
			n, _ := strconv.Atoi(m[2])
			if n < 1 || n > len(jobs) {
				t.Fatalf("%s: no job %%%d", where, n)
			}
			sig := syscall.SIGTERM
			switch m[1] {
			case "9", "KILL":
				sig = syscall.SIGKILL
			case "INT":
				sig = syscall.SIGINT
			case "STOP":
				sig = syscall.SIGSTOP // a client that hangs: the process stays, silent
			}
			jobs[n-1].Signal(t, sig)
			if sig != syscall.SIGSTOP {
				jobs[n-1].Exit(t)
			}
			_, fromJobs := splitJobLines(t, s.want, where)
			waitJobs(t, jobs, fromJobs, where)
			continue
		}
		own, fromJobs := splitJobLines(t, s.want, where)
		if bg, ok := strings.CutSuffix(strings.TrimSpace(cmdline), "&"); ok {
			// exec env: the job is the program itself (signals reach it), variables before it allowed.
			p := harness.Start(t, s.command, "bash", env, "-c", "cd "+dir+" && exec env "+bg)
			jobs = append(jobs, p)
			for _, want := range own {
				waitNormalised(t, p, want, where)
			}
			waitJobs(t, jobs, fromJobs, where)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), harness.Timeout)
		cmd := exec.CommandContext(ctx, "bash", "-c", cmdline)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", where, err, out)
		}
		checkInOrder(t, string(out), own, where)
		waitJobs(t, jobs, fromJobs, where)
	}
}

type jobLine struct {
	job  int
	line string
}

var jobLineRE = regexp.MustCompile(`^\[(\d+)\] (.*)$`)

// splitJobLines separates a step's own output lines from "[N] …" lines of background jobs.
func splitJobLines(t *testing.T, want []string, where string) (own []string, jobs []jobLine) {
	t.Helper()
	for _, w := range want {
		if m := jobLineRE.FindStringSubmatch(w); m != nil {
			n, _ := strconv.Atoi(m[1])
			jobs = append(jobs, jobLine{n, m[2]})
		} else {
			own = append(own, w)
		}
	}
	return own, jobs
}

func waitJobs(t *testing.T, jobs []*harness.Proc, lines []jobLine, where string) {
	t.Helper()
	for _, l := range lines {
		if l.job < 1 || l.job > len(jobs) {
			t.Fatalf("%s: output for job [%d], which does not exist", where, l.job)
		}
		waitNormalised(t, jobs[l.job-1], l.line, where)
	}
}

func waitNormalised(t *testing.T, p *harness.Proc, want, where string) {
	t.Helper()
	n := normalise(want)
	harness.Eventually(t, func() bool {
		for _, l := range strings.Split(p.Out.String(), "\n") {
			if matches(normalise(l), n) {
				return true
			}
		}
		return false
	}, "%s to print %q", where, want)
}

// matches reports whether line holds want, where "…" in want stands for any text (the pages
// use it for what differs from run to run, such as which message a crash interrupted).
func matches(line, want string) bool {
	for _, part := range strings.Split(want, "…") {
		part = strings.TrimSpace(part)
		at := strings.Index(line, part)
		if at < 0 {
			return false
		}
		line = line[at+len(part):]
	}
	return true
}

func checkInOrder(t *testing.T, out string, want []string, where string) {
	t.Helper()
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		got = append(got, normalise(sc.Text()))
	}
	i := 0
	for _, w := range want {
		n := normalise(w)
		for i < len(got) && !matches(got[i], n) {
			i++
		}
		if i == len(got) {
			t.Fatalf("%s: output lacks %q (in this order); it printed:\n%s", where, w, out)
		}
		i++
	}
}
