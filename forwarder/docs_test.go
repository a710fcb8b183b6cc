package forwarder_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/stele-dev/stele/forwarder"
)

// TestDocExamples parses every JSON example in docs/forwarder.md with the
// forwarder's strict loader, and checks there is one per sink type.
func TestDocExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/forwarder.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(b, -1)
	types := map[string]bool{}
	for i, m := range blocks {
		c, err := forwarder.ParseConfig(m[1])
		if err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
		for _, s := range c.Sinks {
			types[s.Type] = true
		}
	}
	for _, ty := range forwarder.SinkTypes() {
		if !types[ty] {
			t.Errorf("docs/forwarder.md has no example of a %s sink", ty)
		}
	}
	// The loader is strict, so the examples could fail.
	if _, err := forwarder.ParseConfig([]byte(`{"log":{"url":"https://x/","key_file":"k"},"server":{"address":"x:1"},"state_dir":"/s","sinks":[{"name":"f","type":"files","settings":{"dir":"/d","max_byts":1}}]}`)); err == nil {
		t.Error("a misspelt sink setting was accepted")
	}
}
