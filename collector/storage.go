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

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/stele-dev/stele/internal/importer"
)

// StorageConfig reads Entra diagnostic logs that a diagnostic setting
// archives to a storage account: one container per category
// (insights-logs-<category>), one append blob per hour,
// tenantId=<t>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json, JSON Lines, growing
// during the hour.
type StorageConfig struct {
	// Auth is how to authenticate: "connection_string", "shared_key",
	// "sas" or "azure_identity" (the Azure SDK's default chain:
	// environment, workload identity, managed identity, Azure CLI).
	Auth string `json:"auth"`
	// AccountURL is https://<account>.blob.core.windows.net/ (not needed
	// with a connection string).
	AccountURL string `json:"account_url,omitempty"`
	// ConnectionStringFile / ConnectionStringEnv hold the connection string.
	ConnectionStringFile string `json:"connection_string_file,omitempty"`
	ConnectionStringEnv  string `json:"connection_string_env,omitempty"`
	// AccountName and AccountKeyFile / AccountKeyEnv are the shared key.
	AccountName    string `json:"account_name,omitempty"`
	AccountKeyFile string `json:"account_key_file,omitempty"`
	AccountKeyEnv  string `json:"account_key_env,omitempty"`
	// SASTokenFile / SASTokenEnv hold a SAS token (with list and read).
	SASTokenFile string `json:"sas_token_file,omitempty"`
	SASTokenEnv  string `json:"sas_token_env,omitempty"`
	// Containers to read (default: the five Entra audit and sign-in
	// categories' containers).
	Containers []string `json:"containers,omitempty"`
	// Tenants limits reading to these tenant ids (default: every
	// tenantId=… folder found).
	Tenants []string `json:"tenants,omitempty"`
	// PollInterval is the pause between listings (default 30s).
	PollInterval Duration `json:"poll_interval,omitempty"`
	// SettleAfter is how long after its hour ends a blob is still watched
	// for growth (default 24h). Blobs of older hours are read once fully
	// and then forgotten.
	SettleAfter Duration `json:"settle_after,omitempty"`
	// BatchRecords caps the records per batch (default 2000): a batch is
	// acknowledged as a whole before the cursor moves past it.
	BatchRecords int `json:"batch_records,omitempty"`
}

// DefaultStorageContainers are the containers of Entra's audit and sign-in
// diagnostic categories.
var DefaultStorageContainers = []string{
	"insights-logs-auditlogs",
	"insights-logs-signinlogs",
	"insights-logs-noninteractiveusersigninlogs",
	"insights-logs-serviceprincipalsigninlogs",
	"insights-logs-managedidentitysigninlogs",
}

var containerName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)

func (c *StorageConfig) check() error {
	switch c.Auth {
	case "connection_string":
		if c.ConnectionStringFile == "" && c.ConnectionStringEnv == "" {
			return errors.New("auth connection_string needs connection_string_file or connection_string_env")
		}
	case "shared_key":
		if c.AccountURL == "" || c.AccountName == "" || (c.AccountKeyFile == "" && c.AccountKeyEnv == "") {
			return errors.New("auth shared_key needs account_url, account_name and account_key_file or account_key_env")
		}
	case "sas":
		if c.AccountURL == "" || (c.SASTokenFile == "" && c.SASTokenEnv == "") {
			return errors.New("auth sas needs account_url and sas_token_file or sas_token_env")
		}
	case "azure_identity":
		if c.AccountURL == "" {
			return errors.New("auth azure_identity needs account_url")
		}
	default:
		return fmt.Errorf("auth %q: use connection_string, shared_key, sas or azure_identity", c.Auth)
	}
	for _, n := range c.Containers {
		if !containerName.MatchString(n) {
			return fmt.Errorf("container %q is not a valid container name", n)
		}
	}
	for _, t := range c.Tenants {
		if err := importer.ValidateTenant(t); err != nil || t == "" {
			return fmt.Errorf("tenants: %q is not a tenant id", t)
		}
	}
	if c.BatchRecords < 0 {
		return errors.New("batch_records is negative")
	}
	return nil
}

// StorageSource reads Entra diagnostic blobs.
type StorageSource struct {
	cfg    StorageConfig
	client *azblob.Client
	from   time.Time
	log    *slog.Logger
	now    func() time.Time
}

