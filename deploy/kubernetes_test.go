package deploy_test

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization that
// deploy/kubernetes uses, decoded strictly.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name   string `json:"name"`
		NewTag string `json:"newTag"`
	} `json:"images"`
}

// manifests holds the decoded Kubernetes objects of deploy/kubernetes.
type manifests struct {
	kust         kustomization
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	pdbs         map[string]*policyv1.PodDisruptionBudget
	pvcs         map[string]*corev1.PersistentVolumeClaim
}

// loadManifests decodes every resource of the kustomization strictly into
// the Kubernetes API types: a misspelt field (readinesProbe, mountpath) fails.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	m := manifests{
		deployments:  map[string]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{},
		services:     map[string]*corev1.Service{},
		pdbs:         map[string]*policyv1.PodDisruptionBudget{},
	}
	b, err := os.ReadFile("kubernetes/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &m.kust); err != nil {
		t.Fatalf("kubernetes/kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(m.kust.Resources, base) {
			t.Errorf("%s is not listed in kustomization.yaml resources", f)
		}
	}
	for _, r := range m.kust.Resources {
		f := filepath.Join("kubernetes", r)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
			continue
		}
		if strings.Contains(string(b), "\n---") {
			t.Errorf("%s holds several documents: one object per file", f)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(b, &tm); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "apps/v1 StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "policy/v1 PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		case "v1 ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "v1 PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "v1 Secret":
			t.Errorf("%s is a Secret: keep secret values out of deploy/, reference Secrets the operator creates", f)
			continue
		default:
			t.Errorf("%s: kind %q (%s) is not one this test checks: add it", f, tm.Kind, tm.APIVersion)
			continue
		}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			m.deployments[o.Name] = o
		case *appsv1.StatefulSet:
			m.statefulSets[o.Name] = o
		case *corev1.Service:
			m.services[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			m.pdbs[o.Name] = o
		case *corev1.PersistentVolumeClaim:
			if m.pvcs == nil {
				m.pvcs = map[string]*corev1.PersistentVolumeClaim{}
			}
			m.pvcs[o.Name] = o
		}
	}
	return m
}

// kubernetesImage is the image the kustomization sets, name:newTag.
func kubernetesImage(t *testing.T) string {
	t.Helper()
	var k kustomization
	b, err := os.ReadFile("kubernetes/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kubernetes/kustomization.yaml: %v", err)
	}
	for _, im := range k.Images {
		if im.Name == imageName && im.NewTag != "" {
			return im.Name + ":" + im.NewTag
		}
	}
	t.Fatalf("kubernetes/kustomization.yaml sets no tag for %s", imageName)
	return ""
}

