// Command stele-collector streams identity events from the providers into
// a Stele log with durable cursors (see docs/collector.md).
//
//	stele-collector [run] --config FILE [--from TIME]   collect (the default)
//	stele-collector status --config FILE [--json]       per source: cursor, lag, events/s, last error
package main

import (
	"os"

	"github.com/stele-dev/stele/collector/collectorcli"
)

func main() {
	os.Exit(collectorcli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
