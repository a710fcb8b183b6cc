package forwarder_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
)

// s3Env returns the versitygw endpoint and bucket .ci/services starts
// (STELE_TEST_S3_ENDPOINT, STELE_TEST_S3_BUCKET, AWS credentials). Without
// them the test is skipped, except in CI, where it fails.
func s3Env(t *testing.T) (endpoint, bucket string) {
	endpoint, bucket = os.Getenv("STELE_TEST_S3_ENDPOINT"), os.Getenv("STELE_TEST_S3_BUCKET")
	if endpoint == "" || bucket == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("STELE_TEST_S3_ENDPOINT and STELE_TEST_S3_BUCKET are not set: source .ci/services && stele_services_start")
		}
		t.Skip("no S3-compatible store: source .ci/services && stele_services_start")
	}
	return endpoint, bucket
}

// lakeIndexes reads back every row under a custom source and returns the
// entries they hold.
func lakeIndexes(t *testing.T, source string) []uint64 {
	t.Helper()
	endpoint, bucket := s3Env(t)
	ctx := context.Background()
	sdk, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	cl := s3.NewFromConfig(sdk, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(endpoint), true })
	var out []uint64
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("ext/" + source + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(obj.Body)
			obj.Body.Close()
			rows, err := parquet.Read[forwarder.LakeRow](bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("%s: %v", aws.ToString(o.Key), err)
			}
			for _, r := range rows {
				var d struct{ Index uint64 }
				json.Unmarshal([]byte(r.Unmapped["stele_record"]), &d)
				out = append(out, d.Index)
			}
		}
	}
	return out
}

// TestSecurityLake forwards a real log to Security Lake's custom-source
// layout on versitygw: the objects sit under
// ext/<source>/region=…/accountId=…/eventDay=…/, parse as Parquet with the
// OCSF base columns matching each record's OCSF event, and the
// stele_record of a row, as read back, verifies with `stele verify`.
func TestSecurityLake(t *testing.T) {
	endpoint, bucket := s3Env(t)
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 60))
	total := slices.Max(idx) + 1
	source := "stele_test_" + strings.ReplaceAll(t.Name(), "/", "_") + time.Now().Format("150405")
	settings, _ := json.Marshal(map[string]any{"bucket": bucket, "source_name": source, "region": "eu-west-1", "account_id": "123456789012",
		"s3_region": "us-east-1", "endpoint": endpoint, "path_style": true})
	cfg := l.config(t, t.TempDir(), forwarder.SinkConfig{Name: "lake", Type: "securitylake", Settings: settings})
	f, stop := l.runForwarder(t, cfg)
	waitDelivered(t, f, total, time.Minute)
	stop()

	ctx := context.Background()
	sdk, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	cl := s3.NewFromConfig(sdk, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(endpoint), true })
	prefix := "ext/" + source + "/region=eu-west-1/accountId=123456789012/eventDay="
	list, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("ext/" + source + "/")})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	var sample forwarder.LakeRow
	for _, o := range list.Contents {
		key := aws.ToString(o.Key)
		if !strings.HasPrefix(key, prefix) || !lakeName.MatchString(key[len(prefix):]) {
			t.Fatalf("object %s is not in Security Lake's layout", key)
		}
		obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		rows, err := parquet.Read[forwarder.LakeRow](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for _, r := range rows {
			v, err := record.Verify([]byte(r.Unmapped["stele_record"]), l.verifier, nil)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			var o struct {
				ClassUID int32 `json:"class_uid"`
				TypeUID  int64 `json:"type_uid"`
				Time     int64 `json:"time"`
			}
			json.Unmarshal(v.Doc.OCSF, &o)
			if o.ClassUID == 0 || r.ClassUID != o.ClassUID || r.TypeUID != o.TypeUID || r.Time != o.Time || r.Metadata.Version == "" {
				t.Fatalf("entry %d: row %+v does not carry its OCSF event's base attributes", v.Doc.Index, r)
			}
			rec, _ := v.Doc.RecordBytes()
			if r.RawData != string(rec) {
				t.Fatalf("entry %d: raw_data is not the original record", v.Doc.Index)
			}
			if !strings.Contains(key, "eventDay="+strings.ReplaceAll(v.Doc.EventTime[:10], "-", "")+"/") {
				t.Fatalf("entry %d (event time %s) in %s", v.Doc.Index, v.Doc.EventTime, key)
			}
			seen[v.Doc.Index] = true
			sample = r
		}
	}
	if uint64(len(seen)) != total {
		t.Fatalf("%d entries in the lake, want %d", len(seen), total)
	}
	j, _ := json.Marshal(sample)
	p := filepath.Join(t.TempDir(), "row.json")
	os.WriteFile(p, j, 0o600)
	if code, o, e := runCLI("verify", "--log-key", l.keyFile, p); code != 0 || !strings.Contains(o, "record OK") {
		t.Fatalf("stele verify of a Security Lake row: exit %d\n%s%s", code, o, e)
	}
}

// lakeName is an object's name under eventDay=: the day, the first index
// and the log's origin hash.
var lakeName = regexp.MustCompile(`^[0-9]{8}/[0-9]{20}-[0-9a-f]{16}\.parquet$`)

// TestSecurityLakeKeyPerLog: the logs of a chain restart at index 0, so an
// object's name carries its log as well as its first index; otherwise a
// successor's batch would replace a frozen log's object of the same day.
func TestSecurityLakeKeyPerLog(t *testing.T) {
	var s forwarder.SecurityLakeSink
	a := s.Key("20261206", "log.example/2026a", 0)
	b := s.Key("20261206", "log.example/2026b", 0)
	if a == b {
		t.Fatalf("two logs' first objects of a day share the name %s", a)
	}
	if again := s.Key("20261206", "log.example/2026a", 0); again != a {
		t.Fatalf("the same batch is named %s, then %s: re-delivery would not replace it", a, again)
	}
	prefix := "ext//region=/accountId=/eventDay="
	if !strings.HasPrefix(a, prefix) || !lakeName.MatchString(a[len(prefix):]) {
		t.Fatalf("key %s is not in Security Lake's layout", a)
	}
}
