package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// oomOnce is a shell command that is OOM-killed at once under a 32 MiB limit.
const oomOnce = "dd if=/dev/zero of=/dev/null bs=64M count=1"

// The fluentd story: a worker is OOM-killed three times while the
// container's main process lives on. No restart, no exit code shows it.
func TestWorkerOOMKilledWhileContainerLivesOn(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	id := run(t, nil, fmt.Sprintf("for i in 1 2 3; do %s; done; echo done; sleep 100000", oomOnce))
	waitLog(t, id, "done")
	e.waitCounts(t, id, counts{OOMs: 3})
	if got := inspect(t, id, "{{.State.Running}}"); got != "true" {
		t.Fatalf("the container's main process died: running=%s", got)
	}
}

func TestMainProcessOOMKilled(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	id := run(t, nil, "exec "+oomOnce)
	waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 137})
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	id := run(t, nil, "exit 3")
	waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitCounts(t, id, counts{Exited: true, ExitCode: 3})
}

func TestRestartPolicy(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	id := run(t, []string{"--restart", "on-failure:2"}, "exit 1")
	waitInspect(t, id, "{{.State.Status}} {{.RestartCount}}", "exited 2")
	e.waitCounts(t, id, counts{Restarts: 2, Exited: true, ExitCode: 1})
}

// A docker start after an exit is a restart; the first start is not.
func TestStartAfterExitIsARestart(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	id := run(t, nil, "exit 4")
	waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitCounts(t, id, counts{Exited: true, ExitCode: 4})
	docker(t, "start", id)
	waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitCounts(t, id, counts{Restarts: 1, Exited: true, ExitCode: 4})
}

// The labels users join on, one id on every series; with the earlier
// tool's names and labels (--compat.legacy-metric-names) its other ids and
// the image too.
func TestKubernetesLabels(t *testing.T) {
	t.Parallel()
	legacy := startExporter(t, "--compat.legacy-metric-names", "--no-kernel")
	id := run(t, []string{
		"--name", "k8s_app_web-1_shop_0f7e9a1c_0",
		"--label", "io.kubernetes.container.name=app",
		"--label", "io.kubernetes.pod.name=web-1",
		"--label", "io.kubernetes.pod.namespace=shop",
		"--label", "io.kubernetes.pod.uid=0f7e9a1c-5c0f-4ee0-8def-000000000001",
	}, "sleep 100000")
	imageID := inspect(t, id, "{{.Image}}")
	want := map[string]string{
		"container_id": "docker://" + id,
		"name":         "app", "container": "app", "pod": "web-1", "namespace": "shop", "uid": "0f7e9a1c-5c0f-4ee0-8def-000000000001",
	}
	wantLegacy := map[string]string{"container_short_id": id[:12], "docker_container_id": id, "image_id": imageID}
	for k, v := range want {
		wantLegacy[k] = v
	}
	for _, tc := range []struct {
		e      *exporter
		family string
		want   map[string]string
	}{
		{sharedExporter(t), "container_ooms_total", want},
		{legacy, "container_ooms", wantLegacy},
	} {
		eventually(t, 30*time.Second, func() error {
			s, err := tc.e.scrape()
			if err != nil {
				return err
			}
			labels, v, ok := s.series(tc.family, map[string]string{"container_id": "docker://" + id})
			if !ok {
				return fmt.Errorf("%s not exported yet", tc.family)
			}
			for k, w := range tc.want {
				if labels[k] != w {
					return errStop{fmt.Errorf("%s: label %s=%q, want %q (all: %v)", tc.family, k, labels[k], w, labels)}
				}
			}
			if len(labels) != len(tc.want) || v != 0 {
				return errStop{fmt.Errorf("%s: labels %v value %v", tc.family, labels, v)}
			}
			return nil
		})
	}
}

