package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"

	"github.com/missing-container-metrics/missing-container-metrics/internal/collector"
	"github.com/missing-container-metrics/missing-container-metrics/internal/pages"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

func TestFlagDefaults(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *cfg.web.WebListenAddresses; len(got) != 1 || got[0] != ":3001" {
		t.Errorf("listen address %v", got)
	}
	if !cfg.docker || cfg.dockerHost != "unix:///var/run/docker.sock" || cfg.retention != 5*time.Minute || cfg.legacyNames {
		t.Errorf("defaults: %+v", cfg)
	}
}

// The exporter runs on one CPU unless told otherwise, by the flag or by
// Go's own GOMAXPROCS, which then means the same to the exporter as to Go.
func TestGOMAXPROCS(t *testing.T) {
	for _, c := range []struct {
		env  string
		args []string
		want int
	}{{"", nil, 1}, {"3", nil, 3}, {"3", []string{"--runtime.gomaxprocs=2"}, 2}} {
		t.Setenv("GOMAXPROCS", c.env)
		cfg, err := parseFlags(c.args)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.maxProcs != c.want {
			t.Errorf("GOMAXPROCS=%q %v: %d CPUs, want %d", c.env, c.args, cfg.maxProcs, c.want)
		}
	}
	for _, c := range []struct{ env, arg, want string }{
		{"", "--runtime.gomaxprocs=0", "--runtime.gomaxprocs must be 1 or more"},
		{"many", "", `GOMAXPROCS="many" (--runtime.gomaxprocs): want a whole number, 1 or more`},
	} {
		t.Setenv("GOMAXPROCS", c.env)
		var args []string
		if c.arg != "" {
			args = []string{c.arg}
		}
		if _, err := parseFlags(args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("GOMAXPROCS=%q %q: error %v, want %q", c.env, c.arg, err, c.want)
		}
	}
}

// The earlier tool's environment variables keep working.
func TestEarlierToolsEnvironment(t *testing.T) {
	t.Setenv("BIND_ADDRESS", ":9999")
	t.Setenv("DOCKER", "false")
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *cfg.web.WebListenAddresses; len(got) != 1 || got[0] != ":9999" {
		t.Errorf("BIND_ADDRESS ignored: %v", got)
	}
	if cfg.docker {
		t.Error("DOCKER=false ignored")
	}
	if cfg.dockerHost != "tcp://127.0.0.1:2375" {
		t.Errorf("DOCKER_HOST ignored: %s", cfg.dockerHost)
	}
}

