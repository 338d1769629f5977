package containerd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
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

// A containerd socket that is not there, or that the exporter may not open,
// is said at once and in the words Docker's source uses, so that / and the
// log tell why the source is down: not "down" with no error, then a timeout.
func TestMissingOrForbiddenSocketSaysWhy(t *testing.T) {
	dir := t.TempDir()
	forbidden := filepath.Join(dir, "forbidden.sock")
	l, err := net.Listen("unix", forbidden)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(forbidden, 0); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{filepath.Join(dir, "missing.sock"): "no such file or directory"}
	if os.Geteuid() != 0 { // root may connect whatever the mode
		cases[forbidden] = "permission denied"
	}
	for sock, why := range cases {
		s, err := newSource(t, sock, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err = s.session(ctx, func() { t.Error("up without a containerd") })
		cancel()
		if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), why) {
			t.Errorf("session with %s: %v, want an error naming it and saying %q", sock, err, why)
		}
	}
}
