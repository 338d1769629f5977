package e2e

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pods and their containers are made through the CRI plugin of the harness's
// containerd, as the kubelet makes them: same calls, same labels and
// annotations, host networking so that no CNI plugin is needed.

// criRuntime is a client of a CRI runtime, the name the test image has in
// its storage, and the PID namespace of its pods' containers.
type criRuntime struct {
	runtimeapi.RuntimeServiceClient
	image string
	// pid is NamespaceMode_CONTAINER for CRI-O, as the kubelet asks unless
	// a pod shares its process namespace: then CRI-O runs no infra
	// container, whose oom_score_adj of -998 this host refuses without
	// CAP_SYS_RESOURCE. The containerd tests keep the pod's (POD).
	pid runtimeapi.NamespaceMode
}

// criClient connects to the CRI plugin of the harness's containerd.
func criClient(t testing.TB) criRuntime {
	t.Helper()
	return criRuntime{criConnect(t, containerdAddress(t)), env.image, runtimeapi.NamespaceMode_POD}
}

// criConnect connects to the CRI socket at address.
func criConnect(t testing.TB, address string) runtimeapi.RuntimeServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn)
}

func criContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// criPod is a pod sandbox run through the CRI plugin.
type criPod struct {
	cri    criRuntime
	id     string
	config *runtimeapi.PodSandboxConfig
}

// runPod runs a pod sandbox (its "pause" container) in the harness's cgroup
// parent, and removes it with its containers when the test ends.
func runPod(t testing.TB, cri criRuntime, namespace, name string) *criPod {
	t.Helper()
	uid := randomID(8)
	return runPodIn(t, cri, namespace, name, uid, env.cgroupParent+"/pod"+uid)
}

// runPodIn is runPod with the pod's uid and its cgroup (the kubelet's pod
// cgroup, which a test may make first to give it a limit).
func runPodIn(t testing.TB, cri criRuntime, namespace, name, uid, cgroup string) *criPod {
	t.Helper()
	labels := map[string]string{
		"app":                         name,
		"io.kubernetes.pod.name":      name,
		"io.kubernetes.pod.namespace": namespace,
		"io.kubernetes.pod.uid":       uid,
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:    &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: uid},
		Labels:      labels,
		Annotations: map[string]string{"kubernetes.io/config.source": "api"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroup,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: cri.pid},
			},
		},
	}
	res, err := cri.RunPodSandbox(criContext(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	p := &criPod{cri: cri, id: res.PodSandboxId, config: cfg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Killed at once, as the kubelet does with a grace period of 0:
		// CRI-O's StopPodSandbox would give each container 30 s, and sh
		// as pid 1 ignores SIGTERM.
		list, err := cri.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: p.id}})
		if err != nil {
			t.Logf("ListContainers of pod %s: %v", p.id, err)
		}
		for _, c := range list.GetContainers() {
			if _, err := cri.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id}); err != nil {
				t.Logf("StopContainer %s: %v", c.Id, err)
			}
		}
		if _, err := cri.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
			t.Logf("StopPodSandbox %s: %v", p.id, err)
		}
		if _, err := cri.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
			t.Logf("RemovePodSandbox %s: %v", p.id, err)
		}
	})
	return p
}

// criContainer describes a container of a pod as the kubelet creates it.
type criContainer struct {
	name         string
	restartCount int // the kubelet's count: attempt and annotation
	script       string
	labels       map[string]string // extra labels
	mounts       []*runtimeapi.Mount
	memory       int64 // its memory limit in bytes; 0: 32 MiB
}

// start creates and starts a container in the pod, with a 32 MiB memory
// limit, and returns its id.
func (p *criPod) start(t testing.TB, c criContainer) string {
	t.Helper()
	id := p.create(t, c)
	if _, err := p.cri.StartContainer(criContext(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", c.name, err)
	}
	return id
}

func (p *criPod) create(t testing.TB, c criContainer) string {
	t.Helper()
	md := p.config.Metadata
	labels := map[string]string{
		"io.kubernetes.container.name": c.name,
		"io.kubernetes.pod.name":       md.Name,
		"io.kubernetes.pod.namespace":  md.Namespace,
		"io.kubernetes.pod.uid":        md.Uid,
	}
	for k, v := range c.labels {
		labels[k] = v
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: c.name, Attempt: uint32(c.restartCount)},
		Image:    &runtimeapi.ImageSpec{Image: p.cri.image, UserSpecifiedImage: p.cri.image}, // as the kubelet 1.30+ names it
		Command:  []string{"/bin/sh", "-c", c.script},
		Labels:   labels,
		Mounts:   c.mounts,
		Annotations: map[string]string{
			"io.kubernetes.container.hash":                     randomID(4),
			"io.kubernetes.container.restartCount":             strconv.Itoa(c.restartCount),
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File",
			"io.kubernetes.pod.terminationGracePeriod":         "30",
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: cmp.Or(c.memory, 32<<20)},
			// The pod's namespaces, as the kubelet gives every container.
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: p.config.Linux.SecurityContext.NamespaceOptions},
		},
	}
	res, err := p.cri.CreateContainer(criContext(t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.id, Config: cfg, SandboxConfig: p.config,
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", c.name, err)
	}
	return res.ContainerId
}

// status is the CRI plugin's status of a container.
func (p *criPod) status(t testing.TB, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	res, err := p.cri.ContainerStatus(criContext(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %.12s: %v", id, err)
	}
	return res.Status
}

// waitExited waits until the CRI plugin shows the container exited with code.
func (p *criPod) waitExited(t testing.TB, id string, code int32) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		res, err := p.cri.ContainerStatus(criContext(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			return err
		}
		st := res.Status
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return fmt.Errorf("container %.12s is %s", id, st.State)
		}
		if st.ExitCode != code {
			return errStop{fmt.Errorf("container %.12s exited with %d, want %d", id, st.ExitCode, code)}
		}
		return nil
	})
}

// stop stops a container at once (SIGKILL).
func (p *criPod) stop(t testing.TB, id string) {
	t.Helper()
	if _, err := p.cri.StopContainer(criContext(t), &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StopContainer %.12s: %v", id, err)
	}
}

// waitLog waits until the container printed line: the runtime's log file of
// it (CRI's LogPath), on this host.
func (p *criPod) waitLog(t testing.TB, id, line string) {
	t.Helper()
	path := p.status(t, id).LogPath
	eventually(t, 60*time.Second, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), line) {
			return fmt.Errorf("container %.12s has not printed %q yet (log: %q)", id, line, b)
		}
		return nil
	})
}
