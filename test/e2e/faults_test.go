package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitSourcesUp waits until each source named is up and has connected again
// at least as often as its runtime was killed.
func waitSourcesUp(t *testing.T, e *exporter, kills map[string]int) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		for src, n := range kills {
			if up, reconnects := sourceState(s, src); up != 1 || reconnects < float64(n) {
				return fmt.Errorf("%s source up=%v reconnects=%v after %d kills", src, up, reconnects, n)
			}
		}
		return nil
	})
}

// socketProxy listens on a unix socket and forwards every connection to
// the harness's dockerd: a socket that can appear late, or change its mode.
func socketProxy(t *testing.T, path string) {
	t.Helper()
	upstream := strings.TrimPrefix(env.dockerHost, "unix://")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	keep := func(c ...net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, c...)
	}
	go func() {
		for {
			down, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", upstream)
			if err != nil {
				down.Close()
				continue
			}
			keep(down, up)
			go func() { _, _ = io.Copy(up, down); up.Close() }()
			go func() { _, _ = io.Copy(down, up); down.Close() }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// socketDir is a directory for a socket that anyone may look into.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mcm-e2e-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A Docker socket that is not there when the exporter starts, or that the
// exporter may not use: it serves /metrics with the source down and logs
// why, naming the socket, and follows Docker once the socket is there for
// it, with the counts of a container from before.
func TestFaultsDockerSocketLate(t *testing.T) {
	t.Parallel()
	id := run(t, []string{"--restart", "on-failure:2"}, "exec "+oomOnce)
	waitInspect(t, id, "{{.State.Status}} {{.RestartCount}} {{.State.OOMKilled}}", "exited 2 true")
	want := counts{OOMs: 1, Restarts: 2, Exited: true, ExitCode: 137}
	args := []string{"--no-containerd", "--no-kernel"}

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(socketDir(t), "docker.sock")
		e := startExporter(t, append(args, "--docker.host=unix://"+sock)...)
		waitDockerDown(t, e, sock, "no such file or directory")
		socketProxy(t, sock)
		e.waitCounts(t, id, want)
		waitSourcesUp(t, e, map[string]int{"docker": 0})
	})

	t.Run("no permission", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(socketDir(t), "docker.sock")
		socketProxy(t, sock)
		if err := os.Chmod(sock, 0o600); err != nil { // root's; the exporter runs as nobody
			t.Fatal(err)
		}
		e := startExporterAs(t, &syscall.Credential{Uid: 65534, Gid: 65534}, append(args, "--docker.host=unix://"+sock)...)
		waitDockerDown(t, e, sock, "permission denied")
		if err := os.Chmod(sock, 0o666); err != nil {
			t.Fatal(err)
		}
		e.waitCounts(t, id, want)
		waitSourcesUp(t, e, map[string]int{"docker": 0})
	})
}
