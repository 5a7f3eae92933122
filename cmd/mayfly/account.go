package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// errHasIdentity refuses to make a second identity in one home.
func errHasIdentity(handle string) error {
	return &cliError{code: "already_registered", exit: exitError,
		msg: fmt.Sprintf("this home holds %s already; use another --home", handle)}
}

// register makes the identity key and this device's key, registers HANDLE,
// publishes the device list and logs this device in: it is the primary. The
// keys are stored before the account is made, so a crash cannot leave an
// account nobody holds the keys of; a refused registration removes them.
func (c *cli) register(args []string) error {
	if err := wantArgs(args, 1, "register HANDLE"); err != nil {
		return err
	}
	d, err := c.openEmptyDir()
	if err != nil {
		return err
	}
	keys, err := client.NewKeys(true)
	if err != nil {
		return err
	}
	if err := d.SaveIdentity("", args[0], keys, nil); err != nil {
		return err
	}
	ctx, cancel := c.timeout()
	defer cancel()
	name, err := c.deviceName()
	if err != nil {
		return err
	}
	cl, err := client.New(client.Config{Server: c.server, Keys: keys, DeviceName: name, Storage: d})
	if err != nil {
		return err
	}
	u, err := cl.Register(ctx, args[0])
	if err != nil && u.UserID == "" {
		if rerr := d.RemoveIdentity(); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	if serr := d.SaveIdentity(u.UserID, u.Handle, keys, nil); serr != nil || err != nil {
		return errors.Join(err, serr)
	}
	s, err := cl.Login(ctx)
	if err != nil {
		return fmt.Errorf("registered %s, but logging in failed: %w", u.Handle, err)
	}
	fmt.Fprintf(c.out, "registered %s\nuser_id: %s\nfingerprint: %s\ndevice: %s (%s)\n",
		u.Handle, u.UserID, u.Fingerprint, name, s.DeviceID)
	return nil
}

// whoami prints the home's identity; it needs no server.
func (c *cli) whoami(args []string) error {
	if err := wantArgs(args, 0, "whoami"); err != nil {
		return err
	}
	d, err := c.openDir()
	if err != nil {
		return err
	}
	cfg, err := d.Config(c.server)
	if err != nil {
		return err
	}
	fp := "unknown"
	if cfg.IdentityKey != nil {
		fp = envelope.IdentityFingerprint(cfg.IdentityKey)
	}
	role := "linked device"
	if cfg.Keys.Primary() {
		role = "primary device (holds the identity key)"
	}
	fmt.Fprintf(c.out, "handle: %s\nuser_id: %s\nfingerprint: %s\n", cfg.Handle, cfg.UserID, fp)
	fmt.Fprintf(c.out, "device: %s (%s), %s\n", cfg.DeviceName, cfg.Keys.DeviceID(), role)
	return nil
}

// token refreshes the session and prints the new access token.
func (c *cli) token(args []string) error {
	if err := wantArgs(args, 0, "token"); err != nil {
		return err
	}
	ctx, cancel := c.timeout()
	defer cancel()
	cl, err := c.open(ctx)
	if err != nil {
		return err
	}
	if err := cl.Refresh(ctx); err != nil {
		return err
	}
	fmt.Fprintln(c.out, cl.Session().AccessToken)
	return nil
}

// device runs the device subcommands.
func (c *cli) device(args []string) error {
	if len(args) == 0 {
		return usageError("want: mayfly device list|revoke ID|link|approve CODE|reset-identity")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		return c.deviceList(args)
	case "revoke":
		if err := wantArgs(args, 1, "device revoke ID"); err != nil {
			return err
		}
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			if err := cl.RevokeDevice(ctx, args[0]); err != nil {
				return err
			}
			if cl.Identity().Primary {
				fmt.Fprintf(c.out, "revoked %s: removed from the signed device list\n", args[0])
			} else {
				fmt.Fprintf(c.out, "revoked %s (this device) at the server; the primary drops it from the signed device list\n", args[0])
			}
			return nil
		})
	case "link":
		if err := wantArgs(args, 0, "device link"); err != nil {
			return err
		}
		return c.deviceLink()
	case "reset-identity":
		cancelIt := len(args) == 1 && args[0] == "--cancel"
		if cancelIt {
			args = args[1:]
		}
		if err := wantArgs(args, 0, "device reset-identity [--cancel]"); err != nil {
			return err
		}
		return c.resetIdentity(cancelIt)
	case "approve":
		if err := wantArgs(args, 1, "device approve CODE"); err != nil {
			return err
		}
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			if err := cl.ApproveLink(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "approved: the new device is now in the device list of %s and logs in\n", cl.Identity().Handle)
			return nil
		})
	}
	return usageError("unknown device command %q", sub)
}

// withClient runs fn with a client and a context with the request timeout.
func (c *cli) withClient(fn func(context.Context, *client.Client) error) error {
	ctx, cancel := c.timeout()
	defer cancel()
	cl, err := c.open(ctx)
	if err != nil {
		return err
	}
	return fn(ctx, cl)
}

