package e2e

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The kernel log without a privileged container (issue 21): read through
// syslog(2), which takes CAP_SYSLOG alone, on the real kernel.

// The image as the chart runs it by default: root, every capability dropped
// but SYSLOG, Docker's default seccomp profile, no device, not privileged,
// the host's cgroups and /proc read-only. It reads the kernel log through
// syslog(2), says so on /, and names the victim of a real kill. Without
// SYSLOG it says what is missing and counts the kill all the same.
func TestImageReadsTheKernelLogWithCapSyslogAlone(t *testing.T) {
	kernelPrereqs(t)
	image, _ := buildImage(t)
	socket := strings.TrimPrefix(env.dockerHost, "unix://")
	for _, tc := range []struct {
		name   string
		caps   []string
		reader string // what / says
		named  bool
	}{
		{"CAP_SYSLOG", []string{"--cap-add", "SYSLOG"}, "read through syslog(2)", true},
		{"no capability", nil, "not read", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := freeAddr()
			if err != nil {
				t.Fatal(err)
			}
			args := append([]string{"run", "-d", "--network", "host", "--cgroup-parent", env.cgroupParent, "--user", "0:0",
				"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
				"-v", socket + ":/var/run/docker.sock:ro",
				"-v", "/sys/fs/cgroup:/host/sys/fs/cgroup:ro", "-v", "/proc:/host/proc:ro"}, tc.caps...)
			args = append(args, image, "--web.listen-address="+addr, "--no-containerd",
				"--path.sysfs=/host/sys", "--path.procfs=/host/proc", "--kernel.cgroup-parent="+env.cgroupParent)
			id := docker(t, args...)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("exporter container log:\n%s", containerLogs(id))
				}
				_, _ = dockerErr("rm", "-f", id)
			})
			e := &exporter{addr: addr}
			name := "sys-" + randomID(2)
			victim := run(t, nil, worker(name)+"; echo done; sleep 100000")
			waitLog(t, victim, "done")
			e.waitCounts(t, victim, counts{OOMs: 1})
			if tc.named {
				e.waitNamed(t, victim, name, 1)
				eventually(t, 30*time.Second, func() error {
					ks, err := e.kills("container=" + victim)
					if err != nil {
						return err
					}
					if len(ks) != 1 || ks[0].From != "kernel_log" || ks[0].Scope != "container" || ks[0].LimitBytes == nil || *ks[0].LimitBytes != 32<<20 {
						return fmt.Errorf("records %+v, want the kernel log's full record", ks)
					}
					return nil
				})
			}
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if page := strings.Join(strings.Fields(html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(string(body), " "))), " "); !strings.Contains(page, "The kernel log, which names each victim and why it was killed: "+tc.reader) {
				t.Errorf("the landing page does not say the kernel log is %s:\n%s", tc.reader, page)
			}
			if !tc.named {
				logs := containerLogs(id)
				if !strings.Contains(logs, "not reading the kernel log") || !strings.Contains(logs, "CAP_SYSLOG") {
					t.Errorf("the log does not say what is missing:\n%s", logs)
				}
			}
		})
	}
}

// Over syslog(2) on the real kernel: lines written to /dev/kmsg from
// userspace that read like an OOM report are not kills; a real kill is
// named; after an exporter restart nothing is counted or announced twice.
func TestSyslogReaderForgedLinesAndARestart(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t, "--kernel.log=syslog", "--no-containerd")
	target := run(t, nil, "sleep 100000")
	pid := inspect(t, target, "{{.State.Pid}}")
	name := "sysreal-" + randomID(2)
	real := run(t, nil, "while [ ! -e /tmp/go ]; do sleep 0.05; done; "+worker(name)+"; echo done; sleep 100000")
	e.waitCounts(t, target, counts{})
	kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kmsg.Close()
	cg := filepath.Join(env.cgroupParent, target)
	for _, line := range []string{
		"<3>oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + cg + ",task_memcg=" + cg + ",task=forged-s,pid=" + pid + ",uid=0",
		"<0>Memory cgroup out of memory: Killed process " + pid + " (forged-s) total-vm:1000kB, anon-rss:10kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0",
	} {
		if _, err := kmsg.Write([]byte(line + "\n")); err != nil {
			t.Fatalf("write /dev/kmsg: %v", err)
		}
	}
	docker(t, "exec", real, "touch", "/tmp/go")
	waitLog(t, real, "done")
	e.waitCounts(t, real, counts{OOMs: 1})
	e.waitNamed(t, real, name, 1)
	e.waitKill(t, name, map[string]string{"container_id": "docker://" + real, "outcome": "lived_on"})
	if c, _ := mustScrape(t, e).containerCounts(target); c.OOMs != 0 {
		t.Errorf("forged lines counted as kills of %.12s: %v", target, c)
	}

	// Restarted: the ring still holds the kill, which counts once (the
	// cgroup's counter confirms it) and is not announced again.
	e.stop()
	again := startExporter(t, "--kernel.log=syslog", "--no-containerd")
	again.waitCounts(t, real, counts{OOMs: 1})
	again.waitNamed(t, real, name, 1)
	if c, _ := mustScrape(t, again).containerCounts(target); c.OOMs != 0 {
		t.Errorf("after the restart, forged lines counted: %v", c)
	}
	if _, n, _ := again.killLine(name); n != 0 {
		t.Errorf("the kill announced again after the restart (%d lines)", n)
	}
}

