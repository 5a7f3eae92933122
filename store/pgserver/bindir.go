package pgserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FindBinDir returns a directory holding both initdb and postgres. It tries,
// in order: $MAYFLY_PG_BINDIR (and fails if set but lacking them);
// `pg_config --bindir` (on Debian pg_config may come from libpq-dev without a
// server, so the binaries are checked); the newest /usr/lib/postgresql/*/bin;
// the directory of initdb found on $PATH. The error wraps ErrNoBinaries.
// It runs pg_config, which takes a few milliseconds.
func FindBinDir() (string, error) {
	if dir := os.Getenv("MAYFLY_PG_BINDIR"); dir != "" {
		if !hasBinaries(dir) {
			return "", fmt.Errorf("look in MAYFLY_PG_BINDIR=%s: %w", dir, ErrNoBinaries)
		}
		return dir, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasBinaries(dir) {
			return dir, nil
		}
	}
	if dir := newestBinDir("/usr/lib/postgresql"); dir != "" {
		return dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(p); hasBinaries(dir) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

// newestBinDir returns root/<version>/bin for the highest version holding
// the binaries, or "".
func newestBinDir(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	var versions []string
	for _, e := range entries {
		if hasBinaries(filepath.Join(root, e.Name(), "bin")) {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) == 0 {
		return ""
	}
	return filepath.Join(root, slices.MaxFunc(versions, compareVersions), "bin")
}

// compareVersions orders dotted numeric versions ("9.6" < "15" < "16.1");
// parts that are not numbers compare as 0.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		if c := versionPart(as, i) - versionPart(bs, i); c != 0 {
			if c < 0 {
				return -1
			}
			return 1
		}
	}
	return 0
}

func versionPart(parts []string, i int) int {
	if i >= len(parts) {
		return 0
	}
	n, _ := strconv.Atoi(parts[i])
	return n
}

// hasBinaries reports whether dir holds executable initdb and postgres files.
func hasBinaries(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}
