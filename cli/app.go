package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// UsageError marks an error in how the program was called (a bad flag or
// value); it exits with status 2, other failures with 1.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usagef returns a UsageError; messages name the flag or value at fault.
func usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// ExitCode maps an error returned by Run's commands to the process status.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	default:
		return 1
	}
}

// NewApp builds the command-line application. Output goes to stdout and
// stderr; nothing below this package prints.
func NewApp(stdout, stderr io.Writer) *ucli.App {
	app := &ucli.App{
		Name:  "evosearch",
		Usage: "evolutionary neural-architecture search with a hand-written CUDA core",
		Description: "evosearch evolves image-classifier architectures (CMA-ES, genetic programming, tournament\n" +
			"selection, a hall of fame), scores each candidate with a short proxy training, and trains the\n" +
			"winner in full, on the CPU or a GPU. Run `evosearch COMMAND --help` for a command's flags.",
		Commands:        []*ucli.Command{searchCommand, trainCommand, showCommand, benchCommand, profileCommand, workerCommand},
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// Errors are turned into exit codes by Run, never by os.Exit inside the library.
		ExitErrHandler: func(*ucli.Context, error) {},
		OnUsageError:   onUsageError,
		Action: func(c *ucli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q (commands: search, train, show, bench, profile, worker)", c.Args().First())
			}
			return ucli.ShowAppHelp(c)
		},
	}
	for _, cmd := range app.Commands {
		setUsageHandlers(cmd)
	}
	return app
}

func setUsageHandlers(cmd *ucli.Command) {
	cmd.OnUsageError = onUsageError
	for _, sub := range cmd.Subcommands {
		setUsageHandlers(sub)
	}
}

func onUsageError(_ *ucli.Context, err error, _ bool) error {
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		msg = "unknown flag " + f
	}
	return &UsageError{fmt.Errorf("%s (see --help)", msg)}
}

// Run runs the application with args (args[0] is the program name) and
// returns the exit status, printing any error to stderr as one line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := NewApp(stdout, stderr).RunContext(ctx, args)
	if err != nil {
		fmt.Fprintf(stderr, "evosearch: %v\n", err)
	}
	return ExitCode(err)
}

// isTerminal reports whether w is a character device, where progress is
// drawn on one updating line rather than logged.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
