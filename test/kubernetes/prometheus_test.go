package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// A real Prometheus in the cluster's way: the scrape config of
// docs/deploy.md, kubernetes_sd_configs against the node's apiserver, finds
// the DaemonSet's pod and scrapes it over the pod network; the rules of
// deploy/prometheus/rules.yml fire ContainerOOMKilled for a worker
// OOM-killed while its container lives on, with the workload's namespace,
// pod and container, and the node.
func TestPrometheus(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	p := startPrometheus(t, "")
	ns := newNamespace(t, "prometheus")
	rec := newRecords(t)
	createPod(t, ns, newPod("fluentd", rec, corev1.RestartPolicyAlways,
		container("fluentd", oomKill("fluentd-worker")+`; [ $? = 137 ] && echo oom >> /rec/ooms; exec sleep 100000`)))
	rec.waitLines(t, 2*time.Minute, "ooms", "oom", 1)
	id := status(waitSettled(t, ns, "fluentd", "fluentd", 0), "fluentd").ContainerID
	e.until(t, time.Minute, func(s *scrape) error { return wantCounts(s, id, 1, 0, -1) })

	t0 := time.Now()
	var fired alert
	eventually(t, 2*time.Minute, func() error {
		alerts, err := p.alerts()
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "ContainerOOMKilled" && a.Labels["container_id"] == id && a.State == "firing" {
				fired = a
				return nil
			}
		}
		var targets struct {
			ActiveTargets []struct {
				ScrapeURL, Health, LastError string
			}
		}
		if err := p.api("/api/v1/targets", &targets); err != nil {
			return err
		}
		return fmt.Errorf("ContainerOOMKilled not firing for %s; targets: %+v", id, targets.ActiveTargets)
	})
	t.Logf("ContainerOOMKilled firing %s after the kill showed on /metrics", time.Since(t0).Round(100*time.Millisecond))
	want := map[string]string{"namespace": ns, "pod": "fluentd", "container": "fluentd", "node": env.node.Name}
	for k, v := range want {
		if fired.Labels[k] != v {
			t.Errorf("alert label %s=%q, want %q (labels %v)", k, fired.Labels[k], v, fired.Labels)
		}
	}
	if !strings.Contains(fired.Annotations["summary"], ns+"/fluentd container fluentd") {
		t.Errorf("summary: %q", fired.Annotations["summary"])
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

// scrapeConfig is the scrape config docs/deploy.md gives, told where the
// apiserver is (Prometheus runs outside the cluster here).
func scrapeConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs/deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "```yaml\nscrape_configs:\n")
	if start < 0 {
		t.Fatal("docs/deploy.md gives no scrape_configs (```yaml) block")
	}
	block := doc[start+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	const role = "      - role: pod\n"
	if !strings.Contains(block, role) {
		t.Fatalf("docs/deploy.md's scrape config has no %q:\n%s", role, block)
	}
	return strings.Replace(block, role, role+fmt.Sprintf(`        api_server: %s
        authorization: {credentials: %s}
        tls_config: {ca_file: %s}
`, env.node.Server, env.node.Token, env.node.CAFile), 1)
}

// startPrometheus runs Prometheus on 127.0.0.1 with the scrape config of
// docs/deploy.md and the project's rules, scraping and evaluating every 2 s,
// until the test ends. only, if set, is the namespace of the one exporter to
// scrape, as on a node that has one: other tests install theirs on this
// node too. jobs are scrape configs to add, in YAML. Upstream's
// Prometheus (MCM_PROMETHEUS, test/kubernetes/prepare.sh builds it):
// Debian's is built without the Kubernetes service discovery.
func startPrometheus(t *testing.T, only string, jobs ...string) *prometheusServer {
	t.Helper()
	bin := os.Getenv("MCM_PROMETHEUS")
	rules, err := filepath.Abs(filepath.Join(repoRoot, "deploy/prometheus/rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	scrape := scrapeConfig(t)
	if only != "" {
		const relabel = "    relabel_configs:\n"
		if !strings.Contains(scrape, relabel) {
			t.Fatalf("docs/deploy.md's scrape config has no %q:\n%s", relabel, scrape)
		}
		scrape = strings.Replace(scrape, relabel, relabel+fmt.Sprintf(`      - source_labels: [__meta_kubernetes_namespace]
        regex: %s
        action: keep
`, regexp.QuoteMeta(only)), 1)
	}
	config := fmt.Sprintf("global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files: [%q]\n%s%s", rules, scrape, strings.Join(jobs, ""))
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var mu sync.Mutex
	var logs bytes.Buffer
	w := lockedWriter{&mu, &logs}
	cmd.Stdout, cmd.Stderr = w, w
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
			t.Logf("prometheus config:\n%s\nprometheus log:\n%s", config, logs.String())
			mu.Unlock()
		}
	})
	p := &prometheusServer{addr: addr}
	eventually(t, time.Minute, func() error {
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

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
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
