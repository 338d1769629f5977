package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A real Prometheus (Debian's) scrapes the exporter with the rules of
// deploy/prometheus/rules.yml: a worker OOM-killed three times under a living
// shell fires ContainerOOMKilled and ContainerOOMKillLoop for that container, seen
// through Prometheus' API, and a quiet container next to it fires nothing.
// Not parallel: its containers would count in TestChurn's check of every
// container series.
func TestPrometheusFiresOOMAlerts(t *testing.T) {
	e := sharedExporter(t)
	quiet := run(t, nil, "sleep 100000")
	e.waitCounts(t, quiet, counts{})
	p := startPrometheus(t, e.addr)

	// Every alert of the file is loaded and evaluates without error.
	eventually(t, 30*time.Second, func() error {
		var rules struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
				}
			}
		}
		if err := p.api("/api/v1/rules?type=alert", &rules); err != nil {
			return err
		}
		n := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
				}
				n++
			}
		}
		if n < 4 {
			return fmt.Errorf("%d alerting rules evaluated, want 4", n)
		}
		return nil
	})

	victim := run(t, []string{"--name", fmt.Sprintf("fluentd-e2e-%d", os.Getpid())},
		fmt.Sprintf("for i in 1 2 3; do %s; done; echo done; sleep 100000", oomOnce))
	waitLog(t, victim, "done")
	e.waitCounts(t, victim, counts{OOMs: 3})

	start := time.Now()
	var firing map[string]alert
	eventually(t, 60*time.Second, func() error {
		// Where the exporter names the killed process (the kernel source), the
		// alerts are per process: wait for the one that names it.
		s, err := e.scrape()
		if err != nil {
			return err
		}
		_, _, named := s.series("container_oom_kills_by_process_total", map[string]string{"container_id": "docker://" + victim, "process": "dd"})
		alerts, err := p.alerts()
		if err != nil {
			return err
		}
		firing = map[string]alert{}
		for _, a := range alerts {
			switch a.Labels["container_id"] {
			case "docker://" + quiet:
				return errStop{fmt.Errorf("alert %s fires for the container without OOM kills", a.Labels["alertname"])}
			case "docker://" + victim:
				if a.State == "firing" && (!named || a.Labels["process"] == "dd") {
					firing[a.Labels["alertname"]] = a
				}
			}
		}
		for _, name := range []string{"ContainerOOMKilled", "ContainerOOMKillLoop"} {
			if _, ok := firing[name]; !ok {
				return fmt.Errorf("%s not firing yet (process named by the exporter: %v; alerts: %v)", name, named, alerts)
			}
		}
		return nil
	})
	t.Logf("alerts firing %s after the third kill showed on /metrics", time.Since(start).Round(100*time.Millisecond))
	a := firing["ContainerOOMKilled"]
	if proc := a.Labels["process"]; proc != "" {
		t.Logf("the alerts name the killed process: %s", proc)
	}
	name := fmt.Sprintf("fluentd-e2e-%d", os.Getpid())
	if !strings.Contains(a.Annotations["summary"], "container "+name) || !strings.Contains(a.Annotations["description"], "docker://"+victim) {
		t.Errorf("annotations do not name the container: %v", a.Annotations)
	}
	if loop := firing["ContainerOOMKillLoop"]; loop.Labels["severity"] != "critical" || !strings.HasPrefix(loop.Annotations["description"], "3 or more OOM kills") {
		t.Errorf("ContainerOOMKillLoop: %v %v", loop.Labels, loop.Annotations)
	}
}

type alert struct {
	Labels      map[string]string
	Annotations map[string]string
	State       string
}

type prometheusServer struct {
	addr string
}

// startPrometheus runs Debian's prometheus, scraping target every second and
// evaluating the project's rules every second, until the test ends.
func startPrometheus(t *testing.T, target string) *prometheusServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus (Debian package prometheus) is needed: %v", err)
	}
	rules, err := filepath.Abs("../../deploy/prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// honor_labels as docs/deploy.md says: the exporter's namespace, pod and
	// container labels are the workload's.
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: missing-container-metrics
    honor_labels: true
    static_configs:
      - targets: [%q]
`, rules, target)
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var mu sync.Mutex
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, &logs}, lockedWriter{&mu, &logs}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("prometheus log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	p := &prometheusServer{addr: addr}
	eventually(t, 60*time.Second, func() error {
		select {
		case <-done:
			return errStop{fmt.Errorf("prometheus exited")}
		default:
		}
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

// api GETs a Prometheus API path and decodes its data.
func (p *prometheusServer) api(path string, data any) error {
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s %s", path, body.Status, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

func (p *prometheusServer) alerts() ([]alert, error) {
	var data struct{ Alerts []alert }
	err := p.api("/api/v1/alerts", &data)
	return data.Alerts, err
}
