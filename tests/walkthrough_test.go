package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mqttdemo/tests/harness"
)

// A walkthrough is a console block of a README or docs/*.md marked with
// <!-- walkthrough: NAME --> on the line before its ```console fence. Lines starting with "$ "
// are commands; the lines after a command are output it must print.
//
// The test runs the walkthroughs of each page as a reader does: typed one command at a time into
// an interactive bash with job control on a pseudo-terminal, in the order of the page, as one
// session, each command once the prompt is back. It takes three liberties: the programs are the
// binaries built once for all tests (a "go build … ./mqttserver ./mqttpublisher ./mqttsubscriber"
// links them, "go run ./PROGRAM" runs them); the ports 1883, 1882, 8883 and 8080 become free
// ports; and what changes from run to run (times, ids, durations, ports) is compared loosely.
//
// A command must exit 0: show a failure with "; echo exit status $?". The output lines under a
// command must appear after it, in order; those written "[N] …" are printed later by background
// job N, and may come in any order. In an output line, "…" stands for any text. After the page,
// no process of the session may be left, and the repository must hold no new file.
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
	var all []walkthrough
	for _, f := range docPages() {
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
		t.Fatal("no walkthroughs found in the READMEs and docs/")
	}
	b := harness.Build(t)
	var pages []string
	byPage := map[string][]walkthrough{}
	for _, w := range all {
		if byPage[w.file] == nil {
			pages = append(pages, w.file)
		}
		byPage[w.file] = append(byPage[w.file], w)
	}
	for _, page := range pages {
		t.Run(page, func(t *testing.T) { runPage(t, b, byPage[page]) })
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

// buildRE is the page's build command; the test links the binaries it built instead.
var buildRE = regexp.MustCompile(`^go build .*-o "?([^" ]+)"? \./mqttserver \./mqttpublisher \./mqttsubscriber$`)

func runPage(t *testing.T, b harness.Bins, page []walkthrough) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	before := untracked(t, repo)
	ports := map[string]string{}
	for _, p := range []string{"1883", "1882", "8883", "8080"} {
		ports[p] = strconv.Itoa(harness.FreePort(t))
	}
	portRE := regexp.MustCompile(`\b(1883|1882|8883|8080)\b`)
	sh := harness.StartShell(t, repo, harness.Env(
		"PATH="+filepath.Dir(b.Server)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MQTT_BROKER=tcp://127.0.0.1:"+ports["1883"],
		"MQTT_LISTEN=127.0.0.1:"+ports["1883"],
		"HOME="+t.TempDir(),
		"TMPDIR="+t.TempDir(), // mktemp -d
	))
	programs := strings.NewReplacer(
		"go run ./mqttserver", b.Server,
		"go run ./mqttpublisher", b.Publisher,
		"go run ./mqttsubscriber", b.Subscriber,
	)
	for _, w := range page {
		for _, s := range w.steps {
			where := fmt.Sprintf("%s:%d (%s) %q", w.file, w.line, w.name, s.command)
			cmdline := programs.Replace(portRE.ReplaceAllStringFunc(s.command, func(p string) string { return ports[p] }))
			if m := buildRE.FindStringSubmatch(cmdline); m != nil {
				cmdline = fmt.Sprintf("mkdir -p %s && ln -s %s %s %s %s", m[1], b.Server, b.Publisher, b.Subscriber, m[1])
			}
			from := len(sh.Screen())
			out, status := sh.Run(t, cmdline)
			if status != 0 {
				t.Fatalf("%s: exit status %d\n%s", where, status, out)
			}
			// What the command printed comes after the echo of the command itself.
			if i := strings.Index(sh.Screen()[from:], cmdline); i >= 0 {
				from += i + len(cmdline)
			}
			own, fromJobs := splitJobLines(t, s.want, where)
			waitInOrder(t, sh, from, own, where)
			for _, l := range fromJobs {
				waitInOrder(t, sh, from, []string{l.line}, fmt.Sprintf("%s: job [%d]", where, l.job))
			}
		}
	}
	harness.Eventually(t, func() bool { return len(sh.Left()) == 0 }, "%s: the walkthroughs to stop what they started; left: %v", page[0].file, sh.Left())
	var left []string
	for _, f := range untracked(t, repo) {
		if !slices.Contains(before, f) {
			left = append(left, f)
		}
	}
	if len(left) > 0 {
		t.Errorf("%s: the walkthroughs left files in the repository:\n%s", page[0].file, strings.Join(left, "\n"))
	}
}

// untracked lists the files in the repository that git does not track, ignored ones included
// (.gitignore lists users.yaml and data/ only as a safety net).
func untracked(t *testing.T, repo string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "ls-files", "--others").Output()
	if err != nil {
		t.Logf("git ls-files: %v: not checking for files left in the repository", err)
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
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

// waitInOrder waits until the terminal, after offset from, has shown lines matching want, in
// this order.
func waitInOrder(t *testing.T, sh *harness.Shell, from int, want []string, where string) {
	t.Helper()
	if len(want) == 0 {
		return
	}
	harness.Eventually(t, func() bool { return firstMissing(sh.Screen()[from:], want) == "" },
		"%s to print, in this order: %q", where, want)
}

// firstMissing returns the first line of want that out lacks, in order; "" when none is.
func firstMissing(out string, want []string) string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		got = append(got, normalise(l))
	}
	i := 0
	for _, w := range want {
		n := normalise(w)
		for i < len(got) && !matches(got[i], n) {
			i++
		}
		if i == len(got) {
			return w
		}
		i++
	}
	return ""
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
