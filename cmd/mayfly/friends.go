package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
)

// friend runs the friend subcommands.
func (c *cli) friend(args []string) error {
	if len(args) == 0 {
		return usageError("want: mayfly friend request|accept|decline|remove|block|unblock HANDLE, friend verify HANDLE [--accept], or friend list [--json]")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		return c.friendList(args)
	case "verify":
		return c.friendVerify(args)
	}
	ops := map[string]func(context.Context, *client.Client, string) (string, error){
		"request": func(ctx context.Context, cl *client.Client, h string) (string, error) {
			r, err := cl.FriendRequest(ctx, h)
			if err != nil {
				return "", err
			}
			if r.Friend != nil {
				return fmt.Sprintf("%s had asked you already: you are friends now\nfingerprint: %s", r.Friend.Handle, r.Friend.Fingerprint), nil
			}
			return "friend request sent to " + r.Request.Handle, nil
		},
		"accept": func(ctx context.Context, cl *client.Client, h string) (string, error) {
			f, err := cl.AcceptFriend(ctx, h)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("you and %s are friends now\nfingerprint: %s", f.Handle, f.Fingerprint), nil
		},
		"decline": done("declined the request of %s", (*client.Client).DeclineFriend),
		"remove":  done("%s is no longer your friend", (*client.Client).RemoveFriend),
		"block":   done("blocked %s", (*client.Client).Block),
		"unblock": done("unblocked %s", (*client.Client).Unblock),
	}
	op, ok := ops[sub]
	if !ok {
		return usageError("unknown friend command %q", sub)
	}
	if err := wantArgs(args, 1, "friend "+sub+" HANDLE"); err != nil {
		return err
	}
	return c.withClient(func(ctx context.Context, cl *client.Client) error {
		msg, err := op(ctx, cl, args[0])
		if err != nil {
			return err
		}
		fmt.Fprintln(c.out, msg)
		return nil
	})
}

// done adapts a client call without result to the friend op shape.
func done(format string, f func(*client.Client, context.Context, string) error) func(context.Context, *client.Client, string) (string, error) {
	return func(ctx context.Context, cl *client.Client, h string) (string, error) {
		if err := f(cl, ctx, h); err != nil {
			return "", err
		}
		return fmt.Sprintf(format, h), nil
	}
}

// friendLine is one line of friend list --json.
type friendLine struct {
	Status      string    `json:"status"` // friend, incoming or outgoing
	Handle      string    `json:"handle"`
	UserID      string    `json:"user_id"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Since       time.Time `json:"since"`
	KeyChanged  bool      `json:"key_changed,omitempty"`
}

// friendList prints friends (with fingerprints and changed keys), then
// pending requests.
func (c *cli) friendList(args []string) error {
	fs := flag.NewFlagSet("friend list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest, 0, "friend list [--json]"); err != nil {
		return err
	}
	return c.withClient(func(ctx context.Context, cl *client.Client) error {
		fl, err := cl.Friends(ctx)
		if err != nil {
			return err
		}
		reqs, err := cl.FriendRequests(ctx)
		if err != nil {
			return err
		}
		var lines []friendLine
		for _, f := range fl {
			lines = append(lines, friendLine{Status: "friend", Handle: f.Handle, UserID: f.UserID, Fingerprint: f.Fingerprint, Since: f.Since, KeyChanged: f.KeyChanged})
		}
		for _, r := range reqs.Incoming {
			lines = append(lines, friendLine{Status: "incoming", Handle: r.Handle, UserID: r.UserID, Since: r.CreatedAt})
		}
		for _, r := range reqs.Outgoing {
			lines = append(lines, friendLine{Status: "outgoing", Handle: r.Handle, UserID: r.UserID, Since: r.CreatedAt})
		}
		for _, l := range lines {
			if *asJSON {
				if err := c.jsonLine(l); err != nil {
					return err
				}
				continue
			}
			c.printFriend(l)
		}
		return nil
	})
}

func (c *cli) printFriend(l friendLine) {
	switch l.Status {
	case "friend":
		warn := ""
		if l.KeyChanged {
			warn = "  KEY CHANGED: compare safety numbers"
		}
		fmt.Fprintf(c.out, "%s  %s  friends since %s%s\n", l.Handle, l.Fingerprint, l.Since.UTC().Format(time.RFC3339), warn)
	case "incoming":
		fmt.Fprintf(c.out, "%s  asks to be your friend (mayfly friend accept %s)\n", l.Handle, l.Handle)
	case "outgoing":
		fmt.Fprintf(c.out, "%s  has not answered your request yet\n", l.Handle)
	}
}

// friendVerify shows the safety number of the user's and HANDLE's identity
// keys as the server serves them now; with --accept it trusts a changed key,
// so sending to HANDLE works again.
func (c *cli) friendVerify(args []string) error {
	fs := flag.NewFlagSet("friend verify", flag.ContinueOnError)
	accept := fs.Bool("accept", false, "")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest, 1, "friend verify HANDLE [--accept]"); err != nil {
		return err
	}
	return c.withClient(func(ctx context.Context, cl *client.Client) error {
		p, err := cl.Lookup(ctx, rest[0])
		if err != nil {
			return err
		}
		if _, pinned := cl.Peer(p.UserID); !pinned {
			return fmt.Errorf("verify %s: %w", rest[0], client.ErrUnknownPeer)
		}
		fp := p.Fingerprint
		if p.KeyChanged {
			fmt.Fprintf(c.out, "KEY CHANGED: %s's identity key is not the one pinned (was %s)\n", p.Handle, p.Fingerprint)
			fp = p.NewFingerprint
		}
		fmt.Fprintf(c.out, "you:  %s\n%s: %s\nsafety number: %s\n", cl.Identity().Fingerprint, p.Handle, fp, cl.SafetyNumber(p))
		switch {
		case *accept && p.KeyChanged:
			if _, err := cl.AcceptKey(p.UserID); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "accepted: messages to %s are sealed to the new key\n", p.Handle)
		case p.KeyChanged:
			fmt.Fprintf(c.out, "compare the number with %s, then run: mayfly friend verify %s --accept\n", p.Handle, p.Handle)
		default:
			fmt.Fprintln(c.out, "the key is the pinned one")
		}
		return nil
	})
}
