package server_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/identity"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestRecordsTwoReadingsRefused (issue 13.5): a record with a duplicate key
// or invalid UTF-8, which two JSON parsers can read differently, and a
// record of one provider sent under another's format, are refused at
// admission with the normaliser's precise error; nothing is appended. The
// same records, repaired, are admitted.
func TestRecordsTwoReadingsRefused(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	okta, err := os.ReadFile("../identity/testdata/golden/okta.systemLog/session-start-success-docs-shape.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		format string
		record string
		code   codes.Code
		msg    string
	}{
		{"duplicate key", "entra.directoryAudit", `{"id":"d1","activityDisplayName":"Add user","activityDisplayName":"Delete user","activityDateTime":"2025-11-14T01:00:00Z"}`,
			codes.InvalidArgument, "record has a duplicate key at /activityDisplayName (byte 44)"},
		{"duplicate nested key", "aws.cloudtrail", `{"eventID":"e1","eventTime":"2025-11-14T01:00:00Z","userIdentity":{"type":"Root","type":"IAMUser"}}`,
			codes.InvalidArgument, "duplicate key at /userIdentity/type"},
		{"duplicate key spelled with an escape", "okta.systemLog", `{"uuid":"u1","published":"2025-11-14T01:00:00Z","\u0075uid":"u2"}`,
			codes.InvalidArgument, "duplicate key at /uuid"},
		{"invalid UTF-8", "entra.directoryAudit", "{\"id\":\"d2\",\"activityDisplayName\":\"Add user\",\"initiatedBy\":{\"user\":{\"displayName\":\"Jos\xe9\"}}}",
			codes.InvalidArgument, "record has invalid UTF-8 at /initiatedBy/user/displayName"},
		{"escaped lone surrogate", "json", `{"id":"j1","time":"2025-11-14T01:00:00Z","name":"\udc00"}`,
			codes.InvalidArgument, "invalid UTF-8 at /name"},
		{"okta event as an Entra audit", "entra.directoryAudit", string(okta),
			codes.InvalidArgument, "not an Entra directoryAudit: the record has none of activityDisplayName"},
		{"okta event as a CloudTrail record", "aws.cloudtrail", string(okta),
			codes.InvalidArgument, "not a CloudTrail record"},
		{"repaired", "entra.directoryAudit", `{"id":"d3","activityDisplayName":"Add user","activityDateTime":"2025-11-14T01:00:00Z"}`, codes.OK, ""},
		{"okta event under its own format", "okta.systemLog", string(okta), codes.OK, ""},
	}
	for _, c := range cases {
		rs, err := ts.cli.Append(ctxT(t, time.Minute), []*stelev1.Event{{Source: "test/records", Format: c.format, Record: []byte(c.record)}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := codes.Code(rs[0].Code); got != c.code || !strings.Contains(rs[0].Message, c.msg) {
			t.Errorf("%s: %v %q, want %v containing %q", c.name, got, rs[0].Message, c.code, c.msg)
		}
		if c.code != codes.OK && rs[0].Index != 0 {
			t.Errorf("%s: refused but given index %d", c.name, rs[0].Index)
		}
	}
	// Every view the server stored says one thing: kind, outcome and
	// OCSF status agree.
	for i := uint64(0); ; i++ {
		got, err := ts.cli.Event(ctxT(t, time.Minute), i)
		if err != nil {
			if i < 2 {
				t.Fatalf("event %d: %v", i, err)
			}
			break
		}
		v, err := identity.Unmarshal(got.Normalized, got.Format, got.Record)
		if err != nil {
			t.Fatal(err)
		}
		if err := identity.Consistent(v); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
}