// The ring is small (128 KiB here): while the exporter is stopped
// (SIGSTOP), kills go on until the kernel has overwritten every record it
// had not read (the oldest record in the ring is newer than the newest when
// it stopped), however many reports the kernel's rate limit let through.
// The exporter says so (malformed_events_total{source="kmsg"}), and the
// kills still count exactly, from the cgroup's counter.
func TestSyslogReaderOverwrittenRing(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t, "--kernel.log=syslog", "--no-containerd")
	waitSourcesUp(t, e, map[string]int{"docker": 0})
	before := malformedKmsg(t, e)
	// Told when to begin and to stop through a directory of the host's: an
	// exec into a container at its limit may be OOM-killed itself.
	ctl := t.TempDir()
	id := run(t, []string{"-v", ctl + ":/ctl"}, fmt.Sprintf("while [ ! -e /ctl/go ]; do sleep 0.05; done; while [ ! -e /ctl/stop ]; do %s; echo kill; done; echo done; sleep 100000", oomOnce))
	e.waitCounts(t, id, counts{})
	if err := syscall.Kill(e.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = syscall.Kill(e.PID(), syscall.SIGCONT)
		}
	})
	_, newest := kmsgSeqs(t)
	if err := os.WriteFile(filepath.Join(ctl, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, func() error {
		if oldest, _ := kmsgSeqs(t); oldest <= newest {
			return fmt.Errorf("the ring's oldest record is %d, the newest when the exporter stopped %d: not overwritten yet", oldest, newest)
		}
		return nil
	})
	if err := os.WriteFile(filepath.Join(ctl, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitLog(t, id, "done")
	kills := strings.Count(containerLogs(id), "kill\n")
	if err := syscall.Kill(e.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	t.Logf("%d kills while the exporter was stopped", kills)
	e.waitCounts(t, id, counts{OOMs: float64(kills)})
	eventually(t, 30*time.Second, func() error {
		if n := malformedKmsg(t, e); n <= before {
			return fmt.Errorf("malformed_events_total{source=kmsg} %v, was %v: the overwrite not told", n, before)
		}
		return nil
	})
}

// kmsgSeqs returns the sequence numbers of the oldest and the newest record
// in the kernel's ring now.
func kmsgSeqs(t *testing.T) (oldest, newest uint64) {
	t.Helper()
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	buf := make([]byte, 8192)
	first := true
	for {
		n, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EPIPE) {
			continue // overwritten while read
		}
		if err != nil || n <= 0 {
			return oldest, newest // EAGAIN: no more
		}
		// PRIORITY,SEQ,TIME,FLAGS;MESSAGE
		f := strings.SplitN(string(buf[:n]), ",", 3)
		if len(f) < 3 {
			continue
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		if first {
			oldest, first = seq, false
		}
		newest = seq
	}
}

func malformedKmsg(t *testing.T, e *exporter) float64 {
	t.Helper()
	_, v, _ := mustScrape(t, e).series("missing_container_metrics_malformed_events_total", map[string]string{"source": "kmsg"})
	return v
}

func mustScrape(t *testing.T, e *exporter) *scrape {
	t.Helper()
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// containerLogs is what a container wrote, to stdout and stderr.
func containerLogs(id string) string {
	cmd := exec.Command("docker", "logs", id)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+env.dockerHost)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("docker logs: %v\n%s", err, out)
	}
	return string(out)
}
