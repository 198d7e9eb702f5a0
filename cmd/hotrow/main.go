// Command hotrow is the hotrow binary: a MySQL-protocol proxy that merges
// hot-row stock updates, and the tools around it.
//
//	hotrow proxy   run the proxy
//	hotrow bench   compare direct and merged throughput in one run
//	hotrow demo    a flash sale on a self-provisioned local database
//	hotrow version print the version
//
// This package only wires flags to the library packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name, summary string
	run           func(args []string) error
}

var commands = []command{
	{"proxy", "run the MySQL-protocol proxy that merges hot-row updates", proxyMain},
	{"binlog", "run the order feed: binlog to sinks, one event per deduction", binlogMain},
	{"bench", "run a workload direct and through the proxy in one run and compare", benchMain},
	{"demo", "run a flash sale direct and merged on a self-provisioned local MariaDB", demoMain},
	{"version", "print the version", func([]string) error { fmt.Println("hotrow", version); return nil }},
}

func usage() {
	fmt.Fprintf(os.Stderr, "hotrow merges concurrent stock updates of one hot row into group-committed batches.\n\nUsage: hotrow COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'hotrow COMMAND --help' for the flags of a command.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	for _, c := range commands {
		if c.name == os.Args[1] {
			if err := c.run(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "hotrow %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "hotrow: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}

// parseFlags parses a command's flags; done is true after --help, which
// is not an error. Positional arguments are refused.
func parseFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
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
