package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Runtimes is a containerd and a dockerd on it, with the test images.
type Runtimes struct {
	h *Harness
	// ContainerdAddress is containerd's socket.
	ContainerdAddress string `json:"containerdAddress"`
	// DockerHost is dockerd's socket, unix://....
	DockerHost string `json:"dockerHost"`
	// Rootfs is the busybox root file system (for `ctr run --rootfs`).
	Rootfs string `json:"rootfs"`
	// RuncRoot is where runc keeps the state of containerd's containers.
	RuncRoot string `json:"runcRoot"`
}

// Where a containerd lives in the harness directory.
type containerdPaths struct {
	dir, address, config, runcRoot string
}

func (h *Harness) containerdPaths(sub string) containerdPaths {
	dir := h.path(sub)
	return containerdPaths{dir: dir, address: dir + "/run/containerd.sock", config: dir + "/config.toml", runcRoot: dir + "/runc"}
}

// newContainerd registers a containerd whose config holds extra (TOML) besides
// what every containerd of the harness needs.
func (h *Harness) newContainerd(name string, c containerdPaths, extra string) (*Process, error) {
	if err := os.MkdirAll(c.dir+"/run", 0o711); err != nil {
		return nil, err
	}
	// restrict_oom_score_adj: the CRI plugin's sandboxes fail in runc without
	// it here ("can't get final child's PID from pipe"). Root: runc's state in
	// the harness, not in /run/containerd/runc.
	config := fmt.Sprintf(`version = 2

[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = %q

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  Root = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
%s`, PauseImage, c.runcRoot, c.dir+"/opt", extra)
	if err := os.WriteFile(c.config, []byte(config), 0o644); err != nil {
		return nil, err
	}
	// containerd 1.6's shims put their sockets in /run/containerd/s whatever
	// its --state; ctr without --runc-root and --null-io uses runc and fifo there.
	h.noteHostDirs("/run/containerd", "/run/containerd/s", "/run/containerd/runc", "/run/containerd/fifo")
	p := h.newProcess(name, "containerd", "--config", c.config, "--root", c.dir+"/root",
		"--state", c.dir+"/state", "--address", c.address)
	p.Ready = Readiness{Cmd: []string{"ctr", "--address", c.address, "version"}}
	p.StopTimeout = 20 * time.Second
	return p, nil
}

// StartRuntimes starts a containerd and a dockerd on it, and loads the test
// images (BusyboxImage into both, PauseImage into containerd's namespace
// k8s.io for its CRI plugin).
func (h *Harness) StartRuntimes(ctx context.Context) (*Runtimes, error) {
	t0 := time.Now()
	c := h.containerdPaths("containerd")
	r := &Runtimes{h: h, ContainerdAddress: c.address, DockerHost: "unix://" + h.path("docker", "docker.sock"),
		Rootfs: h.path("rootfs"), RuncRoot: c.runcRoot}
	containerd, err := h.newContainerd("containerd", c, "")
	if err != nil {
		return nil, err
	}
	h.rec.Runtimes = r
	if err := containerd.Start(ctx); err != nil {
		return nil, err
	}

	d := h.path("docker")
	if err := os.MkdirAll(d, 0o711); err != nil {
		return nil, err
	}
	// Only in the file (no such flag): keeps dockerd's trust key out of
	// /etc/docker. Tests may add keys (e.g. "live-restore") and restart it.
	if err := os.WriteFile(d+"/daemon.json", fmt.Appendf(nil, "{\n  \"deprecated-key-path\": %q\n}\n", d+"/key.json"), 0o644); err != nil {
		return nil, err
	}
	h.noteHostDirs("/run/docker", "/run/docker/plugins")
	// --debug: dockerd logs what it does with each container (restore,
	// start, why a restart by its policy failed) only at debug level, and
	// a failed test prints those lines from its log.
	dockerd := h.newProcess("dockerd", "dockerd", "--config-file", d+"/daemon.json", "--data-root", d+"/data",
		"--exec-root", d+"/exec", "-H", r.DockerHost, "--pidfile", d+"/docker.pid", "--containerd", c.address,
		"--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
		"--userland-proxy=false", "--storage-driver=vfs", "--exec-opt", "native.cgroupdriver=cgroupfs", "--debug")
	dockerd.Ready = Readiness{URL: "http://docker/_ping", Unix: d + "/docker.sock"}
	if err := dockerd.Start(ctx); err != nil {
		return nil, err
	}

	if err := buildRootfs(r.Rootfs); err != nil {
		return nil, err
	}
	archive := h.path("images.tar")
	if err := writeImageFile(archive, r.Rootfs); err != nil {
		return nil, err
	}
	if _, err := r.Docker(ctx, "load", "-i", archive); err != nil {
		return nil, err
	}
	if err := importImages(ctx, c.address, "k8s.io", archive); err != nil {
		return nil, err
	}
	if err := h.save(); err != nil {
		return nil, err
	}
	h.logf("runtimes started in %.1fs", time.Since(t0).Seconds())
	return r, nil
}

