package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"

	"github.com/missing-container-metrics/missing-container-metrics/internal/pages"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// The kills' pages are behind the same basic auth as /metrics: they name
// the node's containers and processes.
func TestKillsBehindBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"--web.config.file=" + webConfig, "--kills.kept=10"})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(time.Minute)
	st.SetKillsKept(cfg.killsKept)
	st.Apply(store.OOMVictim{Host: true, Process: "victim-proc", At: time.Unix(100, 0), Seq: 1, Live: true, Details: store.KillDetails{Scope: store.ScopeNode}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: routes(cfg, pages.Site{}, st, nil, promslog.NewNopLogger())}
	go func() { _ = web.Serve(l, srv, cfg.web, promslog.NewNopLogger()) }()
	t.Cleanup(func() { _ = srv.Close() })

	for _, tc := range []struct{ path, contentType string }{
		{"/kills", "text/html; charset=utf-8"},
		{"/api/v1/kills", "application/json"},
		{"/", "text/html; charset=utf-8"},
	} {
		for _, auth := range []bool{false, true} {
			req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+tc.path, nil)
			if auth {
				req.SetBasicAuth("prometheus", "secret")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			switch {
			case !auth && (resp.StatusCode != http.StatusUnauthorized || strings.Contains(body.String(), "victim-proc")):
				t.Errorf("%s without credentials: %s: %s", tc.path, resp.Status, body.String())
			case auth && (resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.contentType || !strings.Contains(body.String(), "victim-proc")):
				t.Errorf("%s with credentials: %s, %q: %s", tc.path, resp.Status, resp.Header.Get("Content-Type"), body.String())
			}
			if auth && tc.path == "/api/v1/kills" {
				var out struct{ Kills []struct{ Place string } }
				if err := json.Unmarshal(body.Bytes(), &out); err != nil || len(out.Kills) != 1 || out.Kills[0].Place != "host" {
					t.Errorf("/api/v1/kills: %v %+v", err, out)
				}
			}
		}
	}
}

// The telemetry path cannot take the kills' pages.
func TestTelemetryPathCannotTakeTheKillsPages(t *testing.T) {
	for _, path := range []string{"/kills", "/api/v1/kills"} {
		if _, err := parseFlags([]string{"--web.telemetry-path=" + path}); err == nil || !strings.Contains(err.Error(), "is taken") {
			t.Errorf("--web.telemetry-path=%s: %v", path, err)
		}
	}
}

// blockedWriter is a client that does not read: its first Write tells
// entered, and every Write waits until release is closed.
type blockedWriter struct {
	header  http.Header
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (b *blockedWriter) Header() http.Header { return b.header }
func (b *blockedWriter) WriteHeader(int)     {}
func (b *blockedWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return len(p), nil
}

// The landing page and the kills' pages share the in-flight limit of
// /metrics, 10: an eleventh request while ten are being answered is
// answered 503 at once, instead of one more walk of the store; /metrics
// and /healthz have their own. Once the ten are done, pages are served
// again.
func TestPagesInFlightLimit(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(time.Minute)
	st.Apply(store.OOMVictim{Host: true, Process: "victim", At: time.Unix(100, 0), Seq: 1, Live: true, Details: store.KillDetails{Scope: store.ScopeNode}})
	h := routes(cfg, pages.Site{}, st, nil, promslog.NewNopLogger())
	release := make(chan struct{})
	var wg sync.WaitGroup
	paths := []string{"/", "/kills", "/api/v1/kills"}
	for i := range maxPagesInFlight {
		w := &blockedWriter{header: http.Header{}, entered: make(chan struct{}), release: release}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.ServeHTTP(w, httptest.NewRequest("GET", paths[i%len(paths)], nil))
		}()
		select {
		case <-w.entered:
		case <-time.After(20 * time.Second):
			t.Fatalf("request %d is not being answered after 20 s", i)
		}
	}
	for _, p := range paths {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s with %d page requests in flight: %d, want 503", p, maxPagesInFlight, rec.Code)
		}
	}
	for _, p := range []string{"/metrics", "/healthz"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s while the pages are at their limit: %d, want 200", p, rec.Code)
		}
	}
	close(release)
	wg.Wait()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/kills", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "victim") {
		t.Errorf("/kills once the others are done: %d", rec.Code)
	}
}