// An exec that exits non-zero never changes the container's exit code.
func TestExecDoesNotChangeExitCode(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	id := run(t, nil, "sleep 100000")
	e.waitCounts(t, id, counts{})
	if _, err := dockerErr("exec", id, "sh", "-c", "exit 5"); err == nil {
		t.Fatal("exec exited 0")
	}
	// Events are applied in order: once a container started after the
	// exec is exported, the exec's exit has been handled. (Started: a
	// container only created is inspected, and so exported, at its start.)
	sentinel := run(t, nil, "sleep 100000")
	e.waitCounts(t, sentinel, counts{})
	e.waitCounts(t, id, counts{})
	docker(t, "kill", id)
	e.waitCounts(t, id, counts{Exited: true, ExitCode: 137})
}

// Label values with quotes, backslashes, newlines and any Unicode still give
// exposition text that promtool accepts.
func TestHostileLabelsGiveValidExposition(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	hostile := "we\"ird\\pod\nname ✓ " + strings.Repeat("x", 10<<10)
	id := run(t, []string{
		"--label", "io.kubernetes.pod.name=" + hostile,
		"--label", "io.kubernetes.pod.namespace={}=,\"",
		"--label", "io.kubernetes.container.name=c\\\"",
	}, "sleep 100000")
	var text []byte
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		labels, _, ok := s.series("container_ooms_total", map[string]string{"container_id": "docker://" + id})
		if !ok {
			return fmt.Errorf("not exported yet")
		}
		if labels["pod"] != hostile {
			return errStop{fmt.Errorf("pod label %q", labels["pod"])}
		}
		text = s.Text
		return nil
	})
	promtoolCheckMetrics(t, text)
}

// promtoolCheckMetrics runs promtool check metrics over an exposition.
func promtoolCheckMetrics(t *testing.T, text []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (Debian package prometheus) is needed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	// Exit 1: the text does not parse; exit 3: it parses but breaks the
	// naming conventions. Both fail.
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// OOM kills and restarts that happened before the exporter started are
// counted: the main process killed at each of its three runs, each run in a
// cgroup of its own that is gone; the kernel log's buffer still holds the
// three kills (Docker's OOMKilled flag says only that the last run had one).
func TestCountsFromBeforeExporterStart(t *testing.T) {
	t.Parallel()
	kernelPrereqs(t)
	id := run(t, []string{"--restart", "on-failure:2"}, "exec "+oomOnce)
	// Its three runs ended by the kill of their main process. Docker's own
	// OOMKilled flag is not waited for: dockerd 20.10 missed it under load
	// (the exit came before containerd's OOM event), and the counts come
	// from the kernel log's buffer.
	waitInspect(t, id, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}", "exited 2 137")
	e := startExporter(t)
	e.waitCounts(t, id, counts{OOMs: 3, Restarts: 2, Exited: true, ExitCode: 137})
}

// A container that exited and was restarted before the exporter started:
// Docker's inspect says exit code 0 for it (Docker resets the code at every
// start), but the code is unknown. The exporter shows none rather than a
// wrong 0, and the right one at the next exit.
func TestRestartedBeforeExporterStartHasNoExitCode(t *testing.T) {
	t.Parallel()
	id := run(t, []string{"--restart", "on-failure:1"}, "if [ -e /ran ]; then sleep 100000; else touch /ran; exit 7; fi")
	waitInspect(t, id, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}", "running 1 0")
	e := startExporter(t)
	e.waitCounts(t, id, counts{Restarts: 1})
	docker(t, "kill", id)
	e.waitCounts(t, id, counts{Restarts: 1, Exited: true, ExitCode: 137})
}

// dockerd stopped and started again while the exporter runs: the exporter
// keeps serving with the source down, keeps the counts it had, counts the
// kills after dockerd is back, and counts nothing twice.
// Not parallel: it takes dockerd away from every other test.
func TestDockerdRestart(t *testing.T) {
	e := startExporter(t)
	before := run(t, nil, oomOnce+"; echo done; sleep 100000")
	waitLog(t, before, "done")
	e.waitCounts(t, before, counts{OOMs: 1})

	stopDaemon(t, "dockerd")
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if _, up, _ := s.series("missing_container_metrics_source_up", map[string]string{"source": "docker"}); up != 0 {
			return fmt.Errorf("docker source still up")
		}
		if c, ok := s.containerCounts(before); !ok || c.OOMs != 1 {
			return errStop{fmt.Errorf("counts lost while dockerd is away: %v (exported: %v)", c, ok)}
		}
		return nil
	})

	startDaemon(t, "dockerd")
	eventually(t, 60*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		_, up, _ := s.series("missing_container_metrics_source_up", map[string]string{"source": "docker"})
		_, reconnects, _ := s.series("missing_container_metrics_reconnects_total", map[string]string{"source": "docker"})
		if up != 1 || reconnects < 1 {
			return fmt.Errorf("docker source up=%v reconnects=%v", up, reconnects)
		}
		return nil
	})
	after := run(t, nil, oomOnce+"; echo done; sleep 100000")
	waitLog(t, after, "done")
	e.waitCounts(t, after, counts{OOMs: 1})
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.containerCounts(before); c.OOMs != 1 {
		t.Fatalf("the container from before dockerd's restart: %v, want ooms=1", c)
	}
}

