package forwarder

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// SyslogConfig configures the syslog sink: RFC 5424 messages over TLS
// (RFC 5425), octet-counted framing ("MSG-LEN SP SYSLOG-MSG").
//
// Each message is
//
//	<PRI>1 ADMITTED-TIME HOSTNAME APP-NAME - MSGID [stele@32473 origin="…" index="N" leaf_hash="…"] BOM{document}
//
// MSGID is the document type ("event" or "erased"); the message is the
// record document (JSON, UTF-8, after the BOM RFC 5424 asks for). 32473
// is the private enterprise number RFC 5612 reserves for examples: set
// sd_id to your own "name@PEN" if you have one.
//
// Syslog has no acknowledgement: a batch counts as confirmed once it is
// written to the TLS connection and flushed. A receiver that crashes after
// that loses what it had not stored; the forwarder does not know.
type SyslogConfig struct {
	// Address is the receiver's host:port (6514 is the RFC 5425 port).
	Address string     `json:"address"`
	TLS     *TLSConfig `json:"tls,omitempty"`
	// Hostname is the HOSTNAME field (default: this host's name).
	Hostname string `json:"hostname,omitempty"`
	// AppName is the APP-NAME field (default "stele").
	AppName string `json:"app_name,omitempty"`
	// Facility is the syslog facility number, 0..23 (default 13, log audit).
	Facility *int `json:"facility,omitempty"`
	// Severity is the syslog severity, 0..7 (default 5, notice).
	Severity *int `json:"severity,omitempty"`
	// SDID is the structured-data id (default "stele@32473").
	SDID string `json:"sd_id,omitempty"`
	// MaxMessageBytes refuses (dead-letters) larger messages (default
	// 1 MiB; configure the receiver to accept as much, rsyslog's
	// maxMessageSize).
	MaxMessageBytes int `json:"max_message_bytes,omitempty"`
	// Timeout bounds connecting and writing a batch (default 30s).
	Timeout Duration `json:"timeout,omitempty"`
}

func (c *SyslogConfig) validate() error {
	if c.Address == "" {
		return errors.New("address is required")
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return fmt.Errorf("address: %v", err)
	}
	if c.AppName == "" {
		c.AppName = "stele"
	}
	if c.SDID == "" {
		c.SDID = "stele@32473"
	}
	if c.Facility == nil {
		f := 13
		c.Facility = &f
	}
	if c.Severity == nil {
		s := 5
		c.Severity = &s
	}
	if *c.Facility < 0 || *c.Facility > 23 || *c.Severity < 0 || *c.Severity > 7 {
		return errors.New("facility must be 0..23 and severity 0..7")
	}
	for _, f := range []struct{ name, v string }{{"app_name", c.AppName}, {"hostname", c.Hostname}, {"sd_id", c.SDID}} {
		if len(f.v) > 255 || strings.ContainsFunc(f.v, func(r rune) bool { return r <= 32 || r >= 127 || r == '=' || r == ']' || r == '"' }) {
			return fmt.Errorf("%s %q: printable ASCII without space, '=', ']' or '\"'", f.name, f.v)
		}
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(30 * time.Second)
	}
	return c.TLS.validate()
}

// SyslogSink sends RFC 5424 messages over one TLS connection.
type SyslogSink struct {
	cfg  SyslogConfig
	tls  *tls.Config
	host string
	conn *tls.Conn
	w    *bufio.Writer
}

func openSyslog(_ string, settings any, _ SinkEnv) (Sink, error) {
	return OpenSyslog(*settings.(*SyslogConfig))
}

// OpenSyslog prepares the sink; it connects on the first delivery.
func OpenSyslog(cfg SyslogConfig) (*SyslogSink, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("syslog sink: %w", err)
	}
	tc, err := cfg.TLS.build()
	if err != nil {
		return nil, fmt.Errorf("syslog sink: %w", err)
	}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(cfg.Address)
	}
	host := cfg.Hostname
	if host == "" {
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "-"
		}
	}
	return &SyslogSink{cfg: cfg, tls: tc, host: host}, nil
}

// Idempotent: no; syslog has no record id.
func (s *SyslogSink) Idempotent() bool { return false }

// Message renders one record as an RFC 5424 message (without framing).
func (s *SyslogSink) Message(it *Item) []byte {
	pri := *s.cfg.Facility*8 + *s.cfg.Severity
	t, err := time.Parse(time.RFC3339Nano, it.Doc.AdmittedTime)
	stamp := "-"
	if err == nil {
		stamp = t.UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>1 %s %s %s - %s [%s origin=\"%s\" index=\"%d\" leaf_hash=\"%s\"] \ufeff",
		pri, stamp, s.host, s.cfg.AppName, it.Doc.Type, s.cfg.SDID, sdEscape(it.Doc.Origin), it.Doc.Index, it.Doc.LeafHash)
	b.Write(it.JSON)
	return []byte(b.String())
}

// sdEscape escapes a structured-data parameter value (RFC 5424 6.3.3).
func sdEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(v)
}

// Deliver writes the batch, octet-counted, and flushes it.
func (s *SyslogSink) Deliver(ctx context.Context, items []*Item) error {
	var refused map[int]error
	msgs := make([][]byte, len(items))
	for i, it := range items {
		m := s.Message(it)
		if len(m) > s.cfg.MaxMessageBytes {
			if refused == nil {
				refused = map[int]error{}
			}
			refused[i] = fmt.Errorf("syslog: a message of %d bytes is over max_message_bytes %d", len(m), s.cfg.MaxMessageBytes)
			continue
		}
		msgs[i] = m
	}
	if s.conn == nil {
		d := tls.Dialer{Config: s.tls, NetDialer: &net.Dialer{Timeout: time.Duration(s.cfg.Timeout)}}
		c, err := d.DialContext(ctx, "tcp", s.cfg.Address)
		if err != nil {
			return fmt.Errorf("syslog: connecting to %s: %w", s.cfg.Address, err)
		}
		s.conn = c.(*tls.Conn)
		s.w = bufio.NewWriterSize(s.conn, 1<<20)
	}
	s.conn.SetWriteDeadline(time.Now().Add(time.Duration(s.cfg.Timeout)))
	for _, m := range msgs {
		if m == nil {
			continue
		}
		s.w.WriteString(strconv.Itoa(len(m)))
		s.w.WriteByte(' ')
		s.w.Write(m)
	}
	if err := s.w.Flush(); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("syslog: writing to %s: %w", s.cfg.Address, err)
	}
	if refused != nil {
		return &ItemErrors{Refused: refused}
	}
	return nil
}

// Close closes the connection.
func (s *SyslogSink) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
