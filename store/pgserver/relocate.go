package pgserver

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// DefaultRelocateDir is where a root-run Start keeps a cluster whose Dir
// the postgres user cannot reach (Config.RelocateDir).
const DefaultRelocateDir = "/var/lib/mayfly"

// relocate makes dir a symlink to a fresh directory under root when own
// (the user postgres runs as) cannot traverse dir's parents and dir holds
// no cluster yet: the common first run as root in a clone inside root's
// 0700 home. It leaves dir alone when own can reach it, when it is already
// a symlink (relocated before), or when it holds files (a cluster is never
// moved; checkTraversable then reports the fix).
func relocate(log *slog.Logger, dir, root string, own *owner) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("make directory: %w", err)
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(dir))
	if err != nil {
		return fmt.Errorf("resolve %s: %w", filepath.Dir(dir), err)
	}
	if checkTraversable(filepath.Join(parent, filepath.Base(dir)), own) == nil {
		return nil
	}
	fi, err := os.Lstat(dir)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		return nil
	case err == nil && fi.IsDir():
		if err := os.Remove(dir); err != nil { // only an empty directory goes
			return nil
		}
	case err == nil:
		return fmt.Errorf("%s is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("check %s: %w", dir, err)
	}
	if root == "" {
		root = DefaultRelocateDir
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", root, err)
	}
	target, err := os.MkdirTemp(root, "pg-")
	if err != nil {
		return fmt.Errorf("make postgres directory under %s: %w", root, err)
	}
	if err := os.Symlink(target, dir); err != nil {
		os.Remove(target)
		return fmt.Errorf("link %s to %s: %w", dir, target, err)
	}
	log.Info("postgres data kept outside the data directory: the postgres user cannot reach it",
		"dir", dir, "target", target, "unreachable", parent, "run_as", own.name)
	return nil
}
