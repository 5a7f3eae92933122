package pgserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// owner is the OS user postgres runs as when this process is root.
type owner struct {
	name     string
	uid, gid uint32
}

// lookupOwner returns the user named runAs (default "postgres") when this
// process is root, and nil otherwise: a non-root process runs postgres as
// itself.
func lookupOwner(runAs string) (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if runAs == "" {
		runAs = "postgres"
	}
	u, err := user.Lookup(runAs)
	if err != nil {
		return nil, fmt.Errorf("look up user %q to run postgres as (it refuses to run as root; installing postgresql creates %q, or set RunAs): %w",
			runAs, "postgres", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of %q: %w", runAs, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of %q: %w", runAs, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("run postgres as %q: it is root, which postgres refuses; choose another RunAs user", runAs)
	}
	return &owner{name: runAs, uid: uint32(uid), gid: uint32(gid)}, nil
}

// prepareDir creates dir (parents 0755, dir 0700) and returns its path with
// symlinks resolved. With an owner, it checks that the owner can reach dir
// and hands the whole tree to it.
func prepareDir(dir string, own *owner) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("make directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("make directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	if err := os.Chmod(real, 0o700); err != nil {
		return "", fmt.Errorf("restrict %s: %w", real, err)
	}
	if own == nil {
		return real, nil
	}
	if err := checkTraversable(real, own); err != nil {
		return "", err
	}
	if err := chownTree(real, own); err != nil {
		return "", err
	}
	return real, nil
}

// checkTraversable checks that own may search every parent of dir (an
// absolute path without symlinks), judged by mode bits alone.
func checkTraversable(dir string, own *owner) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check access to %s: %w", p, err)
		}
		if !canSearch(fi, own) {
			return fmt.Errorf("directory %s is not accessible to user %q, which postgres runs as (it refuses to run as root); fix it with \"chmod o+x %s\", or use a directory elsewhere",
				p, own.name, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// canSearch reports whether own may traverse the directory described by fi.
func canSearch(fi fs.FileInfo, own *owner) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case ok && st.Uid == own.uid:
		return perm&0o100 != 0
	case ok && st.Gid == own.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// chownTree gives dir and everything below it to own, skipping entries it
// already owns.
func chownTree(dir string, own *owner) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == own.uid && st.Gid == own.gid {
			return nil
		}
		if err := os.Lchown(path, int(own.uid), int(own.gid)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", path, own.name, err)
		}
		return nil
	})
}

// mkdirOwned makes dir mode 0700 (creating it if needed) and, with an owner,
// owned by it.
func mkdirOwned(dir string, own *owner) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("make directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	if own != nil {
		if err := os.Lchown(dir, int(own.uid), int(own.gid)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", dir, own.name, err)
		}
	}
	return nil
}
