package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingProxy sits on a unix socket between the exporter and dockerd and
// records every request it forwards.
type recordingProxy struct {
	mu       sync.Mutex
	requests []string // "METHOD /path"
}

func (p *recordingProxy) record(r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, r.Method+" "+r.URL.Path)
}

func (p *recordingProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

func startRecordingProxy(t *testing.T) (*recordingProxy, string) {
	t.Helper()
	return startRecordingProxyTo(t, env.dockerHost)
}

// startRecordingProxyTo starts a recording proxy to the Docker API at host
// (unix://...) and returns it and its own host.
func startRecordingProxyTo(t *testing.T, host string) (*recordingProxy, string) {
	t.Helper()
	upstream := strings.TrimPrefix(host, "unix://")
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
			r.Out.Host = "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", upstream)
		}},
		FlushInterval: -1, // stream the event stream as it comes
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.record(r)
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p, "unix://" + sock
}

// The exporter holds the Docker socket, which is root on the host: prove it
// only ever reads. Every request it sends while containers are created,
// started, OOM-killed, exec'd into, renamed and removed is recorded.
func TestDockerSourceOnlyReads(t *testing.T) {
	t.Parallel()
	proxy, host := startRecordingProxy(t)
	e := startExporter(t, "--docker.host="+host)
	id := run(t, nil, oomOnce+"; sleep 100000")
	e.waitCounts(t, id, counts{OOMs: 1})
	if _, err := dockerErr("exec", id, "sh", "-c", "exit 5"); err == nil {
		t.Fatal("exec exited 0")
	}
	docker(t, "rename", id, fmt.Sprintf("renamed-%d", time.Now().UnixNano()))
	docker(t, "rm", "-f", id)
	waitEvents(t, e, "docker", 5)

	checkReads(t, proxy, regexp.MustCompile(`^(GET|HEAD) (/v[0-9.]+)?/(_ping|version|events|containers/json|containers/[0-9a-f]{64}/json)$`))
}

// checkReads fails the test unless every request the proxy forwarded
// matches readOnly, and it forwarded some.
func checkReads(t *testing.T, proxy *recordingProxy, readOnly *regexp.Regexp) {
	t.Helper()
	reqs := proxy.seen()
	if len(reqs) == 0 {
		t.Fatal("no request went through the proxy")
	}
	for _, r := range reqs {
		if !readOnly.MatchString(r) {
			t.Errorf("request that is not a known read: %s", r)
		}
	}
	t.Logf("%d requests, all reads", len(reqs))
}