func writeImageFile(path, rootfs string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeImageArchive(f, rootfs, testImages...); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Containerd is the runtimes' containerd daemon.
func (r *Runtimes) Containerd() *Process { return r.h.Process("containerd") }

// Dockerd is the runtimes' dockerd daemon.
func (r *Runtimes) Dockerd() *Process { return r.h.Process("dockerd") }

// DockerdConfig is dockerd's daemon.json. Tests may add keys that no flag
// sets (e.g. "live-restore": true) and start dockerd again.
func (r *Runtimes) DockerdConfig() string { return r.h.path("docker", "daemon.json") }

// StartContainerd starts containerd again with the same flags and waits
// until it answers (only that, if it runs already). A running dockerd
// reconnects to it with a gRPC back-off: it then waits until dockerd reaches
// containerd again too, and only says so if it does not within StartTimeout.
func (r *Runtimes) StartContainerd(ctx context.Context) error {
	if err := startOrWait(ctx, r.Containerd()); err != nil {
		return err
	}
	if d := r.Dockerd(); d == nil || !d.Running() {
		return nil
	}
	err := Until(ctx, StartTimeout, "dockerd reaches containerd", func() error {
		// docker version lists containerd while dockerd reaches it.
		out, err := r.Docker(ctx, "version", "--format", "{{range .Server.Components}}{{.Name}} {{end}}")
		if err != nil {
			return err
		}
		if !slices.Contains(strings.Fields(out), "containerd") {
			return fmt.Errorf("docker version lists %q", out)
		}
		return nil
	})
	if err != nil {
		r.h.logf("warning: %v", err)
	} else {
		r.h.logf("dockerd reaches containerd")
	}
	return nil
}

// StartDockerd starts dockerd again with the same flags and waits until it
// answers (only that, if it runs already).
func (r *Runtimes) StartDockerd(ctx context.Context) error {
	d := r.Dockerd()
	if d != nil && !d.Running() {
		// Left by a SIGKILL: dockerd refuses to start while the PID in it
		// is alive, and the PID may be another process's by now.
		if err := os.Remove(r.h.path("docker", "docker.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if c := r.Containerd(); c == nil || c.Answers(ctx) != nil {
			r.h.logf("warning: containerd does not answer; dockerd will wait for it")
		}
	}
	return startOrWait(ctx, d)
}

// startOrWait starts p, or waits until it answers if it runs already.
func startOrWait(ctx context.Context, p *Process) error {
	if p == nil {
		return errors.New("no such daemon in the harness")
	}
	if p.Running() {
		p.h.logf("%s already running (pid %d)", p.Name, p.PID)
		return p.WaitReady(ctx)
	}
	return p.Start(ctx)
}

// Env is the runtimes' settings as the tests read them (the variables
// scripts/harness.sh start prints).
func (r *Runtimes) Env() []string {
	return []string{
		"MCM_TEST_HARNESS_DIR=" + r.h.Dir,
		"MCM_TEST_DOCKER_HOST=" + r.DockerHost,
		"MCM_TEST_CONTAINERD_ADDRESS=" + r.ContainerdAddress,
		"MCM_TEST_CGROUP_PARENT=" + r.h.CgroupParent(),
		"MCM_TEST_IMAGE=" + BusyboxImage,
		"MCM_TEST_ROOTFS=" + r.Rootfs,
		"MCM_TEST_RUNC_ROOT=" + r.RuncRoot,
	}
}

// Docker runs the docker CLI against the runtimes' dockerd and returns its
// output.
func (r *Runtimes) Docker(ctx context.Context, args ...string) (string, error) {
	return runCLI(ctx, "docker", append([]string{"-H", r.DockerHost}, args...), withoutDockerEnv(os.Environ()))
}

// withoutDockerEnv drops the variables that would point the docker CLI elsewhere.
func withoutDockerEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "DOCKER_HOST=") && !strings.HasPrefix(e, "DOCKER_CONTEXT=") &&
			!strings.HasPrefix(e, "DOCKER_TLS_VERIFY=") && !strings.HasPrefix(e, "DOCKER_CERT_PATH=") {
			out = append(out, e)
		}
	}
	return out
}

// removeContainers removes every container of dockerd and containerd.
func (r *Runtimes) removeContainers(ctx context.Context) error {
	var errs []error
	if d := r.Dockerd(); d != nil && d.Running() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if ids, err := r.Docker(ctx, "ps", "-aq"); err != nil {
			errs = append(errs, err)
		} else if ids != "" {
			_, err := r.Docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
			errs = append(errs, err)
		}
	}
	if c := r.Containerd(); c != nil && c.Running() {
		errs = append(errs, removeContainerdContainers(ctx, r.ContainerdAddress))
	}
	return errors.Join(errs...)
}

// removeContainerdContainers kills and removes every container in every
// namespace of the containerd at address.
func removeContainerdContainers(ctx context.Context, address string) error {
	ctr := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", address}, args...)...).Output()
		return string(out), err
	}
	nss, err := ctr("namespaces", "ls", "-q")
	if err != nil {
		return fmt.Errorf("ctr namespaces ls: %w", err)
	}
	for _, ns := range strings.Fields(nss) {
		ids, err := ctr("-n", ns, "containers", "ls", "-q")
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(ids) {
			_, _ = ctr("-n", ns, "tasks", "kill", "-a", "-s", "SIGKILL", id)
			_, _ = ctr("-n", ns, "tasks", "delete", "-f", id)
			_, _ = ctr("-n", ns, "containers", "delete", id)
		}
	}
	return nil
}
