// Command hotrow-bench measures hotrow: the same workload directly against
// the database and through the proxy, in one run.
//
//	hotrow-bench bench  compare direct and merged throughput in one run
//	hotrow-bench demo   a flash sale on a self-provisioned local database
//
// It starts the proxy as a child process from the hotrow binary (by
// default the one next to this binary). It is a command of its own so that
// hotrow, the proxy, links none of its container and tracing clients.
package main

import "github.com/hotrow/hotrow/internal/cli"

var commands = []cli.Command{
	{Name: "bench", Summary: "run a workload direct and through the proxy in one run and compare", Run: benchMain},
	{Name: "demo", Summary: "run a flash sale direct and merged on a self-provisioned local MariaDB", Run: demoMain},
}

func main() {
	cli.Main("hotrow-bench", "hotrow-bench compares a workload run directly and through the hotrow proxy.", commands)
}
