package bench

import (
	"context"
	"fmt"

	"github.com/stele-dev/stele/internal/awstest"
)

// Backends a benchmarked server can run on (Config.Backend).
const (
	BackendPOSIX = "posix"
	BackendAWS   = "aws"
)

// awsServerArgs makes a fresh database on the MySQL-compatible server and a
// fresh object-key prefix in the bucket that `.ci/services` started
// (awstest.Open), and returns the stele-server flags that put a log on them
// and a function that drops the database (the objects stay under their
// unique prefix, in the services' scratch directory).
func awsServerArgs(ctx context.Context) ([]string, func(), error) {
	e, drop, err := awstest.Open(ctx, "stele_bench_")
	if err != nil {
		return nil, nil, fmt.Errorf("--backend aws needs MariaDB and an S3-compatible server: %w; start them with `source .ci/services && stele_services_start`", err)
	}
	return e.Flags(), drop, nil
}
