package main

// Repository rules that a document alone would not keep (STYLE.md rules 3,
// 7 and 11). They live here because mayflyd is the module's composition
// root: the one package that depends on everything, so the place where a
// rule about the whole module reads naturally. The tests read the source
// tree with go/parser; they need no build and no network.

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mayfly-im/mayfly/schema"
)

// goPackage is one directory's production (non-test) Go files.
type goPackage struct {
	dir     string // relative to the module root, slash-separated
	name    string
	files   []*ast.File
	imports map[string]string // import path -> first file importing it
}

// modulePackages parses every production Go file of the module.
func modulePackages(t *testing.T) (root, module string, pkgs []*goPackage) {
	t.Helper()
	root = moduleRoot(t)
	module = modulePath(t, root)
	byDir := map[string]*goPackage{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		if ignored(f) {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		pkg := byDir[rel]
		if pkg == nil {
			pkg = &goPackage{dir: rel, name: f.Name.Name, imports: map[string]string{}}
			byDir[rel] = pkg
			pkgs = append(pkgs, pkg)
		}
		pkg.files = append(pkg.files, f)
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if _, ok := pkg.imports[ip]; !ok {
				pkg.imports[ip] = filepath.Base(p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 5 {
		t.Fatalf("found only %d packages under %s", len(pkgs), root)
	}
	return root, module, pkgs
}

// ignored reports whether f is excluded from every build (//go:build ignore).
func ignored(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() > f.Package {
			break
		}
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, "//go:build") && strings.Contains(c.Text, "ignore") {
				return true
			}
		}
	}
	return false
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func modulePath(t *testing.T, root string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.TrimSpace(m)
		}
	}
	t.Fatal("no module line in go.mod")
	return ""
}

// isTestHelper reports whether a package is a shared test helper (natstest,
// storetest, apptest): the only production code allowed to import testing.
func isTestHelper(importPath string) bool { return strings.HasSuffix(path.Base(importPath), "test") }

// TestRepoPackageDocs: every package has a package doc comment saying what
// it provides ("Package x ..." or, for a command, "Command x ...").
func TestRepoPackageDocs(t *testing.T) {
	t.Parallel()
	_, _, pkgs := modulePackages(t)
	for _, p := range pkgs {
		var docs []string
		for _, f := range p.files {
			if f.Doc != nil {
				docs = append(docs, f.Doc.Text())
			}
		}
		switch {
		case len(docs) == 0:
			t.Errorf("package %s (%s) has no package doc comment", p.name, p.dir)
		case len(docs) > 1:
			t.Errorf("package %s (%s) has %d package doc comments; keep one", p.name, p.dir, len(docs))
		case p.name == "main" && !strings.HasPrefix(docs[0], "Command "):
			t.Errorf("command %s: doc should start with \"Command <name>\"", p.dir)
		case p.name != "main" && !strings.HasPrefix(docs[0], "Package "+p.name+" "):
			t.Errorf("package %s (%s): doc should start with \"Package %s \"", p.name, p.dir, p.name)
		}
	}
}

// TestRepoImports enforces who may import whom:
//   - schema and its subpackages import no other package of this module;
//   - production code imports neither testing nor the test helpers, except
//     the test helper packages themselves (natstest, storetest, apptest);
//   - the gateway reaches Postgres only through the fabric services, never
//     store directly (its test helper, gatewaytest, wires the services and
//     may);
//   - fabric, below the gateway, imports of it only gateway/keyrate (rate
//     limits on clients, which the mailbox relay and the NATS-native
//     services apply too), and keyrate imports no package of this module.
func TestRepoImports(t *testing.T) {
	t.Parallel()
	_, module, pkgs := modulePackages(t)
	for _, p := range pkgs {
		full := module
		if p.dir != "." {
			full += "/" + p.dir
		}
		for ip, file := range p.imports {
			own := ip == module || strings.HasPrefix(ip, module+"/")
			rel := strings.TrimPrefix(strings.TrimPrefix(ip, module), "/")
			switch {
			case inTree(p.dir, "schema") && own && !inTree(rel, "schema"):
				t.Errorf("%s/%s imports %s: schema imports no other package of this module", p.dir, file, ip)
			case (ip == "testing" || strings.HasPrefix(ip, "testing/")) && !isTestHelper(full):
				t.Errorf("%s/%s imports %s: only *test helper packages may import testing", p.dir, file, ip)
			case own && isTestHelper(ip) && !isTestHelper(full):
				t.Errorf("%s/%s imports test helper %s", p.dir, file, ip)
			case inTree(p.dir, "gateway") && own && inTree(rel, "store") && !isTestHelper(full):
				t.Errorf("%s/%s imports %s: the gateway goes through fabric services, not store", p.dir, file, ip)
			case inTree(p.dir, "fabric") && own && inTree(rel, "gateway") && rel != "gateway/keyrate" && !isTestHelper(full):
				t.Errorf("%s/%s imports %s: fabric sits below the gateway and uses only its keyrate", p.dir, file, ip)
			case p.dir == "gateway/keyrate" && own:
				t.Errorf("%s/%s imports %s: keyrate, shared with fabric, imports no other package of this module", p.dir, file, ip)
			}
		}
	}
}

