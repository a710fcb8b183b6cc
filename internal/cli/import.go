package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/importer"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// importProviders are the subcommands of stele import.
var importProviders = map[string]importer.Provider{
	"entra":      importer.Entra,
	"okta":       importer.Okta,
	"cloudtrail": importer.AWS,
}

// oktaOrg is an Okta org host name, e.g. example.okta.com.
var oktaOrg = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

func cmdImport(e *env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintln(e.stdout, "usage: stele import entra|okta|cloudtrail [flags] FILE...\nRun 'stele import entra -h' for the flags.")
			return nil
		}
		return usagef("name the provider: stele import entra|okta|cloudtrail [flags] FILE...")
	}
	provider, ok := importProviders[args[0]]
	if !ok {
		return usagef("unknown provider %q: use entra, okta or cloudtrail", args[0])
	}
	fs := newFlags("import " + args[0])
	sf := addServerFlags(fs)
	var tenant *string
	switch provider {
	case importer.Entra:
		tenant = fs.String("tenant", "", "Entra tenant id for records that do not carry it (Graph exports)")
	case importer.Okta:
		tenant = fs.String("org", "", "Okta org host, e.g. example.okta.com (required: Okta records do not name their org)")
	case importer.AWS:
		tenant = fs.String("account", "", "AWS account id for records without recipientAccountId")
	}
	formatName := fs.String("format", "auto", "file format: auto, graph, eventhub, cloudtrail, array or jsonl")
	batch := fs.Int("batch", 500, "events per Append request")
	parallel := fs.Int("parallel", 4, "Append requests in flight at once")
	files, err := parse(e, fs, args[1:])
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("name at least one FILE (or - for standard input)")
	}
	stdin := 0
	for _, f := range files {
		if f == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return usagef("standard input (-) can be read only once")
	}
	container, err := importer.ParseContainer(*formatName)
	if err != nil {
		return usagef("--format: %v", err)
	}
	if *batch < 1 {
		return usagef("--batch must be at least 1")
	}
	if *parallel < 1 {
		return usagef("--parallel must be at least 1")
	}
	if provider == importer.Okta {
		*tenant = strings.ToLower(*tenant)
		if *tenant == "" {
			return usagef("--org HOST is required: Okta records do not name their org (e.g. --org example.okta.com)")
		}
		if !oktaOrg.MatchString(*tenant) {
			return usagef("--org %q is not a host name: give the org's host, e.g. example.okta.com", *tenant)
		}
	}
	if *tenant != "" {
		if err := importer.ValidateTenant(*tenant); err != nil {
			return usagef("%s: %v", provider.TenantFlag(), err)
		}
	}
	c, err := sf.dial()
	if err != nil {
		return err
	}
	defer c.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	run := &importRun{
		e:        e,
		builder:  &importer.Builder{Provider: provider, Tenant: *tenant},
		sub:      &client.Submitter{Client: c, BatchEvents: *batch, AttemptTimeout: *sf.timeout},
		batch:    *batch,
		parallel: *parallel,
		groups:   map[string]*reasonGroup{},
	}
	run.sub.OnRetry = func(attempt int, wait time.Duration, err error) {
		run.progress.println(e.stderr, fmt.Sprintf("retrying a batch (attempt %d) in %s: %s", attempt+1, wait.Round(time.Millisecond), oneLine(err.Error())))
	}
	return run.run(ctx, files, container)
}

// importRun is one stele import: it reads the files on one goroutine and
// submits up to parallel batches at once on others, so reading and the
// server's work overlap; results are accounted in file order.
type importRun struct {
	e        *env
	builder  *importer.Builder
	sub      *client.Submitter
	batch    int
	parallel int

	progress progress

	records, admitted, dups, rejected, partial int
	fileErrors                                 int
	groups                                     map[string]*reasonGroup
	order                                      []string
	aborted                                    error
}

// item is one record on its way: an event to submit, or why not.
type item struct {
	file string
	rec  importer.Record
	ev   *stelev1.Event
	err  error
}

// importBatch is what the reader hands the submitter: items, then possibly
// the end of a file.
type importBatch struct {
	items []item
	// fileDone, when set, is a line to report once the items are in: how
	// the file ended.
	fileDone string
	fileErr  bool
}

type reasonGroup struct {
	reason string
	count  int
	where  []string
}

// maxPositions is how many positions the summary lists for one reason.
const maxPositions = 5

func (r *importRun) run(ctx context.Context, files []string, container importer.Container) error {
	start := time.Now()
	stopProgress := r.progress.start(r.e.stderr)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan importBatch, 2)
	go func() {
		defer close(batches)
		for _, f := range files {
			if !r.readFile(ctx, f, container, batches) {
				return
			}
		}
	}()
	// Up to r.parallel batches are in flight at once; results are
	// accounted in file order.
	queue := make(chan *inflight, r.parallel)
	go func() {
		defer close(queue)
		sem := make(chan struct{}, r.parallel)
		for b := range batches {
			f := &inflight{b: b, done: make(chan struct{})}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem; close(f.done) }()
				var events []*stelev1.Event
				for _, it := range f.b.items {
					if it.ev != nil {
						events = append(events, it.ev)
					}
				}
				if len(events) > 0 {
					f.results, f.err = r.sub.Submit(ctx, events)
				}
			}()
			queue <- f
		}
	}()
	for f := range queue {
		<-f.done
		if r.aborted == nil && f.err != nil {
			// The server could not be reached, or the run was
			// interrupted: nothing later can be submitted either.
			r.aborted = f.err
			cancel()
		}
		if r.aborted != nil {
			continue
		}
		r.account(f.b.items, f.results)
		if f.b.fileDone != "" {
			r.progress.println(r.e.stderr, f.b.fileDone)
			if f.b.fileErr {
				r.fileErrors++
			}
		}
	}
	stopProgress()
	r.summary(time.Since(start))
	if r.aborted != nil || r.rejected > 0 || r.fileErrors > 0 {
		return errFailed
	}
	return nil
}