func (c *cli) deviceList(args []string) error {
	if err := wantArgs(args, 0, "device list"); err != nil {
		return err
	}
	return c.withClient(func(ctx context.Context, cl *client.Client) error {
		ds, err := cl.Devices(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			cur := ""
			if d.Current {
				cur = "  (this device)"
			}
			fmt.Fprintf(c.out, "%s  %s  created %s  last seen %s%s\n", d.DeviceID, d.Name,
				d.CreatedAt.UTC().Format(time.RFC3339), d.LastSeenAt.UTC().Format(time.RFC3339), cur)
		}
		if st, err := cl.PendingIdentityReset(ctx); err == nil {
			fmt.Fprintf(c.out, "IDENTITY RESET PENDING: device %s asked to replace the identity key (new fingerprint %s); it can take effect from %s.\n",
				st.DeviceID, st.IKFingerprint, st.NotBefore.UTC().Format(time.RFC3339))
			fmt.Fprintln(c.out, "If that was not you: on the primary, mayfly device revoke "+st.DeviceID)
		} else if !schema.HasCode(err, schema.CodeNotFound) {
			return err
		}
		return nil
	})
}

// deviceLink links this (new) home as a device of an existing user: it
// shows the code, waits up to the request's expiry for the approval, stores
// the keys it receives and logs in.
func (c *cli) deviceLink() error {
	d, err := c.openEmptyDir()
	if err != nil {
		return err
	}
	ctx, cancel := c.timeout()
	keys, err := client.NewKeys(false)
	if err != nil {
		cancel()
		return err
	}
	pl, err := client.StartLink(ctx, client.LinkConfig{Server: c.server, Keys: keys})
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "link code: %s\n", pl.Code())
	fmt.Fprintf(c.out, "On the primary device (the one that registered), run: mayfly device approve %s\n", pl.Code())
	fmt.Fprintf(c.out, "Waiting until %s ...\n", pl.ExpiresAt.UTC().Format(time.RFC3339))
	ctx, cancel = context.WithDeadline(c.ctx, pl.ExpiresAt)
	linked, err := pl.Wait(ctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		return schema.Errorf(schema.CodeLinkExpired, "nobody approved the code in time; run mayfly device link again")
	}
	if err != nil {
		return err
	}
	return c.finishLink(d, linked)
}

// finishLink stores the device's keys and the account's identity key and
// logs this device in.
func (c *cli) finishLink(d *client.Dir, linked client.Linked) error {
	if err := d.SaveIdentity(linked.UserID, linked.Handle, linked.Keys, linked.IdentityKey); err != nil {
		return err
	}
	name, err := c.deviceName()
	if err != nil {
		return err
	}
	ctx, cancel := c.timeout()
	defer cancel()
	cl, err := c.open(ctx)
	if err != nil {
		return err
	}
	if err := cl.CheckKeys(ctx); err != nil {
		return err
	}
	id := cl.Identity()
	fmt.Fprintf(c.out, "linked: this device is %s (%s) of %s\nfingerprint: %s\n", name, id.DeviceID, id.Handle, id.Fingerprint)
	return nil
}

// openEmptyDir opens the home directory for a new identity: it fails with
// already_registered when the home holds one.
func (c *cli) openEmptyDir() (*client.Dir, error) {
	d, err := c.openDir()
	if err != nil {
		return nil, err
	}
	if _, handle, _, _, err := d.LoadIdentity(); err == nil {
		return nil, errHasIdentity(handle)
	} else if !errors.Is(err, client.ErrNoIdentity) {
		return nil, err
	}
	return d, nil
}

// resetIdentity makes this device the primary of a new identity key, for
// when the primary is lost (docs/envelope.md, "Identity reset"): the new
// list names this device only, and every friend must accept the new key.
// On a linked device the first run asks for the reset, which waits for its
// delay while the primary may cancel it; a run after that completes it.
// With cancel, the primary cancels a pending reset.
func (c *cli) resetIdentity(cancelIt bool) error {
	return c.withClient(func(ctx context.Context, cl *client.Client) error {
		if cancelIt {
			if err := cl.CancelIdentityReset(ctx); err != nil {
				return err
			}
			fmt.Fprintln(c.out, "identity reset cancelled; revoke the device that asked for it if you did not")
			return nil
		}
		keys, st, err := cl.ResetIdentity(ctx)
		if err != nil {
			return err
		}
		id := cl.Identity()
		if err := c.dir.SaveIdentity(id.UserID, id.Handle, keys, cl.IdentityKey()); err != nil {
			return err
		}
		if st.Status == schema.ResetPending {
			fmt.Fprintf(c.out, "identity reset requested: it can take effect from %s unless the primary device cancels it\n",
				st.NotBefore.UTC().Format(time.RFC3339))
			fmt.Fprintln(c.out, "Your other devices were told. Run mayfly device reset-identity again after that time.")
			return nil
		}
		fmt.Fprintf(c.out, "identity reset: this device is now the primary of %s\nfingerprint: %s\n", id.Handle, id.Fingerprint)
		fmt.Fprintln(c.out, "Your other devices were dropped (link them again); your friends must accept the new key (mayfly friend verify).")
		return nil
	})
}
