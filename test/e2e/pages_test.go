package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"image/png"
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

// The kill pages (/kills, /api/v1/kills) against the real exporter and real
// OOM kills on this host's cgroup v1, the page read in a real headless
// browser (Debian's chromium).

// apiKill is a record of /api/v1/kills as docs/kills.md documents it.
type apiKill struct {
	Seq       uint64 `json:"seq"`
	Time      string `json:"time"`
	From      string `json:"from"`
	Place     string `json:"place"`
	Container *struct {
		ContainerID string `json:"container_id"`
		Runtime     string `json:"runtime"`
		ID          string `json:"id"`
		Name        string `json:"name"`
		Container   string `json:"container"`
		Pod         string `json:"pod"`
		Namespace   string `json:"namespace"`
		PodUID      string `json:"pod_uid"`
		ImageID     string `json:"image_id"`
	} `json:"container"`
	Victim *struct {
		PID           int     `json:"pid"`
		Name          string  `json:"name"`
		UID           *int    `json:"uid"`
		AnonRSSBytes  *uint64 `json:"anon_rss_bytes"`
		FileRSSBytes  *uint64 `json:"file_rss_bytes"`
		ShmemRSSBytes *uint64 `json:"shmem_rss_bytes"`
		OOMScoreAdj   *int    `json:"oom_score_adj"`
	} `json:"victim"`
	MainProcess *bool `json:"main_process"`
	Trigger     *struct {
		PID  int    `json:"pid"`
		Name string `json:"name"`
	} `json:"trigger"`
	Scope       string  `json:"scope"`
	LimitCgroup string  `json:"limit_cgroup"`
	UsageBytes  *uint64 `json:"usage_bytes"`
	LimitBytes  *uint64 `json:"limit_bytes"`
	GroupCgroup string  `json:"group_cgroup"`
	ReportSeq   uint64  `json:"report_seq"`
}

