// Package mysqlstore keeps what Stele holds beside the Tessera log when the
// log runs on the aws backend: the salted payloads, erasure tombstones, the
// exact dedup index on (source, event_id) and the leaf-hash index, in the
// same MySQL-compatible database (MySQL, Aurora, MariaDB) that Tessera uses
// for sequencing, so that every stele-server replica shares them.
//
// It offers the same operations as internal/store (the Pebble store of the
// posix backend), with the same errors, plus claims: the cross-replica half
// of exact dedup. A replica claims (source, event_id) by inserting its row
// in stele_dedup before it sequences the leaf; the primary key makes the
// insert the claim, so two replicas that receive the same event at once
// cannot both sequence it. See Claims for crash recovery.
//
// The schema is created and migrated by Open, versioned in
// stele_schema_version. Table names start with stele_ so that they never
// meet Tessera's own tables in the same database.
package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stele-dev/stele/internal/store"
)

// SchemaVersion is the schema version this package creates and reads.
const SchemaVersion = 2

// migrations[v-1] brings a database from schema version v-1 to v. Never
// change a shipped step; add one.
var migrations = [][]string{
	{ // 1: payloads, tombstones, dedup with claims, leaf hashes, state.
		`CREATE TABLE IF NOT EXISTS stele_payloads (
			digest BINARY(32) NOT NULL,
			salt BINARY(32) NULL,
			data LONGBLOB NULL,
			tombstone BLOB NULL,
			PRIMARY KEY (digest)
		)`,
		`CREATE TABLE IF NOT EXISTS stele_dedup (
			source VARBINARY(255) NOT NULL,
			event_id VARBINARY(1024) NOT NULL,
			idx BIGINT UNSIGNED NULL,
			claim BINARY(16) NULL,
			claimed_at DATETIME(6) NOT NULL,
			PRIMARY KEY (source, event_id)
		)`,
		`CREATE TABLE IF NOT EXISTS stele_leaf_hashes (
			hash BINARY(32) NOT NULL,
			idx BIGINT UNSIGNED NOT NULL,
			PRIMARY KEY (hash)
		)`,
		`CREATE TABLE IF NOT EXISTS stele_state (
			id INT UNSIGNED NOT NULL,
			watermark BIGINT UNSIGNED NOT NULL,
			log_verifier_key VARCHAR(1024) NULL,
			PRIMARY KEY (id)
		)`,
		`INSERT IGNORE INTO stele_state (id, watermark) VALUES (0, 0)`,
	},
	{ // 2: the sources holding an event id (a record logged under two sources).
		// MySQL has no CREATE INDEX IF NOT EXISTS; a step interrupted after
		// this statement meets ER_DUP_KEYNAME on its next run, which
		// migrate accepts.
		`CREATE INDEX stele_dedup_event_id ON stele_dedup (event_id)`,
	},
}

// opTimeout bounds each database operation that has no caller context.
const opTimeout = 30 * time.Second

// maxStatementBytes keeps one multi-row insert well under MySQL's default
// max_allowed_packet (16 MiB in MariaDB and MySQL 8, 64 MiB in Aurora).
const maxStatementBytes = 4 << 20

// Options tune the store. The zero value is fine.
type Options struct {
	// ClaimLease is how long a replica's claim on (source, event_id) stands
	// before another replica may check the log and take it over. It must
	// exceed the longest time a live replica can take from claiming an event
	// to sequencing it. Default 2 minutes.
	ClaimLease time.Duration
	// MaxOpenConns caps connections to the database. Default 32.
	MaxOpenConns int
}

// Store is the shared payload and index store. It is safe for concurrent
// use, by goroutines and by replicas.
type Store struct {
	db    *sql.DB
	lease time.Duration
}

// Open connects to the database named by dsn (go-sql-driver/mysql syntax),
// creates or migrates Stele's tables and returns the store.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("the MySQL DSN does not parse (want user:password@tcp(host:port)/database): %w", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("the MySQL DSN names no database: add /database after the address, e.g. user:pw@tcp(db:3306)/stele")
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening MySQL: %w", err)
	}
	if o.MaxOpenConns == 0 {
		o.MaxOpenConns = 32
	}
	db.SetMaxOpenConns(o.MaxOpenConns)
	db.SetMaxIdleConns(o.MaxOpenConns)
	if o.ClaimLease == 0 {
		o.ClaimLease = 2 * time.Minute
	}
	s := &Store{db: db, lease: o.ClaimLease}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to MySQL at %s: %w", cfg.Addr, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// migrate brings the schema to SchemaVersion. Replicas starting at once
