package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
)

// Commands for what the protocol has beyond send, read and listen: unread
// counts, recall, and the list of blocked users.

// unreadLine is one line of unread --json.
type unreadLine struct {
	From   string `json:"from"` // handle (user id if unknown)
	UserID string `json:"user_id"`
	Count  int    `json:"count"`
}

// unread prints how many unread messages wait from each sender, without
// reading (burning) any.
func (c *cli) unread(args []string) error {
	asJSON, err := onlyJSONFlag("unread", args)
	if err != nil {
		return err
	}
	return c.withClient(func(ctx context.Context, cl *client.Client) error {
		var counts map[string]int
		err := withRun(ctx, cl, client.Handler{SendOnly: true}, func(ctx context.Context) (err error) {
			counts, err = cl.Unread(ctx)
			return err
		})
		if err != nil {
			return err
		}
		lines, err := unreadLines(ctx, cl, counts)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if asJSON {
				err = c.jsonLine(l)
			} else {
				_, err = fmt.Fprintf(c.out, "%s  %d unread\n", l.From, l.Count)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// unreadLines names the senders of counts by handle, most unread first,
// fetching the friend list once if a sender is not pinned yet.
func unreadLines(ctx context.Context, cl *client.Client, counts map[string]int) ([]unreadLine, error) {
	lines := make([]unreadLine, 0, len(counts))
	fetched := false
	for id, n := range counts {
		p, ok := cl.Peer(id)
		if !ok && !fetched {
			fetched = true
			if _, err := cl.Friends(ctx); err != nil {
				return nil, err
			}
			p, ok = cl.Peer(id)
		}
		lines = append(lines, unreadLine{From: orID(p.Handle, id), UserID: id, Count: n})
	}
	slices.SortFunc(lines, func(a, b unreadLine) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return compareStrings(a.From, b.From)
	})
	return lines, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// onlyJSONFlag parses the arguments of a command that takes no argument
// and only the --json flag.
func onlyJSONFlag(name string, args []string) (asJSON bool, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	j := fs.Bool("json", false, "")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return false, err
	}
	return *j, wantArgs(rest, 0, name+" [--json]")
}

// recall withdraws a message this user sent that has not been read yet,
// named by the id send printed. It finds the message's own copy by
// replaying the mailbox from the start, without moving the cursor.
func (c *cli) recall(args []string) error {
	if err := wantArgs(args, 1, "recall ID"); err != nil {
		return err
	}
	id := args[0]
	ctx, cancel := c.timeout()
	defer cancel()
	cl, err := c.open(ctx, func(cfg *client.Config) {
		cfg.Storage = keepCursor{c.dir}
		cfg.Cursor = 0 // the copies of sent messages may be older than the cursor
	})
	if err != nil {
		return err
	}
	f := &copyFinder{id: id, synced: make(chan struct{})}
	return withRun(ctx, cl, f.handler(), func(ctx context.Context) error {
		select {
		case <-f.synced:
		case <-ctx.Done():
			return ctx.Err()
		}
		seq := f.found()
		if seq == 0 {
			return schema.Errorf(schema.CodeUnknownMessage, "no unread message "+id+" of yours: never sent from this account, read, recalled or expired")
		}
		if err := cl.Recall(ctx, seq); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "recalled %s\n", id)
		return nil
	})
}

// copyFinder looks for the own copy of message id during a replay.
type copyFinder struct {
	id     string
	synced chan struct{} // closed when the replay caught up
	once   sync.Once

	mu  sync.Mutex
	seq uint64 // guarded by mu
}

func (f *copyFinder) handler() client.Handler {
	return client.Handler{
		Message: func(_ context.Context, m client.Message) error {
			if m.Self && m.ID == f.id {
				f.mu.Lock()
				f.seq = m.Seq
				f.mu.Unlock()
			}
			return nil
		},
		Synced: func(context.Context, uint64) { f.once.Do(func() { close(f.synced) }) },
	}
}

func (f *copyFinder) found() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq
}

// blockLine is one line of friend blocks --json.
type blockLine struct {
	Handle string    `json:"handle"`
	UserID string    `json:"user_id"`
	Since  time.Time `json:"since"`
}

// friendBlocks lists the users this user blocked, oldest first.
func (c *cli) friendBlocks(args []string) error {
	asJSON, err := onlyJSONFlag("friend blocks", args)
	if err != nil {
		return err
	}
	return c.withClient(func(ctx context.Context, cl *client.Client) error {
		blocks, err := cl.Blocks(ctx)
		if err != nil {
			return err
		}
		for _, b := range blocks {
			l := blockLine{Handle: b.Handle, UserID: b.UserID, Since: b.Since.UTC()}
			if asJSON {
				err = c.jsonLine(l)
			} else {
				_, err = fmt.Fprintf(c.out, "%s  blocked since %s (mayfly friend unblock %s)\n", l.Handle, l.Since.Format(time.RFC3339), l.Handle)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}
