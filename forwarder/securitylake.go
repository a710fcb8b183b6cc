package forwarder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
)

// SecurityLakeConfig configures the Amazon Security Lake custom-source
// sink: each batch becomes OCSF Parquet objects in the layout Security Lake
// reads, one per event day:
//
//	s3://<bucket>/ext/<source_name>/region=<region>/accountId=<account_id>/eventDay=<YYYYMMDD>/<first index>-<log>.parquet
//
// An object is named by the first entry it holds and its log (<log>: the
// first 8 bytes of SHA-256 of the log's origin, in hex, so the logs of a
// chain never share a name), so a batch sent again after a restart (it
// starts at the same cursor) replaces its object: exactly once. AWS credentials come from the standard sources.
type SecurityLakeConfig struct {
	Bucket     string `json:"bucket"`
	SourceName string `json:"source_name"`
	Region     string `json:"region"`
	AccountID  string `json:"account_id"`
	// S3Region is the bucket's region, requests are signed for (default
	// Region).
	S3Region string `json:"s3_region,omitempty"`
	// Endpoint and PathStyle: an S3-compatible store instead of AWS's.
	Endpoint  string `json:"endpoint,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
}

var (
	lakeSource  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	lakeAccount = regexp.MustCompile(`^[0-9]{12}$`)
)

func (c *SecurityLakeConfig) validate() error {
	if c.Bucket == "" || c.Region == "" {
		return errors.New("bucket and region are required")
	}
	if !lakeSource.MatchString(c.SourceName) {
		return fmt.Errorf("source_name %q: 1-64 of [A-Za-z0-9_-], the custom source's name", c.SourceName)
	}
	if !lakeAccount.MatchString(c.AccountID) {
		return fmt.Errorf("account_id %q: twelve digits", c.AccountID)
	}
	return nil
}

// LakeRow is one Parquet row: the OCSF base event attributes as typed
// columns, raw_data (the original record) and unmapped, whose
// "stele_record" holds the record document (`stele verify` reads it).
// The class-specific OCSF objects are in the document's "ocsf".
type LakeRow struct {
	ClassUID    int32             `parquet:"class_uid"`
	CategoryUID int32             `parquet:"category_uid"`
	ActivityID  int32             `parquet:"activity_id"`
	TypeUID     int64             `parquet:"type_uid"`
	SeverityID  int32             `parquet:"severity_id"`
	StatusID    int32             `parquet:"status_id,optional"`
	Time        int64             `parquet:"time,timestamp(millisecond)"`
	Metadata    LakeMetadata      `parquet:"metadata"`
	RawData     string            `parquet:"raw_data,optional"`
	Unmapped    map[string]string `parquet:"unmapped"`
}

// LakeMetadata is OCSF's metadata object, as far as the rows carry it.
type LakeMetadata struct {
	Version string      `parquet:"version"`
	UID     string      `parquet:"uid,optional"`
	Product LakeProduct `parquet:"product"`
}

// LakeProduct is OCSF's product object.
type LakeProduct struct {
	Name       string `parquet:"name"`
	VendorName string `parquet:"vendor_name"`
}

// SecurityLakeSink writes Parquet objects to S3.
type SecurityLakeSink struct {
	cfg SecurityLakeConfig
	s3  *s3.Client
}

func openSecurityLake(_ string, settings any, _ SinkEnv) (Sink, error) {
	return OpenSecurityLake(context.Background(), *settings.(*SecurityLakeConfig))
}

// OpenSecurityLake loads the AWS configuration.
func OpenSecurityLake(ctx context.Context, cfg SecurityLakeConfig) (*SecurityLakeSink, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("security lake sink: %w", err)
	}
	region := cfg.S3Region
	if region == "" {
		region = cfg.Region
	}
	sdk, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("security lake sink: AWS configuration: %w", err)
	}
	cl := s3.NewFromConfig(sdk, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	return &SecurityLakeSink{cfg: cfg, s3: cl}, nil
}

// Idempotent: yes, an object is named by its first entry.
func (s *SecurityLakeSink) Idempotent() bool { return true }

// Row converts a record to its Parquet row.
func Row(it *Item) (LakeRow, string, error) {
	d := it.Doc
	r := LakeRow{Unmapped: map[string]string{"stele_record": string(it.JSON)}}
	day := d.EventTime
	if len(d.OCSF) > 0 {
		var o struct {
			ClassUID    int32 `json:"class_uid"`
			CategoryUID int32 `json:"category_uid"`
			ActivityID  int32 `json:"activity_id"`
			TypeUID     int64 `json:"type_uid"`
			SeverityID  int32 `json:"severity_id"`
			StatusID    int32 `json:"status_id"`
			Time        int64 `json:"time"`
			Metadata    struct {
				Version string `json:"version"`
				UID     string `json:"uid"`
				Product struct {
					Name       string `json:"name"`
					VendorName string `json:"vendor_name"`
				} `json:"product"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(d.OCSF, &o); err != nil {
			return r, "", fmt.Errorf("security lake: entry %d: its ocsf: %v", d.Index, err)
		}
		r.ClassUID, r.CategoryUID, r.ActivityID, r.TypeUID, r.SeverityID, r.StatusID, r.Time =
			o.ClassUID, o.CategoryUID, o.ActivityID, o.TypeUID, o.SeverityID, o.StatusID, o.Time
		r.Metadata = LakeMetadata{Version: o.Metadata.Version, UID: o.Metadata.UID, Product: LakeProduct{o.Metadata.Product.Name, o.Metadata.Product.VendorName}}
	} else {
		// No OCSF class (an erased entry, a payload without a view): an
		// OCSF Base Event (class 0) whose time is the event's.
		t, _ := time.Parse(time.RFC3339Nano, d.EventTime)
		r.Time, r.Metadata = t.UnixMilli(), LakeMetadata{Version: "1.8.0", Product: LakeProduct{"Stele", "Stele"}}
		r.TypeUID = 99
		r.ActivityID = 99
	}
	if rec, err := d.RecordBytes(); err == nil && rec != nil {
		r.RawData = string(rec)
	}
	t, err := time.Parse(time.RFC3339Nano, day)
	if err != nil {
		return r, "", fmt.Errorf("security lake: entry %d: event_time %q: %v", d.Index, day, err)
	}
	return r, t.UTC().Format("20060102"), nil
}

