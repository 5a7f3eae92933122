package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
)

const adminUsage = "usage: mayflyd admin suspend|unsuspend|delete HANDLE [flags]"

// runAdmin runs `mayflyd admin ACTION HANDLE [flags]`: flags as for the
// server (--data, --database-url, --pg-bindir, logging); docs/operations.md,
// "Account lifecycle".
func runAdmin(args []string) error {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") || strings.HasPrefix(args[1], "-") {
		return errors.New(adminUsage)
	}
	action, handle := args[0], args[1]
	o, err := parseFlags(args[2:])
	if err != nil {
		return err
	}
	cfg := o.cfg
	cfg.Logger = newLogger(o.level, o.format)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	msg, err := app.Admin(ctx, cfg, action, handle)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	fmt.Println(msg)
	return nil
}
