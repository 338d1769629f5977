package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Slow clients that open connections and never finish their request
// headers neither block scrapes nor hold a connection for ever: the server
// closes each once its header timeout (10 s) passes.
func TestSlowClientsDoNotBlockScrapes(t *testing.T) {
	t.Parallel()
	e := startExporter(t, "--no-kernel")
	const slow = 64
	conns := make([]net.Conn, 0, slow)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	opened := time.Now() // before the first connection: the server's 10 s run from each one's accept
	for range slow {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.scrape(); err != nil {
		t.Fatalf("scrape with %d slow clients connected: %v", slow, err)
	}
	var first time.Duration
	for i, c := range conns {
		// A generous deadline: on a loaded host the server's timer fires late.
		_ = c.SetReadDeadline(opened.Add(40 * time.Second))
		// The server answers 408 or just closes; either way the read ends
		// with the connection closed.
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("slow connection %d still open after %s: no header timeout", i, time.Since(opened).Round(time.Second))
		}
		if i == 0 {
			first = time.Since(opened)
		}
	}
	// The server's header timeout closed them, not something sooner.
	if first < 10*time.Second {
		t.Fatalf("the first slow connection was closed %s after it opened, before the 10 s header timeout", first.Round(100*time.Millisecond))
	}
	t.Logf("%d slow connections closed by the server's header timeout, %s to %s after they opened", slow, first.Round(100*time.Millisecond), time.Since(opened).Round(100*time.Millisecond))
}

// No debug endpoint is served: pprof and expvar would hand anyone who can
// reach the port the process's internals.
func TestNoDebugEndpoints(t *testing.T) {
	t.Parallel()
	e := startExporter(t, "--no-kernel")
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine", "/debug/vars"} {
		resp, err := http.Get("http://" + e.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
	// And what is served answers: the landing page and the health check.
	for _, path := range []string{"/", "/healthz", "/metrics"} {
		resp, err := http.Get("http://" + e.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s (%q), want 200", path, resp.Status, line)
		}
	}
}

// An exporter with every source off runs (an arm64 smoke test does), and
// says at start that it will export no container's kills.
func TestEverySourceOffWarns(t *testing.T) {
	t.Parallel()
	e := startExporter(t, "--no-docker", "--no-containerd", "--no-kernel")
	if l := e.logs(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "every source is off") {
		t.Errorf("no warning of every source off:\n%s", l)
	}
}
