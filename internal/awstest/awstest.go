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

// New returns a fresh Env, or skips (fails in CI) when the servers are not
// configured.
func New(t testing.TB) Env {
	t.Helper()
	var missing []string
	for _, v := range []string{"STELE_TEST_MYSQL_DSN", "STELE_TEST_S3_ENDPOINT", "STELE_TEST_S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if os.Getenv(v) == "" {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("aws-backend test %s needs MariaDB and an S3-compatible server: %s unset. Start them with `source .ci/services && stele_services_start` (as .ci/run does)", t.Name(), strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		warnOnce.Do(func() { fmt.Fprintf(os.Stderr, "\n*** SKIPPING the aws-backend tests ***\n%s\n\n", msg) })
		t.Skip(msg)
	}
	cfg, err := mysql.ParseDSN(os.Getenv("STELE_TEST_MYSQL_DSN"))
	if err != nil {
		t.Fatalf("STELE_TEST_MYSQL_DSN: %v", err)
	}
	var r [6]byte
	rand.Read(r[:])
	name := fmt.Sprintf("stele_t%x", r)
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP DATABASE "+name)
		db.Close()
	})
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
	}
}

// Flags are the stele-server flags that put a server on e.
func (e Env) Flags() []string {
	return []string{"--storage", "aws", "--s3-bucket", e.Bucket, "--s3-prefix", e.Prefix,
		"--s3-endpoint", e.Endpoint, "--s3-region", e.Region, "--s3-path-style", "--mysql-dsn", e.DSN}
}
