package cli

import (
	"bytes"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder/record"
)

// isForwardedRecord tells a stele-forwarder record (JSON, possibly inside
// a SIEM's wrapping or a syslog line) from a C2SP tlog-proof receipt:
// anything else is verified as a receipt, and refused as one.
func isForwardedRecord(b []byte) bool {
	return !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("c2sp.org/tlog-proof@")) &&
		bytes.Contains(b, []byte("stele_record"))
}

// verifyForwarded checks a record as a SIEM returns it: the Stele record
// document is found inside the input (docs/forwarder.md) and verified
// offline against the log key: receipt, leaf fields, the original record
// and normalised view against the leaf's salted commitment, and the OCSF
// form.
func verifyForwarded(e *env, raw []byte, v note.Verifier, policy *client.Policy, fail func(error) error) error {
	doc, err := record.Find(raw)
	if err != nil {
		return fail(err)
	}
	res, err := record.Verify(doc, v, policy)
	if err != nil {
		return fail(err)
	}
	d, r := res.Doc, res.Receipt
	fmt.Fprintf(e.stdout, "receipt OK: entry %d (source %s, event_id %s, kind %s) is in %s at tree size %d\n",
		r.Index, r.Leaf.Source, r.Leaf.EventID, r.Leaf.Kind, r.Checkpoint.Origin, r.Checkpoint.Size)
	if policy != nil {
		fmt.Fprintln(e.stdout, "witnesses OK: the checkpoint meets the witness policy")
	}
	if res.Payload != nil {
		fmt.Fprintf(e.stdout, "record OK: the original record (format %s, %d bytes) and the normalised view match the leaf's salted commitment\n", res.Payload.Format, len(res.Payload.Record))
		if res.OCSFChecked {
			fmt.Fprintln(e.stdout, "ocsf OK: the OCSF form derives from the committed view")
		}
		if k := r.Signer(); k != "" {
			fmt.Fprintf(e.stdout, "producer signature OK: signed by key %s\n", k)
		}
	}
	if d.Erasure != nil && d.Type == record.TypeEvent {
		fmt.Fprintf(e.stdout, "erasure notice: entry %d was erased (request %s)\n", d.Erasure.ErasedIndex, d.Erasure.RequestReference)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(e.stdout, "note: %s\n", n)
	}
	return nil
}
