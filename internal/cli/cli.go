// Package cli implements the stele command. Command names, flags, output and
// exit codes are an interface scripts depend on (docs/cli.md):
//
//	0  success: everything submitted or verified
//	1  a failure: some event refused, a verification failed, the server erred
//	2  usage: bad flags or arguments
//	3  unreachable: the server (or log, or a witness) could not be reached
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// env is what a command runs against.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(e *env, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"submit", "submit events from a JSON Lines file", cmdSubmit},
		{"checkpoint", "print the latest checkpoint", cmdCheckpoint},
		{"receipt", "write the receipt (C2SP tlog-proof) of an entry", cmdReceipt},
		{"event", "write an entry's payload, salt and proof as JSON", cmdEvent},
		{"show", "print an entry's normalised identity event (or raw record, or OCSF) with its proof status", cmdShow},
		{"import", "import Entra, Okta or CloudTrail log files (import entra|okta|cloudtrail FILE...)", cmdImport},
		{"erase", "erase an entry's payload (admin): tombstone it and log an erasure event", cmdErase},
		{"verify", "verify a receipt offline, and optionally an event against it", cmdVerify},
		{"audit", "audit the whole log over its tlog-tiles HTTP API", cmdAudit},
		{"proof", "verify an entry's inclusion proof from the log's tiles", cmdProof},
		{"consistency", "verify that the log's tree extends an older one (or the trusted state)", cmdConsistency},
		{"monitor", "follow the log, check witnesses, and alert on identity threats", cmdMonitor},
	}
}

// usageError marks errors that exit with ExitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// failed is an error already reported in the command's output.
var errFailed = errors.New("failed")

// Main runs the stele command with args (without the program name) and
// returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(e, args[1:])
		var ue usageError
		var coded interface{ ExitCode() int } // errors that choose their exit status
		switch {
		case err == nil:
			return ExitOK
		case errors.Is(err, flag.ErrHelp):
			return ExitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "stele %s: %v\nusage: stele %s -h\n", c.name, err, c.name)
			return ExitUsage
		case errors.Is(err, errFailed):
			return ExitFailure
		case errors.As(err, &coded):
			fmt.Fprintf(stderr, "stele %s: %v\n", c.name, err)
			return coded.ExitCode()
		default:
			fmt.Fprintf(stderr, "stele %s: %v\n", c.name, err)
			return ExitFailure
		}
	}
	fmt.Fprintf(stderr, "stele: unknown command %q\n", args[0])
	usage(stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: stele <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'stele <command> -h' for a command's flags.")
}

// parse parses flags that may come before or after positional arguments.
func parse(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(e.stdout, "usage of %s:\n", fs.Name())
				fs.SetOutput(e.stdout)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseNoArgs parses the flags of a command that takes no positional
// arguments.
func parseNoArgs(e *env, fs *flag.FlagSet, args []string) error {
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

func newFlags(name string) *flag.FlagSet {
	return flag.NewFlagSet("stele "+name, flag.ContinueOnError)
}

// serverFlags are the flags every command that talks to a server takes.
type serverFlags struct {
	addr    *string
	timeout *time.Duration
	conn    connFlags
}

func addServerFlags(fs *flag.FlagSet) serverFlags {
	return serverFlags{
		addr:    fs.String("server", os.Getenv("STELE_SERVER"), "server gRPC address HOST:PORT (default $STELE_SERVER)"),
		timeout: fs.Duration("timeout", 30*time.Second, "give up on a request (each batch, for submit) after this long"),
		conn:    addConnFlags(fs),
	}
}

func (s serverFlags) dial() (*client.Client, error) {
	if *s.addr == "" {
		return nil, usagef("--server HOST:PORT is required")
	}
	return s.conn.dial(*s.addr)
}

// request returns a context for one request.
func (s serverFlags) request() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), *s.timeout)
}

// rpcError formats a gRPC error as "Code: message" on one line.
func rpcError(err error) error {
	st := status.Convert(err)
	return fmt.Errorf("%s: %s", st.Code(), oneLine(st.Message()))
}

// waitReady makes calls wait for the server to come up within the timeout.
var waitReady = grpc.WaitForReady(true)

func readFileArg(e *env, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(e.stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
