package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docPages lists the pages whose excerpts and walkthroughs the tests check: both READMEs and docs/.
func docPages() []string {
	files, _ := filepath.Glob("../docs/*.md")
	return append([]string{"../README.md", "../README.zh-CN.md"}, files...)
}

// shCommands returns the commands of the page's ```sh blocks, without their trailing comments.
func shCommands(t *testing.T, page string) []string {
	t.Helper()
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	comment := regexp.MustCompile(`\s+#\s.*$`)
	var cmds []string
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		switch l = strings.TrimSpace(l); {
		case l == "```sh":
			in = true
		case l == "```":
			in = false
		case in && l != "" && !strings.HasPrefix(l, "#"):
			cmds = append(cmds, strings.TrimSpace(comment.ReplaceAllString(l, "")))
		}
	}
	return cmds
}

// TestDocsSameCommands keeps the Chinese README to the English one's commands: every command of
// its ```sh blocks is one of README.md's, so that what the English README's tests and readers
// prove holds for both.
func TestDocsSameCommands(t *testing.T) {
	english := map[string]bool{}
	for _, c := range shCommands(t, "../README.md") {
		english[c] = true
	}
	zh := shCommands(t, "../README.zh-CN.md")
	if len(zh) == 0 {
		t.Fatal("README.zh-CN.md has no ```sh block")
	}
	for _, c := range zh {
		if !english[c] {
			t.Errorf("README.zh-CN.md runs %q, which README.md does not", c)
		}
	}
}

// TestDocsLinks checks the READMEs' links to files of the repository, and their #anchors against
// the headings of the page they point to (GitHub's anchors: lower case, punctuation dropped,
// spaces as hyphens).
func TestDocsLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, page := range []string{"../README.md", "../README.zh-CN.md"} {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join("..", file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", page, target, err)
				continue
			}
			if anchor != "" && !anchors(t, path)[anchor] {
				t.Errorf("%s: link %s: %s has no heading with this anchor", page, target, path)
			}
		}
	}
}

// anchors returns the GitHub anchors of a markdown file's headings.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\p{M} _-]`)
	seen := map[string]bool{}
	fenced := false
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
		h = strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")
		for a, n := h, 1; ; n++ {
			if !seen[a] {
				seen[a] = true
				break
			}
			a = h + "-" + strconv.Itoa(n)
		}
	}
	return seen
}

// mdBlock is a fenced code block of a page: its language, its lines and where it starts.
type mdBlock struct {
	lang  string
	lines []string
	line  int
}

// mdHeading is a heading of a page: its level (the number of #) and where it is.
type mdHeading struct {
	level int
	text  string
	line  int
}

// outline returns the headings and the fenced code blocks of a markdown page, in order. Fences may
// be indented (a block in a list item); headings inside a block are code, not headings.
func outline(t *testing.T, page string) (heads []mdHeading, blocks []mdBlock) {
	t.Helper()
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	var cur *mdBlock
	for i, l := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(l)
		switch {
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, l)
		case strings.HasPrefix(trimmed, "```"):
			cur = &mdBlock{lang: strings.TrimPrefix(trimmed, "```"), line: i + 1}
		case strings.HasPrefix(l, "#"):
			level := len(l) - len(strings.TrimLeft(l, "#"))
			if strings.HasPrefix(l[level:], " ") {
				heads = append(heads, mdHeading{level, strings.TrimSpace(l[level:]), i + 1})
			}
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: a code block is not closed", page, cur.line)
	}
	return heads, blocks
}

var (
	shComment = regexp.MustCompile(`\s+#\s.*$`)
	han       = regexp.MustCompile(`\p{Han}`)
)

// blockKey is what must be the same in a block and its translation. Commands (sh and powershell
// lines) without their comments, which are translated; a block the translation explains in
// Chinese (the layout) by its entries, the first word of each line indented by at most two
// spaces; every other block (Go, program output, console sessions) line for line.
func blockKey(b mdBlock, translated bool) []string {
	var key []string
	for _, l := range b.lines {
		switch {
		case b.lang == "sh" || b.lang == "powershell":
			l = strings.TrimSpace(shComment.ReplaceAllString(l, ""))
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
		case translated:
			if f := strings.Fields(l); len(f) > 0 && len(l)-len(strings.TrimLeft(l, " ")) <= 2 {
				l = f[0]
			} else {
				continue
			}
		}
		key = append(key, l)
	}
	return key
}

// TestDocsSameStructure keeps README.zh-CN.md saying what README.md says, section for section:
// the same number of headings at each level in the same order, and the same code blocks in the
// same order (see blockKey), so that a section added, dropped or moved in one shows here.
func TestDocsSameStructure(t *testing.T) {
	enHeads, enBlocks := outline(t, "../README.md")
	zhHeads, zhBlocks := outline(t, "../README.zh-CN.md")
	for i := range max(len(enHeads), len(zhHeads)) {
		switch {
		case i >= len(zhHeads):
			t.Errorf("README.zh-CN.md lacks a heading for README.md:%d %q", enHeads[i].line, enHeads[i].text)
		case i >= len(enHeads):
			t.Errorf("README.zh-CN.md:%d %q has no heading in README.md", zhHeads[i].line, zhHeads[i].text)
		case enHeads[i].level != zhHeads[i].level:
			t.Errorf("heading %d: README.md:%d %q is level %d, README.zh-CN.md:%d %q level %d", i+1,
				enHeads[i].line, enHeads[i].text, enHeads[i].level, zhHeads[i].line, zhHeads[i].text, zhHeads[i].level)
		}
		if t.Failed() {
			return // one shift makes every later heading differ: the first is what to fix
		}
	}
	for i := range max(len(enBlocks), len(zhBlocks)) {
		if i >= len(zhBlocks) {
			t.Fatalf("README.zh-CN.md lacks the code block of README.md:%d", enBlocks[i].line)
		}
		if i >= len(enBlocks) {
			t.Fatalf("README.zh-CN.md:%d: a code block README.md does not have", zhBlocks[i].line)
		}
		en, zh := enBlocks[i], zhBlocks[i]
		if en.lang != zh.lang {
			t.Fatalf("code block %d: README.md:%d is ```%s, README.zh-CN.md:%d ```%s", i+1, en.line, en.lang, zh.line, zh.lang)
		}
		translated := han.MatchString(strings.Join(zh.lines, "\n")) && en.lang == "text" && !han.MatchString(strings.Join(en.lines, "\n"))
		if want, got := blockKey(en, translated), blockKey(zh, translated); !slices.Equal(want, got) {
			t.Fatalf("code block %d differs: README.md:%d\n%s\nREADME.zh-CN.md:%d\n%s", i+1,
				en.line, strings.Join(want, "\n"), zh.line, strings.Join(got, "\n"))
		}
	}
}
