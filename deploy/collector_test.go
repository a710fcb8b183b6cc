package deploy_test

import (
	"path"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestKubernetesCollector: the collector's Deployment runs the binary with
// a config from the generated ConfigMap (loaded with the collector's strict
// loader), keeps its cursors on a PersistentVolumeClaim, runs one replica
// that drains before the next starts, probes /healthz on its listener, and
// has every file the config names on a mounted Secret.
func TestKubernetesCollector(t *testing.T) {
	m := loadManifests(t)
	d, ok := m.deployments["stele-collector"]
	if !ok {
		t.Fatal("no stele-collector Deployment")
	}
	where := "Deployment stele-collector"
	spec := &d.Spec.Template.Spec
	checkPodSecurity(t, where, spec, kubernetesImage(t))
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("%s: replicas %v, want 1 (one owner per cursor)", where, d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("%s: strategy %s, want Recreate (the old pod saves its cursors before the new one reads them)", where, d.Spec.Strategy.Type)
	}
	c := mainContainer(t, spec, "stele-collector")
	bin, sub, vals := commandLine(t, where, append(append([]string{}, argv0(t, c)...), c.Args...))
	if bin != "stele-collector" || sub != "run" {
		t.Fatalf("%s runs %s %s", where, bin, sub)
	}
	cfgPath := vals["config"]
	_, vol := mountOf(spec, c, path.Dir(cfgPath))
	if vol == nil || vol.ConfigMap == nil || !generatedFile(m.kust, vol.ConfigMap.Name, path.Base(cfgPath)) {
		t.Fatalf("%s: --config %s is not in a mounted ConfigMap generated from a file of that name", where, cfgPath)
	}
	cfg := collectorConfig(t, filepath.Join("kubernetes", path.Base(cfgPath)))
	port := portOf(t, where, cfg.Listen)
	if containerPortName(c, port) == "" {
		t.Errorf("%s: the container declares no port %s, which the config listens on", where, port)
	}
	checkProbes(t, where, c, "stele-collector", port, corev1.URISchemeHTTP)
	if vm, v := mountOf(spec, c, cfg.StateDir); v == nil || v.PersistentVolumeClaim == nil || vm.ReadOnly {
		t.Errorf("%s: state_dir %s is not a writable PersistentVolumeClaim", where, cfg.StateDir)
	} else if _, ok := m.pvcs[v.PersistentVolumeClaim.ClaimName]; !ok {
		t.Errorf("%s: claim %s is not in the kustomization", where, v.PersistentVolumeClaim.ClaimName)
	}
	files := []string{cfg.Server.TLSCA, cfg.Server.TLSCert, cfg.Server.TLSKey, cfg.Server.TokenFile}
	for _, s := range cfg.Sources {
		if st := s.EntraStorage; st != nil {
			files = append(files, st.ConnectionStringFile, st.AccountKeyFile, st.SASTokenFile)
			if st.ConnectionStringEnv != "" && !hasEnv(c, st.ConnectionStringEnv) {
				t.Errorf("%s: source %s reads $%s, which the container does not set", where, s.Name, st.ConnectionStringEnv)
			}
		}
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if _, v := mountOf(spec, c, path.Dir(f)); v == nil || (v.Secret == nil && v.ConfigMap == nil) {
			t.Errorf("%s: %s is not on a mounted Secret or ConfigMap", where, f)
		}
	}
	if cfg.Server.TokenFile != "" && cfg.Server.TLSCA == "" {
		t.Errorf("%s: a token without TLS is never sent", where)
	}
	doc := readRepoFile(t, "docs/collector.md")
	for _, s := range secretRefs(spec) {
		if !strings.Contains(string(doc), s) {
			t.Errorf("%s references Secret %s, which docs/collector.md does not say how to create", where, s)
		}
	}
}
