package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cgroupRoot is where the guest mounts the cgroup v2 hierarchy.
const cgroupRoot = "/sys/fs/cgroup"

// pod is a pod sandbox made through the CRI as the kubelet makes it: the
// pod's cgroup first (with its limit, if any), then RunPodSandbox in it.
type pod struct {
	rt     *runtimes
	id     string
	config *runtimeapi.PodSandboxConfig
	cgroup string // the pod's cgroup, from the root of the hierarchy
}

// newUID is a pod UID as the API server makes them.
func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// podCgroup makes a Burstable pod's cgroup as the kubelet does, and returns
// the CgroupParent the kubelet gives the CRI and the cgroup's path.
//   - systemd driver: kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice,
//     units of systemd (the kubelet starts them over D-Bus; systemctl asks
//     the same manager), the CgroupParent is the slice's name;
//   - cgroupfs driver: /kubepods/burstable/pod<uid>, made with mkdir, the
//     CgroupParent is the path.
//
// memoryMax > 0 is the pod's memory.max (MemoryMax= of the slice).
func (rt *runtimes) podCgroup(ctx context.Context, uid string, memoryMax int64) (parent, path string, err error) {
	if rt.driver == "systemd" {
		slice := "kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
		path = "/kubepods.slice/kubepods-burstable.slice/" + slice
		if _, err := output(ctx, "systemctl", "start", "kubepods.slice", "kubepods-burstable.slice", slice); err != nil {
			return "", "", err
		}
		if memoryMax > 0 {
			if _, err := output(ctx, "systemctl", "set-property", "--runtime", slice, fmt.Sprintf("MemoryMax=%d", memoryMax)); err != nil {
				return "", "", err
			}
		}
		return slice, path, checkMemoryMax(path, memoryMax)
	}
	path = "/kubepods/burstable/pod" + uid
	if err := mkCgroup(path); err != nil {
		return "", "", err
	}
	if memoryMax > 0 {
		if err := os.WriteFile(filepath.Join(cgroupRoot, path, "memory.max"), []byte(strconv.FormatInt(memoryMax, 10)), 0); err != nil {
			return "", "", err
		}
	}
	return path, path, checkMemoryMax(path, memoryMax)
}

// mkCgroup makes a cgroup and its ancestors, each with the controllers of
// its parent enabled, as runc's and the kubelet's cgroupfs manager do.
func mkCgroup(path string) error {
	dir := cgroupRoot
	for _, c := range strings.Split(strings.Trim(path, "/"), "/") {
		ctrl, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			return err
		}
		for _, s := range strings.Fields(string(ctrl)) {
			// Not every controller can be enabled everywhere (cpu with
			// real-time threads, say); memory must be.
			err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+s), 0)
			if err != nil && s == "memory" {
				return fmt.Errorf("enable memory in %s: %w", dir, err)
			}
		}
		dir = filepath.Join(dir, c)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return nil
}

func checkMemoryMax(path string, want int64) error {
	b, err := os.ReadFile(filepath.Join(cgroupRoot, path, "memory.max"))
	if err != nil {
		return err
	}
	got := strings.TrimSpace(string(b))
	if want > 0 && got != strconv.FormatInt(want, 10) {
		return fmt.Errorf("%s: memory.max %s, want %d", path, got, want)
	}
	return nil
}

// runPod makes a pod's cgroup and runs its sandbox in it, with the node's
// network (no CNI in the VM).
func (rt *runtimes) runPod(ctx context.Context, name string, memoryMax int64) (*pod, error) {
	uid := newUID()
	parent, path, err := rt.podCgroup(ctx, uid, memoryMax)
	if err != nil {
		return nil, fmt.Errorf("pod %s: cgroup: %w", name, err)
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "v2", Uid: uid},
		Labels: map[string]string{
			"io.kubernetes.pod.name":      name,
			"io.kubernetes.pod.namespace": "v2",
			"io.kubernetes.pod.uid":       uid,
		},
		Annotations: map[string]string{"kubernetes.io/config.source": "api"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: parent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	res, err := rt.cri.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return nil, fmt.Errorf("RunPodSandbox %s: %w", name, err)
	}
	return &pod{rt: rt, id: res.PodSandboxId, config: cfg, cgroup: path}, nil
}

// podContainer is a container of a pod as the kubelet creates it.
type podContainer struct {
	name    string
	attempt int // the kubelet's restart count: metadata attempt and annotation
	script  string
	// unified is the kubelet's LinuxContainerResources.Unified: from 1.28
	// on cgroup v2 it holds memory.oom.group=1, unless the node sets
	// singleProcessOOMKill.
	unified map[string]string
}

// kubeletOOMGroup is what kubelet 1.28+ puts in every container's unified
// resources on cgroup v2.
var kubeletOOMGroup = map[string]string{"memory.oom.group": "1"}

// start creates and starts the container with a 32 MiB limit; it returns
// its id.
func (p *pod) start(ctx context.Context, c podContainer) (string, error) {
	md := p.config.Metadata
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: c.name, Attempt: uint32(c.attempt)},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  []string{"/bin/sh", "-c", c.script},
		Labels: map[string]string{
			"io.kubernetes.container.name": c.name,
			"io.kubernetes.pod.name":       md.Name,
			"io.kubernetes.pod.namespace":  md.Namespace,
			"io.kubernetes.pod.uid":        md.Uid,
		},
		Annotations: map[string]string{
			"io.kubernetes.container.restartCount":             strconv.Itoa(c.attempt),
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File",
			"io.kubernetes.pod.terminationGracePeriod":         "30",
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20, Unified: c.unified},
		},
	}
	res, err := p.rt.cri.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.config})
	if err != nil {
		return "", fmt.Errorf("CreateContainer %s: %w", c.name, err)
	}
	if _, err := p.rt.cri.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: res.ContainerId}); err != nil {
		return "", fmt.Errorf("StartContainer %s: %w", c.name, err)
	}
	return res.ContainerId, nil
}

// containerCgroup is where the runtime puts a pod's container: a scope of
// systemd (runc's systemd driver, cgroupsPath "slice:cri-containerd:ID"),
// or a directory named by its id.
func (p *pod) containerCgroup(id string) string {
	if p.rt.driver == "systemd" {
		return p.cgroup + "/cri-containerd-" + id + ".scope"
	}
	return p.cgroup + "/" + id
}

// waitExited waits until the CRI shows the container exited.
func (rt *runtimes) waitExited(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	var st *runtimeapi.ContainerStatus
	err := waitFor(2*time.Minute, func() error {
		res, err := rt.cri.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			return err
		}
		st = res.Status
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return fmt.Errorf("container %.12s is %s", id, st.State)
		}
		return nil
	})
	return st, err
}
