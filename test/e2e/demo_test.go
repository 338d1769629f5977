package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scripts/demo.sh as a user runs it, from nothing: it starts runtimes of its
// own (the suite's harness is left out of its environment), the exporter,
// and a real OOM kill, and says what each shows. Both ways: to the end, and
// kept running until Ctrl-C with /kills to look at.
func TestDemo(t *testing.T) {
	kernelPrereqs(t)
	t.Run("to the end", func(t *testing.T) {
		d := startDemo(t)
		if err := d.wait(5 * time.Minute); err != nil {
			t.Fatalf("scripts/demo.sh: %v\nstdout:\n%s\nstderr:\n%s", err, d.stdout(), d.stderr())
		}
		d.checkOutput(t)
		if !strings.Contains(d.stdout(), "scripts/demo.sh --keep keeps the demo running") {
			t.Errorf("the demo does not say how to keep it running:\n%s", d.stdout())
		}
		d.checkStopped(t)
	})
	t.Run("--keep", func(t *testing.T) {
		d := startDemo(t, "--keep")
		kills := d.waitLine(t, "   the kills:  ")
		api := d.waitLine(t, "   the API:    ")
		d.checkOutput(t)

		// The page and the API it points to, while it runs: the kill's row
		// and record.
		page := httpGet(t, kills+"?container=fluentd-demo")
		for _, want := range []string{`class="proc victim">dd<`, "<b>fluentd-demo</b>", "container lived on"} {
			if !strings.Contains(page, want) {
				t.Errorf("%s?container=fluentd-demo lacks %q:\n%s", kills, want, page)
			}
		}
		var out struct {
			Kills []apiKill `json:"kills"`
		}
		if err := json.Unmarshal([]byte(httpGet(t, api+"?container=fluentd-demo")), &out); err != nil {
			t.Fatalf("%s: %v", api, err)
		}
		if len(out.Kills) != 1 || out.Kills[0].Container == nil || out.Kills[0].Container.Name != "fluentd-demo" || out.Kills[0].Outcome != "lived_on" {
			t.Errorf("%s?container=fluentd-demo: %+v, want the record of the kill in fluentd-demo, lived on", api, out.Kills)
		}

		// Ctrl-C: the demo ends without a complaint and stops what it started.
		if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := d.wait(2 * time.Minute); err != nil {
			t.Fatalf("scripts/demo.sh --keep after Ctrl-C: %v\nstderr:\n%s", err, d.stderr())
		}
		d.checkStopped(t)
		if _, err := http.Get(api); err == nil {
			t.Errorf("%s still answers after the demo ended", api)
		}
	})
}

// demo is a run of scripts/demo.sh.
type demo struct {
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	out    bytes.Buffer // stdout, as it comes
	lines  chan string  // stdout, line by line
	errBuf bytes.Buffer // stderr, under mu
	done   chan error
}

// startDemo runs scripts/demo.sh with args as a user would: no variable of
// the suite's harness, an address of its own; a signal ends it if the test
// does not.
func startDemo(t *testing.T, args ...string) *demo {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	d := &demo{addr: addr, lines: make(chan string, 1000), done: make(chan error, 1)}
	d.cmd = exec.Command("../../scripts/demo.sh", args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "MCM_TEST_") && !strings.HasPrefix(e, "DOCKER_HOST=") {
			d.cmd.Env = append(d.cmd.Env, e)
		}
	}
	d.cmd.Env = append(d.cmd.Env, "DEMO_ADDR="+addr)
	d.cmd.Stderr = lockedWriter{&d.mu, &d.errBuf}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			d.mu.Lock()
			d.out.WriteString(s.Text() + "\n")
			d.mu.Unlock()
			select {
			case d.lines <- s.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		d.done <- d.cmd.Wait()
	}()
	t.Cleanup(func() {
		// The demo's own trap stops its runtimes; a test that failed
		// early still has it running.
		if errors.Is(d.wait(0), errRunning) {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			_ = d.wait(2 * time.Minute)
		}
		if t.Failed() {
			t.Logf("demo stdout:\n%s\nstderr:\n%s", d.stdout(), d.stderr())
		}
	})
	return d
}

func (d *demo) stdout() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

func (d *demo) stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errBuf.String()
}

// errRunning: the demo has not ended.
var errRunning = errors.New("still running")

// wait waits until the demo has ended, and returns how.
func (d *demo) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-d.done:
		d.done <- err // for another wait
		return err
	case <-t.C:
		return fmt.Errorf("%w after %s", errRunning, timeout)
	}
}

// waitLine waits until the demo prints a line that begins with prefix, and
// returns the rest of it.
func (d *demo) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(5 * time.Minute)
	for {
		select {
		case l := <-d.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return rest
			}
		case err := <-d.done:
			d.done <- err
			t.Fatalf("the demo ended (%v) before it printed %q", err, prefix)
		case <-deadline:
			t.Fatalf("the demo printed no %q within 5 minutes", prefix)
		}
	}
}

var demoVictim = regexp.MustCompile(`(?m)^   killed:        dd \(pid (\d+)\), not the main process$`)

// checkOutput checks what the demo printed of its kill: Docker's view, the
// metrics, and the record, each as the kernel log tells of the kill.
func (d *demo) checkOutput(t *testing.T) {
	t.Helper()
	out := d.stdout()
	for _, want := range []string{
		"   docker inspect: Running=true OOMKilled=false ExitCode=0 RestartCount=0\n",
		"(only the process and outcome labels shown)\n",
		"   container_ooms_total 1\n",
		"   container_restarts_total 0\n",
		"   container_oom_kills_by_outcome_total{outcome=\"lived_on\"} 1\n",
		"   container_oom_kills_by_process_total{process=\"dd\"} 1\n",
		"== the kill's record: curl 'http://" + d.addr + "/api/v1/kills?container=fluentd-demo'\n",
		"   the container: lived on\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
	m := demoVictim.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo names no victim dd, a worker:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	var said kernelSaid
	for _, k := range kmsgKillList(t) {
		if k.pid == pid {
			said = k
		}
	}
	if said.name != "dd" {
		t.Fatalf("the demo says dd, pid %d, was killed; the kernel log says %+v", pid, said)
	}
	// What the kernel left out of a rate-limited report is not known.
	limit := regexp.MustCompile(`(?m)^   limit hit:     the container's, 3[12] MiB of 32 MiB$`)
	if !said.reported {
		t.Logf("the kernel rate-limited the report of the demo's kill")
		limit = regexp.MustCompile(`(?m)^   limit hit:     not known, usage not known$`)
	}
	if !limit.MatchString(out) {
		t.Errorf("the demo's limit line does not match %s:\n%s", limit, out)
	}
}

// checkStopped checks that the demo stopped what it started: the exporter
// and the runtimes' directory.
func (d *demo) checkStopped(t *testing.T) {
	t.Helper()
	if _, err := http.Get("http://" + d.addr + "/healthz"); err == nil {
		t.Errorf("the demo's exporter at %s still answers", d.addr)
	}
	m := regexp.MustCompile(`harness: stopped in [^:]*: (/\S+)`).FindStringSubmatch(d.stderr())
	if m == nil {
		t.Fatalf("the demo did not stop its runtimes:\n%s", d.stderr())
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("the demo's runtimes' directory %s is still there (%v)", m[1], err)
	}
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	return string(body)
}
