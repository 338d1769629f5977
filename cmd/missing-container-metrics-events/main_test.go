package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
)

// Without a node, or without API access, the companion says so and ends.
func TestConfigErrors(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	var log bytes.Buffer
	if code := run(nil, strings.NewReader(""), &log); code != 2 || !strings.Contains(log.String(), "--kubernetes.node") {
		t.Errorf("no node: status %d, %s", code, log.String())
	}
	log.Reset()
	t.Setenv("NODE_NAME", "n1")
	if code := run(nil, strings.NewReader(""), &log); code != 1 || !strings.Contains(log.String(), "no access to the Kubernetes API") {
		t.Errorf("not in a cluster: status %d, %s", code, log.String())
	}
	log.Reset()
	if code := run([]string{"--kubernetes.kubeconfig=/nonexistent"}, strings.NewReader(""), &log); code != 1 || !strings.Contains(log.String(), "/nonexistent") {
		t.Errorf("a missing kubeconfig: status %d, %s", code, log.String())
	}
}

// With a kubeconfig, the companion records an Event for each kill on its
// input, in the kill's namespace, and ends with status 0 when its input
// ends; it logs in JSON, as the exporter reads it back.
func TestRunWithKubeconfig(t *testing.T) {
	var mu sync.Mutex
	var posted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/ns/pods/p":
			fmt.Fprint(w, `{"kind":"Pod","apiVersion":"v1","metadata":{"namespace":"ns","name":"p","uid":"uid-p"},"spec":{"nodeName":"n1","containers":[{"name":"c"}]}}`)
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/namespaces/ns/events":
			var e map[string]any
			_ = json.NewDecoder(r.Body).Decode(&e)
			mu.Lock()
			posted = append(posted, fmt.Sprint(e["reason"]))
			mu.Unlock()
			e["metadata"].(map[string]any)["resourceVersion"] = "1"
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(e)
		default:
			http.Error(w, "not faked", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	var in, log bytes.Buffer
	main := false
	_ = pipe.Encode(&in, pipe.Kill{Namespace: "ns", Pod: "p", PodUID: "uid-p", Container: "c", Process: "w", PID: 7, MainProcess: &main})
	if code := run([]string{"--kubernetes.node=n1", "--kubernetes.kubeconfig=" + kubeconfig, "--log.format=json"}, &in, &log); code != 0 {
		t.Fatalf("status %d:\n%s", code, log.String())
	}
	// It waited for the recorder to write the Event before it ended.
	mu.Lock()
	got := append([]string(nil), posted...)
	mu.Unlock()
	if len(got) != 1 || got[0] != "ProcessOOMKilled" {
		t.Fatalf("events posted: %v\n%s", got, log.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line that is not JSON: %s", line)
		}
	}
}
