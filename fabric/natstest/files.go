package natstest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// InFiles reports, by index, which of needles occur in some regular file
// under dir (a JetStream store directory): the check that deleted bytes
// really left the store's files. Files the server removes while the walk
// runs are skipped.
func InFiles(t testing.TB, dir string, needles [][]byte) map[int]bool {
	t.Helper()
	found := map[int]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		for i, n := range needles {
			if bytes.Contains(b, n) {
				found[i] = true
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("natstest: search %s: %v", dir, err)
	}
	return found
}
