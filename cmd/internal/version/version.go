// Package version describes the running binary from the build information
// the Go toolchain embeds: module version, VCS revision and time, and Go
// version. The binaries print it for --version. It has no state; its
// functions are safe for concurrent use.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// String returns one line naming program and its build, for example
// "mayflyd (devel) commit 1299104c2b0e (2026-12-03T15:00:00Z, modified) go1.26.0 linux/amd64".
// Fields the build did not record are left out.
func String(program string) string {
	var b strings.Builder
	b.WriteString(program)
	bi, ok := debug.ReadBuildInfo()
	if ok {
		fmt.Fprintf(&b, " %s", bi.Main.Version)
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			fmt.Fprintf(&b, " commit %s", rev[:min(12, len(rev))])
			var notes []string
			if t := settings["vcs.time"]; t != "" {
				notes = append(notes, t)
			}
			if settings["vcs.modified"] == "true" {
				notes = append(notes, "modified")
			}
			if len(notes) > 0 {
				fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
			}
		}
	}
	fmt.Fprintf(&b, " %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}
