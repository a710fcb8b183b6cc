package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Manager changes and inspects a witness's configuration: through the
// admin socket of a running witness, or directly in the store of a
// stopped one. See Manage.
type Manager interface {
	// AddLog adds a log, or keys / pull settings to a known log.
	AddLog(LogConfig) (LogConfig, error)
	// RemoveLog removes a log added with AddLog, keeping its state.
	RemoveLog(origin string) error
	// Logs lists the logs. For a stopped witness, only logs added with
	// add-log are known (not the config file's).
	Logs() ([]LogInfo, error)
	// Evidence lists evidence, for one origin if not empty.
	Evidence(origin string) ([]Evidence, error)
	// Running reports whether the witness is running (changes apply now).
	Running() bool
	Close() error
}

// Manage returns a Manager for the witness whose data directory is
// dataDir: a client of its admin socket if it is running, else the store
// itself (whose lock keeps a witness from starting meanwhile).
func Manage(dataDir string) (Manager, error) {
	sock := filepath.Join(dataDir, adminSocket)
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err == nil {
		c.Close()
		return newAdminClient(sock), nil
	}
	if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("reaching the running witness at %s: %w", sock, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, storeDir)); err != nil {
		return nil, fmt.Errorf("no witness data in %s (start stele-witness with --data-dir %s first, or pass the right --data-dir)", dataDir, dataDir)
	}
	s, err := openStateStore(dataDir)
	if err != nil {
		return nil, err
	}
	return offline{s}, nil
}

// offline manages a stopped witness's store.
type offline struct{ *stateStore }

func (offline) Running() bool { return false }

func (o offline) AddLog(c LogConfig) (LogConfig, error)      { return o.addLog(c) }
func (o offline) RemoveLog(origin string) error              { return o.removeLog(origin) }
func (o offline) Evidence(origin string) ([]Evidence, error) { return o.evidence(origin) }
func (o offline) Close() error                               { return o.close() }

func (o offline) Logs() ([]LogInfo, error) {
	added, err := o.addedLogs()
	if err != nil {
		return nil, err
	}
	dropped, err := o.evidenceDropped()
	if err != nil {
		return nil, err
	}
	out := []LogInfo{}
	for _, c := range added {
		li := LogInfo{LogConfig: c, Added: true, EvidenceDropped: dropped[c.Origin]}
		st, ok, err := o.state(c.Origin)
		if err != nil {
			return nil, err
		}
		if ok {
			li.Size, li.Root, li.Cosigned = st.Size, b64(st.Root[:]), true
		}
		out = append(out, li)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out, nil
}

// adminClient talks to a running witness's admin socket.
type adminClient struct {
	hc *http.Client
}

func newAdminClient(sock string) *adminClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &adminClient{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (a *adminClient) Running() bool { return true }
func (a *adminClient) Close() error  { a.hc.CloseIdleConnections(); return nil }

func (a *adminClient) do(method, path string, in, out any) error {
	var body *bytes.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, "http://witness"+path, body)
	if err != nil {
		return err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e adminError
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin socket: %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (a *adminClient) AddLog(c LogConfig) (LogConfig, error) {
	var out LogConfig
	err := a.do(http.MethodPost, "/logs", c, &out)
	return out, err
}

func (a *adminClient) RemoveLog(origin string) error {
	var out struct{}
	return a.do(http.MethodDelete, "/logs?origin="+url.QueryEscape(origin), nil, &out)
}

func (a *adminClient) Logs() ([]LogInfo, error) {
	var out []LogInfo
	err := a.do(http.MethodGet, "/logs", nil, &out)
	return out, err
}

func (a *adminClient) Evidence(origin string) ([]Evidence, error) {
	var out []Evidence
	err := a.do(http.MethodGet, "/evidence?origin="+url.QueryEscape(origin), nil, &out)
	return out, err
}
