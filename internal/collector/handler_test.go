package collector

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	dto "github.com/prometheus/client_model/go"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
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

// A scrape beyond MaxRequestsInFlight waits for a slot for as long as its
// scrape timeout allows, then is answered 503.
func TestHandlerLimitsScrapesInFlight(t *testing.T) {
	inGather, release := make(chan struct{}), make(chan struct{})
	c := New(fixture(), Options{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	first := true
	h := c.Handler(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		if first { // the first scrape stays in flight until released
			first = false
			close(inGather)
			<-release
		}
		return reg.Gather()
	}), HandlerOpts{MaxRequestsInFlight: 1})
	done := make(chan int)
	go func() { done <- serve(h, "/metrics", nil).Code }()
	<-inGather
	if code := serve(h, "/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"0.6"}}).Code; code != http.StatusServiceUnavailable {
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

// Clients that ask for a large exposition and never read it must not keep
// Prometheus from scraping: ten of them (MaxRequestsInFlight, as main sets
// it) held every slot for as long as the server's write timeout, and the
// next real scrape was answered 503. A stalled write now ends after
// StallTimeout, and a scrape waits for a free slot for as long as its
// scrape timeout allows.
func TestStalledReadersDoNotStarveScrapes(t *testing.T) {
	const containers, stalled = 10000, 10
	c := New(benchStore(containers, false), Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	srv := httptest.NewUnstartedServer(c.Handler(reg, HandlerOpts{MaxRequestsInFlight: stalled}))
	srv.Config.ReadHeaderTimeout, srv.Config.WriteTimeout = 10*time.Second, 60*time.Second // as main sets them
	srv.Start()
	defer srv.Close()

	// Each stalled client has a tiny receive buffer and reads nothing.
	dialer := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); cerr != nil {
			return cerr
		}
		return err
	}}
	for range stalled {
		conn, err := dialer.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		// It got its slot once the server has begun to answer it.
		if _, err := conn.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}

	began := time.Now()
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10") // Prometheus' default
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a scrape behind %d stalled clients: %s, %v", stalled, resp.Status, err)
	}
	if n := len(parse(t, body)["container_ooms_total"].GetMetric()); n != containers {
		t.Fatalf("%d containers in the scrape, want %d", n, containers)
	}
	t.Logf("a scrape of %d containers (%d bytes) behind %d stalled clients took %s", containers, len(body), stalled, time.Since(began).Round(time.Millisecond))
}

// At start a scrape waits until every source has told what it found, so
// that no container is served with a count below what the runtime and the
// kernel have counted already (Prometheus would take the lower count for a
// counter reset); one that cannot wait that long is answered 503, with no
// sample at all.
func TestScrapeWaitsUntilSourcesSettle(t *testing.T) {
	s := store.New(time.Minute)
	s.AddSource("docker")
	s.AddSource(store.CgroupSource)
	c := New(s, Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	h := c.Handler(reg, HandlerOpts{MaxRequestsInFlight: 1})
	short := http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"0.7"}}
	if rec := serve(h, "/metrics", short); rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "container_ooms_total") {
		t.Fatalf("before any source settled: %d\n%s", rec.Code, rec.Body)
	}
	s.SetUp("docker", false, errors.New("dial unix /var/run/docker.sock: connect: no such file or directory"))
	if rec := serve(h, "/metrics", short); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("before the cgroup reader settled: %d", rec.Code)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- serve(h, "/metrics", nil) }()
	s.SetUp(store.CgroupSource, true, nil)
	if rec := <-done; rec.Code != http.StatusOK {
		t.Fatalf("a scrape that waited for the sources: %d", rec.Code)
	}
}
