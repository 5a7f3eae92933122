package pgserver

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

const tailLines = 30

// logTail receives postgres's output: it logs each line at debug level and
// keeps the last tailLines lines for error messages. Write is called by the
// exec package's copying goroutine; String by any goroutine.
type logTail struct {
	log *slog.Logger

	mu      sync.Mutex
	partial []byte   // an unterminated last line
	lines   []string // at most tailLines, oldest first
}

func newLogTail(log *slog.Logger) *logTail { return &logTail{log: log} }

// Write implements io.Writer; it never fails.
func (t *logTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.addLocked(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	return len(p), nil
}

// flush records an unterminated last line.
func (t *logTail) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		t.addLocked(string(t.partial))
		t.partial = nil
	}
}

// addLocked logs and keeps line. t.mu must be held.
func (t *logTail) addLocked(line string) {
	line = strings.TrimRight(line, "\r")
	t.log.Debug("postgres log", "line", line)
	if len(t.lines) == tailLines {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
}

// String returns the kept lines, newline-separated.
func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
