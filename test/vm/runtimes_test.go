package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/test/vm/guest/report"
)

// TestRuntimesInVM runs the exporter on cgroup v2 with the real runtimes:
// Debian's kernel in qemu, the host's root file system shared read-only
// into the guest over virtiofs under a tmpfs overlay, so that the guest
// runs the very containerd, runc, dockerd and systemd Debian installed
// here. The guest program (test/vm/guest) makes pods through containerd's
// CRI plugin as the kubelet makes them (memory.oom.group=1 as kubelet 1.28+
// sets it, and without, as singleProcessOOMKill), and Docker containers,
// causes real OOM kills (of processes that need more than the limit, of a
// tmpfs filled, among many small processes), runs the exporter twice — with
// the kernel log, as its flags default, and without, as its Helm chart
// defaults — restarts both, and reports what the kernel, the runtimes and
// the exporters showed; this test checks that.
//
// Once per cgroup driver, each in a boot of its own:
//   - systemd: systemd 252 is PID 1; containerd's runc runs with
//     SystemdCgroup, dockerd with native.cgroupdriver=systemd, and the pods'
//     slices are systemd's (kubepods.slice/…/kubepods-burstable-pod….slice/
//     cri-containerd-ID.scope; Docker: system.slice/docker-ID.scope);
//   - cgroupfs: no systemd (PID 1 is a shell, as on nodes without systemd);
//     the kubelet's /kubepods/burstable/pod<uid>/ID and Docker's /docker/ID.
//
// No kubelet runs: the guest makes the pod's cgroup and calls the CRI as the
// kubelet does (a kubelet's start-up alone would take minutes under
// emulation).
func TestRuntimesInVM(t *testing.T) {
	t.Parallel() // beside TestCgroupV2InVM: each VM mostly waits for the CPU
	env := runtimesPrerequisites(t)
	dir := t.TempDir()
	initrd := runtimesInitramfs(t, env, dir)
	for _, driver := range []string{"systemd", "cgroupfs"} {
		t.Run(driver, func(t *testing.T) {
			// Both at once: on a busy host two VMs get more of the CPU than
			// one, and each boot is mostly waiting for it.
			t.Parallel()
			rep := bootRuntimesVM(t, env, dir, initrd, driver)
			if rep == nil {
				return
			}
			checkRuntimes(t, rep)
		})
	}
}

// runtimesEnv is what the runtimes VM takes from the host.
type runtimesEnv struct {
	kernel, qemu, virtiofsd, unshare string
	modules                          []string // in load order
}

func runtimesPrerequisites(t *testing.T) runtimesEnv {
	t.Helper()
	var p prereqs
	env := runtimesEnv{
		qemu:      p.command("qemu-system-x86_64", "qemu-system-x86"),
		unshare:   p.command("unshare", "util-linux"),
		virtiofsd: p.file("/usr/lib/qemu/virtiofsd", "virtiofsd (qemu-system-common)"),
		kernel:    p.file(kernelPath(), "a kernel"),
	}
	// The guest runs what the host has installed.
	p.file("/bin/busybox", "busybox-static")
	p.command("containerd", "containerd")
	p.command("runc", "runc")
	p.command("dockerd", "docker.io")
	p.file("/lib/systemd/systemd", "systemd")
	p.check(os.Geteuid() == 0, "root (virtiofsd shares the root file system)")
	env.modules = p.modules()
	p.done(t)
	return env
}

