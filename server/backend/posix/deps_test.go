package posix_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// cloudDeps are import-path fragments of the aws backend's dependencies.
var cloudDeps = []string{
	"github.com/aws/",
	"github.com/go-sql-driver/mysql",
	"github.com/transparency-dev/tessera/storage/aws",
	"github.com/stele-dev/stele/internal/mysqlstore",
	"github.com/stele-dev/stele/server/backend/aws",
	// Key signers in cloud KMSs: only the binaries that offer them link them.
	"cloud.google.com/",
	"github.com/googleapis/gax-go",
	"github.com/stele-dev/stele/internal/gcpkmskey",
	"github.com/stele-dev/stele/internal/kmskey",
}

// deps lists the packages that pkgs link, as `go list -deps` sees them.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %v: %v\n%s", pkgs, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %v: %v", pkgs, err)
	}
	return strings.Fields(string(out))
}

func cloud(pkgs []string) []string {
	var found []string
	for _, p := range pkgs {
		for _, c := range cloudDeps {
			if strings.HasPrefix(p, c) {
				found = append(found, p)
				break
			}
		}
	}
	return found
}

// TestPOSIXEmbedderLinksNoCloud: a program that embeds the server with the
// posix backend (imports server and server/backend/posix) links neither the
// AWS SDK nor the MySQL driver nor the aws backend. The aws backend itself
// is listed too, to show the check sees those packages when they are there.
func TestPOSIXEmbedderLinksNoCloud(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("this test runs `go list`: %v", err)
	}
	posixOnly := deps(t, "github.com/stele-dev/stele/server", "github.com/stele-dev/stele/server/backend/posix")
	if len(posixOnly) < 50 {
		t.Fatalf("go list -deps listed only %d packages: %v", len(posixOnly), posixOnly)
	}
	if found := cloud(posixOnly); len(found) > 0 {
		t.Errorf("a posix-only embedder links %d cloud packages, e.g. %v: something under server/ imports the aws backend's code", len(found), found[:min(5, len(found))])
	}
	withGCP := deps(t, "github.com/stele-dev/stele/internal/gcpkmskey")
	if found := cloud(withGCP); !slices.Contains(found, "cloud.google.com/go/kms/apiv1") {
		t.Errorf("internal/gcpkmskey's dependencies %v do not include cloud.google.com/go/kms/apiv1: the check above looks for the wrong names", found[:min(5, len(found))])
	}
	withAWS := deps(t, "github.com/stele-dev/stele/server/backend/aws")
	for _, c := range []string{"github.com/aws/aws-sdk-go-v2/service/s3", "github.com/go-sql-driver/mysql"} {
		found := false
		for _, p := range withAWS {
			found = found || p == c
		}
		if !found {
			t.Errorf("the aws backend does not link %s: the check above looks for the wrong names", c)
		}
	}
}
