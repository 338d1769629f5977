package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The daemons run at their default paths, as on a node: the VM is the
// test's own. Their state is on a tmpfs of its own, since overlayfs (the
// snapshotter and Docker's overlay2) cannot put its upper layer on the
// guest's root, an overlay itself.
const (
	containerdSock = "/run/containerd/containerd.sock"
	dockerSock     = "/var/run/docker.sock"
	stateDir       = "/var/lib/mcm"
	image          = "busybox:test"
	pauseImage     = "registry.k8s.io/pause:3.6" // what containerd 1.6's CRI plugin runs as the sandbox
)

// runtimes are the running containerd and dockerd, and clients of them.
type runtimes struct {
	driver   string
	ctd      *containerd.Client
	cri      runtimeapi.RuntimeServiceClient
	docker   *client.Client
	versions map[string]string
	logs     map[string]string // daemon → its log file

	dockerEvents *dockerEvents
}

func startRuntimes(driver string, step func(string)) (*runtimes, error) {
	rt := &runtimes{driver: driver, versions: map[string]string{}, logs: map[string]string{}}
	for _, d := range []string{stateDir, "/var/lib/containerd", "/var/lib/docker"} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return rt, err
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0711"); err != nil {
			return rt, fmt.Errorf("tmpfs on %s: %w", d, err)
		}
	}
	// Each call has a minute of its own: under emulation on a loaded host
	// the daemons take minutes to start, which a context for them all
	// would not outlive.
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), time.Minute)
	}
	ctx, cancel := call()
	defer cancel()
	if v, err := output(ctx, "runc", "--version"); err == nil {
		rt.versions["runc"] = firstLine(v)
	}

	// containerd with the CRI plugin, its runc runtime on the driver the
	// kubelet is configured with (SystemdCgroup must match the kubelet's
	// cgroupDriver).
	systemd := driver == "systemd"
	conf := filepath.Join(stateDir, "containerd.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = %v
`, systemd), 0o644); err != nil {
		return rt, err
	}
	if err := rt.daemon("containerd", "containerd", "--config", conf); err != nil {
		return rt, err
	}
	if err := waitFor(4*time.Minute, func() error {
		c, err := containerd.New(containerdSock, containerd.WithTimeout(10*time.Second))
		if err != nil {
			return err
		}
		ctx, cancel := call()
		defer cancel()
		v, err := c.Version(ctx)
		if err != nil {
			_ = c.Close()
			return err
		}
		rt.ctd = c
		rt.versions["containerd"] = v.Version
		return nil
	}); err != nil {
		return rt, fmt.Errorf("containerd does not answer: %w", err)
	}
	conn, err := grpc.NewClient("unix://"+containerdSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return rt, err
	}
	rt.cri = runtimeapi.NewRuntimeServiceClient(conn)
	step("containerd answers")

	// dockerd on that containerd, as Debian's docker.service runs it, with
	// Docker's cgroup driver.
	cfg := fmt.Sprintf(`{"exec-opts": ["native.cgroupdriver=%s"], "iptables": false, "ip6tables": false, "bridge": "none", "storage-driver": "overlay2"}`, driver)
	if err := os.WriteFile(filepath.Join(stateDir, "daemon.json"), []byte(cfg), 0o644); err != nil {
		return rt, err
	}
	if err := rt.daemon("dockerd", "dockerd", "--config-file", filepath.Join(stateDir, "daemon.json"),
		"--containerd", containerdSock); err != nil {
		return rt, err
	}
	rt.docker, err = client.New(client.WithHost("unix://" + dockerSock))
	if err != nil {
		return rt, err
	}
	// Under emulation on a loaded host dockerd took over 2 minutes once.
	if err := waitFor(4*time.Minute, func() error {
		ctx, cancel := call()
		defer cancel()
		_, err := rt.docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		return err
	}); err != nil {
		return rt, fmt.Errorf("dockerd does not answer: %w", err)
	}
	ctx, cancel = call()
	defer cancel()
	info, err := rt.docker.Info(ctx, client.InfoOptions{})
	if err != nil {
		return rt, err
	}
	rt.versions["dockerd"] = info.Info.ServerVersion
	if info.Info.CgroupDriver != driver || info.Info.CgroupVersion != "2" {
		return rt, fmt.Errorf("dockerd runs with cgroup driver %q on cgroup v%s, want %q on v2", info.Info.CgroupDriver, info.Info.CgroupVersion, driver)
	}
	rt.followDockerEvents()
	step("dockerd answers")
	return rt, nil
}

// daemon starts a runtime daemon in the background, its output to a log.
func (rt *runtimes) daemon(name string, args ...string) error {
	log := filepath.Join(stateDir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	rt.logs[name] = log
	go func() { _ = cmd.Wait() }()
	return nil
}

// importImages makes the busybox image and the sandbox image in Docker,
// and copies both into containerd's namespace k8s.io for the CRI plugin,
// which never pulls: as scripts/harness.sh does on the host.
func (rt *runtimes) importImages() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rootfs, err := busyboxRootfs()
	if err != nil {
		return err
	}
	for ref, change := range map[string]string{image: `CMD ["/bin/sh"]`, pauseImage: `ENTRYPOINT ["/bin/sleep", "inf"]`} {
		res, err := rt.docker.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, ref,
			client.ImageImportOptions{Changes: []string{change}})
		if err != nil {
			return fmt.Errorf("docker import %s: %w", ref, err)
		}
		_, err = io.Copy(io.Discard, res)
		_ = res.Close()
		if err != nil {
			return fmt.Errorf("docker import %s: %w", ref, err)
		}
	}
	saved, err := rt.docker.ImageSave(ctx, []string{image, pauseImage})
	if err != nil {
		return fmt.Errorf("docker save: %w", err)
	}
	defer saved.Close()
	k8s := namespaces.WithNamespace(ctx, "k8s.io")
	imgs, err := rt.ctd.Import(k8s, saved)
	if err != nil {
		return fmt.Errorf("containerd import: %w", err)
	}
	for _, i := range imgs {
		if err := containerd.NewImage(rt.ctd, i).Unpack(k8s, "overlayfs"); err != nil {
			return fmt.Errorf("unpack %s: %w", i.Name, err)
		}
	}
	return nil
}

// busyboxRootfs is a tar of a root file system: the host's static busybox
// and the applets the scenarios run.
func busyboxRootfs() ([]byte, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox-static: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp"} {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bb); err != nil {
		return nil, err
	}
	for _, a := range []string{"sh", "sleep", "dd", "cat", "echo", "true"} {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
