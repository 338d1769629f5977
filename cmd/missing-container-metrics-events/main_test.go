package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
)

func TestMain(m *testing.M) {
	setKlogLogger = func(*slog.Logger) {}
	os.Exit(m.Run())
}

// Without a node, or without API access, the companion says so and ends.
func TestConfigErrors(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	var log bytes.Buffer
	if code := run(context.Background(), nil, strings.NewReader(""), &log); code != 2 || !strings.Contains(log.String(), "--kubernetes.node") {
		t.Errorf("no node: status %d, %s", code, log.String())
	}
	log.Reset()
	t.Setenv("NODE_NAME", "n1")
	if code := run(context.Background(), nil, strings.NewReader(""), &log); code != 1 || !strings.Contains(log.String(), "no access to the Kubernetes API") {
		t.Errorf("not in a cluster: status %d, %s", code, log.String())
	}
	log.Reset()
	if code := run(context.Background(), []string{"--kubernetes.kubeconfig=/nonexistent"}, strings.NewReader(""), &log); code != 1 || !strings.Contains(log.String(), "/nonexistent") {
		t.Errorf("a missing kubeconfig: status %d, %s", code, log.String())
	}
}

// fakeAPI is an apiserver that serves pod p of namespace ns on node n1 and
// keeps the reasons of the events posted; it returns a kubeconfig for it.
func fakeAPI(t *testing.T) (kubeconfig string, posted func() []string) {
	t.Helper()
	var mu sync.Mutex
	var reasons []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/ns/pods/p":
			fmt.Fprint(w, `{"kind":"Pod","apiVersion":"v1","metadata":{"namespace":"ns","name":"p","uid":"uid-p"},"spec":{"nodeName":"n1","containers":[{"name":"c"}]}}`)
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/namespaces/ns/events":
			var e map[string]any
			_ = json.NewDecoder(r.Body).Decode(&e)
			mu.Lock()
			reasons = append(reasons, fmt.Sprint(e["reason"]))
			mu.Unlock()
			e["metadata"].(map[string]any)["resourceVersion"] = "1"
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(e)
		default:
			http.Error(w, "not faked", http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), reasons...)
	}
}

// With a kubeconfig, the companion records an Event for each kill on its
// input, in the kill's namespace, and ends with status 0 when its input
// ends; it logs in JSON, as the exporter reads it back.
func TestRunWithKubeconfig(t *testing.T) {
	kubeconfig, posted := fakeAPI(t)
	var in, log bytes.Buffer
	main := false
	_ = pipe.Encode(&in, pipe.Kill{Namespace: "ns", Pod: "p", PodUID: "uid-p", Container: "c", Process: "w", PID: 7, MainProcess: &main, Outcome: "lived_on"})
	if code := run(context.Background(), []string{"--kubernetes.node=n1", "--kubernetes.kubeconfig=" + kubeconfig, "--log.format=json"}, &in, &log); code != 0 {
		t.Fatalf("status %d:\n%s", code, log.String())
	}
	// It waited for the recorder to write the Event before it ended.
	if got := posted(); len(got) != 1 || got[0] != "ProcessOOMKilled" {
		t.Fatalf("events posted: %v\n%s", got, log.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line that is not JSON: %s", line)
		}
	}
}

// With --socket, the companion runs on its own (the chart's sidecar): it
// listens on the socket, where a socket left by its earlier run is, and
// lets any user connect (the exporter's container runs as another); it
// records an Event for each kill written to a connection, also to one the
// exporter gave up for a new one, and ends with status 0 at SIGTERM, its
// Events written and its connections closed.
func TestRunOnASocket(t *testing.T) {
	kubeconfig, posted := fakeAPI(t)
	socket := filepath.Join(t.TempDir(), "events.sock")
	stale, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = stale.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A file: the companion writes it while the test may read it.
	log, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	logs := func() string { b, _ := os.ReadFile(log.Name()); return string(b) }
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--kubernetes.node=n1", "--kubernetes.kubeconfig=" + kubeconfig, "--socket=" + socket}, strings.NewReader(""), log)
	}()
	send := func(pid int) net.Conn {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			conn, err := net.Dial("unix", socket)
			if err == nil {
				main := false
				if err := pipe.Encode(conn, pipe.Kill{Namespace: "ns", Pod: "p", PodUID: "uid-p", Container: "c", Process: "w", PID: pid, MainProcess: &main}); err != nil {
					t.Fatal(err)
				}
				return conn
			}
			if time.Now().After(deadline) {
				t.Fatalf("cannot connect: %v\n%s", err, logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	first := send(1)
	defer first.Close()
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("the socket: %v %v, want mode 0666", fi.Mode(), err)
	}
	second := send(2)
	defer second.Close()
	deadline := time.Now().Add(20 * time.Second)
	for len(posted()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := posted(); len(got) != 2 {
		t.Fatalf("events posted: %v\n%s", got, logs())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("status %d at SIGTERM:\n%s", code, logs())
		}
		for _, conn := range []net.Conn{first, second} {
			if _, err := conn.Read(make([]byte, 1)); err == nil {
				t.Errorf("a connection is still open after the end")
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM:\n%s", logs())
	}
}
