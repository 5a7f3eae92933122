package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
)

// burnTimeout bounds the read frame that burns a printed message; it runs
// even when the command is being stopped, so a printed message is burned.
const burnTimeout = 10 * time.Second

// messageLine is a message as read --json and listen --json print it.
type messageLine struct {
	Type   string    `json:"type"` // "message"
	ID     string    `json:"id"`
	Seq    uint64    `json:"seq"`
	From   string    `json:"from"` // handle (user id if unknown)
	To     string    `json:"to"`
	Text   string    `json:"text"`
	SentAt time.Time `json:"sent_at"`
	Self   bool      `json:"self"`
	// Files are the attached files, with where read --save wrote them.
	Files []fileLine `json:"files,omitempty"`
}

func newMessageLine(m client.Message) messageLine {
	return messageLine{Type: "message", ID: m.ID, Seq: m.Seq, From: orID(m.FromHandle, m.From), To: orID(m.ToHandle, m.To),
		Text: m.Text, SentAt: m.SentAt.UTC(), Self: m.Self, Files: fileLines(m)}
}

func orID(handle, id string) string {
	if handle != "" {
		return handle
	}
	return id
}

// printMessage prints one message as a JSON line or as text; files, when
// given, replace the message's unsaved file list.
func (c *cli) printMessage(m client.Message, asJSON bool, files ...fileLine) error {
	l := newMessageLine(m)
	if files != nil {
		l.Files = files
	}
	if asJSON {
		return c.jsonLine(l)
	}
	who := l.From
	if m.Self {
		who = "you to " + l.To
	}
	_, err := fmt.Fprintf(c.out, "%s  %s: %s\n", l.SentAt.Format(time.RFC3339), who, l.Text)
	for _, f := range l.Files {
		if err == nil && f.Path != "" {
			_, err = fmt.Fprintf(c.out, "    file %s (%d bytes) saved to %s\n", f.Name, f.Size, f.Path)
		} else if err == nil {
			_, err = fmt.Fprintf(c.out, "    file %s (%d bytes), not saved\n", f.Name, f.Size)
		}
	}
	return err
}

// withRun runs cl.Run with h while fn runs, then stops it. It returns fn's
// error, or Run's if Run ends first (the session ended).
func withRun(ctx context.Context, cl *client.Client, h client.Handler, fn func(context.Context) error) error {
	rctx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- cl.Run(rctx, h) }()
	fctx, stopFn := context.WithCancel(ctx)
	defer stopFn()
	fnErr := make(chan error, 1)
	go func() { fnErr <- fn(fctx) }()
	select {
	case err := <-fnErr:
		stopRun()
		<-runErr
		return err
	case err := <-runErr:
		stopFn()
		ferr := <-fnErr
		if err == nil {
			return ferr
		}
		return err
	}
}

// send seals TEXT, and the --file files, to HANDLE and exits once the
// server stored it.
func (c *cli) send(args []string) error {
	paths, args, err := splitFileFlags(args)
	if err != nil {
		return err
	}
	if len(args) < 2 && (len(paths) == 0 || len(args) < 1) {
		return usageError("want: mayfly send HANDLE [--file PATH]... TEXT (TEXT optional with --file)")
	}
	files, err := loadFiles(paths)
	if err != nil {
		return err
	}
	handle, text := args[0], strings.Join(args[1:], " ")
	ctx, cancel := c.timeout()
	defer cancel()
	cl, err := c.open(ctx)
	if err != nil {
		return err
	}
	return withRun(ctx, cl, client.Handler{SendOnly: true}, func(ctx context.Context) error {
		send := cl.Send
		if len(files) > 0 {
			send = func(ctx context.Context, handle, text string) (client.Sent, error) {
				return cl.SendFiles(ctx, handle, text, files)
			}
		}
		s, err := send(ctx, handle, text)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.out, s.ID)
		return nil
	})
}

