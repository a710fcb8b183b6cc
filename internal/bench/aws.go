package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Backends a benchmarked server can run on (Config.Backend).
const (
	BackendPOSIX = "posix"
	BackendAWS   = "aws"
)

// awsEnvVars are what `.ci/services` exports for MariaDB and versitygw.
var awsEnvVars = []string{"STELE_TEST_MYSQL_DSN", "STELE_TEST_S3_ENDPOINT", "STELE_TEST_S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

// awsServerArgs makes a fresh database on the MySQL-compatible server and a
// fresh object-key prefix in the bucket that `.ci/services` started, and
// returns the stele-server flags that put a log on them and a function that
// drops the database (the objects stay under their unique prefix, in the
// services' scratch directory).
func awsServerArgs(ctx context.Context) ([]string, func(), error) {
	var missing []string
	for _, v := range awsEnvVars {
		if os.Getenv(v) == "" {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("--backend aws needs MariaDB and an S3-compatible server: %s unset; start them with `source .ci/services && stele_services_start`", strings.Join(missing, ", "))
	}
	cfg, err := mysql.ParseDSN(os.Getenv("STELE_TEST_MYSQL_DSN"))
	if err != nil {
		return nil, nil, fmt.Errorf("STELE_TEST_MYSQL_DSN: %w", err)
	}
	var r [6]byte
	rand.Read(r[:])
	name := fmt.Sprintf("stele_bench_%x", r)
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(cctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("creating the bench database: %w", err)
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
	return []string{"--storage", "aws", "--s3-bucket", os.Getenv("STELE_TEST_S3_BUCKET"), "--s3-prefix", name,
		"--s3-endpoint", os.Getenv("STELE_TEST_S3_ENDPOINT"), "--s3-region", region, "--s3-path-style", "--mysql-dsn", cfg.FormatDSN()}, drop, nil
}
