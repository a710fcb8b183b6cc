package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stele-dev/stele/internal/importer"
)

// CloudTrailConfig reads the log files a CloudTrail trail delivers to S3:
// <prefix>/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz, and
// for organization trails <prefix>/AWSLogs/<org-id>/<account>/CloudTrail/….
// Credentials come from the AWS SDK's standard chain (environment, shared
// config and profile, web identity / IRSA, ECS and EC2 roles).
type CloudTrailConfig struct {
	// Bucket is the trail's bucket.
	Bucket string `json:"bucket"`
	// Prefix is the trail's S3 key prefix, if it has one.
	Prefix string `json:"prefix,omitempty"`
	// Region is the bucket's region (default: the SDK's, e.g. $AWS_REGION).
	Region string `json:"region,omitempty"`
	// Profile is a shared-config profile (default: the SDK's).
	Profile string `json:"profile,omitempty"`
	// Endpoint and PathStyle are for S3-compatible stores.
	Endpoint  string `json:"endpoint,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
	// Accounts and Regions limit what is read (default: all found).
	Accounts []string `json:"accounts,omitempty"`
	Regions  []string `json:"regions,omitempty"`
	// PollInterval is the pause between listings (default 60s).
	PollInterval Duration `json:"poll_interval,omitempty"`
	// SettleAfter is how late a file may be delivered after the time in
	// its name and still be read (default 6h): newer file names are
	// remembered one by one, older ones only as a high-water mark.
	SettleAfter Duration `json:"settle_after,omitempty"`
	// BatchRecords caps the records per batch (default 2000): a batch is
	// acknowledged as a whole before the cursor moves past it.
	BatchRecords int `json:"batch_records,omitempty"`
}

func (c *CloudTrailConfig) check() error {
	if c.Bucket == "" {
		return errors.New("bucket is required")
	}
	for _, a := range c.Accounts {
		if !awsAccount.MatchString(a) {
			return fmt.Errorf("accounts: %q is not a 12-digit account id", a)
		}
	}
	if c.BatchRecords < 0 {
		return errors.New("batch_records is negative")
	}
	return nil
}

var (
	awsAccount = regexp.MustCompile(`^[0-9]{12}$`)
	awsOrgID   = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	// ctFileTime is the delivery time in a log file's name:
	// <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz.
	ctFileTime = regexp.MustCompile(`_CloudTrail_[a-z0-9-]+_([0-9]{8}T[0-9]{4}Z)_[A-Za-z0-9]+\.json\.gz$`)
)

// CloudTrailSource reads CloudTrail log files from S3.
type CloudTrailSource struct {
	cfg  CloudTrailConfig
	s3   *s3.Client
	from time.Time
	log  *slog.Logger
	now  func() time.Time
}

// NewCloudTrailSource makes the S3 client (credentials are resolved on
// first use).
func NewCloudTrailSource(cfg CloudTrailConfig, from time.Time, log *slog.Logger) (*CloudTrailSource, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.BatchRecords == 0 {
		cfg.BatchRecords = 2000
	}
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(cfg.Profile))
	}
	sdk, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	cl := s3.NewFromConfig(sdk, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	return &CloudTrailSource{cfg: cfg, s3: cl, from: from, log: log, now: time.Now}, nil
}

// Provider is AWS.
func (s *CloudTrailSource) Provider() importer.Provider { return importer.AWS }

// ctPosition is the CloudTrail source's cursor, per
// "…/CloudTrail/<region>/" folder.
type ctPosition struct {
	Folders map[string]*ctFolder `json:"folders"`
}

// ctFolder: every key up to After (in S3's lexicographic order, which is
// time order here) is read, and so are the keys in Done.
type ctFolder struct {
	After string   `json:"after,omitempty"`
	Done  []string `json:"done,omitempty"`
}

// Run polls the bucket.
func (s *CloudTrailSource) Run(ctx context.Context, raw json.RawMessage, emit Emit) error {
	var pos ctPosition
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &pos); err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
	}
	if pos.Folders == nil {
		pos.Folders = map[string]*ctFolder{}
	}
	for {
		if err := s.poll(ctx, &pos, emit); err != nil {
			return err
		}
		if !sleep(ctx, s.cfg.PollInterval.Or(time.Minute)) {
			return ctx.Err()
		}
	}
}

func (s *CloudTrailSource) base() string {
	p := strings.Trim(s.cfg.Prefix, "/")
	if p != "" {
		p += "/"
	}
	return p + "AWSLogs/"
}

// folders finds the …/CloudTrail/<region>/ folders, with their accounts.
func (s *CloudTrailSource) folders(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	top, err := s.children(ctx, s.base())
	if err != nil {
		return nil, err
	}
	var accounts [][2]string // path, account
	for _, p := range top {
		name := strings.TrimSuffix(strings.TrimPrefix(p, s.base()), "/")
		switch {
		case awsAccount.MatchString(name):
			accounts = append(accounts, [2]string{p, name})
		case awsOrgID.MatchString(name):
			members, err := s.children(ctx, p)
			if err != nil {
				return nil, err
			}
			for _, m := range members {
				if a := strings.TrimSuffix(strings.TrimPrefix(m, p), "/"); awsAccount.MatchString(a) {
					accounts = append(accounts, [2]string{m, a})
				}
			}
		}
	}
	for _, a := range accounts {
		if len(s.cfg.Accounts) > 0 && !slices.Contains(s.cfg.Accounts, a[1]) {
			continue
		}
		regions, err := s.children(ctx, a[0]+"CloudTrail/")
		if err != nil {
			return nil, err
		}
		for _, r := range regions {
			region := strings.TrimSuffix(strings.TrimPrefix(r, a[0]+"CloudTrail/"), "/")
			if len(s.cfg.Regions) == 0 || slices.Contains(s.cfg.Regions, region) {
				out[r] = a[1]
			}
		}
	}
	return out, nil
}

// children lists the "folders" right under prefix.
func (s *CloudTrailSource) children(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: &prefix, Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", s.cfg.Bucket, prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			if cp.Prefix != nil {
				out = append(out, *cp.Prefix)
			}
		}
	}
	return out, nil
}

func (s *CloudTrailSource) poll(ctx context.Context, pos *ctPosition, emit Emit) error {
	folders, err := s.folders(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(folders))
	for f := range folders {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, folder := range names {
		st := pos.Folders[folder]
		if st == nil {
			st = &ctFolder{}
			pos.Folders[folder] = st
		}
		keys, err := s.newKeys(ctx, folder, st)
		if err != nil {
			return err
		}
		// Files are gathered into batches: the cursor moves (and the log
		// is asked) once per batch, not once per small file.
		var items []Item
		for _, key := range keys {
			its, err := s.readFile(ctx, key, folders[folder])
			if err != nil {
				return err
			}
			items = append(items, its...)
			st.Done = append(st.Done, key)
			if len(items) >= s.cfg.BatchRecords {
				if err := emit(ctx, Batch{Items: items, Position: pos}); err != nil {
					return err
				}
				items = nil
			}
		}
		if len(items) > 0 {
			if err := emit(ctx, Batch{Items: items, Position: pos}); err != nil {
				return err
			}
		}
		s.settle(st)
	}
	return emit(ctx, Batch{Position: pos, CaughtUp: true})
}

// newKeys lists the folder's log files not read yet, oldest first: by day
// folder from the cursor's day (or --from's) to today, or the whole folder
// for a first read without --from.
func (s *CloudTrailSource) newKeys(ctx context.Context, folder string, st *ctFolder) ([]string, error) {
	var start time.Time
	if d, ok := keyDay(folder, st.After); ok {
		start = d
	} else if !s.from.IsZero() {
		start = s.from.UTC().Truncate(24 * time.Hour)
	}
	var prefixes []string
	if start.IsZero() {
		prefixes = []string{folder}
	} else {
		today := s.now().UTC().Truncate(24 * time.Hour)
		for d := start.Add(-24 * time.Hour); !d.After(today.Add(24 * time.Hour)); d = d.Add(24 * time.Hour) {
			prefixes = append(prefixes, folder+d.Format("2006/01/02/"))
		}
	}
	var out []string
	for _, prefix := range prefixes {
		in := &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: aws.String(prefix)}
		if st.After > prefix {
			in.StartAfter = aws.String(st.After)
		}
		p := s3.NewListObjectsV2Paginator(s.s3, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing s3://%s/%s: %w", s.cfg.Bucket, prefix, err)
			}
			for _, o := range page.Contents {
				if o.Key == nil || !strings.HasSuffix(*o.Key, ".json.gz") || *o.Key <= st.After || slices.Contains(st.Done, *o.Key) {
					continue
				}
				out = append(out, *o.Key)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// keyDay is the day of a key …/CloudTrail/<region>/YYYY/MM/DD/….
func keyDay(folder, key string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(key, folder)
	if !ok || len(rest) < 10 {
		return time.Time{}, false
	}
	d, err := time.Parse("2006/01/02", rest[:10])
	return d, err == nil
}

// readFile reads one log file's records. The file counts as read once the
// batch holding them is acknowledged (a crash before reads it again:
// duplicates).
func (s *CloudTrailSource) readFile(ctx context.Context, key, account string) ([]Item, error) {
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", s.cfg.Bucket, key, err)
	}
	defer out.Body.Close()
	where := "s3://" + s.cfg.Bucket + "/" + key
	rd, err := importer.NewReader(out.Body, importer.CloudTrail)
	if err != nil {
		// A file that cannot be read at all is reported as one bad item.
		return []Item{{Position: where, Err: err}}, nil
	}
	var items []Item
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return items, nil
		}
		if err != nil {
			var se *importer.StopError
			if !errors.As(err, &se) {
				return nil, fmt.Errorf("reading %s: %w", where, err) // a network error: try again
			}
			return append(items, Item{Position: fmt.Sprintf("%s offset=%d", where, se.Offset), Err: err}), nil
		}
		items = append(items, Item{Raw: rec.Raw, Err: rec.Err, Tenant: account, Position: fmt.Sprintf("%s record=%d", where, rec.N)})
	}
}

// settle folds the keys older than the settle window into After.
func (s *CloudTrailSource) settle(st *ctFolder) {
	limit := s.now().UTC().Add(-s.cfg.SettleAfter.Or(6 * time.Hour))
	slices.Sort(st.Done)
	keep := st.Done[:0]
	for _, k := range st.Done {
		m := ctFileTime.FindStringSubmatch(k)
		var t time.Time
		if m != nil {
			t, _ = time.Parse("20060102T1504Z", m[1])
		}
		if m != nil && t.Before(limit) && k > st.After && len(keep) == 0 {
			st.After = k
			continue
		}
		keep = append(keep, k)
	}
	st.Done = keep
}
