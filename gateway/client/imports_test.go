package client_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestClientImports: the client library's production files import only
// the standard library, schema, schema/envelope, schema/payload and
// third-party packages,
// never server internals (store, fabric, the gateway itself), so programs
// can use it without pulling in a server.
func TestClientImports(t *testing.T) {
	t.Parallel()
	const module = "github.com/mayfly-im/mayfly"
	allowed := map[string]bool{module + "/schema": true, module + "/schema/envelope": true, module + "/schema/payload": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if (p == module || strings.HasPrefix(p, module+"/")) && !allowed[p] {
				t.Errorf("%s imports %s: the client may import only schema, schema/envelope and schema/payload of this module", name, p)
			}
			if p == "testing" {
				t.Errorf("%s imports testing", name)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d files; run the test from the package directory", checked)
	}
	if _, err := os.Stat("client.go"); err != nil {
		t.Fatalf("not in the client package directory: %v", err)
	}
}