// serialise on a named lock, so each step runs once.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK('stele_schema', 60)`).Scan(&got); err != nil || got.Int64 != 1 {
		return fmt.Errorf("migrating schema: another replica holds the schema lock for over 60s (err %v)", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT RELEASE_LOCK('stele_schema')`)
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS stele_schema_version (
		id INT UNSIGNED NOT NULL, version INT UNSIGNED NOT NULL, PRIMARY KEY (id))`); err != nil {
		return fmt.Errorf("creating stele_schema_version: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT IGNORE INTO stele_schema_version (id, version) VALUES (0, 0)`); err != nil {
		return fmt.Errorf("initialising stele_schema_version: %w", err)
	}
	var v int
	if err := conn.QueryRowContext(ctx, `SELECT version FROM stele_schema_version WHERE id = 0`).Scan(&v); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("the database's Stele schema is version %d, newer than this stele-server knows (%d): upgrade stele-server", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		for _, stmt := range migrations[v] {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				if me := (*mysql.MySQLError)(nil); errors.As(err, &me) && me.Number == 1061 { // ER_DUP_KEYNAME
					continue
				}
				return fmt.Errorf("migrating schema to version %d: %w", v+1, err)
			}
		}
		if _, err := conn.ExecContext(ctx, `UPDATE stele_schema_version SET version = ? WHERE id = 0`, v+1); err != nil {
			return fmt.Errorf("recording schema version %d: %w", v+1, err)
		}
	}
	return nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("MySQL: %w", err)
	}
	return nil
}

