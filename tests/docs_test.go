package tests

import (
	"os"
	"path/filepath"
	"regexp"
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