func TestKubernetes(t *testing.T) {
	m := loadManifests(t)
	image := kubernetesImage(t)
	ops := readRepoFile(t, "docs/operations.md")

	server, ok := m.deployments["stele-server"]
	if !ok {
		t.Fatal("no stele-server Deployment")
	}
	if server.Spec.Replicas == nil || *server.Spec.Replicas != 3 {
		t.Errorf("stele-server Deployment: replicas %v, want 3", server.Spec.Replicas)
	}
	witness, ok := m.statefulSets["stele-witness"]
	if !ok {
		t.Fatal("no stele-witness StatefulSet")
	}
	type workload struct {
		name     string
		replicas int32
		pod      *corev1.PodTemplateSpec
	}
	workloads := []workload{
		{"Deployment stele-server", *server.Spec.Replicas, &server.Spec.Template},
		{"StatefulSet stele-witness", *witness.Spec.Replicas, &witness.Spec.Template},
	}
	for _, w := range workloads {
		checkPodSecurity(t, w.name, &w.pod.Spec, image)
	}
	for name, d := range m.deployments {
		if !labelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("Deployment %s: selector does not match its pod labels", name)
		}
	}

	// The server: its config comes from the generated ConfigMap, mounted where
	// --config points; probes hit the HTTP listener's port and a path it serves.
	c := mainContainer(t, &server.Spec.Template.Spec, "stele-server")
	where := "Deployment stele-server"
	_, _, vals := commandLine(t, where, append(append([]string{}, argv0(t, c)...), c.Args...))
	cfgPath := vals["config"]
	mount, vol := mountOf(&server.Spec.Template.Spec, c, path.Dir(cfgPath))
	cfg := map[string]any{}
	switch {
	case vol == nil || vol.ConfigMap == nil:
		t.Errorf("%s: --config %s is not in a mounted ConfigMap", where, cfgPath)
	case !generatedFile(m.kust, vol.ConfigMap.Name, path.Base(cfgPath)):
		t.Errorf("%s: --config %s: ConfigMap %s (mounted at %s) is not generated from a file of that name", where, cfgPath, vol.ConfigMap.Name, mount.MountPath)
	default:
		cfg = serverConfig(t, filepath.Join("kubernetes", path.Base(cfgPath)))
	}
	httpPort := portOf(t, where, setting(vals, cfg, "http-addr"))
	grpcPort := portOf(t, where, setting(vals, cfg, "grpc-addr"))
	scheme := corev1.URISchemeHTTP
	if setting(vals, cfg, "tls-cert") != "" {
		scheme = corev1.URISchemeHTTPS
	}
	checkProbes(t, where, c, "stele-server", httpPort, scheme)
	for _, p := range []string{grpcPort, httpPort} {
		if containerPortName(c, p) == "" {
			t.Errorf("%s: the container declares no port %s, which the config listens on", where, p)
		}
	}
	// Every file the config names is on a mounted volume (the root file
	// system is read-only), and the data directory is writable.
	for _, key := range []string{"tls-cert", "tls-key", "client-ca", "auth-policy", "witness-policy", "log-key"} {
		if p := setting(vals, cfg, key); p != "" {
			if _, v := mountOf(&server.Spec.Template.Spec, c, path.Dir(p)); v == nil || (v.Secret == nil && v.ConfigMap == nil) {
				t.Errorf("%s: %s %s is not on a mounted Secret or ConfigMap", where, key, p)
			}
		}
	}
	dataDir := setting(vals, cfg, "data-dir")
	if dm, v := mountOf(&server.Spec.Template.Spec, c, dataDir); v == nil || v.EmptyDir == nil || dm.ReadOnly {
		t.Errorf("%s: the data directory %s is not a writable emptyDir", where, dataDir)
	}
	// Replicas share one log key, read from a Secret (--log-key is never
	// created, so a replica cannot make its own).
	if replicas := *server.Spec.Replicas; replicas > 1 {
		if p := setting(vals, cfg, "log-key"); p == "" {
			t.Errorf("%s: %d replicas without --log-key would each create their own log key", where, replicas)
		} else if _, v := mountOf(&server.Spec.Template.Spec, c, path.Dir(p)); v == nil || v.Secret == nil {
			t.Errorf("%s: --log-key %s is not on a mounted Secret", where, p)
		}
	}
	if setting(vals, cfg, "storage") == "aws" && setting(vals, cfg, "mysql-dsn") == "" && !hasEnv(c, "STELE_MYSQL_DSN") {
		t.Errorf("%s: aws storage without a database DSN (--mysql-dsn or STELE_MYSQL_DSN)", where)
	}
	// Secrets are referenced, never defined here; the operator guide says how
	// to create each one.
	for _, s := range secretRefs(&server.Spec.Template.Spec) {
		if !strings.Contains(string(ops), s) {
			t.Errorf("%s references Secret %s, which docs/operations.md does not say how to create", where, s)
		}
	}

	// The witnesses: state on a persistent volume, probes on --listen.
	wc := mainContainer(t, &witness.Spec.Template.Spec, "stele-witness")
	where = "StatefulSet stele-witness"
	bin, sub, wvals := commandLine(t, where, append(append([]string{}, argv0(t, wc)...), wc.Args...))
	if bin != "stele-witness" || sub != "run" {
		t.Errorf("%s runs %s %s", where, bin, sub)
	}
	checkProbes(t, where, wc, "stele-witness", portOf(t, where, wvals["listen"]), corev1.URISchemeHTTP)
	claimed := false
	for _, vm := range wc.VolumeMounts {
		for _, pvc := range witness.Spec.VolumeClaimTemplates {
			if vm.Name == pvc.Name && vm.MountPath == wvals["data-dir"] {
				claimed = true
			}
		}
	}
	if !claimed {
		t.Errorf("%s: --data-dir %s is not a volumeClaimTemplate's mount", where, wvals["data-dir"])
	}
	if sc := witness.Spec.Template.Spec.SecurityContext; sc == nil || sc.FSGroupChangePolicy == nil || *sc.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch {
		t.Errorf("%s: fsGroupChangePolicy must be OnRootMismatch, or a recursive ownership change makes witness.key group-readable and the witness refuses it", where)
	}
	if svc, ok := m.services[witness.Spec.ServiceName]; !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("%s: serviceName %q is not a headless Service", where, witness.Spec.ServiceName)
	}

	// Services and PodDisruptionBudgets select a workload's pods and name
	// ports its container declares.
	pods := map[string]*corev1.PodTemplateSpec{}
	for _, w := range workloads {
		pods[w.name] = w.pod
	}
	for name, s := range m.services {
		w := selectedWorkload(s.Spec.Selector, pods)
		if w == "" {
			t.Errorf("Service %s selects no workload's pods", name)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type != intstr.String || !declaresPort(pods[w], p.TargetPort.StrVal) {
				t.Errorf("Service %s: targetPort %s is not a named port of %s", name, p.TargetPort.String(), w)
			}
		}
	}
	if len(m.pdbs) < 2 {
		t.Errorf("%d PodDisruptionBudgets, want one for the server and one for the witnesses", len(m.pdbs))
	}
	for name, p := range m.pdbs {
		w := selectedWorkload(p.Spec.Selector.MatchLabels, pods)
		if w == "" {
			t.Errorf("PodDisruptionBudget %s selects no workload's pods", name)
			continue
		}
		for _, wl := range workloads {
			if wl.name == w && p.Spec.MinAvailable != nil && p.Spec.MinAvailable.IntValue() >= int(wl.replicas) {
				t.Errorf("PodDisruptionBudget %s: minAvailable %s of %d replicas blocks every drain", name, p.Spec.MinAvailable.String(), wl.replicas)
			}
		}
	}
}

