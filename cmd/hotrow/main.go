// Command hotrow is the proxy binary: a MySQL-protocol proxy that merges
// hot-row stock updates into group-committed batches.
//
//	hotrow proxy   run the proxy
//	hotrow binlog  run the order feed (binlog to sinks)
//	hotrow version print the version
//
// The load generator and the demo are a separate command, hotrow-bench, so
// that this binary links no container or tracing client. This package only
// wires flags to the library packages.
package main

import (
	"fmt"

	"github.com/hotrow/hotrow/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// commands are hotrow's subcommands, in the order the usage lists them.
var commands = []cli.Command{
	{Name: "proxy", Summary: "run the MySQL-protocol proxy that merges hot-row updates", Run: proxyMain},
	{Name: "binlog", Summary: "run the order feed: binlog to sinks, one event per deduction", Run: binlogMain},
	{Name: "version", Summary: "print the version", Run: func([]string) error { fmt.Println("hotrow", version); return nil }},
}

func main() {
	cli.Main("hotrow", "hotrow merges concurrent stock updates of one hot row into group-committed batches.", commands)
}
