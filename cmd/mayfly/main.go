// Command mayfly is the command-line client for Mayfly servers: it keeps
// one device's keys and session in a home directory and registers, manages
// friends and devices, links new devices, and sends, reads and listens for
// end-to-end encrypted messages. Run "mayfly -help" for the commands;
// docs/cli.md is the full contract.
//
// main only wires: flags and commands are in cli.go, the work in the
// gateway/client package.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
