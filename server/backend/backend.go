// Package backend is the interface between the server and where a log is
// kept. A backend is a value in its own package, as Tessera's drivers are:
// server/backend/posix (a data directory: Tessera's POSIX driver and an
// embedded Pebble store) and server/backend/aws (an S3-compatible bucket and
// a MySQL-compatible database shared by replicas). A program that embeds the
// server with posix only does not link the AWS SDK or the MySQL driver.
//
// The server opens a Backend once (Open), then asks the Storage it returns
// for Tessera's driver, the payload store and its indexes, the tlog-tiles
// read handler and its health; Shared says whether other replicas write the
// same log.
package backend

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/transparency-dev/tessera"

	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/internal/tiles"
)

// Backend is a storage backend not yet opened: what server.Config.Backend
// holds (posix.New, aws.New).
type Backend interface {
	// Open opens the log's storage for the server described by env. ctx
	// bounds the opening only: the Storage outlives it.
	Open(ctx context.Context, env Env) (Storage, error)
}

// Env is what the server hands a backend when opening it.
type Env struct {
	// DataDir is the server's data directory (it holds the log key).
	DataDir string
	// VerifierKey is the log's signed-note verifier key: a backend shared
	// by replicas refuses a database bound to another log's key.
	VerifierKey string
	// CheckpointInterval is how often the server publishes a checkpoint.
	CheckpointInterval time.Duration
	// HTTPClient is the client Tessera's driver reaches witnesses with.
	HTTPClient *http.Client
	// Logger receives the backend's logs.
	Logger *slog.Logger
	// ReadOnly opens the storage for serving only: the backend writes
	// nothing (no erasure completion, no key binding), and the server never
	// starts Tessera's appender on it.
	ReadOnly bool
}

// Storage is an open backend.
type Storage interface {
	// Driver is Tessera's storage driver for the log.
	Driver() tessera.Driver
	// TuneAppend adapts Tessera's append options to the backend.
	TuneAppend(*tessera.AppendOptions)
	// Payloads is the payload store with the dedup and leaf-hash indexes.
	Payloads() Payloads
	// Shared is how replicas writing the same log claim events before
	// sequencing them, or nil when this server alone writes the log.
	Shared() Claimer
	// Tiles serves the C2SP tlog-tiles read API.
	Tiles() http.Handler
	// Reader reads the log's tlog-tiles resources from where they are
	// stored (never redirected).
	Reader() tiles.Reader
	// ReadObject reads a small object stored beside the log's checkpoint
	// (the freeze statement); an error wrapping os.ErrNotExist when there
	// is none. WriteObject stores one durably.
	ReadObject(ctx context.Context, name string) ([]byte, error)
	WriteObject(ctx context.Context, name string, raw []byte) error
	// Check reports why the storage cannot serve now, or nil.
	Check(ctx context.Context) error
	// RepublishStale makes Tessera publish the log's latest checkpoint
	// again at its first tick when keep (given that checkpoint) is false,
	// so a restart with a new witness policy or key is acted on at once.
	// It is called before the appender starts; a backend whose driver
	// republishes by itself does nothing.
	RepublishStale(keep func(checkpoint []byte) bool)
	// Maintain does the backend's background work until ctx ends;
	// published is the size of the latest published checkpoint.
	Maintain(ctx context.Context, published func() uint64)
	// Close closes the payload store (Tessera's driver is stopped by the
	// appender's shutdown).
	Close() error
}

// Payloads is the payload store with the dedup and leaf-hash indexes:
// internal/store (Pebble) on posix, internal/mysqlstore on aws.
type Payloads interface {
	PutPayloads([]store.Payload) error
	GetPayload(r store.Ref) (salt, data []byte, err error)
	Tombstone(digest [32]byte) ([]byte, error)
	ErasePayload(ctx context.Context, r store.Ref, tombstone []byte) (existing []byte, already bool, err error)
	LookupEvent(source, eventID string) (uint64, bool, error)
	// EventsElsewhere returns, for each key, up to store.MaxElsewhere
	// entries holding its event id under other sources, in source order.
	EventsElsewhere(keys []store.EventKey) ([][]store.Located, error)
	LookupLeafHash(h [32]byte) (uint64, bool, error)
	PutIndexes([]store.Indexed) error
	Watermark() (uint64, error)
	SetWatermark(size uint64) error
	ResetIndexes() error
	Close() error
}

// Claimer hands out one batch's claims on events in a store shared by
// replicas.
type Claimer interface {
	NewClaims() Claims
}

// Claims is one batch's claims.
type Claims interface {
	// Claim claims keys for this batch; each result says that the key was
	// admitted (its index), or claimed, or could not be claimed. nextIndex
	// is the log's next unassigned index.
	Claim(ctx context.Context, keys []Key, nextIndex func(context.Context) (uint64, error)) []ClaimResult
	// Release gives back claims whose leaves were not sequenced.
	Release(keys []Key) error
}

// Key is a dedup key.
type Key struct{ Source, EventID string }

// ClaimResult is the outcome of claiming one key.
type ClaimResult struct {
	// Admitted is true when the key is already in the log, at Index. When
	// it is false and Err is nil, the key is claimed by this batch: the
	// caller sequences its leaf and then records it with PutIndexes.
	Admitted bool
	Index    uint64
	// Err is ErrBusy when another replica's claim stood until ctx ended,
	// or a storage error.
	Err error
}

// ErrBusy says that another replica is committing the same event.
var ErrBusy = errors.New("another replica is committing this (source, event_id)")
