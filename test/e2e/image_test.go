package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The image as the Makefile and the Dockerfile build it, with the harness's dockerd
// (FROM scratch: no registry), run against that dockerd's socket in the two ways
// docs/deploy.md gives, and scraped.
// Not parallel: building the binary can take minutes on a busy machine, and its
// containers would then count in TestChurn's check of every container series.
func TestImage(t *testing.T) {
	image, version := buildImage(t)
	socket := strings.TrimPrefix(env.dockerHost, "unix://")

	size, err := strconv.ParseInt(inspect(t, image, "{{.Size}}"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image size: %.1f MiB", float64(size)/(1<<20))
	if size > 40<<20 {
		t.Errorf("image is %d bytes; the static binary alone should be far less than 40 MiB", size)
	}
	if got := inspect(t, image, "{{.Config.User}} {{json .Config.Entrypoint}} {{len .RootFS.Layers}}"); got != `65534:65534 ["/bin/missing-container-metrics"] 1` {
		t.Errorf("image config %s: want user nobody, the exporter as entrypoint, one layer", got)
	}

	gid := inspectSocketGroup(t, socket)
	containerdSocket := os.Getenv("MCM_TEST_CONTAINERD_ADDRESS")
	if containerdSocket == "" {
		t.Fatal("MCM_TEST_CONTAINERD_ADDRESS is not set (scripts/harness.sh start sets it)")
	}
	dockerSocket := []string{"-v", socket + ":/var/run/docker.sock:ro"}
	for _, tc := range []struct {
		name  string
		flags []string // docker run's
		args  []string // the exporter's
		// runtime: the container_id prefix the exporter gives the victim
		runtime string
	}{
		// docs/deploy.md, docker run: the image's user nobody, with the socket's group.
		{"nobody with the socket's group", append([]string{"--group-add", gid}, dockerSocket...),
			[]string{"--no-containerd", "--no-kernel"}, "docker"},
		// The DaemonSet's securityContext: uid 0 with every capability dropped.
		{"root without capabilities", append([]string{"--user", "0:0"}, dockerSocket...),
			[]string{"--no-containerd", "--no-kernel"}, "docker"},
		// The DaemonSet's defaults: nobody in the containerd socket's group,
		// containerd and the kernel's cgroup counters from the node's
		// /sys/fs/cgroup and /proc, no kernel log (Docker's containers are
		// containerd's, in its namespace moby, when the Docker source is off).
		{"the DaemonSet's sources: containerd and the kernel's counters", []string{"--user", "65534:65534", "--group-add", "0",
			"-v", containerdSocket + ":/run/containerd/containerd.sock:ro",
			"-v", "/sys/fs/cgroup:/host/sys/fs/cgroup:ro", "-v", "/proc:/host/proc:ro"},
			[]string{"--no-docker", "--containerd", "--kernel", "--path.sysfs=/host/sys", "--path.procfs=/host/proc", "--path.kmsg=",
				"--kernel.cgroup-parent=" + env.cgroupParent},
			"containerd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := freeAddr()
			if err != nil {
				t.Fatal(err)
			}
			args := append([]string{"run", "-d", "--network", "host", "--cgroup-parent", env.cgroupParent,
				"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"}, tc.flags...)
			args = append(args, image, "--web.listen-address="+addr)
			id := docker(t, append(args, tc.args...)...)
			t.Cleanup(func() {
				if t.Failed() {
					out, _ := dockerErr("logs", id)
					t.Logf("exporter container log:\n%s", out)
				}
				_, _ = dockerErr("rm", "-f", id)
			})
			e := &exporter{addr: addr}

			// A worker OOM-killed while its container lives on.
			victim := run(t, nil, oomOnce+"; echo done; sleep 100000")
			waitLog(t, victim, "done")
			var s *scrape
			eventually(t, 30*time.Second, func() error {
				s, err = e.scrape()
				if err != nil {
					return err
				}
				_, ooms, ok := s.series("container_ooms_total", map[string]string{"container_id": tc.runtime + "://" + victim})
				if !ok || ooms != 1 {
					return fmt.Errorf("victim %.12s: exported %v, OOM kills %v, want 1", victim, ok, ooms)
				}
				// Every source is up.
				for _, m := range s.Families["missing_container_metrics_source_up"].GetMetric() {
					if m.GetGauge().GetValue() != 1 {
						return fmt.Errorf("a source is down: %v", m.GetLabel())
					}
				}
				return nil
			})
			if _, _, ok := s.series("missing_container_metrics_build_info", map[string]string{"version": version}); !ok {
				t.Errorf("build_info has no version=%q: the Makefile's ldflags did not reach the binary", version)
			}
			if _, procs, ok := s.series("go_sched_gomaxprocs_threads", nil); !ok || procs != 1 {
				t.Errorf("GOMAXPROCS of the image as run by default: %v (exported %v), want 1 (--runtime.gomaxprocs)", procs, ok)
			}
			if got := inspect(t, id, "{{.State.Running}}"); got != "true" {
				t.Errorf("exporter container running: %s", got)
			}
		})
	}
}

// inspectSocketGroup returns the group id that owns the Docker socket.
func inspectSocketGroup(t *testing.T, socket string) string {
	t.Helper()
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no owner of %s", socket)
	}
	return strconv.FormatUint(uint64(st.Gid), 10)
}

// builtImage is the image as the Makefile builds it, once for the tests
// that run it; removed by stopShared.
var builtImage struct {
	once           sync.Once
	image, version string
	err            error
}

// buildImage builds the image with the harness's dockerd (once) and returns
// its name and version.
func buildImage(t *testing.T) (image, version string) {
	t.Helper()
	builtImage.once.Do(func() {
		version := fmt.Sprintf("e2e-%d", os.Getpid())
		image := "missing-container-metrics:" + version
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		build := exec.CommandContext(ctx, "make", "image", "IMAGE="+image, "VERSION="+version)
		build.Dir = "../.."
		build.Env = append(os.Environ(), "DOCKER_HOST="+env.dockerHost)
		if out, err := build.CombinedOutput(); err != nil {
			builtImage.err = fmt.Errorf("make image: %w\n%s", err, out)
			return
		}
		builtImage.image, builtImage.version = image, version
		t.Logf("make image: %s", time.Since(start).Round(100*time.Millisecond))
	})
	if builtImage.err != nil {
		t.Fatal(builtImage.err)
	}
	return builtImage.image, builtImage.version
}

// removeImage removes the image built for the tests, if any.
func removeImage() {
	if builtImage.image != "" {
		_, _ = dockerErr("rmi", "-f", builtImage.image)
	}
}
