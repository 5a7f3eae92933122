package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
)

// account runs "mayfly account delete --yes".
func (c *cli) account(args []string) error {
	if len(args) == 0 || args[0] != "delete" {
		return usageError("want: mayfly account delete --yes")
	}
	fs := flag.NewFlagSet("account delete", flag.ContinueOnError)
	yes := fs.Bool("yes", false, "confirm: delete the account for good")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if err := wantArgs(rest, 0, "account delete --yes"); err != nil {
		return err
	}
	if !*yes {
		return usageError("account delete removes your account, friends and messages on the server for good, for every device; run it again with --yes to confirm")
	}
	var handle string
	err = c.withClient(func(ctx context.Context, cl *client.Client) error {
		handle = cl.Identity().Handle
		return cl.DeleteAccount(ctx)
	})
	if err != nil {
		return err
	}
	d, err := c.openDir()
	if err != nil {
		return err
	}
	if err := d.RemoveIdentity(); err != nil {
		return err
	}
	if err := d.UpdateSession(func(schema.Session) (schema.Session, error) { return schema.Session{}, nil }); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "deleted account %s; its keys were removed from this home\n", handle)
	return nil
}
