package deploy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// dockerfile is what the tests need from deploy/Dockerfile.
type dockerfile struct {
	stages        []string // FROM images, in order
	buildPackages []string // the packages of the `go build` line, e.g. ./cmd/stele-server
	buildOut      string   // its -o directory
	cgoDisabled   bool     // ENV CGO_ENABLED=0 before the build
	copyFromOut   string   // destination of COPY --from=<build> <buildOut>
	user          string   // the last USER
	entrypoint    []string
	cmd           []string
	expose        []string
}

var (
	dockerfileOnce sync.Once
	parsedDF       dockerfile
	dockerfileErr  string
)

// parseDockerfile reads deploy/Dockerfile: instructions with their
// continuation lines joined, comments dropped.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	dockerfileOnce.Do(func() {
		f, err := os.Open("Dockerfile")
		if err != nil {
			dockerfileErr = err.Error()
			return
		}
		defer f.Close()
		var insts []string
		cur := ""
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "#") || (line == "" && cur == "") {
				continue
			}
			if s, ok := strings.CutSuffix(line, "\\"); ok {
				cur += s + " "
				continue
			}
			insts = append(insts, cur+line)
			cur = ""
		}
		df := &parsedDF
		for _, in := range insts {
			word, rest, _ := strings.Cut(in, " ")
			rest = strings.TrimSpace(rest)
			switch strings.ToUpper(word) {
			case "FROM":
				df.stages = append(df.stages, strings.Fields(rest)[0])
			case "ENV":
				if strings.Contains(rest, "CGO_ENABLED=0") {
					df.cgoDisabled = true
				}
			case "RUN":
				if after, ok := strings.CutPrefix(rest, "go build "); ok {
					f := strings.Fields(after)
					for i := 0; i < len(f); i++ {
						switch {
						case f[i] == "-o" && i+1 < len(f):
							df.buildOut = f[i+1]
							i++
						case strings.HasPrefix(f[i], "-"):
						default:
							df.buildPackages = append(df.buildPackages, f[i])
						}
					}
				}
			case "COPY":
				f := strings.Fields(rest)
				if len(f) == 3 && strings.HasPrefix(f[0], "--from=") && f[1] == df.buildOut {
					df.copyFromOut = f[2]
				}
			case "USER":
				df.user = rest
			case "ENTRYPOINT":
				if err := json.Unmarshal([]byte(rest), &df.entrypoint); err != nil {
					dockerfileErr = "ENTRYPOINT is not in exec (JSON) form: " + rest
				}
			case "CMD":
				if err := json.Unmarshal([]byte(rest), &df.cmd); err != nil {
					dockerfileErr = "CMD is not in exec (JSON) form: " + rest
				}
			case "EXPOSE":
				df.expose = append(df.expose, strings.Fields(rest)...)
			}
		}
		if len(df.buildPackages) == 0 || df.buildOut == "" {
			dockerfileErr = "no `RUN go build ... -o DIR ./cmd/...` line"
		}
	})
	if dockerfileErr != "" {
		t.Fatalf("deploy/Dockerfile: %s", dockerfileErr)
	}
	return parsedDF
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	if len(df.stages) < 2 {
		t.Errorf("Dockerfile has %d stages, want a build stage and a runtime stage", len(df.stages))
	}
	if !strings.HasPrefix(df.stages[0], "golang:") {
		t.Errorf("build stage %q is not a golang image", df.stages[0])
	}
	// The build stage's Go must be at least go.mod's go line (no toolchain
	// download inside the build).
	goLine := ""
	for _, l := range strings.Split(string(readRepoFile(t, "go.mod")), "\n") {
		if v, ok := strings.CutPrefix(l, "go "); ok {
			goLine = v
		}
	}
	tag := strings.TrimPrefix(df.stages[0], "golang:")
	if minor := strings.Join(strings.SplitN(goLine, ".", 3)[:2], "."); !strings.HasPrefix(tag, minor) {
		t.Errorf("build stage %s does not match go.mod's go %s", df.stages[0], goLine)
	}
	rt := df.stages[len(df.stages)-1]
	if !strings.HasPrefix(rt, "debian:") || !strings.HasSuffix(rt, "-slim") {
		if !strings.HasPrefix(rt, "gcr.io/distroless/") {
			t.Errorf("runtime stage %s is neither debian-slim nor distroless", rt)
		}
	}

	// Each package built is a command of this repository.
	for _, p := range df.buildPackages {
		out, err := exec.Command("go", "list", "-f", "{{.Name}}", filepath.Join("..", p)).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "main" {
			t.Errorf("Dockerfile builds %s, which is not a command here: %v %s", p, err, out)
		}
	}
	// Every command in cmd/ that a deployment runs is built.
	for _, name := range []string{"stele-server", "stele-witness", "stele"} {
		if !slicesContains(df.buildPackages, "./cmd/"+name) {
			t.Errorf("Dockerfile does not build ./cmd/%s", name)
		}
	}
	// Static build: nothing the commands import may need cgo.
	if !df.cgoDisabled {
		t.Error("Dockerfile does not set CGO_ENABLED=0 before go build (the runtime image has no C library guarantees)")
	}
	list := exec.Command("go", append([]string{"list", "-e", "-deps", "-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}"}, df.buildPackages...)...)
	list.Dir = ".."
	list.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := list.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("with CGO_ENABLED=0 the commands do not build: %v\n%s", err, out)
	}

	if df.copyFromOut != "/usr/local/bin/" {
		t.Errorf("the binaries are copied to %q, want /usr/local/bin/ (the path compose, Kubernetes and the docs use)", df.copyFromOut)
	}
	// Non-root, by number (Kubernetes' runAsNonRoot can only check a number).
	uid, _, _ := strings.Cut(df.user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q is not a numeric non-root user", df.user)
	}
	if len(df.entrypoint) != 1 || df.entrypoint[0] != "/usr/local/bin/stele-server" {
		t.Errorf("ENTRYPOINT %q, want [/usr/local/bin/stele-server]", df.entrypoint)
	}
	_, _, vals := commandLine(t, "Dockerfile ENTRYPOINT+CMD", append(df.entrypoint, df.cmd...))
	if vals["config"] == "" {
		t.Error("the image's default command names no --config")
	}
	for _, p := range []string{"7400", "7401", "7480"} {
		if !slicesContains(df.expose, p) {
			t.Errorf("Dockerfile does not EXPOSE %s", p)
		}
	}

	// The context excludes what must never enter an image.
	ign := string(readRepoFile(t, "deploy/Dockerfile.dockerignore"))
	for _, p := range []string{".git", "stele-data", "stele-witness-data", "**/*.key"} {
		if !slicesContains(strings.Split(ign, "\n"), p) {
			t.Errorf("deploy/Dockerfile.dockerignore does not exclude %s", p)
		}
	}
}

// dockerUID is the runtime user's uid from the Dockerfile.
func dockerUID(t *testing.T) int64 {
	uid, _, _ := strings.Cut(parseDockerfile(t).user, ":")
	n, _ := strconv.ParseInt(uid, 10, 64)
	return n
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if strings.TrimSpace(x) == v {
			return true
		}
	}
	return false
}
