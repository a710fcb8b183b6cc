package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/tracing"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// otlpReceiver is an OTLP/HTTP trace receiver (POST /v1/traces with a
// protobuf ExportTraceServiceRequest, as the OTLP specification defines
// it) that keeps every span with its service name.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans map[string][]*tracepb.Span // by service.name
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{spans: map[string][]*tracepb.Span{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces with application/x-protobuf", http.StatusUnsupportedMediaType)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		var msg coltrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(raw, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.ResourceSpans {
			svc := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					svc = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				r.spans[svc] = append(r.spans[svc], ss.Spans...)
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

// span waits for a span of service named name.
func (r *otlpReceiver) span(t *testing.T, service, name string) *tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		for _, s := range r.spans[service] {
			if s.Name == name {
				r.mu.Unlock()
				return s
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s span %q reached the OTLP receiver", service, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTracingFollowsABatch runs the real stele-server with --otlp-endpoint
// and a producer that traces too: the server's Append span is the child of
// the producer's (W3C trace context crossed the gRPC call), and it names
// each event's source, event_id and the index the log gave it, so a
// tracing backend finds an event by its id and follows it to whoever sent
// it.
func TestTracingFollowsABatch(t *testing.T) {
	const appendRPC = "stele.v1.LogService/Append"
	recv := newOTLPReceiver(t)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // ms: export spans promptly
	p := startProcess(t, t.TempDir(), "--otlp-endpoint", recv.URL)

	stop, err := tracing.Setup(t.Context(), recv.URL, "test-producer")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(p.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	evs := []*stelev1.Event{event("entra/trace/audit", "trace-0", 200), event("entra/trace/audit", "trace-1", 200), event("entra/trace/audit", "trace-1", 200)}
	rs, err := c.Append(ctxT(t, time.Minute), evs)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(context.Background()); err != nil { // flushes the producer's spans
		t.Fatal(err)
	}

	cs := recv.span(t, "test-producer", appendRPC)
	ss := recv.span(t, "stele-server", appendRPC)
	if !bytes.Equal(ss.TraceId, cs.TraceId) || !bytes.Equal(ss.ParentSpanId, cs.SpanId) {
		t.Fatalf("the server's span (trace %x, parent %x) is not the child of the producer's (trace %x, span %x)", ss.TraceId, ss.ParentSpanId, cs.TraceId, cs.SpanId)
	}
	attrs := map[string]int64{}
	for _, a := range ss.Attributes {
		attrs[a.Key] = a.GetValue().GetIntValue()
	}
	if attrs["stele.events"] != 3 || attrs["stele.events.new"] != 2 || attrs["stele.events.duplicate"] != 1 || attrs["stele.index.first"] != int64(rs[0].Index) || attrs["stele.index.last"] != int64(rs[1].Index) {
		t.Errorf("span attributes %v, want 3 events, 2 new, 1 duplicate, indexes %d..%d", attrs, rs[0].Index, rs[1].Index)
	}
	var got []string
	for _, e := range ss.Events {
		kv := map[string]string{}
		for _, a := range e.Attributes {
			if v, ok := a.GetValue().GetValue().(*commonpb.AnyValue_IntValue); ok {
				kv[a.Key] = fmt.Sprint(v.IntValue)
			} else {
				kv[a.Key] = a.GetValue().GetStringValue()
			}
		}
		got = append(got, kv["stele.event_id"]+" "+kv["stele.index"]+" "+kv["stele.outcome"])
	}
	want := []string{
		fmt.Sprintf("trace-0 %d new", rs[0].Index),
		fmt.Sprintf("trace-1 %d new", rs[1].Index),
		fmt.Sprintf("trace-1 %d duplicate", rs[2].Index),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("span events %q, want %q", got, want)
	}
}
