package tests

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the code excerpts of the READMEs and docs/ from the source files")

// excerptMark stands before a ```go block that shows a declaration of a source file:
// <!-- excerpt: mqttserver/eventlog/hook.go OnSessionEstablished -->. The name is a function, a
// method (either way, by its name alone) or a type. Without a name the block is the whole file:
// <!-- excerpt: examples/server/main.go -->.
var excerptMark = regexp.MustCompile(`^<!-- excerpt: (\S+)(?: (\S+))? -->$`)

// TestExcerpts checks that every code excerpt of the pages is the declaration in the source as
// it is now; go test mqttdemo/tests -run TestExcerpts -args -update rewrites them.
func TestExcerpts(t *testing.T) {
	for _, f := range docPages() {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		changed := false
		for i := 0; i < len(lines); i++ {
			m := excerptMark.FindStringSubmatch(strings.TrimSpace(lines[i]))
			if m == nil {
				continue
			}
			if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "```go" {
				t.Fatalf("%s:%d: an excerpt mark must stand right before a ```go block", f, i+1)
			}
			end := i + 2
			for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
				end++
			}
			want, err := excerpt(filepath.Join("..", m[1]), m[2])
			if err != nil {
				t.Fatalf("%s:%d: %v", f, i+1, err)
			}
			got := strings.Join(lines[i+2:end], "\n")
			if got == want {
				continue
			}
			if !*update {
				t.Errorf("%s:%d: the excerpt of %s differs from the source; run go test mqttdemo/tests -run TestExcerpts -args -update\n--- page:\n%s\n--- source:\n%s",
					f, i+1, strings.TrimSpace(m[1]+" "+m[2]), got, want)
				continue
			}
			lines = append(lines[:i+2], append(strings.Split(want, "\n"), lines[end:]...)...)
			changed = true
		}
		if changed {
			if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// excerpt returns the whole file when name is empty (without its final newline), else the
// declaration of that name.
func excerpt(path, name string) (string, error) {
	if name != "" {
		return declaration(path, name)
	}
	src, err := os.ReadFile(path)
	return strings.TrimSuffix(string(src), "\n"), err
}

// declaration returns the source text of the named top-level declaration, doc comment included.
func declaration(path, name string) (string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		return "", err
	}
	for _, d := range file.Decls {
		var doc *ast.CommentGroup
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Name.Name != name {
				continue
			}
			doc = d.Doc
		case *ast.GenDecl:
			found := false
			for _, s := range d.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.Name == name {
					found = true
				}
			}
			if !found {
				continue
			}
			doc = d.Doc
		default:
			continue
		}
		start := d.Pos()
		if doc != nil {
			start = doc.Pos()
		}
		return string(src[fset.Position(start).Offset:fset.Position(d.End()).Offset]), nil
	}
	return "", fmt.Errorf("%s has no declaration %s", path, name)
}