// A removed container's series stay for --retention, then go.
func TestRetentionOfRemovedContainers(t *testing.T) {
	t.Parallel()
	// With the kernel reader on, as users run it: its cgroup goes at the
	// exit, the series stay until a retention after the removal.
	e := startExporter(t, "--retention=3s")
	checkRetention(t, e, dockerd(), "docker")
}

// A runtime socket that is not there: the exporter serves, says the source
// is down, and logs why.
func TestDeadSocketAtStart(t *testing.T) {
	t.Parallel()
	e := startExporter(t, "--docker.host=unix:///nonexistent/docker.sock")
	waitDockerDown(t, e, "/nonexistent/docker.sock", "no such file or directory")
}

// --web.config.file (exporter-toolkit): basic auth guards /metrics.
func TestBasicAuthFromWebConfig(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, "--web.config.file="+cfg)
	for _, tc := range []struct {
		user, pass string
		want       int
	}{
		{"", "", http.StatusUnauthorized},
		{"prometheus", "wrong", http.StatusUnauthorized},
		{"prometheus", "s3cret", http.StatusOK},
	} {
		req, err := http.NewRequest("GET", "http://"+e.addr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("user %q password %q: %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.want)
		}
	}
}

// A container created from an image name that dockerd has since moved to
// another image (docker tag) gets the other image's id: the source, which
// takes a known name's id without an inspect, hears of the tag (the events it
// asks dockerd for include every image event that moves a name). A created
// container is not inspected again until it starts.
func TestImageNameMovedToAnotherImage(t *testing.T) {
	t.Parallel()
	e := startExporter(t, "--compat.legacy-metric-names", "--no-kernel")
	name := "mcm-moved-" + randomID(6) + ":1"
	docker(t, "tag", env.image, name)
	t.Cleanup(func() { _, _ = dockerErr("rmi", name) })
	imageOf := func(id string) {
		t.Helper()
		want := inspect(t, id, "{{.Image}}")
		eventually(t, 30*time.Second, func() error {
			s, err := e.scrape()
			if err != nil {
				return err
			}
			labels, _, ok := s.series("container_ooms", map[string]string{"docker_container_id": id})
			if !ok {
				return fmt.Errorf("%.12s not exported yet", id)
			}
			if labels["image_id"] != want {
				return fmt.Errorf("%.12s: image_id %q, want %q", id, labels["image_id"], want)
			}
			return nil
		})
	}
	create := func() string {
		t.Helper()
		id := docker(t, "create", "--network", "none", name, "sleep", "1")
		t.Cleanup(func() { _, _ = dockerErr("rm", "-f", id) })
		return id
	}
	first := create()
	imageOf(first)
	other := docker(t, "commit", first) // another image, then the name moved to it
	t.Cleanup(func() { _, _ = dockerErr("rmi", "-f", other) })
	docker(t, "tag", other, name)
	second := create()
	if got := inspect(t, second, "{{.Image}}"); got != other {
		t.Fatalf("dockerd made %.12s from %s, want %s", second, got, other)
	}
	imageOf(second)
}