// BindLogKey records vkey as the log's verifier key, or checks that it is
// the one recorded: every replica must sign with the same key.
func (s *Store) BindLogKey(ctx context.Context, vkey string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE stele_state SET log_verifier_key = ? WHERE id = 0 AND log_verifier_key IS NULL`, vkey); err != nil {
		return fmt.Errorf("recording the log key: %w", err)
	}
	var got string
	if err := s.db.QueryRowContext(ctx, `SELECT log_verifier_key FROM stele_state WHERE id = 0`).Scan(&got); err != nil {
		return fmt.Errorf("reading the log key: %w", err)
	}
	if got != vkey {
		return fmt.Errorf("this replica's log key (%s) is not the log's (%s): every replica must use the same log.key; copy it from the first replica", vkey, got)
	}
	return nil
}

func bg() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// PutPayloads stores payloads. When it returns nil they are committed
// (durable with InnoDB's default innodb_flush_log_at_trx_commit=1).
func (s *Store) PutPayloads(ps []store.Payload) error {
	if len(ps) == 0 {
		return nil
	}
	ctx, cancel := bg()
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("writing payloads: %w", err)
	}
	defer tx.Rollback()
	for len(ps) > 0 {
		var args []any
		n, bytes := 0, 0
		for _, p := range ps {
			if len(p.Salt) != store.SaltSize {
				return fmt.Errorf("payload %x: salt is %d bytes, want %d", p.Digest, len(p.Salt), store.SaltSize)
			}
			if n > 0 && bytes+len(p.Data) > maxStatementBytes {
				break
			}
			args = append(args, p.Digest[:], p.Salt, p.Data)
			n, bytes = n+1, bytes+len(p.Data)
		}
		q := `INSERT INTO stele_payloads (digest, salt, data) VALUES ` + placeholders(n, "(?,?,?)") +
			` ON DUPLICATE KEY UPDATE digest = digest`
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("writing payloads: %w", err)
		}
		ps = ps[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("writing payloads: %w", err)
	}
	return nil
}

func placeholders(n int, one string) string {
	return strings.TrimSuffix(strings.Repeat(one+",", n), ",")
}

// GetPayload returns the salt and payload bytes stored under r's digest,
// store.ErrErased for an erased payload, or store.ErrNotFound. The database
// keys payloads by digest alone; r's admission time is not used.
func (s *Store) GetPayload(r store.Ref) (salt, data []byte, err error) {
	digest := r.Digest
	ctx, cancel := bg()
	defer cancel()
	var tomb []byte
	err = s.db.QueryRowContext(ctx, `SELECT salt, data, tombstone FROM stele_payloads WHERE digest = ?`, digest[:]).Scan(&salt, &data, &tomb)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, store.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading payload: %w", err)
	}
	if tomb != nil {
		return nil, nil, store.ErrErased
	}
	if len(salt) != store.SaltSize {
		return nil, nil, fmt.Errorf("payload record for %x is corrupt: salt is %d bytes", digest, len(salt))
	}
	if data == nil {
		data = []byte{}
	}
	return salt, data, nil
}

// Tombstone returns the tombstone stored in place of an erased payload, or
// store.ErrNotFound if the payload was never erased.
func (s *Store) Tombstone(digest [32]byte) ([]byte, error) {
	ctx, cancel := bg()
	defer cancel()
	var tomb []byte
	err := s.db.QueryRowContext(ctx, `SELECT tombstone FROM stele_payloads WHERE digest = ?`, digest[:]).Scan(&tomb)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && tomb == nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading tombstone: %w", err)
	}
	return tomb, nil
}

// ErasePayload replaces the payload and salt stored under digest by
// tombstone in one statement. If a tombstone already exists it is returned
// with already=true and nothing changes. What this does and does not remove
// from the database's files is in docs/security.md.
func (s *Store) ErasePayload(ctx context.Context, r store.Ref, tombstone []byte) (existing []byte, already bool, err error) {
	digest := r.Digest
	res, err := s.db.ExecContext(ctx, `UPDATE stele_payloads SET salt = NULL, data = NULL, tombstone = ? WHERE digest = ? AND tombstone IS NULL`, tombstone, digest[:])
	if err != nil {
		return nil, false, fmt.Errorf("writing tombstone: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, false, fmt.Errorf("writing tombstone: %w", err)
	} else if n == 1 {
		return tombstone, false, nil
	}
	t, err := s.Tombstone(digest)
	if err != nil {
		return nil, false, fmt.Errorf("erasing payload %x: %w", digest, err)
	}
	return t, true, nil
}

// LookupEvent returns the index of the entry holding (source, eventID). A
// claim whose entry is not indexed yet is not found.
func (s *Store) LookupEvent(source, eventID string) (uint64, bool, error) {
	ctx, cancel := bg()
	defer cancel()
	var idx sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT idx FROM stele_dedup WHERE source = ? AND event_id = ?`, source, eventID).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !idx.Valid) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading dedup index: %w", err)
	}
	return uint64(idx.Int64), true, nil
}

