package main

import (
	"strings"
	"testing"

	awsbackend "github.com/stele-dev/stele/server/backend/aws"
)

// TestRetentionNeedsAWS: --retention is refused on posix (where WORM is
// the file system's), and a malformed one on aws, before anything opens.
func TestRetentionNeedsAWS(t *testing.T) {
	if _, err := storageBackend("posix", awsbackend.Config{Retention: "compliance:7y"}); err == nil || !strings.Contains(err.Error(), `retention (S3 Object Lock) is for storage "aws"`) {
		t.Errorf("--retention on posix: %v", err)
	}
	if _, err := storageBackend("posix", awsbackend.Config{}); err != nil {
		t.Errorf("posix without --retention: %v", err)
	}
	cfg := awsbackend.Config{Bucket: "b", DSN: "u:p@tcp(127.0.0.1:1)/d", Retention: "legal:7y"}
	if _, err := storageBackend("aws", cfg); err == nil || !strings.Contains(err.Error(), "MODE governance or compliance") {
		t.Errorf("a malformed --retention on aws: %v", err)
	}
	cfg.Retention = "compliance:7y"
	if _, err := storageBackend("aws", cfg); err != nil {
		t.Errorf("--retention compliance:7y on aws: %v", err)
	}
}
