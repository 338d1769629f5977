package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ExporterOptions says how to run the exporter.
type ExporterOptions struct {
	// Binary is the exporter's program.
	Binary string
	// Args are its flags; --web.listen-address=Addr comes first.
	Args []string
	// Addr is where it listens (default: a free port on 127.0.0.1).
	Addr string
	// Credential runs it as another user (nil: as the caller).
	Credential *syscall.Credential
	// Ready tells when it serves (default: /healthz answers 200, or 401
	// when the web config asks for basic auth on every path).
	Ready func(*Exporter) error
	// ReadyTimeout is how long it gets to be ready (default 30 s).
	ReadyTimeout time.Duration
}

// Exporter is a running exporter process, its output kept in memory.
type Exporter struct {
	// Addr is its listen address, host:port.
	Addr string
	cmd  *exec.Cmd
	out  LockedBuffer
	done chan struct{}
}

// LockedBuffer is a bytes.Buffer that a process's output and its readers
// can share: a daemon's log read while it runs.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartExporter starts the exporter and waits until it is ready; if it is
// not, it stops it and says why, with its output.
func StartExporter(ctx context.Context, o ExporterOptions) (*Exporter, error) {
	if o.Addr == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		o.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	if o.Ready == nil {
		o.Ready = healthz
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	e := &Exporter{Addr: o.Addr, done: make(chan struct{})}
	e.cmd = exec.Command(o.Binary, append([]string{"--web.listen-address=" + o.Addr}, o.Args...)...)
	if o.Credential != nil {
		e.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Credential}
	}
	e.cmd.Stdout, e.cmd.Stderr = &e.out, &e.out
	if err := e.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start exporter: %w", err)
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	err := Until(ctx, o.ReadyTimeout, "the exporter ready", func() error {
		select {
		case <-e.done:
			return Stop(fmt.Errorf("the exporter exited:\n%s", e.Logs()))
		default:
		}
		return o.Ready(e)
	})
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("%w\nits log:\n%s", err, e.Logs())
	}
	return e, nil
}

func healthz(e *Exporter) error {
	resp, err := http.Get("http://" + e.Addr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	return nil
}

// PID is the exporter's process id.
func (e *Exporter) PID() int { return e.cmd.Process.Pid }

// Done is closed once the exporter has exited.
func (e *Exporter) Done() <-chan struct{} { return e.done }

// Logs is everything it wrote so far.
func (e *Exporter) Logs() string { return e.out.String() }

// Stop ends it as its DaemonSet's rolling update or systemd does (SIGTERM),
// and SIGKILLs it after 30 s; it says so if it had to.
func (e *Exporter) Stop() error {
	select {
	case <-e.done:
		return nil
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = e.Kill()
		return fmt.Errorf("the exporter did not end within 30 s of SIGTERM")
	}
}

// Kill SIGKILLs it and waits until it is gone.
func (e *Exporter) Kill() error {
	err := e.cmd.Process.Kill()
	<-e.done
	return err
}

// Scrape reads and parses its /metrics.
func (e *Exporter) Scrape(ctx context.Context) (*Metrics, error) {
	return ScrapeMetrics(ctx, "http://"+e.Addr+"/metrics")
}

// Metrics is one parsed /metrics.
type Metrics struct {
	// Text is the body as served.
	Text []byte
	// Families are the metric families by name.
	Families map[string]*dto.MetricFamily
}

// Sample is one series and its value.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// ScrapeMetrics GETs url (plain HTTP) and parses the Prometheus text format.
func ScrapeMetrics(ctx context.Context, url string) (*Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return ParseMetrics(body)
}

// ParseMetrics parses the Prometheus text format.
func ParseMetrics(body []byte) (*Metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return &Metrics{Text: body, Families: fams}, nil
}

// All returns the series of family name whose labels include match, in the
// order served.
func (m *Metrics) All(name string, match map[string]string) []Sample {
	var out []Sample
next:
	for _, metric := range m.Families[name].GetMetric() {
		labels := map[string]string{}
		for _, lp := range metric.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		for k, v := range match {
			if labels[k] != v {
				continue next
			}
		}
		out = append(out, Sample{labels, value(metric)})
	}
	return out
}

// value is a counter's, gauge's or untyped metric's value.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}
