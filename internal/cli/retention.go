package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stele-dev/stele/internal/worm"
)

func cmdRetentionCheck(e *env, args []string) error {
	fs := newFlags("retention-check")
	bucket := fs.String("s3-bucket", "", "the log's bucket")
	prefix := fs.String("s3-prefix", "", "the log's object-key prefix in the bucket")
	endpoint := fs.String("s3-endpoint", "", "S3-compatible endpoint URL (empty: AWS)")
	region := fs.String("s3-region", "", "region (default from the AWS configuration; us-east-1 with --s3-endpoint)")
	pathStyle := fs.Bool("s3-path-style", false, "path-style bucket addressing (MinIO, versitygw)")
	retS := fs.String("retention", "", "the retention required, MODE:DURATION as stele-server's --retention (e.g. compliance:7y)")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	if *bucket == "" {
		return usagef("--s3-bucket is required")
	}
	if *retS == "" {
		return usagef("--retention MODE:DURATION is required")
	}
	r, err := worm.Parse(*retS)
	if err != nil {
		return usagef("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var opts []func(*awsconfig.LoadOptions) error
	if *region == "" && *endpoint != "" && os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		*region = "us-east-1"
	}
	if *region != "" {
		opts = append(opts, awsconfig.WithRegion(*region))
	}
	sdk, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("loading AWS configuration: %w", err)
	}
	c := s3.NewFromConfig(sdk, func(o *s3.Options) {
		if *endpoint != "" {
			o.BaseEndpoint = aws.String(*endpoint)
		}
		o.UsePathStyle = *pathStyle
	})
	if err := worm.CheckBucket(ctx, c, *bucket); err != nil {
		fmt.Fprintf(e.stderr, "retention-check: %v\n", err)
		return errFailed
	}
	checked, bad := 0, 0
	progress := isTerminal(e.stderr)
	last := time.Now()
	for p, err := range worm.Check(ctx, c, *bucket, *prefix, r) {
		if err != nil {
			return err
		}
		if p == nil || !p.Whole {
			checked++ // a version
		}
		if p != nil {
			bad++
			fmt.Fprintln(e.stdout, formatProblem(p))
		}
		if progress && time.Since(last) > time.Second {
			fmt.Fprintf(e.stderr, "\rretention-check: %d objects checked, %d short   ", checked, bad)
			last = time.Now()
		}
	}
	if progress {
		fmt.Fprintln(e.stderr)
	}
	if bad > 0 {
		fmt.Fprintf(e.stderr, "retention-check FAILED: %d problems in %d versions of tiles and entry bundles, against %s retention\n", bad, checked, r)
		return errFailed
	}
	fmt.Fprintf(e.stderr, "retention-check OK: %d versions of tiles and entry bundles, all under %s retention, none deleted or rewritten\n", checked, r)
	return nil
}

// formatProblem is one line of retention-check's report: the key (and
// version), what is wrong, and what the version carries.
func formatProblem(p *worm.Problem) string {
	key := p.Key
	if p.VersionID != "" && p.VersionID != "null" {
		key += " (version " + p.VersionID + ")"
	}
	if p.Whole {
		return p.Key + ": " + p.Reason
	}
	until := "none"
	if !p.RetainUntil.IsZero() {
		until = p.Mode + " until " + p.RetainUntil.Format(time.RFC3339)
	}
	return fmt.Sprintf("%s: %s (written %s, retention %s)", key, p.Reason, p.LastModified.Format(time.RFC3339), until)
}
