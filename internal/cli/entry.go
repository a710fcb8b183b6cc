package cli

import (
	"context"
	"flag"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// entryFlags name one entry: by --index, or by --source and --event-id
// (looked up through the server's dedup index; that needs the reader role).
type entryFlags struct {
	index, source, eventID *string
}

func addEntryFlags(fs *flag.FlagSet) entryFlags {
	return entryFlags{
		index:   fs.String("index", "", "index of the entry"),
		source:  fs.String("source", "", "with --event-id: the entry of this source and event id, instead of --index (needs the reader role)"),
		eventID: fs.String("event-id", "", "with --source: the event id to look up"),
	}
}

// byID reports whether the entry is named by source and event id, and
// checks that it is named exactly one way.
func (f entryFlags) byID() (bool, error) {
	id := *f.source != "" || *f.eventID != ""
	switch {
	case id && *f.index != "":
		return false, usagef("name the entry by --index or by --source and --event-id, not both")
	case id && (*f.source == "" || *f.eventID == ""):
		return false, usagef("--source and --event-id go together")
	case !id && *f.index == "":
		return false, usagef("--index N (or --source S --event-id ID) is required")
	}
	return id, nil
}

// lookup fetches the entry by source and event id.
func (f entryFlags) lookup(ctx context.Context, c *client.Client) (*stelev1.GetEventResponse, error) {
	resp, err := c.Log.GetEventByID(ctx, &stelev1.GetEventByIDRequest{Source: *f.source, EventId: *f.eventID}, waitReady)
	if err != nil {
		return nil, rpcError(err)
	}
	return resp.Event, nil
}

// resolve returns the entry's index, looking it up when it is named by id.
func (f entryFlags) resolve(ctx context.Context, c *client.Client) (uint64, error) {
	id, err := f.byID()
	if err != nil {
		return 0, err
	}
	if !id {
		return indexFlag(*f.index)
	}
	resp, err := f.lookup(ctx, c)
	if err != nil {
		return 0, err
	}
	return resp.Index, nil
}
