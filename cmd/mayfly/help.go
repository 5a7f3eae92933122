package main

import (
	"fmt"
	"slices"
	"strings"
)

// helpFlags are the arguments that ask for a command's help.
var helpFlags = []string{"-h", "--h", "-help", "--help"}

// wantsHelp reports whether a command's arguments ask for its help.
func wantsHelp(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return slices.Contains(helpFlags, a) })
}

// commandHelp returns the help of cmd: its lines of the usage text. It
// reports false for an unknown command.
func commandHelp(cmd string) (string, bool) {
	var lines []string
	inCommands, inCmd := false, false
	for _, l := range strings.Split(usage, "\n") {
		switch {
		case l == "Commands:":
			inCommands = true
		case l == "":
			inCommands = false
		case inCommands && (strings.HasPrefix(l, "  "+cmd+" ") || l == "  "+cmd):
			lines, inCmd = append(lines, l), true
		case inCmd && strings.HasPrefix(l, "    "):
			lines = append(lines, l) // the command's continuation lines
		default:
			inCmd = false
		}
	}
	if len(lines) == 0 {
		return "", false
	}
	return "Usage: mayfly [--home DIR] [--server URL] COMMAND\n\n" + strings.Join(lines, "\n") +
		"\n\nmayfly -help lists every command; docs/cli.md has the details.\n", true
}

// help prints cmd's help.
func (c *cli) help(cmd string) error {
	h, ok := commandHelp(cmd)
	if !ok {
		return usageError("unknown command %q", cmd)
	}
	_, err := fmt.Fprint(c.out, h)
	return err
}
