package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

const (
	id1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// cgroupPaths are cgroup paths as the runtimes and the kubelet write them,
// with what they name ("" for no container).
var cgroupPaths = []struct {
	path, runtime, id, dir string
	sure                   bool
}{
	{"/docker/" + id1, store.RuntimeDocker, id1, "/docker/" + id1, true},
	{"/system.slice/docker-" + id1 + ".scope", store.RuntimeDocker, id1, "/system.slice/docker-" + id1 + ".scope", true},
	{"/kubepods/burstable/pod3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60/" + id1, store.RuntimeContainerd, id1, "/kubepods/burstable/pod3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60/" + id1, false},
	{"/kubepods/pod3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60/" + id1, store.RuntimeContainerd, id1, "/kubepods/pod3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60/" + id1, false},
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f5c9a1e_8b2d.slice/cri-containerd-" + id1 + ".scope", store.RuntimeContainerd, id1, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f5c9a1e_8b2d.slice/cri-containerd-" + id1 + ".scope", true},
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/crio-" + id1 + ".scope", store.RuntimeCRIO, id1, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/crio-" + id1 + ".scope", true},
	{"/kubepods/besteffort/podx/crio-" + id1, store.RuntimeCRIO, id1, "/kubepods/besteffort/podx/crio-" + id1, true},
	{"/kubepods.slice/kubepods-podx.slice/docker-" + id1 + ".scope", store.RuntimeDocker, id1, "/kubepods.slice/kubepods-podx.slice/docker-" + id1 + ".scope", true},
	{"/machine.slice/libpod-" + id1 + ".scope", store.RuntimePodman, id1, "/machine.slice/libpod-" + id1 + ".scope", true},
	{"/machine.slice/libpod-" + id1 + ".scope/container", store.RuntimePodman, id1, "/machine.slice/libpod-" + id1 + ".scope", true},
	{"/machine.slice/machine-libpod_pod_abc.slice/libpod-" + id1 + ".scope", store.RuntimePodman, id1, "/machine.slice/machine-libpod_pod_abc.slice/libpod-" + id1 + ".scope", true},
	{"/libpod_parent/libpod-" + id1, store.RuntimePodman, id1, "/libpod_parent/libpod-" + id1, true},
	// Under a parent of --kernel.cgroup-parent: Docker's --cgroup-parent, the kubelet's --cgroup-root.
	{"/process_api/abc/mcm-test-1/" + id1, store.RuntimeDocker, id1, "/process_api/abc/mcm-test-1/" + id1, false},
	{"/custom/kubepods/burstable/pod3f5c/" + id1, store.RuntimeContainerd, id1, "/custom/kubepods/burstable/pod3f5c/" + id1, false},
	{"/custom.slice/docker-" + id1 + ".scope", store.RuntimeDocker, id1, "/custom.slice/docker-" + id1 + ".scope", true},
	// What is inside a container's cgroup is the container's: a Docker in it, its own sub-cgroups.
	{"/docker/" + id1 + "/docker/" + id2, store.RuntimeDocker, id1, "/docker/" + id1, true},
	{"/docker/" + id1 + "/init.scope", store.RuntimeDocker, id1, "/docker/" + id1, true},
	{"/kubepods/burstable/pod3f5c/" + id1 + "/" + id2, store.RuntimeContainerd, id1, "/kubepods/burstable/pod3f5c/" + id1, false},
	// No containers.
	{"/", "", "", "", false},
	{"", "", "", "", false},
	{"docker/" + id1, "", "", "", false},
	{"/system.slice/docker.service", "", "", "", false},
	{"/system.slice/crio-conmon-" + id1 + ".scope", "", "", "", false},
	{"/machine.slice/libpod-conmon-" + id1 + ".scope", "", "", "", false},
	{"/kubepods/burstable/pod3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60", "", "", "", false},
	{"/docker/" + strings.ToUpper(id1), "", "", "", false},
	{"/docker/" + id1[:63], "", "", "", false},
	{"/system.slice/docker-" + id1, "", "", "", false},
	{"/process_api/cd37185a006935f552f4df05cc078363", "", "", "", false},
	{"/default/web", "", "", "", false},
	// Not where runtimes make containers' cgroups: anyone with a cgroup of
	// their own (a delegated v2 subtree, a rootless runtime) can make these.
	{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope", "", "", "", false},
	{"/user.slice/user-1000.slice/user@1000.service/app.slice/docker-" + id1 + ".scope", "", "", "", false},
	{"/user.slice/user-1000.slice/session-1.scope/docker/" + id1, "", "", "", false},
	{"/user.slice/x/kubepods/burstable/pod1/" + id1, "", "", "", false},
	{"/user.slice/x/a,task_memcg=/docker/" + id1, "", "", "", false},
	{"/system.slice/app.service/docker-" + id1 + ".scope", "", "", "", false},
	{"/system.slice/app.service/" + id1, "", "", "", false},
	{"/" + id1, "", "", "", false},
	{"/process_api/abc/mcm-test-2/" + id1, "", "", "", false},
	{"/docker/x/" + id1, "", "", "", false},
}

