package deploy_test

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/stele-dev/stele/forwarder"
)

// TestForwarderDeploy checks the forwarder's units: the systemd unit runs
// a real command line and its config (loaded with the forwarder's own
// strict loader) keeps its state in the unit's writable state directory;
// the Kubernetes Deployment mounts the generated config where --config
// points, keeps the state on its PersistentVolumeClaim, and probes the
// listener's /healthz.
func TestForwarderDeploy(t *testing.T) {
	u := parseUnit(t, "systemd/stele-forwarder.service")
	bin, sub, vals := commandLine(t, "systemd/stele-forwarder.service", strings.Fields(u.last("ExecStart")))
	if bin != "stele-forwarder" || sub != "run" {
		t.Fatalf("the unit runs %s %s", bin, sub)
	}
	cfg, err := forwarder.LoadConfig(filepath.Join("config", filepath.Base(vals["config"])))
	if err != nil {
		t.Fatal(err)
	}
	state := "/var/lib/" + u.last("StateDirectory")
	if cfg.StateDir != state || !slices.Contains(strings.Fields(u.last("ReadWritePaths")), state) {
		t.Errorf("state_dir %s, unit state directory %s, ReadWritePaths %s", cfg.StateDir, state, u.last("ReadWritePaths"))
	}
	for _, s := range cfg.Sinks {
		if s.Type == "files" {
			var fc forwarder.FilesConfig
			json.Unmarshal(s.Settings, &fc)
			if !strings.HasPrefix(fc.Dir, state+"/") {
				t.Errorf("files sink %s writes %s, outside the writable %s", s.Name, fc.Dir, state)
			}
		}
	}

	m := loadManifests(t)
	d, ok := m.deployments["stele-forwarder"]
	if !ok {
		t.Fatal("no stele-forwarder Deployment")
	}
	where := "Deployment stele-forwarder"
	checkPodSecurity(t, where, &d.Spec.Template.Spec, kubernetesImage(t))
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != "Recreate" {
		t.Errorf("%s: one replica, Recreate strategy (two pods must not share the cursors)", where)
	}
	c := mainContainer(t, &d.Spec.Template.Spec, "stele-forwarder")
	_, _, kv := commandLine(t, where, append(append([]string{}, argv0(t, c)...), c.Args...))
	cfgPath := kv["config"]
	_, vol := mountOf(&d.Spec.Template.Spec, c, path.Dir(cfgPath))
	if vol == nil || vol.ConfigMap == nil || !generatedFile(m.kust, vol.ConfigMap.Name, path.Base(cfgPath)) {
		t.Fatalf("%s: --config %s is not in a ConfigMap generated from that file", where, cfgPath)
	}
	kc, err := forwarder.LoadConfig(filepath.Join("kubernetes", path.Base(cfgPath)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{kc.Log.KeyFile, kc.Server.CAFile, kc.Server.TokenFile} {
		if f == "" {
			continue
		}
		if _, v := mountOf(&d.Spec.Template.Spec, c, path.Dir(f)); v == nil || (v.Secret == nil && v.ConfigMap == nil) {
			t.Errorf("%s: %s is not on a mounted Secret or ConfigMap", where, f)
		}
	}
	sm, sv := mountOf(&d.Spec.Template.Spec, c, kc.StateDir)
	if sv == nil || sv.PersistentVolumeClaim == nil || sm.ReadOnly {
		t.Errorf("%s: state_dir %s is not on a writable PersistentVolumeClaim", where, kc.StateDir)
	} else if _, ok := m.pvcs[sv.PersistentVolumeClaim.ClaimName]; !ok {
		t.Errorf("%s: claim %s is not in deploy/kubernetes", where, sv.PersistentVolumeClaim.ClaimName)
	}
	port := portOf(t, where, kc.Listen)
	for kind, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != healthPath || containerPortNumber(c, probe.HTTPGet.Port.StrVal) != port {
			t.Errorf("%s: %s probe must GET %s on the listener's port %s", where, kind, healthPath, port)
		}
	}
}

// TestSentinelDefinitions checks the sample DCR and table against the rows
// the sentinel sink sends: same columns, same stream name.
func TestSentinelDefinitions(t *testing.T) {
	type column struct{ Name, Type string }
	var dcr struct {
		Properties struct {
			StreamDeclarations map[string]struct{ Columns []column }
			DataFlows          []struct {
				Streams      []string
				OutputStream string
				TransformKql string
			}
		}
	}
	var table struct {
		Properties struct {
			Schema struct {
				Name    string
				Columns []column
			}
		}
	}
	for f, v := range map[string]any{"sentinel/dcr.json": &dcr, "sentinel/table.json": &table} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	var rowCols []string
	rt := reflect.TypeOf(forwarder.SentinelRow{})
	for i := range rt.NumField() {
		rowCols = append(rowCols, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	names := func(cs []column) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	stream, ok := dcr.Properties.StreamDeclarations["Custom-SteleRecords"]
	if !ok {
		t.Fatal("the DCR declares no Custom-SteleRecords stream (the sink's default)")
	}
	if !slices.Equal(names(stream.Columns), rowCols) || !slices.Equal(names(table.Properties.Schema.Columns), rowCols) {
		t.Errorf("columns: row %v, DCR %v, table %v", rowCols, names(stream.Columns), names(table.Properties.Schema.Columns))
	}
	if len(dcr.Properties.DataFlows) != 1 || dcr.Properties.DataFlows[0].OutputStream != "Custom-"+table.Properties.Schema.Name {
		t.Errorf("the DCR's data flow does not write the table %s", table.Properties.Schema.Name)
	}
}