// EventElsewhere returns up to store.MaxElsewhere indexed entries whose
// event id is eventID under a source other than source, in source order.
func (s *Store) EventElsewhere(eventID, source string) ([]store.Located, error) {
	ctx, cancel := bg()
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT source, idx FROM stele_dedup WHERE event_id = ? AND source <> ? AND idx IS NOT NULL ORDER BY source LIMIT ?`,
		eventID, source, store.MaxElsewhere)
	if err != nil {
		return nil, fmt.Errorf("reading dedup index by event id: %w", err)
	}
	defer rows.Close()
	var out []store.Located
	for rows.Next() {
		var l store.Located
		if err := rows.Scan(&l.Source, &l.Index); err != nil {
			return nil, fmt.Errorf("reading dedup index by event id: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading dedup index by event id: %w", err)
	}
	return out, nil
}

// EventsElsewhere answers EventElsewhere for each key, in order.
func (s *Store) EventsElsewhere(keys []store.EventKey) ([][]store.Located, error) {
	out := make([][]store.Located, len(keys))
	for i, k := range keys {
		var err error
		if out[i], err = s.EventElsewhere(k.EventID, k.Source); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LookupLeafHash returns the index of the entry with the given leaf hash.
func (s *Store) LookupLeafHash(h [32]byte) (uint64, bool, error) {
	ctx, cancel := bg()
	defer cancel()
	var idx uint64
	err := s.db.QueryRowContext(ctx, `SELECT idx FROM stele_leaf_hashes WHERE hash = ?`, h[:]).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading leaf hash index: %w", err)
	}
	return idx, true, nil
}

// PutIndexes records entries in the dedup and leaf-hash indexes. An entry
// whose (source, event_id) already has an index keeps it: the first copy in
// the log is the one admitted.
func (s *Store) PutIndexes(es []store.Indexed) error {
	if len(es) == 0 {
		return nil
	}
	ctx, cancel := bg()
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("writing indexes: %w", err)
	}
	defer tx.Rollback()
	const chunk = 500
	for len(es) > 0 {
		n := min(chunk, len(es))
		var dargs, hargs []any
		for _, e := range es[:n] {
			if len(e.Source) > store.MaxSourceLen {
				return fmt.Errorf("entry %d: source is %d bytes, over the limit of %d", e.Index, len(e.Source), store.MaxSourceLen)
			}
			dargs = append(dargs, e.Source, e.EventID, e.Index)
			hargs = append(hargs, e.LeafHash[:], e.Index)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO stele_dedup (source, event_id, idx, claimed_at) VALUES `+
			placeholders(n, "(?,?,?,UTC_TIMESTAMP(6))")+
			` ON DUPLICATE KEY UPDATE idx = COALESCE(idx, VALUES(idx))`, dargs...); err != nil {
			return fmt.Errorf("writing dedup index: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO stele_leaf_hashes (hash, idx) VALUES `+placeholders(n, "(?,?)"), hargs...); err != nil {
			return fmt.Errorf("writing leaf hash index: %w", err)
		}
		es = es[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("writing indexes: %w", err)
	}
	return nil
}

// Watermark returns the log size below which every entry is in the indexes.
func (s *Store) Watermark() (uint64, error) {
	ctx, cancel := bg()
	defer cancel()
	var w uint64
	if err := s.db.QueryRowContext(ctx, `SELECT watermark FROM stele_state WHERE id = 0`).Scan(&w); err != nil {
		return 0, fmt.Errorf("reading index watermark: %w", err)
	}
	return w, nil
}

// SetWatermark records that every entry below size is in the indexes. The
// watermark never goes back: replicas may report sizes out of order.
func (s *Store) SetWatermark(size uint64) error {
	ctx, cancel := bg()
	defer cancel()
	if _, err := s.db.ExecContext(ctx, `UPDATE stele_state SET watermark = GREATEST(watermark, ?) WHERE id = 0`, size); err != nil {
		return fmt.Errorf("writing index watermark: %w", err)
	}
	return nil
}

// ResetIndexes drops every index entry and the watermark so that they can be
// rebuilt from the log. Claims still in flight are kept. Run it with one
// replica only (stele-server --rebuild-indexes).
func (s *Store) ResetIndexes() error {
	ctx, cancel := bg()
	defer cancel()
	for _, q := range []string{
		`DELETE FROM stele_leaf_hashes`,
		`DELETE FROM stele_dedup WHERE idx IS NOT NULL`,
		`UPDATE stele_state SET watermark = 0 WHERE id = 0`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("resetting indexes: %w", err)
		}
	}
	return nil
}

// PutTombstone stores an erased payload's tombstone (a migration copies
// them), replacing any payload under digest.
func (s *Store) PutTombstone(digest [32]byte, tombstone []byte) error {
	ctx, cancel := bg()
	defer cancel()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO stele_payloads (digest, tombstone) VALUES (?, ?)
		ON DUPLICATE KEY UPDATE salt = NULL, data = NULL, tombstone = VALUES(tombstone)`, digest[:], tombstone); err != nil {
		return fmt.Errorf("writing tombstone: %w", err)
	}
	return nil
}

// AdvanceSequencer moves the next index Tessera's aws driver assigns
// (SeqCoord.next, a table of Tessera's) up to size. Tessera's migration
// integrates a copied tree without moving it, so without this the first
// append after a migration is refused as if size entries were waiting for
// integration, and would be numbered from 0.
func (s *Store) AdvanceSequencer(ctx context.Context, size uint64) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE SeqCoord SET next = GREATEST(next, ?) WHERE id = 0`, size); err != nil {
		return fmt.Errorf("advancing Tessera's sequencer to %d: %w", size, err)
	}
	return nil
}
