package pgserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RunningURL returns a connection URL for database on the server another
// process runs on dir (the Dir a Start was given), for a tool that must
// reach a live server's database without starting one (`mayflyd admin`
// while mayflyd runs). It reads the socket directory from the server's
// postmaster.pid. It fails when no server has written one.
func RunningURL(dir, database string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return "", fmt.Errorf("find running postgres: %w", err)
	}
	// Line 5 of postmaster.pid is the first unix socket directory.
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 || strings.TrimSpace(lines[4]) == "" {
		return "", errors.New("find running postgres: postmaster.pid names no socket directory")
	}
	s := &Server{sockDir: strings.TrimSpace(lines[4])}
	return s.URL(database), nil
}
