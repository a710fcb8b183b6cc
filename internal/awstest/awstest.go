// Package awstest gives tests of the aws storage backend a database and a
// bucket prefix of their own on the MariaDB (or MySQL) and S3-compatible
// servers named by the environment, which .ci/services starts:
//
//	STELE_TEST_MYSQL_DSN   user:password@tcp(host:port)/db, a user that may create databases
//	STELE_TEST_S3_ENDPOINT http://127.0.0.1:port
//	STELE_TEST_S3_BUCKET   an existing bucket
//	AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
//
// Without them a test skips with a loud message, unless CI is set, in which
// case it fails: in CI the servers must be there.
package awstest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Env is one test's share of the servers.
type Env struct {
	// DSN names a fresh database, dropped when the test ends.
	DSN string
	// Endpoint, Bucket and Region locate the S3-compatible store.
	Endpoint, Bucket, Region string
	// Prefix is a fresh object-key prefix in Bucket.
	Prefix string
}

var warnOnce sync.Once

// EnvVars are the variables that name the servers (.ci/services exports
// them); AWS_REGION is optional.
var EnvVars = []string{"STELE_TEST_MYSQL_DSN", "STELE_TEST_S3_ENDPOINT", "STELE_TEST_S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

// ErrUnset is returned by Open when some of EnvVars are unset.
var ErrUnset = errors.New("the aws-backend servers are not configured")

// New returns a fresh Env, or skips (fails in CI) when the servers are not
// configured. Its database is dropped when the test ends.
func New(t testing.TB) Env {
	t.Helper()
	e, drop, err := Open(context.Background(), "stele_t")
	if errors.Is(err, ErrUnset) {
		msg := fmt.Sprintf("aws-backend test %s needs MariaDB and an S3-compatible server: %v. Start them with `source .ci/services && stele_services_start` (as .ci/run does)", t.Name(), err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		warnOnce.Do(func() { fmt.Fprintf(os.Stderr, "\n*** SKIPPING the aws-backend tests ***\n%s\n\n", msg) })
		t.Skip(msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return e
}

// Open makes a fresh database, named prefix and a random suffix, on the
// MySQL-compatible server and returns an Env for it (the same name is its
// object-key prefix) and a function that drops the database; the objects
// stay under their unique prefix. For programs that are not tests (the
// benchmark harness); tests use New.
func Open(ctx context.Context, prefix string) (Env, func(), error) {
	var missing []string
	for _, v := range EnvVars {
		if os.Getenv(v) == "" {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return Env{}, nil, fmt.Errorf("%w: %s unset", ErrUnset, strings.Join(missing, ", "))
	}
	cfg, err := mysql.ParseDSN(os.Getenv("STELE_TEST_MYSQL_DSN"))
	if err != nil {
		return Env{}, nil, fmt.Errorf("STELE_TEST_MYSQL_DSN: %w", err)
	}
	var r [6]byte
	rand.Read(r[:])
	name := fmt.Sprintf("%s%x", prefix, r)
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		return Env{}, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(cctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		return Env{}, nil, fmt.Errorf("creating test database: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP DATABASE "+name)
		db.Close()
	}
	cfg.DBName = name
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	return Env{
		DSN:      cfg.FormatDSN(),
		Endpoint: os.Getenv("STELE_TEST_S3_ENDPOINT"),
		Bucket:   os.Getenv("STELE_TEST_S3_BUCKET"),
		Region:   region,
		Prefix:   name,
	}, drop, nil
}

// Flags are the stele-server flags that put a server on e.
func (e Env) Flags() []string {
	return []string{"--storage", "aws", "--s3-bucket", e.Bucket, "--s3-prefix", e.Prefix,
		"--s3-endpoint", e.Endpoint, "--s3-region", e.Region, "--s3-path-style", "--mysql-dsn", e.DSN}
}
