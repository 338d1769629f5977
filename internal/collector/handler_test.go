package collector

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
)

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                             false,
		"gzip":                         true,
		"GZIP":                         true,
		"identity":                     false,
		"*":                            false,
		"deflate, gzip;q=1.0, *;q=0.5": true,
		"gzip;q=0":                     false,
		"gzip; q=0.001":                true,
		"gzip;q=x":                     false,
		"x-gzip, br":                   false,
		"zstd,gzip":                    true,
	} {
		if got := acceptsGzip([]string{header}); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", header, got, want)
		}
	}
	if !acceptsGzip([]string{"br", "gzip"}) {
		t.Error("gzip in a second Accept-Encoding header not seen")
	}
}

// newHandler serves the fixture with the build info beside it, as main does.
func newHandler(opts Options) http.Handler {
	c := New(fixture(), opts)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c, versioncollector.NewCollector(Namespace))
	return c.Handler(reg, HandlerOpts{MaxRequestsInFlight: 1})
}

func serve(h http.Handler, target string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// Every scrape is answered in the text format 0.0.4, also one that asks for
// OpenMetrics or protobuf; gzip-compressed when gzip is accepted.
func TestHandlerAnswersTextAndGzip(t *testing.T) {
	h := newHandler(Options{})
	plain := serve(h, "/metrics", http.Header{"Accept": {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"}})
	if plain.Code != http.StatusOK || plain.Header().Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8; escaping=underscores" {
		t.Fatalf("%d, Content-Type %q", plain.Code, plain.Header().Get("Content-Type"))
	}
	if plain.Header().Get("Content-Encoding") != "" || plain.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("headers %v", plain.Header())
	}
	mfs := parse(t, plain.Body.Bytes())
	if len(mfs["container_ooms_total"].GetMetric()) != 2 || len(mfs["missing_container_metrics_build_info"].GetMetric()) != 1 {
		t.Fatalf("families missing:\n%s", plain.Body)
	}

	zipped := serve(h, "/metrics", http.Header{"Accept-Encoding": {"gzip"}, "Accept": {"application/openmetrics-text;version=1.0.0"}})
	if zipped.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("headers %v", zipped.Header())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unzipped, plain.Body.Bytes()) {
		t.Errorf("gzip-compressed scrape differs:\n%s", unzipped)
	}
}

// name[] selects families, as with promhttp: the collector's own and the
// registry's alike.
func TestHandlerSelectsFamiliesByName(t *testing.T) {
	rec := serve(newHandler(Options{}), "/metrics?name[]=container_restarts_total&name[]=missing_container_metrics_build_info", nil)
	var names []string
	for name := range parse(t, rec.Body.Bytes()) {
		names = append(names, name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"container_restarts_total", "missing_container_metrics_build_info"}) {
		t.Fatalf("families %q:\n%s", names, rec.Body)
	}
}

// A scrape beyond MaxRequestsInFlight is answered 503 at once.
func TestHandlerLimitsScrapesInFlight(t *testing.T) {
	inRefresh, release := make(chan struct{}), make(chan struct{})
	first := true
	h := newHandler(Options{Refresh: func() {
		if first {
			first = false
			close(inRefresh)
			<-release
		}
	}})
	done := make(chan int)
	go func() { done <- serve(h, "/metrics", nil).Code }()
	<-inRefresh
	if code := serve(h, "/metrics", nil).Code; code != http.StatusServiceUnavailable {
		t.Errorf("second scrape in flight: %d, want 503", code)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Errorf("first scrape: %d", code)
	}
	if code := serve(h, "/metrics", nil).Code; code != http.StatusOK {
		t.Errorf("scrape after the first: %d", code)
	}
}
