package promreg

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// TestNew: a metric made by promauto on the registry is served beside the
// Go runtime and process metrics; two registries do not share metrics.
func TestNew(t *testing.T) {
	reg := New()
	promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "stele_test_things_total", Help: "Things."}).Add(3)
	other := New()
	promauto.With(other).NewCounter(prometheus.CounterOpts{Name: "stele_test_things_total", Help: "Things."}) // no clash: its own registry

	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{"stele_test_things_total 3\n", "go_goroutines ", "process_start_time_seconds "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	mfs, err := other.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "stele_test_things_total" && mf.GetMetric()[0].GetCounter().GetValue() != 0 {
			t.Errorf("the second registry's counter moved: %v", mf)
		}
	}
}
