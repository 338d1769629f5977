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
	Landing(st, "1.2.3", "/metrics").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	for _, want := range []string{"1.2.3", `href="/metrics"`, "docker", "down", "&lt;refused&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("landing page lacks %q:\n%s", want, body)
		}
	}
	rec = httptest.NewRecorder()
	Landing(st, "1.2.3", "/metrics").ServeHTTP(rec, httptest.NewRequest("GET", "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/nope: %d", rec.Code)
	}
}

func TestHealthz(t *testing.T) {
	rec := httptest.NewRecorder()
	Healthz().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz: %d", rec.Code)
	}
}