// extraParents are the --kernel.cgroup-parent values the table's paths are read with.
var extraParents = []string{"/process_api/abc/mcm-test-1", "/custom/", "/custom.slice"}

func TestParseContainerPath(t *testing.T) {
	for _, tc := range cgroupPaths {
		c, ok := ParseContainerPath(tc.path, extraParents)
		if ok != (tc.id != "") {
			t.Errorf("%q: recognised %v (%+v)", tc.path, ok, c)
			continue
		}
		if ok && (c.Runtime != tc.runtime || c.ID != tc.id || c.Dir != tc.dir || c.Sure != tc.sure) {
			t.Errorf("%q: got %+v, want %s %s %s sure=%v", tc.path, c, tc.runtime, tc.id, tc.dir, tc.sure)
		}
	}
}

// FuzzContainerPath: any path parses without panic, and a container found
// has a 64-digit id and a Dir that is a prefix of the path. As a plain test
// it runs over the seeds.
func FuzzContainerPath(f *testing.F) {
	for _, tc := range cgroupPaths {
		f.Add(tc.path)
	}
	f.Add("/a//b/" + id1 + "/")
	f.Add("/\x00/docker-" + id1 + ".scope")
	f.Fuzz(func(t *testing.T, path string) {
		c, ok := ParseContainerPath(path, extraParents)
		if !ok {
			return
		}
		if !isID(c.ID) || !strings.HasPrefix(path, c.Dir) || !strings.Contains(c.Dir, c.ID) || c.Runtime == "" {
			t.Fatalf("%q: %+v", path, c)
		}
		// The reader walks to it: every cgroup on the way may hold it.
		for p := c.Dir; ; p = filepath.Dir(p) {
			if !mayHoldContainers(p, extraParents) {
				t.Fatalf("%q: the container's cgroup %s is below %s, which the reader does not walk", path, c.Dir, p)
			}
			if p == "/" {
				break
			}
		}
	})
}

