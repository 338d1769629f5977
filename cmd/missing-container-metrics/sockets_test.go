package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenUnix listens on a unix socket at path until the test ends.
func listenUnix(t *testing.T, path string) net.Listener {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// A runtime socket mounted on its own (as the chart mounts it) goes stale
// when the runtime makes a new socket at its path: the watch tells, and the
// exporter ends. A socket that is no mount of its own, whose runtime went
// away, is the source's to reconnect to: the watch says nothing.
func TestMountedSocketGoesStale(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to bind-mount a socket (a missing prerequisite is a failure under CI)")
		}
		t.Skip("needs root to bind-mount a socket")
	}
	dir := t.TempDir()
	host, mounted, plain := filepath.Join(dir, "runtime.sock"), filepath.Join(dir, "mounted.sock"), filepath.Join(dir, "plain.sock")
	first := listenUnix(t, host)
	plainListener := listenUnix(t, plain)
	if err := os.WriteFile(mounted, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, mounted, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting the socket: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mounted, unix.MNT_DETACH) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watched := make(chan error, 1)
	go func() { watched <- watchMountedSockets(ctx, []string{mounted, plain}, 10*time.Millisecond) }()
	// The runtime answers: nothing to tell.
	time.Sleep(100 * time.Millisecond) // some tries of a socket that works; any would end the watch
	select {
	case err := <-watched:
		t.Fatalf("the watch ended while the runtime answers: %v", err)
	default:
	}
	// The plain socket's runtime went away: its source's business.
	_ = plainListener.Close()
	// The runtime starts again, with a new socket at its path.
	_ = first.Close()
	listenUnix(t, host)
	select {
	case err := <-watched:
		if err == nil || !strings.Contains(err.Error(), mounted) || !strings.Contains(err.Error(), "a mount of its own") {
			t.Errorf("the watch ended with %v, want the stale mount named", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stale mount was not noticed within 20 s")
	}
	// Without a mounted socket there is nothing to watch.
	if err := watchMountedSockets(ctx, []string{plain, host}, time.Millisecond); err != nil {
		t.Errorf("no mount to watch: %v", err)
	}
}

func TestRuntimeSockets(t *testing.T) {
	cfg, err := parseFlags([]string{"--docker.host=unix:///host/docker/docker.sock", "--containerd.address=/host/containerd/containerd.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(runtimeSockets(cfg), " "); got != "/host/docker/docker.sock /host/containerd/containerd.sock" {
		t.Errorf("sockets %q", got)
	}
	cfg, err = parseFlags([]string{"--no-docker", "--no-containerd", "--crio", "--crio.address=/host/crio/crio.sock",
		"--podman", "--podman.host=unix:///host/podman/podman.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(runtimeSockets(cfg), " "); got != "/host/crio/crio.sock /host/podman/podman.sock" {
		t.Errorf("sockets %q", got)
	}
	cfg, err = parseFlags([]string{"--docker.host=tcp://127.0.0.1:2375", "--no-containerd"})
	if err != nil {
		t.Fatal(err)
	}
	if got := runtimeSockets(cfg); len(got) != 0 {
		t.Errorf("sockets %q, want none: TCP is no socket file", got)
	}
}

// Why the exporter ends goes to Kubernetes' termination log where there is
// one; where there is none, no file is made.
func TestTellTermination(t *testing.T) {
	dir := t.TempDir()
	defer func(p string) { terminationLog = p }(terminationLog)
	terminationLog = filepath.Join(dir, "termination-log")
	tellTermination("gone")
	if _, err := os.Stat(terminationLog); !os.IsNotExist(err) {
		t.Errorf("a termination log was made where there was none: %v", err)
	}
	if err := os.WriteFile(terminationLog, []byte("earlier, longer text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tellTermination("the socket is stale")
	if b, _ := os.ReadFile(terminationLog); string(b) != "the socket is stale\n" {
		t.Errorf("termination log %q", b)
	}
}