// NewStorageSource connects (lazily) to the storage account. from, when
// set, is where reading starts without a cursor: the hour that holds it.
func NewStorageSource(cfg StorageConfig, from time.Time, log *slog.Logger) (*StorageSource, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if len(cfg.Containers) == 0 {
		cfg.Containers = DefaultStorageContainers
	}
	if cfg.BatchRecords == 0 {
		cfg.BatchRecords = 2000
	}
	var (
		cl  *azblob.Client
		err error
	)
	switch cfg.Auth {
	case "connection_string":
		var cs string
		if cs, err = secret(cfg.ConnectionStringFile, cfg.ConnectionStringEnv, "connection string"); err != nil {
			return nil, err
		}
		cl, err = azblob.NewClientFromConnectionString(cs, nil)
	case "shared_key":
		var key string
		if key, err = secret(cfg.AccountKeyFile, cfg.AccountKeyEnv, "account key"); err != nil {
			return nil, err
		}
		var cred *azblob.SharedKeyCredential
		if cred, err = azblob.NewSharedKeyCredential(cfg.AccountName, key); err != nil {
			return nil, fmt.Errorf("account key: %w", err)
		}
		cl, err = azblob.NewClientWithSharedKeyCredential(cfg.AccountURL, cred, nil)
	case "sas":
		var sas string
		if sas, err = secret(cfg.SASTokenFile, cfg.SASTokenEnv, "SAS token"); err != nil {
			return nil, err
		}
		u := strings.TrimRight(cfg.AccountURL, "?") + "?" + strings.TrimPrefix(sas, "?")
		cl, err = azblob.NewClientWithNoCredential(u, nil)
	case "azure_identity":
		var cred azcore.TokenCredential
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			return nil, fmt.Errorf("azure identity: %w", err)
		}
		cl, err = azblob.NewClient(cfg.AccountURL, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("storage account client: %w", err)
	}
	return &StorageSource{cfg: cfg, client: cl, from: from, log: log, now: time.Now}, nil
}

// Provider is Entra.
func (s *StorageSource) Provider() importer.Provider { return importer.Entra }

// storagePosition is the storage source's cursor.
type storagePosition struct {
	// Since is an hour: blobs of earlier hours were read to their end and
	// have settled. Zero: nothing read yet.
	Since time.Time `json:"since"`
	// Blobs maps "container/blob" to the bytes of it read so far, for the
	// blobs of Since and later.
	Blobs map[string]int64 `json:"blobs"`
}

// blobHour finds the hour in a blob name …/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json.
var blobHour = regexp.MustCompile(`(?:^|/)y=(\d{4})/m=(\d{2})/d=(\d{2})/h=(\d{2})/m=(\d{2})/[^/]+\.json$`)

func parseBlobHour(name string) (time.Time, bool) {
	m := blobHour.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("2006-01-02T15:04Z", m[1]+"-"+m[2]+"-"+m[3]+"T"+m[4]+":"+m[5]+"Z")
	if err != nil {
		return time.Time{}, false
	}
	return t.Truncate(time.Hour), true
}

// Run polls the account: lists the day folders from the cursor's hour to
// today in every container and tenant, reads each blob from where it was
// left, then waits for the poll interval.
func (s *StorageSource) Run(ctx context.Context, raw json.RawMessage, emit Emit) error {
	var pos storagePosition
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &pos); err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
	}
	if pos.Blobs == nil {
		pos.Blobs = map[string]int64{}
	}
	if pos.Since.IsZero() && !s.from.IsZero() {
		pos.Since = s.from.UTC().Truncate(time.Hour)
	}
	for {
		if err := s.poll(ctx, &pos, emit); err != nil {
			return err
		}
		if !sleep(ctx, s.cfg.PollInterval.Or(30*time.Second)) {
			return ctx.Err()
		}
	}
}

// blobRef is a listed blob.
type blobRef struct {
	container, name string
	size            int64
	hour            time.Time
}

func (b blobRef) key() string { return b.container + "/" + b.name }

func (s *StorageSource) poll(ctx context.Context, pos *storagePosition, emit Emit) error {
	blobs, err := s.list(ctx, pos.Since)
	if err != nil {
		return err
	}
	// Oldest first, so the cursor's hour can move forward.
	slices.SortFunc(blobs, func(a, b blobRef) int {
		if c := a.hour.Compare(b.hour); c != 0 {
			return c
		}
		return strings.Compare(a.key(), b.key())
	})
	waiting := time.Time{} // earliest hour of a blob not read to its end
	for _, b := range blobs {
		if !pos.Since.IsZero() && b.hour.Before(pos.Since) {
			continue
		}
		done, err := s.readBlob(ctx, b, pos, emit)
		if err != nil {
			return err
		}
		if !done && (waiting.IsZero() || b.hour.Before(waiting)) {
			waiting = b.hour
		}
	}
	// Move the hour forward past what has settled, and forget its blobs.
	since := s.now().UTC().Add(-s.cfg.SettleAfter.Or(24 * time.Hour)).Truncate(time.Hour)
	if !waiting.IsZero() && waiting.Before(since) {
		since = waiting
	}
	if since.After(pos.Since) {
		pos.Since = since
		for k := range pos.Blobs {
			if h, ok := parseBlobHour(k); ok && h.Before(since) {
				delete(pos.Blobs, k)
			}
		}
	}
	return emit(ctx, Batch{Position: pos, CaughtUp: true})
}

