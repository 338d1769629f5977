package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCgroupHostPath(t *testing.T) {
	for _, tc := range []struct {
		mount cgroupMount
		path  string
		want  string
	}{
		{cgroupMount{dir: "/sys/fs/cgroup/memory", root: "/"}, "/a/b", "/sys/fs/cgroup/memory/a/b"},
		// In a container whose cgroup namespace root is /docker/x.
		{cgroupMount{dir: "/sys/fs/cgroup/memory", root: "/docker/x"}, "/docker/x/a", "/sys/fs/cgroup/memory/a"},
		{cgroupMount{dir: "/sys/fs/cgroup/memory", root: "/docker/x"}, "/docker/x", "/sys/fs/cgroup/memory"},
		{cgroupMount{dir: "/sys/fs/cgroup/memory", root: "/docker/x"}, "/docker/xy/a", ""},
		{cgroupMount{dir: "/sys/fs/cgroup/memory", root: "/docker/x"}, "/other", ""},
	} {
		if got := tc.mount.hostPath(tc.path); got != tc.want {
			t.Errorf("%+v hostPath(%s) = %q, want %q", tc.mount, tc.path, got, tc.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`:  "/tmp/a b",
		`/tmp/plain`:   "/tmp/plain",
		`/tmp/x\011y`:  "/tmp/x\ty",
		`/tmp/back\\`:  `/tmp/back\\`,
		`/tmp/short\0`: `/tmp/short\0`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// The image archive is what docker save writes: a manifest naming each
// image's config and the one layer, whose digest the configs give.
func TestWriteImageArchive(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/tool"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tool", filepath.Join(dir, "bin/alias")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeImageArchive(&buf, dir, testImages...); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 2 || manifest[0].RepoTags[0] != BusyboxImage || manifest[1].RepoTags[0] != PauseImage {
		t.Fatalf("manifest: %+v", manifest)
	}
	layer := files[manifest[0].Layers[0]]
	sum := sha256.Sum256(layer)
	for _, m := range manifest {
		var cfg struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(files[m.Config], &cfg); err != nil {
			t.Fatal(err)
		}
		if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Errorf("%s: diff_ids %v, want the layer's digest", m.RepoTags[0], cfg.RootFS.DiffIDs)
		}
	}
	var names []string
	lr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		names = append(names, h.Name+map[byte]string{tar.TypeSymlink: " -> " + h.Linkname}[h.Typeflag])
	}
	if got, want := strings.Join(names, ","), "bin/,bin/alias -> tool,bin/tool"; got != want {
		t.Errorf("layer holds %s, want %s", got, want)
	}
}

func TestUntil(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := Until(ctx, time.Minute, "three calls", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Until: %v after %d calls", err, n)
	}
	boom := errors.New("boom")
	n = 0
	err := Until(ctx, time.Minute, "a stop", func() error { n++; return Stop(boom) })
	if !errors.Is(err, boom) || n != 1 {
		t.Errorf("Until with Stop: %v after %d calls, want boom after 1", err, n)
	}
	err = Until(ctx, 200*time.Millisecond, "never", func() error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "never: not within 200ms: never") {
		t.Errorf("Until past its deadline: %v", err)
	}
}

// A recorded PID is only ours while its command line names the harness directory.
func TestOurs(t *testing.T) {
	if ours(os.Getpid(), "/nonexistent/mcm-harness.x") {
		t.Error("this test process is taken for a harness daemon")
	}
	if ours(0, "/") || ours(-1, "/") {
		t.Error("a PID that cannot exist is taken for a daemon")
	}
}

// All filters by labels and reads counters, gauges and untyped values alike,
// in the order served.
func TestMetricsAll(t *testing.T) {
	m, err := ParseMetrics([]byte(`# TYPE container_ooms_total counter
container_ooms_total{container_id="docker://b",pod="p"} 2
container_ooms_total{container_id="docker://a",pod="p"} 1
container_ooms_total{container_id="docker://c",pod="q"} 5
# TYPE container_last_exit_code gauge
container_last_exit_code{container_id="docker://a"} 137
other{x="y"} 7
`))
	if err != nil {
		t.Fatal(err)
	}
	got := m.All("container_ooms_total", map[string]string{"pod": "p"})
	if len(got) != 2 || got[0].Labels["container_id"] != "docker://b" || got[0].Value != 2 || got[1].Value != 1 {
		t.Errorf("ooms of pod p: %+v", got)
	}
	if got := m.All("container_last_exit_code", nil); len(got) != 1 || got[0].Value != 137 {
		t.Errorf("exit codes: %+v", got)
	}
	if got := m.All("other", map[string]string{"x": "y"}); len(got) != 1 || got[0].Value != 7 {
		t.Errorf("untyped: %+v", got)
	}
	if got := m.All("missing", nil); len(got) != 0 {
		t.Errorf("missing family: %+v", got)
	}
	if _, err := ParseMetrics([]byte("bad{ 1\n")); err == nil {
		t.Error("a malformed body parses")
	}
}
