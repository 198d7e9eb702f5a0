// Package cli is what hotrow's commands share: a table of subcommands run
// by name, and flag parsing. It links nothing but the standard library, so
// the proxy binary stays lean.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// Command is one subcommand: `prog Name [flags]` calls Run with the
// arguments after the name.
type Command struct {
	Name, Summary string
	Run           func(args []string) error
}

// Main runs the command os.Args[1] names and exits with status 1 when it
// fails, 2 on a usage error. about is the first line of the usage text.
func Main(prog, about string, commands []Command) {
	usage := func() {
		fmt.Fprintf(os.Stderr, "%s\n\nUsage: %s COMMAND [flags]\n\nCommands:\n", about, prog)
		for _, c := range commands {
			fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.Name, c.Summary)
		}
		fmt.Fprintf(os.Stderr, "\nRun '%s COMMAND --help' for the flags of a command.\n", prog)
	}
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	for _, c := range commands {
		if c.Name == os.Args[1] {
			if err := c.Run(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "%s %s: %v\n", prog, c.Name, err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "%s: unknown command %q\n\n", prog, os.Args[1])
	usage()
	os.Exit(2)
}

// ParseFlags parses a command's flags; done is true after --help, which
// is not an error. Positional arguments are refused.
func ParseFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return true, err
	}
	if fs.NArg() > 0 {
		return true, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return false, nil
}

// ListFlag collects a repeatable string flag.
type ListFlag []string

func (l *ListFlag) String() string     { return strings.Join(*l, ",") }
func (l *ListFlag) Set(v string) error { *l = append(*l, v); return nil }
