package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PodmanService is the name of the harness's Podman API service.
const PodmanService = "podman"

// Podman is a rootful Podman API service (podman system service, Debian's
// podman 4.3) with storage, state, events and configuration of its own.
type Podman struct {
	h *Harness
	// Host is its Docker-compatible API socket, unix://....
	Host string `json:"host"`
	// ConfigEnv points podman at the harness's configuration.
	ConfigEnv []string `json:"configEnv"`
}

// podmanConfig is the service's containers.conf. What this host needs:
//   - runc: crun 1.8 refuses a host whose cgroups are hybrid ("cgroups in
//     hybrid mode not supported"), as this one is (v1 memory, a cgroup2
//     mount beside);
//   - default_ulimits no higher than the service's own hard limits: rootful
//     Podman sets nofile 1048576 and nproc 4194304, which only a process with
//     CAP_SYS_RESOURCE may raise its limits to (setrlimit: Operation not
//     permitted, in crun and runc alike, where it has not: in a container),
//     and conmon runs the container with nproc 32768 at most;
//   - no network (netns "none"), and no CNI plugins: a container of the
//     Docker API without --network none fails instead of making Podman's
//     bridge on the host; the cgroupfs manager, for cgroups under the
//     harness's parent;
//   - events in a file of its own (journald is the host's).
const podmanConfig = `[containers]
default_ulimits = ["nofile=%[2]d:%[2]d", "nproc=%[3]d:%[3]d"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%[1]s/events.log"
tmp_dir = "%[1]s/tmp"
static_dir = "%[1]s/root/libpod"
volume_path = "%[1]s/root/volumes"

[network]
network_config_dir = "%[1]s/networks"
cni_plugin_dirs = ["%[1]s/no-cni-plugins"]
`

// StartPodman starts a Podman API service and loads BusyboxImage into it.
func (h *Harness) StartPodman(ctx context.Context) (*Podman, error) {
	t0 := time.Now()
	for _, p := range []string{"podman", "conmon", "runc", "catatonit"} {
		if _, err := exec.LookPath(p); err != nil {
			return nil, fmt.Errorf("podman needs %s (scripts/install-deps.sh installs podman, conmon, runc and catatonit): %w", p, err)
		}
	}
	d := h.path("podman")
	for _, sub := range []string{"tmp", "no-cni-plugins"} {
		if err := os.MkdirAll(d+"/"+sub, 0o711); err != nil {
			return nil, err
		}
	}
	var nofile, nproc syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		return nil, err
	}
	if err := syscall.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
		return nil, err
	}
	if err := os.WriteFile(d+"/containers.conf", fmt.Appendf(nil, podmanConfig, d, nofile.Max, min(nproc.Max, 32768)), 0o644); err != nil {
		return nil, err
	}
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", d+"/root", d+"/runroot")
	if err := os.WriteFile(d+"/storage.conf", []byte(storage), 0o644); err != nil {
		return nil, err
	}
	pm := &Podman{h: h, Host: "unix://" + d + "/podman.sock",
		ConfigEnv: []string{"CONTAINERS_CONF=" + d + "/containers.conf", "CONTAINERS_STORAGE_CONF=" + d + "/storage.conf"}}
	h.rec.Podman = pm
	// Image imports write containers/image's blob cache there, whatever
	// the storage's paths.
	h.noteHostDirs("/var/lib/containers", "/var/lib/containers/cache")
	p := h.newProcess(PodmanService, "podman", "system", "service", "--time", "0", pm.Host)
	p.Env = pm.ConfigEnv
	p.Ready = Readiness{URL: "http://podman/_ping", Unix: d + "/podman.sock"}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	rootfs, archive := d+"/rootfs", d+"/images.tar"
	if err := buildRootfs(rootfs); err != nil {
		return nil, err
	}
	if err := writeImageFile(archive, rootfs); err != nil {
		return nil, err
	}
	if _, err := pm.Docker(ctx, "load", "-i", archive); err != nil {
		return nil, err
	}
	if err := h.save(); err != nil {
		return nil, err
	}
	h.logf("podman started in %.1fs", time.Since(t0).Seconds())
	return pm, nil
}

// Service is the Podman API service's process.
func (pm *Podman) Service() *Process { return pm.h.Process(PodmanService) }

// Docker runs the docker CLI against Podman's Docker API and returns its output.
func (pm *Podman) Docker(ctx context.Context, args ...string) (string, error) {
	return runCLI(ctx, "docker", append([]string{"-H", pm.Host}, args...), withoutDockerEnv(os.Environ()))
}

// Podman runs the podman CLI against the service (podman --remote) and returns its output.
func (pm *Podman) Podman(ctx context.Context, args ...string) (string, error) {
	return runCLI(ctx, "podman", append([]string{"--remote", "--url", pm.Host}, args...), append(os.Environ(), pm.ConfigEnv...))
}

func runCLI(ctx context.Context, name string, args, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Env is the service's settings as the tests read them.
func (pm *Podman) Env() []string {
	return []string{"MCM_TEST_PODMAN_HOST=" + pm.Host}
}

// removeAll removes every pod and container of the service.
func (pm *Podman) removeAll(ctx context.Context) error {
	if p := pm.Service(); p == nil || !p.Running() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err1 := pm.Podman(ctx, "pod", "rm", "-f", "-a")
	_, err2 := pm.Podman(ctx, "rm", "-f", "-a")
	return errors.Join(err1, err2)
}

// removeBlobCache removes the blob cache an image import wrote in
// /var/lib/containers/cache, if the harness made that directory.
func (h *Harness) removeBlobCache() {
	if h.rec.Podman == nil || !slices.Contains(h.rec.HostDirs, "/var/lib/containers/cache") {
		return
	}
	_ = os.Remove("/var/lib/containers/cache/blob-info-cache-v1.boltdb")
}