// readFile reads one file into batches; false means stop reading files.
func (r *importRun) readFile(ctx context.Context, name string, container importer.Container, out chan<- importBatch) bool {
	send := func(b importBatch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var in io.Reader = r.e.stdin
	var size int64
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return send(importBatch{fileDone: fmt.Sprintf("%s: cannot read it: %v", name, err), fileErr: true})
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		in = f
	}
	counted := &countingReader{r: in, n: &r.progress.bytes}
	r.progress.file(name, size)
	rd, err := importer.NewReader(counted, container)
	if err != nil {
		return send(importBatch{fileDone: fmt.Sprintf("%s: %v", name, err), fileErr: true})
	}
	var items []item
	nrec, nsend := 0, 0
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return send(importBatch{items: items, fileDone: fmt.Sprintf("%s: %s, %s", name, rd.Container(), plural(nrec, "record"))})
		}
		if err != nil {
			return send(importBatch{items: items, fileDone: fmt.Sprintf("%s: %s, stopped after %s: %v", name, rd.Container(), plural(nrec, "record"), err), fileErr: true})
		}
		nrec++
		it := item{file: name, rec: rec, err: rec.Err}
		if it.err == nil {
			it.ev, it.err = r.builder.Event(rec, name)
			it.rec.Raw = nil // the event holds it
		}
		if it.ev != nil {
			nsend++
		}
		items = append(items, it)
		if nsend >= r.batch || len(items) >= 4*r.batch {
			if !send(importBatch{items: items}) {
				return false
			}
			items, nsend = nil, 0
		}
	}
}

// inflight is a batch being submitted.
type inflight struct {
	b       importBatch
	results []client.SubmitResult
	err     error
	done    chan struct{}
}

// account counts a submitted batch's items and reports the rejected ones.
func (r *importRun) account(items []item, results []client.SubmitResult) {
	next := 0
	for _, it := range items {
		r.records++
		r.progress.records.Add(1)
		if it.ev == nil {
			if errors.Is(it.err, importer.ErrPartialLine) {
				r.partial++
				fmt.Fprintf(r.e.stdout, "%s: not imported: %s\n", position(it), it.err)
				continue
			}
			r.reject(it, it.err.Error())
			continue
		}
		res := results[next]
		next++
		switch {
		case res.Code != codes.OK:
			r.reject(it, fmt.Sprintf("%s: %s", res.Code, oneLine(res.Message)))
		case res.Duplicate:
			r.dups++
		default:
			r.admitted++
		}
	}
}

func position(it item) string {
	return fmt.Sprintf("%s record %d offset %d", it.file, it.rec.N, it.rec.Offset)
}

func (r *importRun) reject(it item, reason string) {
	r.rejected++
	where := position(it)
	r.progress.clear()
	fmt.Fprintf(r.e.stdout, "%s: error: %s\n", where, oneLine(reason))
	g := r.groups[reason]
	if g == nil {
		g = &reasonGroup{reason: reason}
		r.groups[reason] = g
		r.order = append(r.order, reason)
	}
	g.count++
	if len(g.where) < maxPositions {
		g.where = append(g.where, where)
	}
}

// summary writes the totals and the rejections grouped by reason to
// standard error.
func (r *importRun) summary(elapsed time.Duration) {
	w := r.e.stderr
	rate := float64(r.records) / max(elapsed.Seconds(), 1e-3)
	fmt.Fprintf(w, "%s in %s (%.0f events/s): %d admitted, %s, %d rejected\n",
		plural(r.records, "record"), elapsed.Round(time.Millisecond), rate, r.admitted, plural(r.dups, "duplicate"), r.rejected)
	if r.partial > 0 {
		fmt.Fprintf(w, "%d incomplete last lines not imported (a blob still being written?): import the file again later\n", r.partial)
	}
	groups := make([]*reasonGroup, 0, len(r.order))
	for _, k := range r.order {
		groups = append(groups, r.groups[k])
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].count > groups[j].count })
	for _, g := range groups {
		where := strings.Join(g.where, ", ")
		if more := g.count - len(g.where); more > 0 {
			where += fmt.Sprintf(", and %d more", more)
		}
		fmt.Fprintf(w, "  %d rejected: %s (%s)\n", g.count, oneLine(g.reason), where)
	}
	if r.aborted != nil {
		fmt.Fprintf(w, "stopped: %s; records after the last submitted batch were not imported: run the same import again (what is already in the log comes back as duplicates)\n", oneLine(r.aborted.Error()))
	}
}

// countingReader counts the bytes read from a file, for the progress bar.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