// e2eTrees are the only trees whose tests may assemble the whole mayflyd
// (cmd/mayflyd/app, apptest): the end-to-end tests of the server and the
// checks of what operators deploy. Every other package's tests wire only
// what they test (gateway/gatewaytest, fabric/natstest, store/storetest).
var e2eTrees = []string{"cmd/mayflyd", "deploy"}

// TestRepoTestsWireOnlyTheirPart: test files outside e2eTrees import
// neither cmd/mayflyd/app nor its apptest.
func TestRepoTestsWireOnlyTheirPart(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	app := modulePath(t, root) + "/cmd/mayflyd/app"
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if slices.ContainsFunc(e2eTrees, func(top string) bool { return inTree(path.Dir(rel), top) }) {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		n++
		for _, imp := range f.Imports {
			if ip, _ := strconv.Unquote(imp.Path.Value); ip == app || strings.HasPrefix(ip, app+"/") {
				t.Errorf("%s imports %s: only the end-to-end tests (%v) assemble the whole server", rel, ip, e2eTrees)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("checked only %d test files; has the tree moved?", n)
	}
}

// TestRepoMigrationsInStore: the SQL migrations are read only by store,
// so they live in store/migrations and nowhere else.
func TestRepoMigrationsInStore(t *testing.T) {
	root := moduleRoot(t)
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if dir := filepath.ToSlash(filepath.Dir(rel)); dir != "store/migrations" {
			t.Errorf("%s: SQL migrations live in store/migrations", filepath.ToSlash(rel))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("found only %d .sql files; has the tree moved?", n)
	}
}

// inTree reports whether dir is top or below it.
func inTree(dir, top string) bool { return dir == top || strings.HasPrefix(dir, top+"/") }

// apiCodeRow matches a row of docs/api.md's error code table: | `code` | 400 | ...
var apiCodeRow = regexp.MustCompile("^\\|\\s*`([a-z_]+)`\\s*\\|\\s*(\\d{3})\\s*\\|")

// TestRepoAPIDocsErrorCodes: docs/api.md has a table row for every client
// error code with the HTTP status the server sends, and no row for a code
// that does not exist.
func TestRepoAPIDocsErrorCodes(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[schema.Code]int{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if m := apiCodeRow.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			status, _ := strconv.Atoi(m[2])
			documented[schema.Code(m[1])] = status
		}
	}
	for _, c := range schema.Codes() {
		status, ok := documented[c]
		switch {
		case !ok:
			t.Errorf("docs/api.md: no row for error code %s", c)
		case status != c.Status():
			t.Errorf("docs/api.md: %s documented as %d, the server sends %d", c, status, c.Status())
		}
	}
	for c := range documented {
		if !c.Known() {
			t.Errorf("docs/api.md documents %s, which is not a schema code", c)
		}
	}
}

// flagDef matches a flag definition in main.go: str(&x, "name", "ENV", ...
var flagDef = regexp.MustCompile(`str\(&[^,]+, "([a-z0-9-]+)", "([A-Z0-9_]+)"`)

// TestRepoREADMEFlags: README.md's configuration table has a row for every
// mayflyd flag, with its environment variable.
func TestRepoREADMEFlags(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "cmd", "mayflyd", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defs := flagDef.FindAllStringSubmatch(string(src), -1)
	if len(defs) < 5 {
		t.Fatalf("found only %d flag definitions in main.go; has parseFlags changed shape?", len(defs))
	}
	for _, d := range defs {
		row := "| `--" + d[1] + "` | `" + d[2] + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md: no configuration row starting %q", row)
		}
	}
}

// fuzzFunc matches a fuzz target's declaration in a test file.
var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz[A-Za-z0-9_]*)\(`)

// TestRepoMakeFuzzRunsEveryTarget fails when a fuzz target of the tree is
// missing from `make fuzz` (each is run there by its exact name).
func TestRepoMakeFuzzRunsEveryTarget(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		for _, m := range fuzzFunc.FindAllStringSubmatch(string(src), -1) {
			n++
			want := "-fuzz='^" + m[1] + "$$' -fuzztime=$${FUZZTIME:-30s} ./" + filepath.ToSlash(rel) + "\n"
			if !strings.Contains(string(mk), want) {
				t.Errorf("Makefile: make fuzz does not run %s in ./%s", m[1], filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("found only %d fuzz targets; has the tree moved?", n)
	}
}
