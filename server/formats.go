package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// recordFormats lists the raw record formats Stele admits, and whether the
// record must be a JSON object. Normalisers per format come later; until then
// every format is checked for well-formed JSON.
var recordFormats = map[string]bool{
	"entra.directoryAudit": true,  // Microsoft Graph directoryAudit
	"entra.signIn":         true,  // Microsoft Graph signIn
	"entra.diagnostic":     true,  // Entra diagnostic-settings record (Event Hub / storage)
	"okta.systemLog":       true,  // Okta System Log LogEvent
	"aws.cloudtrail":       true,  // one CloudTrail record
	"ocsf":                 true,  // an OCSF event
	"json":                 false, // any JSON value, for sources without a dedicated format
}

// Formats returns the names of the record formats the server admits.
func Formats() []string {
	names := make([]string, 0, len(recordFormats))
	for n := range recordFormats {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkRecord checks that record is parseable for its declared format.
func checkRecord(format string, record []byte) error {
	object, ok := recordFormats[format]
	if !ok {
		if format == "" {
			return fmt.Errorf("format is empty: name the record's format, one of %s", strings.Join(Formats(), ", "))
		}
		return fmt.Errorf("unknown format %q: use one of %s", format, strings.Join(Formats(), ", "))
	}
	if len(record) == 0 {
		return fmt.Errorf("record is empty")
	}
	if !json.Valid(record) {
		var v any
		err := json.Unmarshal(record, &v)
		return fmt.Errorf("record is not valid JSON for format %q: %v", format, err)
	}
	if object && !bytes.HasPrefix(bytes.TrimLeft(record, " \t\r\n"), []byte("{")) {
		return fmt.Errorf("record for format %q must be a JSON object", format)
	}
	return nil
}
