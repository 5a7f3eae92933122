package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
)

// Defaults of the global options.
const (
	defaultServer = "http://127.0.0.1:8080"
	defaultHome   = ".mayfly" // under the user's home directory
	// requestTimeout bounds commands that make a few requests.
	requestTimeout = 30 * time.Second
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// cli is one invocation.
type cli struct {
	ctx    context.Context
	home   string
	server string
	out    io.Writer
	errw   io.Writer
	dir    *client.Dir // opened by the commands that need it
}

// cliError is a failure found by the command itself, with its code.
type cliError struct {
	code string
	msg  string
	exit int
}

func (e *cliError) Error() string { return e.code + ": " + e.msg }

func usageError(format string, args ...any) error {
	return &cliError{code: "usage", msg: fmt.Sprintf(format, args...) + " (mayfly -help)", exit: exitUsage}
}

// run parses the global options, runs the command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("mayfly", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	home := fs.String("home", getenv("MAYFLY_HOME"), "")
	server := fs.String("server", getenv("MAYFLY_SERVER"), "")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	} else if err != nil {
		return report(stderr, usageError("%v", err))
	}
	c := &cli{ctx: ctx, home: *home, server: *server, out: stdout, errw: stderr}
	if c.server == "" {
		c.server = defaultServer
	}
	if c.home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return report(stderr, &cliError{code: "local", msg: "no home directory; set --home or MAYFLY_HOME", exit: exitError})
		}
		c.home = filepath.Join(h, defaultHome)
	}
	if fs.NArg() == 0 {
		return report(stderr, usageError("no command"))
	}
	return report(stderr, c.dispatch(fs.Arg(0), fs.Args()[1:]))
}

// dispatch runs one command.
func (c *cli) dispatch(cmd string, args []string) error {
	switch cmd {
	case "register":
		return c.register(args)
	case "whoami":
		return c.whoami(args)
	case "friend":
		return c.friend(args)
	case "send":
		return c.send(args)
	case "read":
		return c.read(args)
	case "listen":
		return c.listen(args)
	case "device":
		return c.device(args)
	case "token":
		return c.token(args)
	case "help":
		fmt.Fprint(c.out, usage)
		return nil
	}
	return usageError("unknown command %q", cmd)
}

// report prints err's first line, starting with its code, and returns the
// exit code.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	code, msg, exit := classify(err)
	fmt.Fprintf(stderr, "%s: %s\n", code, oneLine(msg))
	return exit
}

// classify maps an error to its code, message and exit code.
func classify(err error) (code, msg string, exit int) {
	var ce *cliError
	var se *schema.Error
	switch {
	case errors.As(err, &ce):
		return ce.code, ce.msg, ce.exit
	case errors.Is(err, client.ErrUnknownPeer):
		return string(schema.CodeNotFriend), err.Error(), exitError
	case errors.Is(err, client.ErrNoIdentity):
		return "not_registered", "this home holds no identity; run: mayfly register HANDLE (or mayfly device link)", exitError
	case errors.Is(err, client.ErrNotLoggedIn):
		return "not_registered", "this device is not logged in", exitError
	case errors.Is(err, client.ErrLinkMismatch):
		return "link_mismatch", "the server's key for this code does not match the code; nothing was sent", exitError
	case errors.Is(err, client.ErrFingerprint):
		return "key_mismatch", err.Error(), exitError
	case errors.Is(err, client.ErrNotPrimary):
		return string(schema.CodeForbidden), "only the primary device (the one that registered, holding the identity key) can do this", exitError
	case errors.As(err, &se):
		return string(se.Code), sessionHint(se), exitError
	case errors.Is(err, context.Canceled):
		return "interrupted", "interrupted", exitInterrupted
	case errors.Is(err, context.DeadlineExceeded):
		return string(schema.CodeUnavailable), "timed out waiting for the server", exitError
	}
	return "local", err.Error(), exitError
}

// sessionHint adds what to do to the errors that end a device's session.
func sessionHint(e *schema.Error) string {
	switch e.Code {
	case schema.CodeTokenRevoked, schema.CodeRefreshInvalid, schema.CodeRefreshReused:
		return e.Message + " (this device's session has ended; if the device was not revoked, delete session.json in the home directory to log in again)"
	case schema.CodeDeviceRevoked:
		return e.Message + " (this home can no longer be used; link a new device)"
	}
	return e.Message
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// openDir opens the home directory.
func (c *cli) openDir() (*client.Dir, error) {
	if c.dir != nil {
		return c.dir, nil
	}
	d, err := client.OpenDir(c.home)
	if err != nil {
		return nil, err
	}
	c.dir = d
	return d, nil
}

// open returns a client for the home's identity (mods adjust its config),
// logging this device in first if it never was.
func (c *cli) open(ctx context.Context, mods ...func(*client.Config)) (*client.Client, error) {
	d, err := c.openDir()
	if err != nil {
		return nil, err
	}
	cfg, err := d.Config(c.server)
	if err != nil {
		return nil, err
	}
	if cfg.DeviceName, err = c.deviceName(); err != nil {
		return nil, err
	}
	for _, m := range mods {
		m(&cfg)
	}
	cl, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	if cl.Session().RefreshToken == "" {
		if _, err := cl.Login(ctx); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

// deviceName returns this home's device name, making one on first use:
// "mayfly-cli@<host>-<4 random characters>", so several homes on one host
// are separate devices (a login with an active device's name takes it over).
func (c *cli) deviceName() (string, error) {
	d, err := c.openDir()
	if err != nil {
		return "", err
	}
	name, err := d.DeviceName()
	if err != nil || name != "" {
		return name, err
	}
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, host)
	if len(host) > 32 {
		host = host[:32]
	}
	suffix := strings.ToLower(rand.Text()[:4])
	name = "mayfly-cli@" + host + "-" + suffix
	return name, d.SetDeviceName(name)
}

// timeout returns a context for a command that makes a few requests.
func (c *cli) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, requestTimeout)
}

// jsonLine prints v as one line of JSON.
func (c *cli) jsonLine(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// parseFlags parses a command's own flags, which may come before or after
// its arguments; it returns the arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// wantArgs checks a command got exactly n arguments.
func wantArgs(args []string, n int, form string) error {
	if len(args) != n {
		return usageError("want: mayfly %s", form)
	}
	return nil
}
