package aws_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/server/backend"
	"github.com/stele-dev/stele/server/backend/aws"
)

// TestConfigRefused: an incomplete or malformed configuration is refused
// by New (or, for the checkpoint interval, by Open before connecting to
// anything), naming what to set.
func TestConfigRefused(t *testing.T) {
	ok := aws.Config{Bucket: "b", DSN: "u:p@tcp(127.0.0.1:1)/d"}
	for _, c := range []struct {
		name string
		edit func(*aws.Config)
		want string
	}{
		{"no bucket", func(c *aws.Config) { c.Bucket = "" }, "needs the S3 bucket (--s3-bucket)"},
		{"no dsn", func(c *aws.Config) { c.DSN = "" }, "needs the MySQL DSN (--mysql-dsn or STELE_MYSQL_DSN)"},
		{"neither", func(c *aws.Config) { c.Bucket, c.DSN = "", "" }, "the S3 bucket (--s3-bucket) and the MySQL DSN"},
		{"retention", func(c *aws.Config) { c.Retention = "forever" }, "forever"},
		{"tiles url", func(c *aws.Config) { c.PublicTilesURL = "ftp://tiles" }, `public tiles URL "ftp://tiles" is not an http(s) URL`},
	} {
		cfg := ok
		c.edit(&cfg)
		if _, err := aws.New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	b, err := aws.New(ok)
	if err != nil {
		t.Fatalf("a complete configuration: %v", err)
	}
	_, err = b.Open(context.Background(), backend.Env{CheckpointInterval: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "set the checkpoint interval to 1s or more") {
		t.Errorf("a 200ms checkpoint interval on aws: %v", err)
	}
}
