package monitor

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// View renders a normalised identity event as the generic JSON that rule
// field conditions match: proto field names, every field present (false,
// 0, "" and empty lists included, so "privilege.via_pim": "false" matches a
// grant outside PIM), enums by name. The raw record is left out.
func View(ev *stelev1.IdentityEvent) (map[string]any, error) {
	c := proto.CloneOf(ev)
	c.RawRecord = nil
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("monitor: rendering the event: %w", err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("monitor: rendering the event: %w", err)
	}
	return v, nil
}
