package cli

import (
	"context"
	"flag"
	"os"
	"time"

	"google.golang.org/grpc"

	"github.com/stele-dev/stele/client"
)

// connFlags are the transport security and authentication flags of every
// command that talks to a server. TLS is used when any of them is set:
// --tls-ca alone verifies the server against that CA (without it, the
// system roots), --tls-cert and --tls-key add a client certificate, and
// --token (default $STELE_TOKEN) sends a bearer token, only ever over TLS.
type connFlags struct {
	fs                   *flag.FlagSet
	ca, cert, key, token *string
}

func addConnFlags(fs *flag.FlagSet) connFlags {
	return connFlags{
		fs:    fs,
		ca:    fs.String("tls-ca", os.Getenv("STELE_TLS_CA"), "verify the server's TLS certificate against this PEM CA file, and use TLS (default $STELE_TLS_CA)"),
		cert:  fs.String("tls-cert", os.Getenv("STELE_TLS_CERT"), "client certificate PEM file for mutual TLS (default $STELE_TLS_CERT)"),
		key:   fs.String("tls-key", os.Getenv("STELE_TLS_KEY"), "client certificate's private key PEM file (default $STELE_TLS_KEY)"),
		token: fs.String("token", os.Getenv("STELE_TOKEN"), "bearer token; implies TLS (default $STELE_TOKEN)"),
	}
}

// dial connects to the server at addr with these flags' TLS and token, and
// waits for the connection: a server that does not answer is reported
// (exit 3, naming the address and what answered there) after
// client.DefaultConnectWait, unless --timeout or --attempts was given on the
// command line: then the wait is --timeout (times --attempts).
func (c connFlags) dial(addr string) (*client.Client, error) {
	opts, err := c.dialOptions()
	if err != nil {
		return nil, err
	}
	cl, err := client.Dial(addr, opts...)
	if err != nil {
		return nil, err
	}
	if err := cl.Connect(context.Background(), c.connectWait()); err != nil {
		cl.Close()
		return nil, exitError{ExitUnreachable, err}
	}
	return cl, nil
}

// connectWait is how long dial waits for the server.
func (c connFlags) connectWait() time.Duration {
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["timeout"] && !set["attempts"] {
		return client.DefaultConnectWait
	}
	wait := client.DefaultConnectWait
	if f := c.fs.Lookup("timeout"); f != nil {
		wait = f.Value.(flag.Getter).Get().(time.Duration)
	}
	if f := c.fs.Lookup("attempts"); f != nil && set["attempts"] {
		wait *= time.Duration(max(1, f.Value.(flag.Getter).Get().(int)))
	}
	return wait
}

// dialOptions are the client.Dial options the flags ask for; none means a
// plaintext connection (loopback servers without TLS).
func (c connFlags) dialOptions() ([]grpc.DialOption, error) {
	if *c.ca == "" && *c.cert == "" && *c.key == "" && *c.token == "" {
		return nil, nil
	}
	if (*c.cert == "") != (*c.key == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	tlsOpt, err := client.WithTLS(*c.ca, *c.cert, *c.key)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{tlsOpt}
	if *c.token != "" {
		opts = append(opts, client.WithToken(*c.token))
	}
	return opts, nil
}
