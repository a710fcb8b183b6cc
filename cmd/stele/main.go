// Command stele is Stele's command-line client: submit events, fetch
// checkpoints and receipts, and verify them offline. See docs/cli.md.
package main

import (
	"os"

	"github.com/stele-dev/stele/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