// list lists the blobs of every container and tenant from hour since on
// (everything when since is zero), by day folder.
func (s *StorageSource) list(ctx context.Context, since time.Time) ([]blobRef, error) {
	var out []blobRef
	for _, cname := range s.cfg.Containers {
		cc := s.client.ServiceClient().NewContainerClient(cname)
		tenants, err := s.tenants(ctx, cc)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			s.log.Debug("container does not exist (yet)", "container", cname)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", cname, err)
		}
		for _, t := range tenants {
			var prefixes []string
			if since.IsZero() {
				prefixes = []string{t}
			} else {
				today := s.now().UTC().Truncate(24 * time.Hour)
				for d := since.Truncate(24 * time.Hour); !d.After(today); d = d.Add(24 * time.Hour) {
					prefixes = append(prefixes, t+d.Format("y=2006/m=01/d=02/"))
				}
			}
			for _, p := range prefixes {
				pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &p})
				for pager.More() {
					page, err := pager.NextPage(ctx)
					if err != nil {
						return nil, fmt.Errorf("listing %s/%s: %w", cname, p, err)
					}
					for _, it := range page.Segment.BlobItems {
						if it.Name == nil || it.Properties == nil || it.Properties.ContentLength == nil {
							continue
						}
						h, ok := parseBlobHour(*it.Name)
						if !ok {
							continue // not an hourly log blob
						}
						out = append(out, blobRef{container: cname, name: *it.Name, size: *it.Properties.ContentLength, hour: h})
					}
				}
			}
		}
	}
	return out, nil
}

// tenants lists the tenantId=…/ folders of a container (those configured).
func (s *StorageSource) tenants(ctx context.Context, cc *container.Client) ([]string, error) {
	prefix := "tenantId="
	pager := cc.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{Prefix: &prefix})
	var out []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range page.Segment.BlobPrefixes {
			if p.Name == nil {
				continue
			}
			t := strings.TrimSuffix(strings.TrimPrefix(*p.Name, prefix), "/")
			if len(s.cfg.Tenants) == 0 || slices.ContainsFunc(s.cfg.Tenants, func(x string) bool { return strings.EqualFold(x, t) }) {
				out = append(out, *p.Name)
			}
		}
	}
	return out, nil
}

// readBlob reads a blob from its cursor offset to its end, emitting
// batches. done is false when it ends with an incomplete line (the blob is
// being written): that line is read on a later poll, once whole.
func (s *StorageSource) readBlob(ctx context.Context, b blobRef, pos *storagePosition, emit Emit) (done bool, err error) {
	key := b.key()
	base := pos.Blobs[key]
	if b.size <= base {
		return true, nil
	}
	bc := s.client.ServiceClient().NewContainerClient(b.container).NewBlobClient(b.name)
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: base}})
	if err != nil {
		return false, fmt.Errorf("reading %s from byte %d: %w", key, base, err)
	}
	defer resp.Body.Close()
	cr := &countReader{r: resp.Body}
	rd, err := importer.NewReader(cr, importer.JSONL)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", key, err)
	}
	var items []Item
	flush := func(end int64, caught bool) error {
		if len(items) == 0 && end == pos.Blobs[key] {
			return nil
		}
		pos.Blobs[key] = end
		err := emit(ctx, Batch{Items: items, Position: pos})
		items = nil
		return err
	}
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return true, flush(base+cr.n, true)
		}
		if err != nil {
			return false, fmt.Errorf("reading %s after byte %d: %w", key, pos.Blobs[key], err)
		}
		if errors.Is(rec.Err, importer.ErrPartialLine) {
			return false, flush(base+rec.Offset, true)
		}
		if len(items) >= s.cfg.BatchRecords {
			if err := flush(base+rec.Offset, false); err != nil {
				return false, err
			}
		}
		items = append(items, Item{Raw: rec.Raw, Err: rec.Err, Position: fmt.Sprintf("blob=%s offset=%d", key, base+rec.Offset)})
	}
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
