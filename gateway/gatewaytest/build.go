package gatewaytest

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// builds caches the binaries built by this test process, by package and
// flags; binDir holds them until RemoveBinaries.
var (
	buildMu sync.Mutex
	builds  = map[string]*build{}
	binDir  string
)

type build struct {
	n    int // names the binary: several builds of one package may coexist
	once sync.Once
	path string
	err  error
}

// Binary builds the command with import path pkg (once per test process,
// with -race when race is true) and returns the binary's path. Call
// RemoveBinaries from TestMain after the tests ran.
func Binary(t testing.TB, pkg string, race bool) string {
	t.Helper()
	key := fmt.Sprintf("%s race=%v", pkg, race)
	buildMu.Lock()
	b := builds[key]
	if b == nil {
		b = &build{n: len(builds)}
		builds[key] = b
	}
	buildMu.Unlock()
	b.once.Do(func() { b.path, b.err = goBuild(pkg, race, b.n) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func goBuild(pkg string, race bool, n int) (string, error) {
	buildMu.Lock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "mayfly-test-bin-")
		if err != nil {
			buildMu.Unlock()
			return "", err
		}
		binDir = dir
	}
	out := filepath.Join(binDir, fmt.Sprintf("%s-%d", path.Base(pkg), n))
	buildMu.Unlock()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	if msg, err := exec.Command(goBin, append(args, pkg)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	return out, nil
}

// RemoveBinaries deletes every binary Binary built.
func RemoveBinaries() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}