// Deliver writes one Parquet object per event day of the batch.
func (s *SecurityLakeSink) Deliver(ctx context.Context, items []*Item) error {
	type group struct {
		first  uint64
		origin string
		rows   []LakeRow
	}
	groups := map[string]*group{}
	var days []string
	for _, it := range items {
		r, day, err := Row(it)
		if err != nil {
			return Permanent(err)
		}
		g := groups[day]
		if g == nil {
			g = &group{first: it.Doc.Index, origin: it.Doc.Origin}
			groups[day] = g
			days = append(days, day)
		}
		g.rows = append(g.rows, r)
	}
	for _, day := range days {
		g := groups[day]
		var buf bytes.Buffer
		if err := parquet.Write(&buf, g.rows, parquet.Compression(&parquet.Zstd)); err != nil {
			return Permanent(fmt.Errorf("security lake: encoding Parquet: %w", err))
		}
		key := s.Key(day, g.origin, g.first)
		_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key),
			Body: bytes.NewReader(buf.Bytes()), ContentType: aws.String("application/vnd.apache.parquet")})
		if err != nil {
			return fmt.Errorf("security lake: writing s3://%s/%s: %w", s.cfg.Bucket, key, err)
		}
	}
	return nil
}

// Key is the object key of the rows of day starting at entry first of the
// log named origin.
func (s *SecurityLakeSink) Key(day, origin string, first uint64) string {
	h := sha256.Sum256([]byte(origin))
	return fmt.Sprintf("ext/%s/region=%s/accountId=%s/eventDay=%s/%020d-%x.parquet", s.cfg.SourceName, s.cfg.Region, s.cfg.AccountID, day, first, h[:8])
}

// Close does nothing.
func (s *SecurityLakeSink) Close() error { return nil }