// read prints the messages received since the cursor and burns each once
// printed; with --wait it waits that long for a first one if there are none.
func (c *cli) read(args []string) error {
	fs := flag.NewFlagSet("read", flag.ContinueOnError)
	wait := fs.Duration("wait", 0, "")
	asJSON := fs.Bool("json", false, "")
	save := fs.String("save", "", "")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest, 0, "read [--wait DURATION] [--json] [--save DIR]"); err != nil {
		return err
	}
	if *save != "" {
		if st, err := os.Stat(*save); err != nil || !st.IsDir() {
			return usageError("--save %s: not a directory", *save)
		}
	}
	if *wait < 0 {
		return usageError("--wait must not be negative")
	}
	octx, cancel := c.timeout()
	cl, err := c.open(octx)
	cancel()
	if err != nil {
		return err
	}
	r := &reader{c: c, cl: cl, json: *asJSON, save: *save, first: make(chan struct{}), synced: make(chan struct{})}
	return withRun(c.ctx, cl, r.handler(), func(ctx context.Context) error {
		select {
		case <-r.synced:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(requestTimeout):
			return schema.Errorf(schema.CodeUnavailable, "timed out waiting for the server to replay the mailbox")
		}
		if r.printed.Load() > 0 || *wait == 0 {
			return nil
		}
		select {
		case <-r.first:
		case <-time.After(*wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
}

// reader is the state of one read command.
type reader struct {
	c       *cli
	cl      *client.Client
	json    bool
	save    string // --save DIR; "" when files are not saved
	printed atomic.Int64
	first   chan struct{} // closed when the first message was printed
	synced  chan struct{} // closed when the replay caught up
	once    [2]sync.Once  // for first and synced
}

// handler prints each received message, then burns it; the cursor moves
// past a message only once it is burned (the Handler contract), so an
// interrupted read shows it again rather than losing it.
func (r *reader) handler() client.Handler {
	return client.Handler{
		Message: func(ctx context.Context, m client.Message) error {
			if m.Self {
				return nil
			}
			if m.Err != nil {
				fmt.Fprintf(r.c.errw, "warning: message %d from %s could not be opened and is left unread: %v\n", m.Seq, orID(m.FromHandle, m.From), m.Err)
				return nil
			}
			var files []fileLine
			if r.save != "" && len(m.Files) > 0 {
				var err error
				if files, err = saveFiles(ctx, r.cl, r.save, m); err != nil {
					fmt.Fprintf(r.c.errw, "warning: message %d from %s: %v; it is left unread\n", m.Seq, orID(m.FromHandle, m.From), err)
					return nil
				}
			}
			if err := r.c.printMessage(m, r.json, files...); err != nil {
				return err
			}
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), burnTimeout)
			defer cancel()
			if err := r.cl.Read(bctx, m.Seq); err != nil && !schema.HasCode(err, schema.CodeUnknownMessage) {
				return err
			}
			r.printed.Add(1)
			r.once[0].Do(func() { close(r.first) })
			return nil
		},
		Synced: func(context.Context, uint64) { r.once[1].Do(func() { close(r.synced) }) },
	}
}

// keepCursor is the home's storage with the cursor left alone: listen
// shows messages without consuming them, so read still shows them.
type keepCursor struct{ *client.Dir }

func (keepCursor) SaveCursor(uint64) error { return nil }

// listen prints messages (received and sent from other devices) and events
// until interrupted. It burns nothing and leaves the cursor alone.
func (c *cli) listen(args []string) error {
	asJSON, err := onlyJSONFlag("listen", args)
	if err != nil {
		return err
	}
	octx, cancel := c.timeout()
	cl, err := c.open(octx, func(cfg *client.Config) { cfg.Storage = keepCursor{c.dir} })
	cancel()
	if err != nil {
		return err
	}
	state := &connState{c: c, json: asJSON}
	return cl.Run(c.ctx, client.Handler{
		Disconnected: state.disconnected,
		Synced:       state.synced,
		Message: func(_ context.Context, m client.Message) error {
			if errors.Is(m.Err, client.ErrSentHere) {
				return nil // this device printed it when it sent it
			}
			if m.Err != nil {
				fmt.Fprintf(c.errw, "warning: message %d from %s could not be opened: %v\n", m.Seq, orID(m.FromHandle, m.From), m.Err)
				return nil
			}
			return c.printMessage(m, asJSON)
		},
		Event: func(_ context.Context, e schema.Event) { c.printEvent(cl, e, asJSON) },
	})
}

// printEvent prints one event as a JSON line or as a line of text.
func (c *cli) printEvent(cl *client.Client, e schema.Event, asJSON bool) {
	if asJSON {
		c.jsonLine(newEventLine(cl, e))
		return
	}
	handle := func(id string) string {
		if p, ok := cl.Peer(id); ok {
			return p.Handle
		}
		return id
	}
	presence := func(p schema.PresenceState) string {
		if p.Online {
			return handle(p.UserID) + " online"
		}
		if p.LastSeen != nil {
			return handle(p.UserID) + " offline, last seen " + p.LastSeen.UTC().Format(time.RFC3339)
		}
		return handle(p.UserID) + " offline"
	}
	var about []string
	switch {
	case e.Peer != nil:
		about = append(about, e.Peer.Handle)
	case e.Presence != nil:
		about = append(about, presence(*e.Presence))
	case e.Type == schema.EventPresenceSnapshot:
		for _, p := range e.Presences {
			about = append(about, presence(p))
		}
	case e.Seq != 0:
		about = append(about, fmt.Sprintf("message %s (seq %d) with %s", e.MsgID, e.Seq, handle(e.PeerID)))
	case e.DeviceID != "":
		about = append(about, "device "+e.DeviceID)
	}
	if e.ByMe {
		about = append(about, "(by you)")
	}
	fmt.Fprintf(c.out, "* %s %s\n", e.Type, strings.Join(about, ", "))
}