// checkPodSecurity: non-root as the image's user, read-only root file
// system, no privilege escalation or capabilities, resources set, the image
// the kustomization names.
func checkPodSecurity(t *testing.T, where string, spec *corev1.PodSpec, image string) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != dockerUID(t) {
		t.Errorf("%s: pod securityContext must set runAsNonRoot and runAsUser %d (the image's USER)", where, dockerUID(t))
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		w := where + " container " + c.Name
		if c.Image != image {
			t.Errorf("%s: image %s, want %s", w, c.Image, image)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: securityContext must set readOnlyRootFilesystem, allowPrivilegeEscalation: false and drop ALL capabilities", w)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: set CPU and memory requests and a memory limit", w)
		}
	}
}

// checkProbes: readiness and liveness probes GET a path the real binary
// answers 200 on, on the container port of the HTTP listener; readiness asks
// the health endpoint.
func checkProbes(t *testing.T, where string, c *corev1.Container, bin, httpPort string, scheme corev1.URIScheme) {
	t.Helper()
	probes := map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe}
	for kind, p := range probes {
		if p == nil {
			if kind != "startupProbe" {
				t.Errorf("%s: no %s", where, kind)
			}
			continue
		}
		if p.HTTPGet == nil {
			t.Errorf("%s: %s is not an HTTP GET of the health endpoint", where, kind)
			continue
		}
		port := p.HTTPGet.Port.String()
		if p.HTTPGet.Port.Type == intstr.String {
			port = containerPortNumber(c, p.HTTPGet.Port.StrVal)
		}
		if port != httpPort {
			t.Errorf("%s: %s on port %s (%s), the HTTP listener is on %s", where, kind, p.HTTPGet.Port.String(), port, httpPort)
		}
		if s := p.HTTPGet.Scheme; s != scheme && !(s == "" && scheme == corev1.URISchemeHTTP) {
			t.Errorf("%s: %s uses %s, the listener speaks %s", where, kind, s, scheme)
		}
		if kind == "readinessProbe" && p.HTTPGet.Path != healthPath {
			t.Errorf("%s: readiness asks %s, not the health endpoint %s", where, p.HTTPGet.Path, healthPath)
		}
		if !serves(t, bin, p.HTTPGet.Path) {
			t.Errorf("%s: %s path %s: %s does not answer 200 there", where, kind, p.HTTPGet.Path, bin)
		}
	}
}

func mainContainer(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("no container %s", name)
	return nil
}

// argv0 is the container's command, or the image's ENTRYPOINT.
func argv0(t *testing.T, c *corev1.Container) []string {
	if len(c.Command) > 0 {
		return c.Command
	}
	return parseDockerfile(t).entrypoint
}

// mountOf returns the mount of c holding dir (the mount path itself or a
// parent), and its volume.
func mountOf(spec *corev1.PodSpec, c *corev1.Container, dir string) (*corev1.VolumeMount, *corev1.Volume) {
	var best *corev1.VolumeMount
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		if (dir == vm.MountPath || strings.HasPrefix(dir, vm.MountPath+"/")) && (best == nil || len(vm.MountPath) > len(best.MountPath)) {
			best = vm
		}
	}
	if best == nil {
		return nil, nil
	}
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == best.Name {
			return best, &spec.Volumes[i]
		}
	}
	return best, nil
}

func generatedFile(k kustomization, configMap, file string) bool {
	for _, g := range k.ConfigMapGenerator {
		if g.Name == configMap && slices.Contains(g.Files, file) {
			_, err := os.Stat(filepath.Join("kubernetes", file))
			return err == nil
		}
	}
	return false
}

func containerPortNumber(c *corev1.Container, name string) string {
	for _, p := range c.Ports {
		if p.Name == name {
			return strconv.Itoa(int(p.ContainerPort))
		}
	}
	return ""
}

func containerPortName(c *corev1.Container, number string) string {
	for _, p := range c.Ports {
		if strconv.Itoa(int(p.ContainerPort)) == number {
			return p.Name
		}
	}
	return ""
}

func declaresPort(pod *corev1.PodTemplateSpec, name string) bool {
	for i := range pod.Spec.Containers {
		if containerPortNumber(&pod.Spec.Containers[i], name) != "" {
			return true
		}
	}
	return false
}

func hasEnv(c *corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// secretRefs lists the Secrets a pod references, by env or by volume.
func secretRefs(spec *corev1.PodSpec) []string {
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				add(e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			add(v.Secret.SecretName)
		}
	}
	return out
}

func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func selectedWorkload(selector map[string]string, pods map[string]*corev1.PodTemplateSpec) string {
	for name, p := range pods {
		if labelsMatch(selector, p.Labels) {
			return name
		}
	}
	return ""
}
