package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRIOOptions configure StartCRIO.
type CRIOOptions struct {
	// BinDir holds crio and pinns (test/crio/prepare.sh builds them).
	BinDir string
	// Name is its name in the harness (default "crio").
	Name string
	// Events turns on CRI-O's container events (enable_pod_events, off by
	// default), the stream the kubelet's evented PLEG reads.
	Events bool
	// CNIDir holds the pods' network's CNI configuration; empty: none, and
	// pods run on the host's network only (NamespaceMode NODE).
	CNIDir string
}

// CRIO is a CRI-O with root, state, socket and configuration of its own, on
// Debian's conmon and runc, with the cgroupfs cgroup manager: a pod's cgroup
// is the CgroupParent the CRI gives it.
type CRIO struct {
	h *Harness
	// Name is its name in the harness.
	Name string `json:"name"`
	// Address is its CRI socket.
	Address string `json:"address"`
	// Image is BusyboxImage's full name in its storage.
	Image string `json:"image"`
	// Events says whether it serves container events.
	Events bool `json:"events"`
}

// crioConfig is CRI-O's configuration: every path in its directory (run/
// as CRI-O's /var/run/crio), none of the host's (CRI-O's defaults are /var/lib/containers, /var/run/crio,
// /etc/sysconfig/irqbalance, NRI's socket in /var/run/nri, ...).
const crioConfig = `[crio]
root = "%[1]s/root"
runroot = "%[1]s/runroot"
storage_driver = "vfs"
log_dir = "%[1]s/pod-logs"
version_file = "%[1]s/run/version"
version_file_persist = "%[1]s/version"
clean_shutdown_file = "%[1]s/clean.shutdown"

[crio.api]
listen = "%[1]s/run/crio.sock"
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
conmon_cgroup = "pod"
container_exits_dir = "%[1]s/run/exits"
container_attach_socket_dir = "%[1]s/run/attach"
namespaces_dir = "%[1]s/run/ns"
pinns_path = "%[2]s/pinns"
hooks_dir = []
enable_pod_events = %[3]t
irqbalance_config_file = "%[1]s/irqbalance"
irqbalance_config_restore_file = ""
log_level = "info"

[crio.runtime.runtimes.crun]
runtime_root = "%[1]s/run/crun"

[crio.runtime.runtimes.runc]
runtime_path = "%[4]s"
runtime_type = "oci"
runtime_root = "%[1]s/run/runc"
monitor_path = "%[5]s"
monitor_cgroup = "pod"

[crio.image]
pause_image = %[6]q
signature_policy = "%[1]s/policy.json"
signature_policy_dir = "%[1]s/policies"

[crio.network]
network_dir = "%[7]s"
plugin_dirs = [%[8]q]

[crio.nri]
enable_nri = false
`

