package pages

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

func TestLandingShowsSourcesAndTheirState(t *testing.T) {
	st := store.New(time.Minute)
	st.SetUp("docker", false, errors.New("dial unix /var/run/docker.sock: <refused>"))
	rec := httptest.NewRecorder()
	Landing(st, site).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	for _, want := range []string{"1.2.3", `href="/metrics"`, "docker", "down", "&lt;refused&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("landing page lacks %q:\n%s", want, body)
		}
	}
	rec = httptest.NewRecorder()
	Landing(st, site).ServeHTTP(rec, httptest.NewRequest("GET", "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/nope: %d", rec.Code)
	}
}

// The landing page shows the latest five kills (a group kill is one), and
// leads to the others.
func TestLandingShowsTheLatestKills(t *testing.T) {
	f := sample()
	body := get(t, Landing(f.st, site), "/").Body.String()
	rows := rowsOf(t, body)
	if len(rows) != 5 || !strings.Contains(rows[0], "stray") || !strings.Contains(rows[4], "postgres") {
		t.Errorf("rows:\n%s", strings.Join(rows, "\n"))
	}
	for _, want := range []string{`href="/kills"`, `href="/api/v1/kills"`} {
		if !strings.Contains(body, want) {
			t.Errorf("landing page lacks %s", want)
		}
	}
}

func TestHealthz(t *testing.T) {
	rec := httptest.NewRecorder()
	Healthz().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz: %d", rec.Code)
	}
}