// kills reads /api/v1/kills with the query.
func (e *exporter) kills(query string) ([]apiKill, error) {
	resp, err := http.Get("http://" + e.addr + "/api/v1/kills?" + query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		return nil, fmt.Errorf("/api/v1/kills?%s: %s, %s", query, resp.Status, resp.Header.Get("Content-Type"))
	}
	var out struct {
		Kills []apiKill `json:"kills"`
		More  bool      `json:"more"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields() // every field the exporter writes is documented
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("/api/v1/kills?%s: %w", query, err)
	}
	return out.Kills, nil
}

// describedKill waits until /api/v1/kills has the kernel log's record of
// one kill in the Docker container id, and returns it.
func (e *exporter) describedKill(t *testing.T, id string) apiKill {
	t.Helper()
	var k apiKill
	eventually(t, 30*time.Second, func() error {
		ks, err := e.kills("container=" + id)
		if err != nil {
			return err
		}
		if len(ks) != 1 || ks[0].From != "kernel_log" {
			return fmt.Errorf("records of %.12s: %+v, want one from the kernel log", id, ks)
		}
		k = ks[0]
		return nil
	})
	return k
}

// kmsgKilled reads the kernel log as it is now and returns the pid of each
// process it says the OOM killer killed, by name (the last one of a name).
func kmsgKilled(t *testing.T) map[string]int {
	t.Helper()
	// A raw non-blocking descriptor: os.File would wait in the poller for
	// the next record instead of saying there is none.
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	killed := regexp.MustCompile(`Killed process (\d+) \((.*)\) total-vm`)
	out := map[string]int{}
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EPIPE) {
			continue // records overwritten before they were read
		}
		if err != nil || n <= 0 {
			return out // EAGAIN: no more
		}
		_, msg, _ := strings.Cut(string(buf[:n]), ";")
		msg, _, _ = strings.Cut(msg, "\n")
		if m := killed.FindStringSubmatch(msg); m != nil {
			out[m[2]], _ = strconv.Atoi(m[1])
		}
	}
}

// checkKill checks a record of /api/v1/kills of a real kill against what
// the test set up: the container, its 32 MiB limit, the process it started
// and the pid the kernel log gives it.
func checkKill(t *testing.T, k apiKill, id, process string, pid int, main bool, since time.Time) {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, k.Time)
	if err != nil || at.Before(since.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) || !strings.HasSuffix(k.Time, "Z") {
		t.Errorf("%s: time %q (%v), want UTC since %v", process, k.Time, err, since)
	}
	if k.Place != "container" || k.Container == nil || k.Container.ContainerID != "docker://"+id || k.Container.ID != id || k.Container.Runtime != "docker" {
		t.Errorf("%s: place %q, container %+v, want docker://%s", process, k.Place, k.Container, id)
	}
	if v := k.Victim; v == nil || v.Name != process || v.PID != pid || v.UID == nil || *v.UID != 0 || v.OOMScoreAdj == nil || *v.OOMScoreAdj != 0 ||
		v.AnonRSSBytes == nil || *v.AnonRSSBytes == 0 || *v.AnonRSSBytes > 32<<20 || v.FileRSSBytes == nil || v.ShmemRSSBytes == nil {
		t.Errorf("%s: victim %+v, want %s, pid %d as the kernel log says, uid 0, its RSS under 32 MiB", process, v, process, pid)
	}
	if k.MainProcess == nil || *k.MainProcess != main {
		t.Errorf("%s: main_process %v, want %v", process, k.MainProcess, main)
	}
	// dd allocates the memory itself: it is the trigger too.
	if tr := k.Trigger; tr == nil || tr.Name != process || tr.PID != pid {
		t.Errorf("%s: trigger %+v, want the victim", process, tr)
	}
	cgroup := env.cgroupParent + "/" + id
	if k.Scope != "container" || k.LimitCgroup != cgroup {
		t.Errorf("%s: scope %q of %q, want container of %q", process, k.Scope, k.LimitCgroup, cgroup)
	}
	// The kernel reports the usage when the charge failed: at the limit, or
	// less than a charge batch below it.
	if k.LimitBytes == nil || *k.LimitBytes != 32<<20 || k.UsageBytes == nil || *k.UsageBytes > 32<<20 || *k.UsageBytes < 31<<20 {
		t.Errorf("%s: usage %v of limit %v, want 32 MiB of 32 MiB", process, k.UsageBytes, k.LimitBytes)
	} else {
		t.Logf("%s: usage %d of %d bytes, anon RSS %d", process, *k.UsageBytes, *k.LimitBytes, *k.Victim.AnonRSSBytes)
	}
	if k.GroupCgroup != "" || k.ReportSeq == 0 {
		t.Errorf("%s: group %q, report %d, want a single kill's report", process, k.GroupCgroup, k.ReportSeq)
	}
}

// A worker killed while its container lives on, and a container's main
// process killed: each record right in every field, in the JSON, on the
// page and in a real browser.
func TestKillsPagesShowRealKills(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	start := time.Now()
	tag := strconv.Itoa(os.Getpid() % 100000)
	workerName, mainName := "pg-worker-"+tag, "pg-main-"+tag // the kernel's comm: at most 15 bytes
	ns, pod := "mcm-pages-"+tag, "web-"+tag
	workerC := run(t, []string{"--name", "mcm-pages-worker-" + tag,
		"--label", "io.kubernetes.pod.namespace=" + ns, "--label", "io.kubernetes.pod.name=" + pod, "--label", "io.kubernetes.container.name=app"},
		worker(workerName)+"; echo done; sleep 100000")
	mainName2 := "mcm-pages-main-" + tag
	mainC := run(t, []string{"--name", mainName2},
		fmt.Sprintf("ln -sf /bin/busybox /tmp/%[1]s; exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1", mainName))
	// Tenants name containers and processes: these names must stay text.
	const hostilePod, hostileProcess = `<img src=x onerror=alert(1)>`, `<img src=y>`
	hostile := run(t, []string{"--label", "io.kubernetes.pod.namespace=<script>alert(2)</script>", "--label", "io.kubernetes.pod.name=" + hostilePod,
		"--label", "io.kubernetes.container.name=\"'><b>bold</b>"},
		fmt.Sprintf(`ln -sf /bin/busybox "/tmp/%[1]s"; (exec -a dd "/tmp/%[1]s" if=/dev/zero of=/dev/null bs=64M count=1); echo done; sleep 100000`, hostileProcess))
	waitLog(t, workerC, "done")
	waitLog(t, hostile, "done")
	waitInspect(t, mainC, "{{.State.Status}} {{.State.ExitCode}}", "exited 137")

	w := e.describedKill(t, workerC)
	m := e.describedKill(t, mainC)
	e.describedKill(t, hostile)
	pids := kmsgKilled(t)
	if pids[workerName] == 0 || pids[mainName] == 0 {
		t.Fatalf("the kernel log names no %s or %s: %v", workerName, mainName, pids)
	}
	checkKill(t, w, workerC, workerName, pids[workerName], false, start)
	checkKill(t, m, mainC, mainName, pids[mainName], true, start)
	if c := w.Container; c == nil || c.Namespace != ns || c.Pod != pod || c.Container != "app" || c.Name != "app" {
		t.Errorf("the worker's container %+v, want %s/%s/app", c, ns, pod)
	}
	if c := m.Container; c == nil || c.Name != mainName2 || c.Pod != "" || c.Namespace != "" {
		t.Errorf("the main process's container %+v, want %s", c, mainName2)
	}

	// The filters.
	for query, want := range map[string]string{
		"namespace=" + ns:                            workerName,
		"namespace=" + ns + "&pod=" + pod:            workerName,
		"pod=" + pod + "&container=app":              workerName,
		"container=" + mainName2:                     mainName,
		"container=" + mainC[:12]:                    mainName,
		"namespace=" + ns + "&container=" + mainName: "",
	} {
		ks, err := e.kills(query)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range ks {
			got = append(got, k.Victim.Name)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: %v, want %q", query, got, want)
		}
	}

	t.Run("browser", func(t *testing.T) {
		chrome := chromium(t)
		url := "http://" + e.addr + "/kills"
		dom := chrome.dumpDOM(t, url)
		rows := domRows(dom)
		for _, c := range []struct {
			process string
			want    []string
		}{
			{workerName, []string{ns + " / " + pod + " / app", "docker://" + workerC[:12], "pid " + strconv.Itoa(pids[workerName]),
				"container's limit", "32 MiB of 32 MiB", "the victim itself", "container lived on"}},
			{mainName, []string{mainName2, "docker://" + mainC[:12], "pid " + strconv.Itoa(pids[mainName]),
				"container's limit", "32 MiB of 32 MiB", "the victim itself", "container died"}},
			{hostileProcess, []string{"<script>alert(2)</script> / " + hostilePod + " / \"'><b>bold</b>", "container lived on"}},
		} {
			row := rows[c.process]
			if row == "" {
				t.Errorf("the page in the browser has no row of %s:\n%s", c.process, dom)
				continue
			}
			for _, s := range c.want {
				if !strings.Contains(row, s) {
					t.Errorf("the row of %s lacks %q: %s", c.process, s, row)
				}
			}
		}
		// What the browser parsed: no element from a name.
		for _, bad := range []string{"<img", "<script", "<b>bold"} {
			if strings.Contains(dom, bad) {
				t.Errorf("the browser's DOM holds %q from a name:\n%s", bad, dom)
			}
		}
		// The filter, as its form submits it.
		filtered := domRows(chrome.dumpDOM(t, url+"?namespace="+ns))
		if len(filtered) != 1 || filtered[workerName] == "" {
			t.Errorf("filtered by namespace %s, the browser shows %v", ns, filtered)
		}
		chrome.screenshot(t, url, "kills.png")
	})
}

// browser is Debian's chromium, headless.
type browser struct{ path string }

// chromium finds the browser: its absence fails the test under CI, else skips it.
func chromium(t *testing.T) browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		msg := "the browser test needs Debian's chromium (apt-get install chromium)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (a missing prerequisite is a failure under CI)")
		}
		t.Skip(msg)
	}
	return browser{path}
}

// run runs the browser on url with args, in a profile of its own, and
// returns what it printed.
func (b browser) run(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// No connection but to the exporter: the machine's network is closed,
	// and the page must need nothing else.
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, b.path, append(append(base, args...), url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// dumpDOM returns the DOM the browser made of the page at url.
func (b browser) dumpDOM(t *testing.T, url string) string {
	t.Helper()
	return string(b.run(t, url, "--dump-dom"))
}

// screenshot keeps a screenshot of the page at url as a test artefact (in
// $MCM_TEST_ARTIFACTS, else in the test's temp dir), and checks that it
// shows something.
func (b browser) screenshot(t *testing.T, url, name string) {
	t.Helper()
	dir := os.Getenv("MCM_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	b.run(t, url, "--screenshot="+path, "--window-size=1280,900", "--hide-scrollbars")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if r := img.Bounds(); r.Dx() != 1280 || r.Dy() != 900 {
		t.Errorf("screenshot %s is %v, want 1280×900", path, r)
	}
	colors := map[uint32]bool{}
	for y := 0; y < img.Bounds().Dy(); y += 7 {
		for x := 0; x < img.Bounds().Dx(); x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if len(colors) < 10 {
		t.Errorf("screenshot %s has %d colours: a blank page?", path, len(colors))
	}
	t.Logf("screenshot of %s: %s", url, path)
}

var (
	domTags   = regexp.MustCompile(`<[^>]*>`)
	domVictim = regexp.MustCompile(`class="proc victim">([^<]*)<`)
)

// domRows returns the text of each row of the page's kills table, by the
// name of its (first) victim.
func domRows(dom string) map[string]string {
	out := map[string]string{}
	_, body, _ := strings.Cut(dom, "<tbody>")
	body, _, _ = strings.Cut(body, "</tbody>")
	for _, row := range strings.Split(body, "</tr>") {
		m := domVictim.FindStringSubmatch(row)
		if m == nil {
			continue
		}
		text := strings.Join(strings.Fields(html.UnescapeString(domTags.ReplaceAllString(row, " "))), " ")
		out[html.UnescapeString(m[1])] = text
	}
	return out
}