// StartCRIO starts a CRI-O and loads BusyboxImage and PauseImage into its
// storage (with podman: CRI-O itself only pulls).
func (h *Harness) StartCRIO(ctx context.Context, opts CRIOOptions) (*CRIO, error) {
	t0 := time.Now()
	if opts.Name == "" {
		opts.Name = "crio"
	}
	tools := map[string]string{"crio": filepath.Join(opts.BinDir, "crio"), "pinns": filepath.Join(opts.BinDir, "pinns")}
	for _, p := range []string{"conmon", "runc", "podman"} {
		tools[p] = p
	}
	for name, p := range tools {
		path, err := exec.LookPath(p)
		if err != nil {
			return nil, fmt.Errorf("CRI-O needs %s (test/crio/prepare.sh builds crio and pinns and installs the rest): %w", name, err)
		}
		tools[name] = path
	}
	d := h.path(opts.Name)
	for _, sub := range []string{"run", "pod-logs", "conf.d", "cni"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o711); err != nil {
			return nil, err
		}
	}
	cni := opts.CNIDir
	if cni == "" {
		cni = d + "/cni"
	}
	config := fmt.Sprintf(crioConfig, d, opts.BinDir, opts.Events, tools["runc"], tools["conmon"], PauseImage, cni, cniBinDir)
	if err := os.WriteFile(d+"/crio.conf", []byte(config), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(d+"/policy.json", []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`+"\n"), 0o644); err != nil {
		return nil, err
	}
	// The socket's directory, which the chart mounts, holds what
	// /var/run/crio holds, not the storage: CRI-O mounts a host path that
	// holds its storage with HostToContainer propagation, which a private
	// mount refuses.
	c := &CRIO{h: h, Name: opts.Name, Address: d + "/run/crio.sock", Events: opts.Events,
		// podman load names an archive's busybox:test so; CRI-O finds a
		// short name only through registries.conf, which is the host's.
		Image: "localhost/" + BusyboxImage}
	h.rec.CRIO = append(h.rec.CRIO, c)
	if err := c.loadImages(ctx, d); err != nil {
		return nil, err
	}
	// Its own registries.conf, and an empty registries.conf.d: not the host's.
	args := []string{tools["crio"], "--config", d + "/crio.conf", "--config-dir", d + "/conf.d",
		"--registries-conf", d + "/registries.conf", "--registries-conf-dir", d + "/conf.d"}
	hide, err := hugetlbOnlyInV2()
	if err != nil {
		return nil, err
	}
	if hide {
		if args, err = h.withoutHugetlb(d, args); err != nil {
			return nil, err
		}
	}
	p := h.newProcess(opts.Name, args...)
	p.Env = []string{"CGROUPS=" + d + "/proc-cgroups"}
	p.Ready = Readiness{CRI: c.Address}
	p.StopTimeout = 20 * time.Second
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	if err := h.save(); err != nil {
		return nil, err
	}
	h.logf("%s (events %t) started in %.1fs", opts.Name, opts.Events, time.Since(t0).Seconds())
	return c, nil
}

// hugetlbOnlyInV2 reports whether this host's memory controller is cgroup v1
// while its hugetlb controller is only in the cgroup v2 hierarchy beside (as
// here: "hybrid"). CRI-O reads /proc/cgroups, finds hugetlb, and passes on the
// kubelet's hugepage limits (0 for each page size), which runc then cannot
// set on v1: "cannot set hugetlb limit: container could not join or create
// cgroup". containerd's CRI plugin leaves them out there.
func hugetlbOnlyInV2() (bool, error) {
	ms, err := cgroupMounts()
	if err != nil {
		return false, err
	}
	memoryV1, hugetlbV1 := false, false
	for _, m := range ms {
		opts := "," + m.opts + ","
		memoryV1 = memoryV1 || (!m.v2 && strings.Contains(opts, ",memory,"))
		hugetlbV1 = hugetlbV1 || (!m.v2 && strings.Contains(opts, ",hugetlb,"))
	}
	return memoryV1 && !hugetlbV1, nil
}

// hugetlbWrapper runs CRI-O in a mount namespace of its own whose
// /proc/cgroups has no hugetlb line. Mounts still propagate both ways with
// the host's namespace: the kubelet's volumes in, and CRI-O's own (its
// pinned namespaces, its containers' /dev/shm) out, through its directory,
// a shared mount. A CRI-O started again, in a new namespace, finds them
// there and restores its pods.
const hugetlbWrapper = `set -e
mount --make-rprivate /proc
mount --bind "$CGROUPS" /proc/cgroups
exec "$@"`

// withoutHugetlb wraps CRI-O's command line args in hugetlbWrapper, writes
// the /proc/cgroups it shows (d/proc-cgroups, $CGROUPS), and makes d a
// shared mount.
func (h *Harness) withoutHugetlb(d string, args []string) ([]string, error) {
	if err := syscall.Mount(d, d, "", syscall.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind mount %s: %w", d, err)
	}
	h.rec.Mounts = append(h.rec.Mounts, d)
	if err := syscall.Mount("", d, "", syscall.MS_SHARED, ""); err != nil {
		return nil, fmt.Errorf("make %s shared: %w", d, err)
	}
	b, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		return nil, err
	}
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "hugetlb\t") {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(d+"/proc-cgroups", []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		return nil, err
	}
	return append([]string{"unshare", "--mount", "--propagation", "unchanged", "--",
		"/bin/sh", "-c", hugetlbWrapper, "crio"}, args...), nil
}

// loadImages loads the test images into CRI-O's storage (dir d).
func (c *CRIO) loadImages(ctx context.Context, d string) error {
	rootfs, archive := d+"/rootfs", d+"/images.tar"
	if err := buildRootfs(rootfs); err != nil {
		return err
	}
	if err := writeImageFile(archive, rootfs); err != nil {
		return err
	}
	conf := fmt.Sprintf("[engine]\nevents_logger = \"none\"\ntmp_dir = %q\ncgroup_manager = \"cgroupfs\"\n", d+"/podman-tmp")
	if err := os.WriteFile(d+"/podman.conf", []byte(conf), 0o644); err != nil {
		return err
	}
	// Short names (busybox:test, as pods name it) resolve in docker.io
	// only, as containerd names its images: not by the host's registries.conf.
	registries := "unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"permissive\"\n"
	if err := os.WriteFile(d+"/registries.conf", []byte(registries), 0o644); err != nil {
		return err
	}
	return c.LoadImage(ctx, archive, BusyboxImage)
}

// LoadImage loads a Docker archive (docker save) into CRI-O's storage with
// podman, whose own state stays in CRI-O's directory. image, the archive's
// short name (repository:tag), is then also docker.io/library/image, as
// containerd names it and as a pod's short name resolves; aliases are more
// names of it.
func (c *CRIO) LoadImage(ctx context.Context, archive, image string, aliases ...string) error {
	d := c.h.path(c.Name)
	c.h.noteHostDirs("/var/lib/containers", "/var/lib/containers/cache")
	podman := func(args ...string) error {
		_, err := runCLI(ctx, "podman", append([]string{"--root", d + "/root", "--runroot", d + "/runroot", "--storage-driver", "vfs"}, args...),
			append(os.Environ(), "CONTAINERS_CONF="+d+"/podman.conf"))
		return err
	}
	if err := podman("load", "-i", archive); err != nil {
		return err
	}
	return podman(append([]string{"tag", "localhost/" + image, "docker.io/library/" + image}, aliases...)...)
}

// Process is CRI-O's process.
func (c *CRIO) Process() *Process { return c.h.Process(c.Name) }

// Env is its settings as the tests read them.
func (c *CRIO) Env() []string {
	return []string{"MCM_TEST_CRIO_ADDRESS=" + c.Address, "MCM_TEST_CRIO_IMAGE=" + c.Image}
}

// removePods removes every pod sandbox through the CRI, with its containers.
func (c *CRIO) removePods(ctx context.Context) error {
	if p := c.Process(); p == nil || !p.Running() {
		return nil
	}
	return removeCRIPods(ctx, c.Address)
}

// removeCRIPods stops and removes every pod sandbox of the CRI runtime at
// address: their containers, and their network (the CNI plugins release
// the addresses and remove the interfaces).
func removeCRIPods(ctx context.Context, address string) error {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	cri := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	list, err := cri.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("ListPodSandbox: %w", err)
	}
	var errs []error
	// Killed at once: CRI-O's StopPodSandbox gives each container its
	// grace period first.
	containers, err := cri.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		errs = append(errs, fmt.Errorf("ListContainers: %w", err))
	}
	for _, c := range containers.GetContainers() {
		if _, err := cri.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id}); err != nil {
			errs = append(errs, fmt.Errorf("StopContainer %s: %w", c.Id, err))
		}
	}
	for _, s := range list.Items {
		if _, err := cri.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("StopPodSandbox %s: %w", s.Id, err))
		}
		if _, err := cri.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("RemovePodSandbox %s: %w", s.Id, err))
		}
	}
	return errors.Join(errs...)
}

// criVersion asks the CRI runtime at address for its version: it answers.
func criVersion(ctx context.Context, address string) error {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
	return err
}