func TestNewVariablesWinOverOldOnes(t *testing.T) {
	t.Setenv("BIND_ADDRESS", ":9999")
	t.Setenv(envPrefix+"WEB_LISTEN_ADDRESS", ":8888")
	t.Setenv(envPrefix+"RETENTION", "1h")
	t.Setenv(envPrefix+"COMPAT_LEGACY_METRIC_NAMES", "true")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *cfg.web.WebListenAddresses; len(got) != 1 || got[0] != ":8888" {
		t.Errorf("listen address %v", got)
	}
	if cfg.retention != time.Hour || !cfg.legacyNames {
		t.Errorf("environment ignored: %+v", cfg)
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
	cfg, err := parseFlags([]string{"--docker.host=unix:///x.sock", "--no-docker", "--retention=10s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.dockerHost != "unix:///x.sock" || cfg.docker || cfg.retention != 10*time.Second {
		t.Errorf("flags: %+v", cfg)
	}
}

func TestBadFlagsAreRejected(t *testing.T) {
	for _, args := range [][]string{{"--retention=-1s"}, {"--retention=soon"}, {"--no-such-flag"},
		// Paths the exporter serves itself: the server would refuse them at start.
		{"--web.telemetry-path=/"}, {"--web.telemetry-path=/healthz"}, {"--web.telemetry-path=metrics"},
		{"--web.telemetry-path="}, {"--web.telemetry-path=/debug/pprof/x", "--web.enable-pprof"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// A telemetry path of one's own is served, beside the others.
func TestOwnTelemetryPath(t *testing.T) {
	cfg, err := parseFlags([]string{"--web.telemetry-path=/prom/metrics", "--web.enable-pprof"})
	if err != nil {
		t.Fatal(err)
	}
	h := routes(cfg, pages.Site{}, store.New(time.Minute), nil, promslog.NewNopLogger())
	for path, want := range map[string]int{"/prom/metrics": 200, "/healthz": 200, "/": 200, "/metrics": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
	}
}

// The timeouts docs/reliability.md gives. The header timeout is also tested
// end to end (TestSlowClientsDoNotBlockScrapes), as is the stall of a scrape
// (collector.TestStalledReadersDoNotStarveScrapes).
func TestServerTimeouts(t *testing.T) {
	srv := newServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout != 10*time.Second || srv.ReadTimeout != 30*time.Second || srv.WriteTimeout != 60*time.Second || srv.IdleTimeout != 2*time.Minute {
		t.Fatalf("timeouts: headers %s, request %s, answer %s, idle %s", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}

func TestKernelFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.kernel || cfg.kernelCfg.SysFS != "/sys" || cfg.kernelCfg.ProcFS != "/proc" || cfg.kernelCfg.Kmsg != "/dev/kmsg" {
		t.Errorf("kernel defaults: %v %+v", cfg.kernel, cfg.kernelCfg)
	}
	t.Setenv(envPrefix+"PATH_SYSFS", "/host/sys")
	cfg, err = parseFlags([]string{"--no-kernel", "--path.procfs=/host/proc", "--path.kmsg=/host/kmsg"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.kernel || cfg.kernelCfg.SysFS != "/host/sys" || cfg.kernelCfg.ProcFS != "/host/proc" || cfg.kernelCfg.Kmsg != "/host/kmsg" {
		t.Errorf("kernel flags: %v %+v", cfg.kernel, cfg.kernelCfg)
	}
	// An empty --path.kmsg: the kernel log is not read.
	if cfg, err = parseFlags([]string{"--path.kmsg="}); err != nil || cfg.kernelCfg.Kmsg != "" {
		t.Errorf("--path.kmsg= gave %q (%v)", cfg.kernelCfg.Kmsg, err)
	}
}

func TestContainerdFlags(t *testing.T) {
	t.Setenv("CONTAINERD", "false")
	cfg, err := parseFlags([]string{"--containerd.address=unix:///x/containerd.sock", "--containerd.namespaces=k8s.io,default", "--containerd.namespaces=other"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.containerd {
		t.Error("CONTAINERD=false ignored")
	}
	if cfg.containerdAddress != "unix:///x/containerd.sock" || len(cfg.containerdNamespaces) != 2 {
		t.Errorf("containerd flags: %q %q", cfg.containerdAddress, cfg.containerdNamespaces)
	}
}

// /metrics behind exporter-toolkit with basic auth, as run serves it: each
// family once — the containers' and the exporter's own, Go and process
// metrics — plain and gzip-compressed.
func TestMetricsBehindBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"--web.config.file=" + webConfig})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(time.Minute)
	st.AddSource("docker")
	st.SetUp("docker", true, nil) // listed
	st.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: "0123456789abcdef", Name: `we"b`, Pod: "web-1", Namespace: "shop"},
		State: store.State{FinishedAt: time.Unix(1, 0), ExitCode: 137, OOMKilled: true}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: routes(cfg, pages.Site{}, st, nil, promslog.NewNopLogger())}
	go func() { _ = web.Serve(l, srv, cfg.web, promslog.NewNopLogger()) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + l.Addr().String() + "/metrics"

	get := func(encoding string, auth bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept-Encoding", encoding) // set: the transport leaves the body compressed
		if auth {
			req.SetBasicAuth("prometheus", "secret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	if resp := get("identity", false); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without credentials: %s", resp.Status)
	}
	for _, encoding := range []string{"identity", "gzip"} {
		resp := get(encoding, true)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != collector.ContentType {
			t.Fatalf("%s: %s, Content-Type %q", encoding, resp.Status, resp.Header.Get("Content-Type"))
		}
		body := io.Reader(resp.Body)
		if encoding == "gzip" {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("asked for gzip, got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			if body, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		text, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("%s: %v", encoding, err)
		}
		for _, name := range []string{"container_ooms_total", "container_last_exit_code", "missing_container_metrics_source_up",
			"missing_container_metrics_build_info", "go_goroutines", "process_start_time_seconds"} {
			if len(mfs[name].GetMetric()) == 0 {
				t.Errorf("%s: no %s", encoding, name)
			}
		}
		if n := bytes.Count(text, []byte("# TYPE ")); n != len(mfs) {
			t.Errorf("%s: %d TYPE lines for %d families", encoding, n, len(mfs))
		}
	}
}

// The profiler is served only when --web.enable-pprof asks for it.
func TestPprofOnlyWithItsFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, http.StatusNotFound},
		{[]string{"--web.enable-pprof"}, http.StatusOK},
	} {
		cfg, err := parseFlags(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		h := routes(cfg, pages.Site{}, store.New(time.Minute), nil, promslog.NewNopLogger())
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Code != tc.want {
				t.Errorf("%v: GET %s: %d, want %d", tc.args, path, rec.Code, tc.want)
			}
		}
	}
}

// A telemetry path is a plain path: ServeMux's wildcards, {$}, spaces and
// escapes are refused with a clear error, not a panic at start, and never
// take the landing page's place.
func TestTelemetryPathMustBePlain(t *testing.T) {
	for _, path := range []string{"/{x...}", "/m/{a}/{a}", "/x y", "/m{x}", "/{$}", "/metrics/{$}",
		"/a/../metrics", "/a//metrics", "/./metrics", "/metrics%2F", "/metrics\n", "/métrics", "GET /metrics"} {
		_, err := parseFlags([]string{"--web.telemetry-path=" + path})
		if err == nil || !strings.Contains(err.Error(), "--web.telemetry-path") {
			t.Errorf("%q: %v, want an error naming the flag", path, err)
		}
	}
	for _, path := range []string{"/metrics", "/prom/metrics", "/metrics/", "/a-b_c.d~e/f:g@h!$&'()*+,;="} {
		if _, err := parseFlags([]string{"--web.telemetry-path=" + path}); err != nil {
			t.Errorf("%q refused: %v", path, err)
		}
	}
}

// Whatever the telemetry path, either it is refused, or the routes are
// made without a panic, the mux routes it to the metrics, and / still to
// the landing page.
func FuzzTelemetryPath(f *testing.F) {
	for _, p := range []string{"/metrics", "/{$}", "/m/{a}/{a}", "/x y", "/kills/", "/debug/pprof", "/metrics/", "/a/b/"} {
		f.Add(p)
	}
	st := store.New(time.Minute)
	f.Fuzz(func(t *testing.T, path string) {
		cfg, err := parseFlags([]string{"--web.telemetry-path=" + path})
		if err != nil {
			return
		}
		mux, ok := routes(cfg, pages.Site{}, st, nil, promslog.NewNopLogger()).(*http.ServeMux)
		if !ok {
			t.Fatal("routes is no ServeMux")
		}
		if _, pattern := mux.Handler(httptest.NewRequest("GET", "/", nil)); pattern != "/" {
			t.Fatalf("%q: / goes to %q, not the landing page", path, pattern)
		}
		if _, pattern := mux.Handler(httptest.NewRequest("GET", path, nil)); pattern != path {
			t.Fatalf("%q: the metrics path goes to %q", path, pattern)
		}
	})
}