// TestCgroupsThatHoldNoContainers: the reader neither walks nor watches
// where no runtime makes containers' cgroups.
func TestCgroupsThatHoldNoContainers(t *testing.T) {
	for _, p := range []string{"/user.slice", "/user.slice/user-1000.slice/session-1.scope/docker", "/init.scope",
		"/process_api/cd37185a006935f552f4df05cc078363", "/process_api/abc/mcm-test-2", "/custom.slice2", "/dockerd"} {
		if mayHoldContainers(p, extraParents) {
			t.Errorf("%s: walked and watched", p)
		}
	}
	for _, p := range []string{"/", "/process_api", "/process_api/abc", "/process_api/abc/mcm-test-1/x", "/system.slice/app.service",
		"/kubepods", "/kubepods.slice/kubepods-pod1.slice", "/custom"} {
		if !mayHoldContainers(p, extraParents) {
			t.Errorf("%s: not walked, and a container's cgroup can be made there or below", p)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	v1 := "12:pids:/docker/x\n4:memory:/docker/" + id1 + "\n1:name=systemd:/docker/x\n0::/\n"
	if p, err := ParseProcCgroup([]byte(v1)); err != nil || p != "/docker/"+id1 {
		t.Errorf("v1: %q %v", p, err)
	}
	v2 := "0::/system.slice/docker-" + id1 + ".scope\n"
	if p, err := ParseProcCgroup([]byte(v2)); err != nil || p != "/system.slice/docker-"+id1+".scope" {
		t.Errorf("v2: %q %v", p, err)
	}
	// A process that outlives its cgroup (systemd removed the scope).
	deleted := "0::/kubepods.slice/cri-containerd-" + id1 + ".scope (deleted)\n"
	if p, err := ParseProcCgroup([]byte(deleted)); err != nil || p != "/kubepods.slice/cri-containerd-"+id1+".scope" {
		t.Errorf("v2, removed: %q %v", p, err)
	}
	hybrid := "5:cpu,cpuacct,memory:/a\n0::/b\n"
	if p, _ := ParseProcCgroup([]byte(hybrid)); p != "/a" {
		t.Errorf("hybrid: %q", p)
	}
	for _, bad := range []string{"", "garbage", "4:pids:/x\n", "0::relative\n"} {
		if p, err := ParseProcCgroup([]byte(bad)); err == nil {
			t.Errorf("%q: %q", bad, p)
		}
	}
}

func TestParseCounters(t *testing.T) {
	c, err := ParseOOMControl([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"))
	if err != nil || c.Kills != 5 || c.HasGroup {
		t.Errorf("v1: %+v %v", c, err)
	}
	c, err = ParseMemoryEvents([]byte("low 0\nhigh 0\nmax 18\noom 1\noom_kill 4\noom_group_kill 1\n"))
	if err != nil || c.Kills != 4 || c.GroupKills != 1 || !c.HasGroup {
		t.Errorf("v2: %+v %v", c, err)
	}
	c, err = ParseMemoryEvents([]byte("low 0\nhigh 0\nmax 0\noom 0\noom_kill 2\n")) // an older kernel without oom_group_kill
	if err != nil || c.Kills != 2 || c.HasGroup {
		t.Errorf("v2 without group kills: %+v %v", c, err)
	}
	for _, bad := range []string{"", "oom_kill_disable 0\nunder_oom 0\n", "oom_kill x\n", "oom_kill -1\n"} {
		if _, err := ParseOOMControl([]byte(bad)); err == nil {
			t.Errorf("v1 %q parsed", bad)
		}
		if _, err := ParseMemoryEvents([]byte(bad)); err == nil {
			t.Errorf("v2 %q parsed", bad)
		}
	}
}

func TestFindHierarchy(t *testing.T) {
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v1 := t.TempDir()
	write(filepath.Join(v1, "fs/cgroup/memory/memory.oom_control"), "oom_kill 0\n")
	write(filepath.Join(v1, "fs/cgroup/unified/cgroup.controllers"), "")
	if h, err := FindHierarchy(v1); err != nil || h.V2 || h.Root != filepath.Join(v1, "fs/cgroup/memory") {
		t.Errorf("v1: %+v %v", h, err)
	}
	v2 := t.TempDir()
	write(filepath.Join(v2, "fs/cgroup/cgroup.controllers"), "cpuset cpu io memory pids\n")
	if h, err := FindHierarchy(v2); err != nil || !h.V2 || h.Root != filepath.Join(v2, "fs/cgroup") {
		t.Errorf("v2: %+v %v", h, err)
	}
	none := t.TempDir()
	write(filepath.Join(none, "fs/cgroup/unified/cgroup.controllers"), "pids\n")
	if h, err := FindHierarchy(none); err == nil {
		t.Errorf("no memory controller: %+v", h)
	}
}

func TestRuntimeOfShim(t *testing.T) {
	for cmd, want := range map[string]string{
		"/usr/bin/containerd-shim-runc-v2\x00-namespace\x00moby\x00-id\x00" + id1 + "\x00-address\x00/run/containerd/containerd.sock\x00": store.RuntimeDocker,
		"/usr/bin/containerd-shim-runc-v2\x00-namespace\x00k8s.io\x00-id\x00" + id1 + "\x00":                                              store.RuntimeContainerd,
		"/usr/bin/conmon\x00-c\x00" + id1 + "\x00--exit-dir\x00/var/run/crio/exits\x00":                                                   store.RuntimeCRIO,
		"/usr/bin/conmon\x00--api-version\x001\x00-c\x00" + id1 + "\x00--exit-command\x00/usr/bin/podman\x00":                             store.RuntimePodman,
		"/sbin/init\x00": "",
		"":               "",
	} {
		got, _ := runtimeOfShim([]byte(cmd))
		if got != want {
			t.Errorf("%q: %q, want %q", cmd, got, want)
		}
	}
	if p, ok := parentPid([]byte("42 (a) b) S 7 42 42 0 -1")); !ok || p != 7 {
		t.Errorf("ppid %d %v", p, ok)
	}
	if _, ok := parentPid([]byte("42 (a")); ok {
		t.Error("ppid of a cut stat")
	}
}

// The kubelet's pod cgroup gives the pod's UID, so that a container only the
// kernel knows still joins its pod (kube_pod_info's uid).
func TestPodUIDFromPath(t *testing.T) {
	for path, want := range map[string]string{
		"/kubepods/burstable/pod3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60/" + id1:                                                       "3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60",
		"/kubepods/pod3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60/" + id1:                                                                 "3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60",
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f5c9a1e_8b2d_4c6e.slice/cri-containerd-" + id1 + ".scope": "3f5c9a1e-8b2d-4c6e",
		"/kubepods.slice/kubepods-pod3f5c9a1e_8b2d.slice/crio-" + id1 + ".scope":                                                   "3f5c9a1e-8b2d",
		"/docker/" + id1:                         "",
		"/system.slice/docker-" + id1 + ".scope": "",
	} {
		c, ok := ParseContainerPath(path, nil)
		if !ok || c.PodUID != want {
			t.Errorf("%s: pod UID %q (ok %v), want %q", path, c.PodUID, ok, want)
		}
	}
}

// TestReadFile: a file is read whole, also past the first buffer, and a
// missing one says so as os.ReadFile does.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	want := strings.Repeat("oom_kill 12345\n", 300) // 4,500 bytes
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(want), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := readFile(filepath.Join(dir, "f")); err != nil || string(b) != want {
		t.Fatalf("read %d bytes, %v; want %d", len(b), err, len(want))
	}
	short := "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
	if err := os.WriteFile(filepath.Join(dir, "short"), []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := readFile(filepath.Join(dir, "short")); err != nil || string(b) != short {
		t.Fatalf("read %q, %v; want %q", b, err, short)
	}
	// The edges of the first read's buffer: empty, and filling it exactly.
	for _, content := range []string{"", strings.Repeat("x", 511) + "\n"} {
		p := filepath.Join(dir, fmt.Sprintf("edge%d", len(content)))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := readFile(p); err != nil || string(b) != content {
			t.Fatalf("a file of %d bytes: read %d, %v", len(content), len(b), err)
		}
	}
	// procfs and cgroupfs, as the reader reads them: the same as os.ReadFile.
	// mountinfo: many pages here.
	for _, p := range []string{"/proc/self/cgroup", "/proc/self/cmdline", "/proc/self/mountinfo"} {
		b, err := readFile(p)
		if want, _ := os.ReadFile(p); err != nil || len(b) == 0 || string(b) != string(want) {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	// status changes as the test runs, its last line stays.
	if b, err := readFile("/proc/self/status"); err != nil || !strings.Contains(string(b), "\nnonvoluntary_ctxt_switches:") {
		t.Errorf("/proc/self/status: %q, %v", b, err)
	}
	if _, err := readFile(filepath.Join(dir, "gone")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("a missing file: %v", err)
	}
}
