// Package client talks to a Stele log over gRPC and verifies what it is
// given: checkpoints, receipts (C2SP tlog-proof), inclusion and payloads.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stele-dev/stele/internal/tracing"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Client is a connection to a Stele server.
type Client struct {
	conn   *grpc.ClientConn
	target string
	// Log is the raw gRPC client, for calls this package does not wrap.
	Log stelev1.LogServiceClient
}

// Dial connects to a Stele server at target (host:port). Without options
// the connection is plaintext, which is only fit for loopback; pass
// grpc.WithTransportCredentials (or WithTLS) for anything else, and
// WithToken to authenticate with a bearer token:
//
//	tlsOpt, err := client.WithTLS("ca.pem", "", "")
//	c, err := client.Dial("log.example.com:7400", tlsOpt, client.WithToken(tok))
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	opts = append([]grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		grpc.WithInitialWindowSize(4 << 20),
		grpc.WithInitialConnWindowSize(16 << 20),
		// A server that is starting refuses connections for a moment: try
		// again within a second rather than after gRPC's growing backoff.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second,
		}, MinConnectTimeout: 5 * time.Second}),
	}, opts...)
	opts = append(opts, tracing.DialOptions()...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", target, err)
	}
	return &Client{conn: conn, target: target, Log: stelev1.NewLogServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Append submits a batch and returns one result per event, in order.
func (c *Client) Append(ctx context.Context, events []*stelev1.Event) ([]*stelev1.AppendResult, error) {
	resp, err := c.Log.Append(ctx, &stelev1.AppendRequest{Events: events})
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if len(resp.Results) != len(events) {
		return nil, fmt.Errorf("append: the server answered %d results for %d events", len(resp.Results), len(events))
	}
	return resp.Results, nil
}

// Checkpoint fetches the latest checkpoint (unverified; see ParseCheckpoint).
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	resp, err := c.Log.GetCheckpoint(ctx, &stelev1.GetCheckpointRequest{})
	if err != nil {
		return nil, fmt.Errorf("get checkpoint: %w", err)
	}
	return resp.Checkpoint, nil
}

// Receipt fetches the receipt for index, waiting (bounded by ctx) until a
// published checkpoint covers it. It is not verified; see VerifyReceipt.
func (c *Client) Receipt(ctx context.Context, index uint64) ([]byte, error) {
	resp, err := c.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: index})
	if err != nil {
		return nil, fmt.Errorf("get receipt %d: %w", index, err)
	}
	return resp.Proof, nil
}

// Event fetches the payload of the entry at index.
func (c *Client) Event(ctx context.Context, index uint64) (*stelev1.GetEventResponse, error) {
	resp, err := c.Log.GetEvent(ctx, &stelev1.GetEventRequest{Index: index})
	if err != nil {
		return nil, fmt.Errorf("get event %d: %w", index, err)
	}
	return resp, nil
}

// Events fetches, in one call, the payloads of the entries from start on:
// at most count (1 to 1,000), possibly fewer (the range is cut at the
// latest published checkpoint, and the server bounds a response's size;
// ask again from the index after the last one returned). Each answer is
// GetEvent's without the proof, and without record, format and
// normalized (payload_only): decode them from the payload. None is
// verified: check each payload against a leaf proven included (see
// leaf.Leaf.VerifyPayload), then decode it (payload.Unmarshal).
func (c *Client) Events(ctx context.Context, start uint64, count int) ([]*stelev1.GetEventResponse, error) {
	if count <= 0 || count > math.MaxUint32 {
		return nil, fmt.Errorf("get events from %d: count %d out of range", start, count)
	}
	resp, err := c.Log.GetEvents(ctx, &stelev1.GetEventsRequest{Start: start, Count: uint32(count), PayloadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("get events from %d: %w", start, err)
	}
	for i, ev := range resp.Events {
		if ev.Index != start+uint64(i) {
			return nil, fmt.Errorf("get events from %d: answer %d is entry %d, want %d", start, i, ev.Index, start+uint64(i))
		}
	}
	if len(resp.Events) == 0 || len(resp.Events) > count {
		return nil, fmt.Errorf("get events from %d: %d answers for %d asked", start, len(resp.Events), count)
	}
	return resp.Events, nil
}

// Erase erases the payload of the entry at index (admin role): the server
// appends an erasure event naming the index, then replaces the payload by a
// tombstone. reason and ref (a request reference such as a ticket id) are
// required and go into the log: they must hold no personal data.
func (c *Client) Erase(ctx context.Context, index uint64, reason, ref string) (*stelev1.EraseEventResponse, error) {
	resp, err := c.Log.EraseEvent(ctx, &stelev1.EraseEventRequest{Index: index, Reason: reason, RequestReference: ref})
	if err != nil {
		return nil, fmt.Errorf("erase %d: %w", index, err)
	}
	return resp, nil
}

// ErasedError is returned by VerifiedEvent when the entry's payload was
// erased: the receipt verified, and the payload is lawfully gone. It is not
// a verification failure.
type ErasedError struct {
	Index     uint64
	Tombstone *stelev1.EraseTombstone
}

func (e *ErasedError) Error() string {
	t := e.Tombstone
	return fmt.Sprintf("the payload of entry %d was erased at %s by %s (request %s, erasure event at index %d); the leaf and its proofs still verify",
		e.Index, t.GetErasedAt().AsTime().Format("2006-01-02T15:04:05Z07:00"), t.GetErasedBy(), t.GetRequestReference(), t.GetErasureIndex())
}

// WithTLS is a dial option for TLS. The server's certificate is verified
// against the PEM certificates in caFile, or the system roots when caFile is
// empty. With certFile and keyFile, the client presents that certificate
// (mutual TLS).
func WithTLS(caFile, certFile, keyFile string) (grpc.DialOption, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

// WithToken is a dial option that sends "authorization: Bearer <token>" with
// every call. It needs a TLS connection (WithTLS): the token is never sent
// in plaintext, and calls over a plaintext connection fail.
func WithToken(token string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(bearer(token))
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }
