package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The privileges docs/deploy.md gives each way to run the exporter, tried with the
// image (make image) on the harness's dockerd, whose runc applies the same device
// cgroup and capabilities as the kubelet's runtime: what each source needs, and
// that less does not do.
func TestLeastPrivilege(t *testing.T) {
	dockerHost := os.Getenv("MCM_TEST_DOCKER_HOST")
	containerdSocket := os.Getenv("MCM_TEST_CONTAINERD_ADDRESS")
	cgroupParent := os.Getenv("MCM_TEST_CGROUP_PARENT")
	if dockerHost == "" || containerdSocket == "" || cgroupParent == "" {
		msg := "MCM_TEST_DOCKER_HOST, MCM_TEST_CONTAINERD_ADDRESS or MCM_TEST_CGROUP_PARENT is not set: run through scripts/test.sh, which starts the harness"
		if underCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	docker := func(args ...string) (string, error) {
		cmd := exec.Command("docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("docker %s: %w: %s", args[0], err, stderr.String())
		}
		return strings.TrimSpace(stdout.String()), err
	}
	image := fmt.Sprintf("missing-container-metrics-test:privilege-%d", os.Getpid())
	build := exec.Command("make", "-C", "..", "image", "IMAGE="+image)
	build.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = docker("rmi", "-f", image) })

	restricted := strings.TrimSpace(string(readFile(t, "/proc/sys/kernel/dmesg_restrict"))) == "1"
	kernelMounts := []string{"-v", "/sys/fs/cgroup:/host/sys/fs/cgroup:ro", "-v", "/proc:/host/proc:ro"}
	// The harness's containers are under its cgroup parent, as with Docker's --cgroup-parent.
	kernelArgs := []string{"--no-docker", "--kernel", "--path.sysfs=/host/sys", "--path.procfs=/host/proc", "--kernel.cgroup-parent=" + cgroupParent}
	confined := []string{"--cap-drop", "ALL", "--read-only", "--security-opt", "no-new-privileges"}

	// start runs the image on the host's network, on 127.0.0.1, and returns its address.
	start := func(t *testing.T, flags, args []string) (string, func() string) {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		runArgs := append([]string{"run", "-d", "--network", "host", "--cgroup-parent", cgroupParent}, flags...)
		runArgs = append(append(runArgs, image, "--web.listen-address="+addr), args...)
		id, err := docker(runArgs...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = docker("rm", "-f", id) })
		return addr, func() string {
			// The exporter logs to stderr, which docker logs gives on its stderr.
			cmd := exec.Command("docker", "logs", id)
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost)
			out, _ := cmd.CombinedOutput()
			return string(out)
		}
	}
	// waitFor polls until cond holds for a scrape, or fails after a minute.
	waitFor := func(t *testing.T, addr string, logs func() string, what string, cond func(metrics, logs string) bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			body, _ := get("http://" + addr + "/metrics")
			l := logs()
			if cond(body, l) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within a minute\nmetrics:\n%s\nlog:\n%s", what, grepLines(body, "^missing_container_metrics_source_up"), l)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	up := func(source string) string { return `missing_container_metrics_source_up{source="` + source + `"} 1` }

	// victim runs a container whose worker, dd, is OOM-killed at once, and
	// returns its id.
	victim := func(t *testing.T) string {
		t.Helper()
		id, err := docker("run", "-d", "--network", "none", "--cgroup-parent", cgroupParent, "--memory", "32m", "--memory-swap", "32m",
			os.Getenv("MCM_TEST_IMAGE"), "sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 100000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = docker("rm", "-f", id) })
		return id
	}
	socket := "-v" + containerdSocket + ":/run/containerd/containerd.sock:ro"
	t.Run("the DaemonSet: root with CAP_SYSLOG alone, the containerd socket, only /sys/fs/cgroup and /proc; the kernel log through syslog(2)", func(t *testing.T) {
		flags := append([]string{"--user", "0:0", "--cap-add", "SYSLOG", socket}, confined...)
		addr, logs := start(t, append(flags, kernelMounts...), append(kernelArgs, "--containerd", "--kernel.log=syslog"))
		waitFor(t, addr, logs, "containerd, cgroup and kmsg sources up", func(m, _ string) bool {
			return strings.Contains(m, up("containerd")) && strings.Contains(m, up("cgroup")) && strings.Contains(m, up("kmsg"))
		})
		// A real OOM kill, counted, and its victim named.
		id := victim(t)
		named := regexp.MustCompile(`(?m)^container_oom_kills_by_process_total\{[^}]*container_id="containerd://` + id + `"[^}]*process="dd"[^}]*\} 1$`)
		waitFor(t, addr, logs, "OOM kill counted and named", func(m, _ string) bool { return named.MatchString(m) })
	})
	t.Run("the DaemonSet without the kernel log: nobody in the containerd socket's group, no capabilities", func(t *testing.T) {
		flags := append([]string{"--user", "65534:65534", "--group-add", "0", socket}, confined...)
		addr, logs := start(t, append(flags, kernelMounts...), append(kernelArgs, "--containerd", "--kernel.log=none"))
		waitFor(t, addr, logs, "containerd and cgroup sources up", func(m, _ string) bool {
			return strings.Contains(m, up("containerd")) && strings.Contains(m, up("cgroup"))
		})
		id := victim(t)
		killed := regexp.MustCompile(`(?m)^container_ooms_total\{[^}]*container_id="containerd://` + id + `"[^}]*\} 1$`)
		waitFor(t, addr, logs, "OOM kill counted", func(m, _ string) bool { return killed.MatchString(m) })
	})

	kmsgDown := func(m, l string) bool {
		return strings.Contains(m, `missing_container_metrics_source_up{source="kmsg"} 0`) && strings.Contains(l, "open /dev/kmsg: operation not permitted")
	}
	kmsgArgs := append(kernelArgs, "--no-containerd", "--kernel.log=kmsg", "--path.kmsg=/dev/kmsg")
	t.Run("the kernel log: root with CAP_SYSLOG alone, and the device", func(t *testing.T) {
		flags := append([]string{"--user", "0:0", "--cap-add", "SYSLOG", "--device", "/dev/kmsg:/dev/kmsg:r"}, confined...)
		addr, logs := start(t, append(flags, kernelMounts...), kmsgArgs)
		waitFor(t, addr, logs, "kmsg source up", func(m, _ string) bool { return strings.Contains(m, up("kmsg")) })
	})
	t.Run("the kernel log: a bind mount of /dev/kmsg (a hostPath) is refused, CAP_SYSLOG or not", func(t *testing.T) {
		flags := append([]string{"--user", "0:0", "--cap-add", "SYSLOG", "-v", "/dev/kmsg:/dev/kmsg:ro"}, confined...)
		addr, logs := start(t, append(flags, kernelMounts...), kmsgArgs)
		waitFor(t, addr, logs, "kmsg refused", kmsgDown)
	})
	t.Run("the kernel log: without CAP_SYSLOG, or as another user than root", func(t *testing.T) {
		if !restricted {
			t.Skip("kernel.dmesg_restrict is 0 here: any user may read the kernel log")
		}
		for _, user := range [][]string{{"--user", "0:0"}, {"--user", "65534:65534", "--cap-add", "SYSLOG"}} {
			flags := append(append(user, "--device", "/dev/kmsg:/dev/kmsg:r"), confined...)
			addr, logs := start(t, append(flags, kernelMounts...), kmsgArgs)
			waitFor(t, addr, logs, fmt.Sprintf("kmsg refused (%v)", user), kmsgDown)
		}
	})
}

// grepLines returns the lines of s that match pattern.
func grepLines(s, pattern string) string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if re.MatchString(line) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
