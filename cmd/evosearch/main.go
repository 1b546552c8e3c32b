// Command evosearch is the evolutionary neural-architecture search tool;
// see the cli package and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/naturecast/evosearch/cli"
)

func main() {
	// The first Ctrl-C (or SIGTERM) cancels the context: long commands stop
	// at the next safe point and save their work. A second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(cli.Run(ctx, os.Args, os.Stdout, os.Stderr))
}
