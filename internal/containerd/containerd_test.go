package containerd

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

func newSource(t *testing.T, address string, namespaces []string, skipMoby bool) (*Source, error) {
	t.Helper()
	return New(address, namespaces, skipMoby, store.New(time.Minute), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestNamespacesFollowed(t *testing.T) {
	for _, tc := range []struct {
		name       string
		namespaces []string
		skipMoby   bool
		follows    map[string]bool
	}{
		{"all", nil, false, map[string]bool{"k8s.io": true, "default": true, "moby": true, "created-later": true}},
		{"all but Docker's", nil, true, map[string]bool{"k8s.io": true, "default": true, "moby": false}},
		{"listed, comma-separated or repeated", []string{"k8s.io, default", " e2e ", ""}, false,
			map[string]bool{"k8s.io": true, "default": true, "e2e": true, "moby": false, "other": false}},
		{"Docker's even if listed", []string{"moby,k8s.io"}, true, map[string]bool{"k8s.io": true, "moby": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newSource(t, "/run/containerd/containerd.sock", tc.namespaces, tc.skipMoby)
			if err != nil {
				t.Fatal(err)
			}
			for ns, want := range tc.follows {
				if got := s.follows(ns); got != want {
					t.Errorf("follows(%q) = %v, want %v", ns, got, want)
				}
			}
		})
	}
}

func TestAddress(t *testing.T) {
	s, err := newSource(t, "unix:///run/k3s/containerd/containerd.sock", nil, false)
	if err != nil || s.address != "/run/k3s/containerd/containerd.sock" {
		t.Fatalf("address %q, %v", s.address, err)
	}
	if _, err := newSource(t, "", nil, false); err == nil {
		t.Fatal("empty address accepted")
	}
}