// runtimesInit is the VM's first process, in the initramfs: the host's root
// file system, read-only over virtiofs, under a tmpfs overlay becomes the
// root; then systemd starts the guest program as a service, or (cgroupfs) the
// guest program runs without systemd.
const runtimesInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "init: $*"; poweroff -f; }
ip link set lo up
driver=$(sed -n 's/.*mcm.driver=\([a-z]*\).*/\1/p' /proc/cmdline)
while read -r m; do insmod "/lib/modules/$m.ko" || fail "insmod $m"; done < /lib/modules/order
mount -t virtiofs -o ro hostroot /lower || fail "no virtiofs"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot || fail "no overlay"
N=/newroot
mkdir -p $N/opt/mcm && cp /mcm/* $N/opt/mcm/
# Not the guest's: the host's container marker (systemd would think it runs
# in a container).
rm -f $N/.dockerenv
case $driver in
systemd)
	: > $N/etc/fstab # nor the host's mounts
	mkdir -p $N/etc/systemd/system
	cat > $N/etc/systemd/system/mcm.target <<EOT
[Unit]
Description=the runtimes test
Requires=mcm.service
After=mcm.service
EOT
	cat > $N/etc/systemd/system/mcm.service <<EOT
[Unit]
DefaultDependencies=no
[Service]
Type=oneshot
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStart=/opt/mcm/guest --driver=systemd
ExecStopPost=/bin/systemctl poweroff --force --force
EOT
	umount /proc /sys
	mount --move /dev $N/dev
	exec switch_root $N /lib/systemd/systemd
	;;
cgroupfs)
	# PID 1 is a shell, which reaps the orphans containers leave; the API
	# file systems are mounted here, as an init without systemd does.
	cat > $N/opt/mcm/init <<'EOT'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs tmp /tmp
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
/opt/mcm/guest --driver=cgroupfs
echo o > /proc/sysrq-trigger
EOT
	chmod +x $N/opt/mcm/init
	mount --move /proc $N/proc
	mount --move /sys $N/sys
	mount --move /dev $N/dev
	exec switch_root $N /opt/mcm/init
	;;
esac
fail "mcm.driver=$driver: want systemd or cgroupfs"
`

// runtimesInitramfs writes an uncompressed initramfs (the kernel copies it
// faster than it would inflate it under emulation): busybox, the modules,
// /init, and in /mcm the exporter and the guest program, both static.
func runtimesInitramfs(t *testing.T, env runtimesEnv, dir string) string {
	t.Helper()
	exporter := buildStatic(t, dir, "cmd/missing-container-metrics")
	guest := buildStatic(t, dir, "test/vm/guest")
	var cpio newc
	for _, d := range []string{"bin", "dev", "proc", "sys", "lower", "rw", "newroot", "mcm"} {
		cpio.dir(d)
	}
	cpio.file("init", 0o755, []byte(runtimesInit))
	cpio.copyFile(t, "bin/busybox", "/bin/busybox")
	cpio.modules(t, env.modules)
	cpio.copyFile(t, "mcm/missing-container-metrics", exporter)
	cpio.copyFile(t, "mcm/guest", guest)
	path := filepath.Join(dir, "initrd-runtimes")
	if err := os.WriteFile(path, cpio.bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// vmTimeout bounds one boot: 1.5 to 3 minutes on this 2-core machine at
// load 20 to 40 from other work, 4 to 6 with stress-ng --cpu 2 besides (the
// two boots and TestCgroupV2InVM at once), a minute more where the exporter
// fails to settle. It ends a hung VM with its console before go test's
// -timeout (20m in scripts/test.sh) ends everything.
const vmTimeout = 14 * time.Minute

// bootRuntimesVM boots the VM with one cgroup driver and returns the guest's
// report; nil after it failed the test.
func bootRuntimesVM(t *testing.T, env runtimesEnv, dir, initrd, driver string) *report.Report {
	t.Helper()
	sock := startVirtiofsd(t, env, dir, driver)
	reportPath := filepath.Join(dir, "report-"+driver+".json")
	const mem = "1536"
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	began := time.Now()
	cmd := exec.CommandContext(ctx, env.qemu,
		"-m", mem, "-smp", "2",
		"-cpu", "max", // RDRAND: the guest's entropy is ready at boot, or Go programs wait for it
		"-display", "none", "-monitor", "none", "-no-reboot", "-nic", "none",
		"-object", "memory-backend-memfd,id=mem,size="+mem+"M,share=on", "-numa", "node,memdev=mem", // virtiofs shares guest memory
		"-chardev", "socket,id=vfs,path="+sock, "-device", "vhost-user-fs-pci,chardev=vfs,tag=hostroot",
		"-serial", "stdio", // the console
		"-serial", "file:"+reportPath, // the report, on the guest's ttyS1
		"-kernel", env.kernel, "-initrd", initrd,
		// no_timer_check: under emulation on a loaded host the kernel's check
		// of the IO-APIC timer can time out and panic ("IO-APIC + timer
		// doesn't work!", seen under stress-ng). apparmor=0: dockerd would
		// load its profile with apparmor_parser, which Debian's docker.io
		// does not depend on and this host lacks.
		"-append", "console=ttyS0 loglevel=1 panic=-1 no_timer_check apparmor=0 selinux=0 log_buf_len=1M mcm.driver="+driver+
			" systemd.unit=mcm.target systemd.show_status=0 systemd.log_level=warning")
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	err := cmd.Run()
	out := strings.ReplaceAll(console.String(), "\r", "")
	t.Logf("the VM (%s driver) ran for %s", driver, time.Since(began).Round(100*time.Millisecond))
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out)
	}
	b, err := os.ReadFile(reportPath)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		t.Fatalf("no report from the guest (%v); console:\n%s", err, out)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the guest's report: %v; console:\n%s", err, out)
	}
	logReport(t, &rep)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console:\n%s", out)
			names := make([]string, 0, len(rep.Logs))
			for n := range rep.Logs {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				t.Logf("%s log:\n%s", n, rep.Logs[n])
			}
		}
	})
	return &rep
}

// startVirtiofsd shares the host's root file system with the guest: a
// read-only bind mount of / in a mount namespace of its own (nothing the
// guest does can write to the host, and the bind shows no other mount),
// served by qemu's virtiofsd on a socket in dir. It ends with the VM.
func startVirtiofsd(t *testing.T, env runtimesEnv, dir, name string) string {
	t.Helper()
	root := filepath.Join(dir, "root-"+name)
	sock := filepath.Join(dir, "virtiofs-"+name+".sock")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(env.unshare, "--mount", "--propagation", "private", "--", "sh", "-c",
		`mount --bind / "$1" && mount -o remount,bind,ro "$1" && exec "$2" --socket-path="$3" -o source="$1" -o cache=always`,
		"sh", root, env.virtiofsd, sock)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		select {
		case <-done:
			t.Fatalf("virtiofsd exited: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("virtiofsd made no socket within a minute: %s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logReport writes what the guest saw: the times, and per container the
// kernel's, the runtime's and the exporter's figures.
func logReport(t *testing.T, r *report.Report) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "guest: driver %s, PID 1 %q, %v\n  %-45s %6.1fs\n", r.Driver, r.Init, r.Versions, "kernel start to the guest program", r.Boot)
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "  %-45s %6.1fs\n", s.Name, s.Seconds)
	}
	for _, c := range r.Containers {
		ev, err := r.KernelCounts(c)
		kernel := fmt.Sprint(ev)
		if err != nil {
			kernel = err.Error()
		}
		fmt.Fprintf(&b, "%s %s (attempt %d) %.25s…\n  cgroup %s\n  kernel %s\n  runtime %+v\n",
			c.Scenario, c.Name, c.Attempt, c.ID, c.Cgroup, kernel, c.Runtime)
		if c.Procs > 0 {
			fmt.Fprintf(&b, "  %d processes started in it\n", c.Procs)
		}
		for _, e := range exporterNames {
			fmt.Fprintf(&b, "  exporter %s: %v\n    after its restart: %v\n", e, r.Scrapes[e]["before"][c.ID], r.Scrapes[e]["after"][c.ID])
		}
	}
	if h := r.Scrapes[report.WithKmsg]["before"][""]; len(h) > 0 {
		fmt.Fprintf(&b, "no container: %v\n", h)
	}
	fmt.Fprintf(&b, "the kernel log's OOM records:\n  %s", strings.Join(r.KernelLog, "\n  "))
	t.Log(b.String())
}

// checkRuntimes checks one boot's report: for every container, the kernel
// counted what the scenario caused, the runtime ran it where its driver
// puts it, and the exporter showed the kernel's count, the runtime's
// restarts and exit code, before and after its own restart.
func checkRuntimes(t *testing.T, r *report.Report) {
	for _, e := range r.Errors {
		t.Errorf("in the guest: %s", e)
	}
	if systemd := strings.Contains(r.Init, "systemd"); systemd != (r.Driver == "systemd") {
		t.Errorf("PID 1 is %q with the %s driver", r.Init, r.Driver)
	}
	scenarios := map[string][]report.Container{}
	for _, c := range r.Containers {
		scenarios[c.Scenario] = append(scenarios[c.Scenario], c)
	}
	want := map[string]int{report.GroupKill: 2, report.SingleKill: 1, report.PodLimit: 2, report.DockerWorkers: 1, report.DockerMain: 1,
		report.DockerTmpfs: 1, report.DockerManyProcs: 1}
	for s, n := range want {
		if len(scenarios[s]) != n {
			t.Errorf("scenario %s: %d containers, want %d (it failed early?)", s, len(scenarios[s]), n)
		}
	}
	for _, c := range r.Containers {
		name := fmt.Sprintf("%s/%s#%d", c.Scenario, c.Name, c.Attempt)
		t.Run(name, func(t *testing.T) { checkContainer(t, r, c) })
	}
	t.Run("the group kills' records", func(t *testing.T) { checkGroupRecords(t, r) })
	t.Run("what held the memory", func(t *testing.T) { checkHeld(t, r) })
	t.Run("the pods' limit hits", func(t *testing.T) { checkPodLimitHits(t, r) })
	for _, e := range exporterNames {
		// The kubelet's restart: max over the pod's container is its count.
		var most float64
		for _, c := range scenarios[report.GroupKill] {
			if v, _ := r.Scrapes[e]["before"][c.ID].Get(report.Restarts); v > most {
				most = v
			}
		}
		if most != 1 {
			t.Errorf("exporter %s, %s: max of %s over the pod's worker containers = %v, want 1 (the kubelet's restart count)", e, report.GroupKill, report.Restarts, most)
		}
		// Every kill in the VM is in a container.
		if h := r.Scrapes[e]["before"][""]; len(h) > 0 {
			t.Errorf("exporter %s: kills in no container, but every kill was in one: %v", e, h)
		}
	}
}

// checkPodLimitHits checks container_memory_pod_limit_hits_total: each of a
// pod's containers has its pod's own hits (memory.events.local max), the
// pod-limit scenario's pod hit its limit before its kill, and no Docker
// container has the series. The exporters read it again after their
// restart, after the guest read the pod's cgroup: at least that.
func checkPodLimitHits(t *testing.T, r *report.Report) {
	for _, e := range exporterNames {
		for _, c := range r.Containers {
			before, inBefore := r.Scrapes[e]["before"][c.ID].Get(report.PodLimitHits)
			after, inAfter := r.Scrapes[e]["after"][c.ID].Get(report.PodLimitHits)
			if c.Pod == "" {
				if inBefore || inAfter {
					t.Errorf("exporter %s: %s of %s, in no pod: %v, %v", e, report.PodLimitHits, c.ID, before, after)
				}
				continue
			}
			kernel := float64(r.PodEvents[c.Parent]["max"])
			if c.Scenario == report.PodLimit && kernel == 0 {
				t.Errorf("%s: the pod's own limit hits (%s/memory.events.local) are 0: the scenario did not hit the pod's limit", c.Scenario, c.Parent)
			}
			if _, live := r.Cgroups[c.Cgroup]; !live {
				continue // not read after the restart
			}
			if !inAfter || after < kernel || (inBefore && before > after) {
				t.Errorf("exporter %s, %s/%s: %s %v (present %v) before the restart, %v (present %v) after; the pod's cgroup counted %v",
					e, c.Scenario, c.Name, report.PodLimitHits, before, inBefore, after, inAfter, kernel)
			}
		}
	}
}

// exporterNames are the exporter's configurations in the guest.
var exporterNames = []string{report.WithKmsg, report.WithoutKmsg}

// Where each runtime puts a container with each driver, from the root of the
// hierarchy.
var cgroupShapes = map[string]map[bool]*regexp.Regexp{
	"systemd": {
		true:  regexp.MustCompile(`^/kubepods\.slice/kubepods-burstable\.slice/kubepods-burstable-pod[0-9a-f_]{36}\.slice/cri-containerd-[0-9a-f]{64}\.scope$`),
		false: regexp.MustCompile(`^/system\.slice/docker-[0-9a-f]{64}\.scope$`),
	},
	"cgroupfs": {
		true:  regexp.MustCompile(`^/kubepods/burstable/pod[0-9a-f-]{36}/[0-9a-f]{64}$`),
		false: regexp.MustCompile(`^/docker/[0-9a-f]{64}$`),
	},
}

func checkContainer(t *testing.T, r *report.Report, c report.Container) {
	pod := c.Pod != ""
	if !cgroupShapes[r.Driver][pod].MatchString(c.Cgroup) {
		t.Errorf("cgroup %s is not where the %s driver puts it", c.Cgroup, r.Driver)
	}
	id := c.ID[strings.Index(c.ID, "://")+3:]
	if !strings.Contains(c.Cgroup, id) {
		t.Errorf("cgroup %s does not name the container %s", c.Cgroup, id)
	}
	_, live := r.Cgroups[c.Cgroup]

	// The kernel: what the scenario caused. A group kill counts every
	// process, and the chosen victim twice when it had not exited yet.
	ev, err := r.KernelCounts(c)
	if err != nil {
		t.Fatal(err)
	}
	group := c.Unified["memory.oom.group"] == "1" && c.Killed > 0
	switch {
	case group:
		if ev["oom_kill"] != uint64(c.Killed) && ev["oom_kill"] != uint64(c.Killed+1) {
			t.Errorf("the kernel counted oom_kill %d in a group kill of %d processes, want %d or %d", ev["oom_kill"], c.Killed, c.Killed, c.Killed+1)
		}
		if ev["oom_group_kill"] != 1 {
			t.Errorf("the kernel counted oom_group_kill %d, want 1", ev["oom_group_kill"])
		}
	default:
		if ev["oom_kill"] != uint64(c.Killed) || ev["oom_group_kill"] != 0 {
			t.Errorf("the kernel counted oom_kill %d, oom_group_kill %d; the scenario killed %d processes one by one", ev["oom_kill"], ev["oom_group_kill"], c.Killed)
		}
	}
	// Whose limit it was: the pod's in the pod-limit scenario, else the
	// container's own.
	domain := c.Cgroup
	if c.Scenario == report.PodLimit {
		domain = c.Parent
	}
	if c.Killed > 0 && !killedIn(r.KernelLog, domain, c.Cgroup) {
		t.Errorf("no oom-kill record in the kernel log with oom_memcg=%s,task_memcg=%s", domain, c.Cgroup)
	}

	// The runtime: a group kill or a killed main process ends the
	// container (SIGKILL: 137); a worker killed alone does not.
	exited := group || c.Scenario == report.DockerMain
	state := map[bool]map[bool]string{true: {true: "CONTAINER_EXITED", false: "CONTAINER_RUNNING"}, false: {true: "exited", false: "running"}}[pod][exited]
	if c.Runtime.State != state || (exited && c.Runtime.ExitCode != 137) {
		t.Errorf("the runtime says %+v, want %s%s", c.Runtime, state, map[bool]string{true: " with exit code 137"}[exited])
	}
	if exited == live {
		t.Errorf("its cgroup is there: %v; the container exited: %v", live, exited)
	}

	// The exporter: the kernel's count of processes killed, the group kills,
	// the kubelet's restarts, the exit code of an exited container.
	for _, e := range exporterNames {
		for _, when := range []string{"before", "after"} {
			t.Run(e+"/"+when+" its restart", func(t *testing.T) {
				s := r.Scrapes[e][when][c.ID]
				// With the systemd driver, systemd removes the cgroup of an
				// exited container at once, often before its counter is
				// read: without the kernel log a pod's container gets its
				// kills from its pod's cgroup, a Docker container from
				// system.slice's (docs/design.md).
				named := e == report.WithKmsg && when == "before"
				checkExporter(t, s, c, ev, named, exited, live || when == "before")
				if when == "before" {
					checkKillRecords(t, s, c, ev, e == report.WithKmsg, exited)
				} else if e == report.WithKmsg {
					// The kernel log's buffer still holds every report: what
					// it told comes back whole, and never goes down.
					before := r.Scrapes[e]["before"][c.ID]
					for _, m := range []string{report.ByProcess, report.ByScope} {
						if got, want := s.Sum(m), before.Sum(m); got != want {
							t.Errorf("%s adds up to %v after the exporter's restart, %v before (%v)", m, got, want, s)
						}
					}
				}
			})
		}
	}
}

// checkKillRecords checks the series of the kill records: with the kernel
// log, every kill in the scope whose limit was hit (the pod's in the
// pod-limit scenario, else the container's), that limit, and "oom_killed"
// for a container whose main process was killed; without it, no scope and
// no reason for a SIGKILL it cannot tell apart.
func checkKillRecords(t *testing.T, s report.Series, c report.Container, ev report.Events, kmsg, exited bool) {
	scope, limit := "container", float64(32<<20)
	if c.Scenario == report.PodLimit {
		scope, limit = "pod", float64(24<<20)
	}
	if !kmsg {
		if n := s.Sum(report.ByScope); n != 0 {
			t.Errorf("%s adds up to %v without the kernel log", report.ByScope, n)
		}
		// An exit by SIGKILL right after the kill a counter or the runtime
		// counted is the kill's; without any, not known.
		if reason, ok := exitReason(s); ok && reason != "oom_killed" {
			t.Errorf("%s{reason=%q} without the kernel log, for an exit by SIGKILL", report.ExitReason, reason)
		}
		return
	}
	if got, want := s[report.ByScope+"/"+scope], float64(ev["oom_kill"]); got != want || s.Sum(report.ByScope) != want {
		t.Errorf("%s: %v (%v), want %s=%v", report.ByScope, got, s, scope, want)
	}
	if got, ok := s.Get(report.OOMLimit); ev["oom_kill"] > 0 && (!ok || got != limit) {
		t.Errorf("%s = %v (present %v), want %v", report.OOMLimit, got, ok, limit)
	}
	reason, ok := exitReason(s)
	switch {
	case exited && reason != "oom_killed":
		t.Errorf("%s: %q (present %v), want oom_killed: it exited by SIGKILL right after an OOM kill in it", report.ExitReason, reason, ok)
	case !exited && ok:
		t.Errorf("%s{reason=%q} of a running container that never exited", report.ExitReason, reason)
	}
}

// exitReason is the reason label of container_last_exit_code, if any.
func exitReason(s report.Series) (string, bool) {
	for k, v := range s {
		if r, ok := strings.CutPrefix(k, report.ExitReason+"/"); ok && v == 1 {
			return r, true
		}
	}
	return "", false
}

// checkExporter checks what an exporter showed for container c: the
// kernel's count of processes killed and of group kills (where it can know
// them: counted is false after a restart once the cgroup is gone), the
// kubelet's restarts, the exit code of an exited container; named, every
// victim by its name.
func checkExporter(t *testing.T, s report.Series, c report.Container, ev report.Events, named, exited, counted bool) {
	if s == nil {
		t.Fatal("not exported")
	}
	check := func(metric string, want float64, present bool) {
		t.Helper()
		got, ok := s.Get(metric)
		if ok != present || (present && got != want) {
			t.Errorf("%s = %v (present %v), want %v (present %v)", metric, got, ok, want, present)
		}
	}
	check(report.Restarts, float64(c.Attempt), true)
	check(report.ExitCode, 137, exited)
	if !counted {
		// Its cgroup is gone: what is left is what the exporter read
		// before, and the runtime's memory of an OOM kill
		// (docs/design.md), logged above. Never more than the kernel's.
		for metric, kernel := range map[string]uint64{report.OOMs: ev["oom_kill"], report.GroupKills: ev["oom_group_kill"]} {
			if got, _ := s.Get(metric); got > float64(kernel) {
				t.Errorf("%s = %v, above the kernel's %d", metric, got, kernel)
			}
		}
		return
	}
	check(report.OOMs, float64(ev["oom_kill"]), true)
	check(report.GroupKills, float64(ev["oom_group_kill"]), true)
	if n := s.Sum(report.ByProcess); named && n != float64(ev["oom_kill"]) {
		t.Errorf("%s adds up to %v over the processes (%v), the kernel counted %d kills", report.ByProcess, n, s, ev["oom_kill"])
	}
}

// killedIn reports whether the kernel log has an oom-kill record of a
// victim in cgroup cg, killed for the limit of cgroup domain.
func killedIn(log []string, domain, cg string) bool {
	for _, l := range log {
		if strings.Contains(l, "oom-kill:") && strings.Contains(l, ",oom_memcg="+domain+",task_memcg="+cg+",") {
			return true
		}
	}
	return false
}

// checkGroupRecords checks the kill records of the group kills, with the
// kernel log: one record for each (the kernel logs the chosen victim, then
// every member, the chosen victim again among them), with every member
// once, the container ended (the victim is a tini-like wrapper's child), and
// one announcement, its "OOM kill" line: what an Event is sent for.
func checkGroupRecords(t *testing.T, r *report.Report) {
	log := r.Logs["exporter "+report.WithKmsg+", first run"]
	for _, c := range r.Containers {
		if c.Unified["memory.oom.group"] != "1" || c.Killed == 0 || c.Scenario == report.PodLimit {
			continue
		}
		var recs []report.Record
		for _, k := range r.Records[report.WithKmsg] {
			if k.ContainerID == c.ID {
				recs = append(recs, k)
			}
		}
		if len(recs) != 1 || recs[0].Outcome != "ended" || len(recs[0].Members) != c.Killed || recs[0].Group != c.Cgroup {
			t.Errorf("%s/%s: records %+v, want one of the group kill of its %d processes, the container ended", c.Scenario, c.Name, recs, c.Killed)
		}
		if n := strings.Count(log, "container_id="+c.ID+" "); n != 1 {
			t.Errorf("%s/%s: announced %d times (its OOM kill lines), want once", c.Scenario, c.Name, n)
		}
	}
}

// checkHeld checks what the kill records say held the memory, on cgroup v2's
// report (its "Memory cgroup stats" lines and its task dump), per scenario:
// the tmpfs filler's kill says shmem, most of the limit; the many small
// processes' says how many there were, their count in the dump, and lists
// the largest ten; every other scenario's victim is a process that
// allocated more than its limit (busybox's dd, a wrapper's child), so
// anonymous memory held most of it, and the dump lists the container's
// tasks. Every scenario's kills have their report: the VM's kernel prints
// at most 10 in 5 s, and all its kills are the scenarios', fewer than that.
func checkHeld(t *testing.T, r *report.Report) {
	byID := map[string]report.Container{}
	for _, c := range r.Containers {
		byID[c.ID] = c
	}
	described := map[string]int{}
	for _, k := range r.Records[report.WithKmsg] {
		if k.Place != "container" || k.LimitCgroup == "" {
			continue // no report: a kill in no container (or, elsewhere, the kernel's rate limit)
		}
		c := byID[k.ContainerID]
		described[c.Scenario]++
		t.Logf("%s/%s: held by %q; %d tasks of %d listed", c.Scenario, c.Name, k.HeldBy, k.Listed, k.Tasks)
		switch c.Scenario {
		case report.DockerTmpfs:
			// dd and the shell that started it; the file is no process's.
			if !strings.HasPrefix(k.HeldBy, "shmem ") || k.ShmemBytes < 16<<20 || k.Tasks != 2 || k.Listed != 2 {
				t.Errorf("%s: held by %q, %d bytes of shmem, %d tasks of %d listed; want shmem, most of the 32 MiB, the 2 tasks",
					c.Scenario, k.HeldBy, k.ShmemBytes, k.Listed, k.Tasks)
			}
		case report.DockerManyProcs:
			checkManyHeld(t, c, k)
		default:
			if !strings.HasPrefix(k.HeldBy, "anonymous memory") || k.Tasks == 0 || k.AnonBytes < 8<<20 {
				t.Errorf("%s: held by %q, %d tasks, %d bytes anonymous; want anonymous memory, the tasks, most of the limit", k.ContainerID, k.HeldBy, k.Tasks, k.AnonBytes)
			}
		}
	}
	for _, c := range r.Containers {
		if c.Killed > 0 && described[c.Scenario] == 0 {
			t.Errorf("scenario %s: no kill record with the kernel's report: %+v", c.Scenario, r.Records[report.WithKmsg])
		}
	}
}

// manyHeld is the sentence of many processes none of which holds a tenth;
// the largest by RSS is the shell or a holder.
var manyHeld = regexp.MustCompile(`^anonymous memory [0-9.]+ MiB of 32 MiB, in ([0-9]+) processes, the largest "(sh|dd)" \(pid [0-9]+\) with `)

// checkManyHeld checks the record of a kill among many small processes:
// the sentence counts the dump's tasks, which are the processes the
// scenario started and the shell that started them (less the last process
// where the kill came while it was being forked, and less those killed
// before, where the kernel killed more than one), and the record lists
// the largest ten.
func checkManyHeld(t *testing.T, c report.Container, k report.Record) {
	m := manyHeld.FindStringSubmatch(k.HeldBy)
	if m == nil {
		t.Errorf("%s: held by %q, want %q", c.Scenario, k.HeldBy, manyHeld)
		return
	}
	n, _ := strconv.Atoi(m[1])
	if n != k.Tasks || n > c.Procs+1 || n < c.Procs+1-c.Killed {
		t.Errorf("%s: held by %q, in the dump %d tasks; the scenario started %d processes and the shell", c.Scenario, k.HeldBy, k.Tasks, c.Procs)
	}
	if k.Listed != 10 || k.AnonBytes < 16<<20 {
		t.Errorf("%s: %d tasks listed, %d bytes anonymous; want the largest 10, most of the 32 MiB", c.Scenario, k.Listed, k.AnonBytes)
	}
}
