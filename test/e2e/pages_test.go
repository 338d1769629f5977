package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
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
	Cgroup    string `json:"cgroup"`
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
	MainProcess *bool  `json:"main_process"`
	Outcome     string `json:"outcome"`
	Members     []struct {
		PID           int     `json:"pid"`
		Name          string  `json:"name"`
		AnonRSSBytes  *uint64 `json:"anon_rss_bytes"`
		FileRSSBytes  *uint64 `json:"file_rss_bytes"`
		ShmemRSSBytes *uint64 `json:"shmem_rss_bytes"`
	} `json:"members"`
	Trigger *struct {
		PID  int    `json:"pid"`
		Name string `json:"name"`
	} `json:"trigger"`
	Scope       string  `json:"scope"`
	LimitCgroup string  `json:"limit_cgroup"`
	UsageBytes  *uint64 `json:"usage_bytes"`
	LimitBytes  *uint64 `json:"limit_bytes"`
	GroupCgroup string  `json:"group_cgroup"`
	ReportSeq   uint64  `json:"report_seq"`
	HeldBy      string  `json:"held_by"`
	Held        *struct {
		AnonBytes       uint64  `json:"anon_bytes"`
		FileBytes       uint64  `json:"file_bytes"`
		ShmemBytes      uint64  `json:"shmem_bytes"`
		FileMappedBytes uint64  `json:"file_mapped_bytes"`
		FileDirtyBytes  uint64  `json:"file_dirty_bytes"`
		SwapBytes       uint64  `json:"swap_bytes"`
		KernelBytes     *uint64 `json:"kernel_bytes"`
		SockBytes       *uint64 `json:"sock_bytes"`
		PageTablesBytes *uint64 `json:"pagetables_bytes"`
		SlabBytes       *uint64 `json:"slab_bytes"`
	} `json:"held"`
	Tasks []struct {
		PID           int     `json:"pid"`
		Name          string  `json:"name"`
		UID           *int    `json:"uid"`
		RSSBytes      *uint64 `json:"rss_bytes"`
		AnonRSSBytes  *uint64 `json:"anon_rss_bytes"`
		FileRSSBytes  *uint64 `json:"file_rss_bytes"`
		ShmemRSSBytes *uint64 `json:"shmem_rss_bytes"`
		SwapBytes     *uint64 `json:"swap_bytes"`
		OOMScoreAdj   *int    `json:"oom_score_adj"`
	} `json:"tasks"`
	TasksTotal int        `json:"tasks_total"`
	Before     *apiBefore `json:"before"`
}

// apiBefore is a record's "before": what the container's cgroup counted
// in the minute or so before the kill.
type apiBefore struct {
	From           string   `json:"from"`
	To             string   `json:"to"`
	LimitHits      *uint64  `json:"limit_hits"`
	HighHits       *uint64  `json:"high_hits"`
	WaitingSeconds *float64 `json:"pressure_waiting_seconds"`
	StalledSeconds *float64 `json:"pressure_stalled_seconds"`
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

// kernelSaid is what the kernel log says of the kill of one process.
type kernelSaid struct {
	name   string
	pid    int
	cgroup string // the victim's cgroup (task_memcg) where reported
	// reported: the kernel printed the kill's report (its oom-kill line
	// names the pid), which gives the limit hit, the usage and the trigger.
	// It prints at most ten reports in five seconds, host-wide; the
	// "Killed process" line always.
	reported bool
}

// kmsgKills reads the kernel log as it is now and returns what it says of
// each process the OOM killer killed, by name (the last one of a name).
func kmsgKills(t *testing.T) map[string]kernelSaid {
	t.Helper()
	out := map[string]kernelSaid{}
	for _, k := range kmsgKillList(t) {
		out[k.name] = k
	}
	return out
}

// kmsgKillList reads the kernel log as it is now and returns what it says
// of every process the OOM killer killed, in order.
func kmsgKillList(t *testing.T) []kernelSaid {
	t.Helper()
	// A raw non-blocking descriptor: os.File would wait in the poller for
	// the next record instead of saying there is none.
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	killed := regexp.MustCompile(`Killed process (\d+) \((.*)\) total-vm`)
	summary := regexp.MustCompile(`oom-kill:.*,task_memcg=([^,]*),task=(.*),pid=(\d+),uid=`)
	var out []kernelSaid
	reported := map[string]string{} // name/pid: task_memcg
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
		if m := summary.FindStringSubmatch(msg); m != nil {
			reported[m[2]+"/"+m[3]] = m[1]
		}
		if m := killed.FindStringSubmatch(msg); m != nil {
			pid, _ := strconv.Atoi(m[1])
			cg, ok := reported[m[2]+"/"+m[1]]
			out = append(out, kernelSaid{name: m[2], pid: pid, reported: ok, cgroup: cg})
		}
	}
}

// describedKill waits until /api/v1/kills has the kernel log's record of
// the kill of the process: in the Docker container id, or, where the kernel
// did not report the kill and the victim was gone before the exporter could
// look up its cgroup, in a container not known.
func (e *exporter) describedKill(t *testing.T, id, process string, said kernelSaid) apiKill {
	t.Helper()
	var k apiKill
	eventually(t, 30*time.Second, func() error {
		ks, err := e.kills("container=" + id)
		if err != nil {
			return err
		}
		if len(ks) == 1 && ks[0].From == "kernel_log" {
			// A worker's container lived on: the store says so only
			// once it ran on for a while (store.outcomeWait).
			if ks[0].Outcome == "" {
				return fmt.Errorf("the record of %.12s has no outcome yet", id)
			}
			k = ks[0]
			return nil
		}
		if !said.reported {
			all, err := e.kills("limit=1000")
			if err != nil {
				return err
			}
			for _, u := range all {
				if u.Place == "unplaced" && u.Victim != nil && u.Victim.PID == said.pid && u.Victim.Name == process {
					k = u
					return nil
				}
			}
		}
		return fmt.Errorf("records of %.12s: %+v, want one from the kernel log", id, ks)
	})
	return k
}

// checkKill checks a record of /api/v1/kills of a real kill against what
// the test set up (the container, its 32 MiB limit, the process it started)
// and what the kernel log says (the victim's pid, whether it reported the
// kill): every field the kernel gave, exact; none it did not give.
func checkKill(t *testing.T, k apiKill, id, process string, said kernelSaid, main bool, since time.Time) {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, k.Time)
	if err != nil || at.Before(since.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) || !strings.HasSuffix(k.Time, "Z") {
		t.Errorf("%s: time %q (%v), want UTC since %v", process, k.Time, err, since)
	}
	if k.From != "kernel_log" {
		t.Errorf("%s: from %q, want kernel_log", process, k.From)
	}
	if v := k.Victim; v == nil || v.Name != process || v.PID != said.pid || v.UID == nil || *v.UID != 0 || v.OOMScoreAdj == nil || *v.OOMScoreAdj != 0 ||
		v.AnonRSSBytes == nil || *v.AnonRSSBytes == 0 || *v.AnonRSSBytes > 32<<20 || v.FileRSSBytes == nil || v.ShmemRSSBytes == nil {
		t.Errorf("%s: victim %+v, want %s, pid %d as the kernel log says, uid 0, its RSS under 32 MiB", process, v, process, said.pid)
	}
	if k.Place == "unplaced" && !said.reported && !main {
		// The report rate-limited and the process gone: no cgroup to tell
		// whose it was (a victim's /proc/PID/cgroup reads "/" on cgroup v1
		// once it exits).
		t.Logf("%s: the kernel did not report the kill and the victim's cgroup could not be read: a kill in a container not known", process)
		if k.Container != nil || (k.MainProcess != nil && *k.MainProcess) {
			t.Errorf("%s: a kill in no known container says container %+v, main_process %s", process, k.Container, boolText(k.MainProcess))
		}
	} else {
		if k.Place != "container" || k.Container == nil || k.Container.ContainerID != "docker://"+id || k.Container.ID != id || k.Container.Runtime != "docker" {
			t.Errorf("%s: place %q, container %+v, want docker://%s", process, k.Place, k.Container, id)
		}
		if k.MainProcess == nil || *k.MainProcess != main {
			t.Errorf("%s: main_process %s, want %v", process, boolText(k.MainProcess), main)
		}
		if want := map[bool]string{true: "ended", false: "lived_on"}[main]; k.Outcome != want {
			t.Errorf("%s: outcome %q, want %s", process, k.Outcome, want)
		}
	}
	if k.GroupCgroup != "" {
		t.Errorf("%s: group %q, want a single kill", process, k.GroupCgroup)
	}
	if !said.reported {
		t.Logf("%s: the kernel rate-limited its report: the limit, the usage and the trigger are not known", process)
		if k.Scope != "" || k.LimitCgroup != "" || k.UsageBytes != nil || k.LimitBytes != nil || k.Trigger != nil || k.ReportSeq != 0 {
			t.Errorf("%s: the kernel did not report the kill, yet the record has scope %q of %q, usage %v of %v, trigger %+v, report %d",
				process, k.Scope, k.LimitCgroup, k.UsageBytes, k.LimitBytes, k.Trigger, k.ReportSeq)
		}
		return
	}
	// dd allocates the memory itself: it is the trigger too.
	if tr := k.Trigger; tr == nil || tr.Name != process || tr.PID != said.pid {
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
	if k.ReportSeq == 0 {
		t.Errorf("%s: no report_seq", process)
	}
}

// boolText writes a boolean that may not be known.
func boolText(b *bool) string {
	if b == nil {
		return "not known"
	}
	return strconv.FormatBool(*b)
}

// pageRow is what the row of a kill on /kills says, as the record in the
// JSON says it.
func pageRow(k apiKill) []string {
	var want []string
	if c := k.Container; c != nil {
		where := c.Name
		if c.Pod != "" {
			where = c.Namespace + " / " + c.Pod + " / " + c.Container
		}
		want = append(want, where, "docker://"+c.ID[:12])
	} else {
		want = append(want, "not known")
	}
	want = append(want, "pid "+strconv.Itoa(k.Victim.PID))
	if k.Scope == "container" {
		want = append(want, "container's limit")
	}
	switch {
	case k.UsageBytes != nil && *k.UsageBytes == 32<<20:
		want = append(want, "32 MiB of 32 MiB")
	case k.UsageBytes != nil:
		want = append(want, " of 32 MiB")
	}
	if k.Trigger != nil {
		want = append(want, "the victim itself")
	}
	switch {
	case k.Place != "container":
		want = append(want, "no container")
	case k.Outcome == "ended":
		want = append(want, "container died")
	case k.Outcome == "lived_on":
		want = append(want, "container lived on")
	default:
		want = append(want, "not known")
	}
	return want
}

// A worker killed while its container lives on, and a container's main
// process killed: each record right in every field, in the JSON, on the
// page and in a real browser.
func TestKillsPagesShowRealKills(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	tag := strconv.Itoa(os.Getpid() % 100000)
	workerName, mainName := "pg-worker-"+tag, "pg-main-"+tag // the kernel's comm: at most 15 bytes
	ns, pod := "mcm-pages-"+tag, "web-"+tag
	mainContainer := "mcm-pages-main-" + tag
	// Each waits for the test's word, so that the exporter knows the
	// containers before their kills.
	const wait = "while [ ! -e /tmp/go ]; do sleep 0.05; done; "
	workerC := run(t, []string{"--name", "mcm-pages-worker-" + tag,
		"--label", "io.kubernetes.pod.namespace=" + ns, "--label", "io.kubernetes.pod.name=" + pod, "--label", "io.kubernetes.container.name=app"},
		wait+worker(workerName)+"; echo done; sleep 100000")
	mainC := run(t, []string{"--name", mainContainer},
		wait+fmt.Sprintf("ln -sf /bin/busybox /tmp/%[1]s; exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1", mainName))
	// Tenants name containers and processes: these names must stay text.
	const hostileNS, hostilePod, hostileName, hostileProcess = `<script>alert(2)</script>`, `<img src=x onerror=alert(1)>`, `"'><b>bold</b>`, `<img src=y>`
	hostileC := run(t, []string{"--label", "io.kubernetes.pod.namespace=" + hostileNS, "--label", "io.kubernetes.pod.name=" + hostilePod,
		"--label", "io.kubernetes.container.name=" + hostileName},
		wait+fmt.Sprintf(`ln -sf /bin/busybox "/tmp/%[1]s"; (exec -a dd "/tmp/%[1]s" if=/dev/zero of=/dev/null bs=64M count=1); echo done; sleep 100000`, hostileProcess))
	for _, id := range []string{workerC, mainC, hostileC} {
		e.waitCounts(t, id, counts{})
	}
	start := time.Now()
	for _, id := range []string{workerC, mainC, hostileC} {
		docker(t, "exec", id, "touch", "/tmp/go")
	}
	waitLog(t, workerC, "done")
	waitLog(t, hostileC, "done")
	waitInspect(t, mainC, "{{.State.Status}} {{.State.ExitCode}}", "exited 137")

	said := kmsgKills(t)
	for _, p := range []string{workerName, mainName, hostileProcess} {
		if said[p].pid == 0 {
			t.Fatalf("the kernel log names no %s: %v", p, said)
		}
	}
	w := e.describedKill(t, workerC, workerName, said[workerName])
	m := e.describedKill(t, mainC, mainName, said[mainName])
	h := e.describedKill(t, hostileC, hostileProcess, said[hostileProcess])
	checkKill(t, w, workerC, workerName, said[workerName], false, start)
	checkKill(t, m, mainC, mainName, said[mainName], true, start)
	checkKill(t, h, hostileC, hostileProcess, said[hostileProcess], false, start)
	if c := w.Container; c != nil && (c.Namespace != ns || c.Pod != pod || c.Container != "app" || c.Name != "app") {
		t.Errorf("the worker's container %+v, want %s/%s/app", c, ns, pod)
	}
	if c := m.Container; c == nil || c.Name != mainContainer || c.Pod != "" || c.Namespace != "" {
		t.Errorf("the main process's container %+v, want %s", c, mainContainer)
	}
	if c := h.Container; c != nil && (c.Namespace != hostileNS || c.Pod != hostilePod || c.Container != hostileName) {
		t.Errorf("the hostile container %+v", c)
	}

	// The filters: each picks the record of the one container it names
	// (where the victim could not be placed, its container's record is
	// the cgroup counter's).
	for query, want := range map[string]string{
		"namespace=" + ns:                            workerC,
		"namespace=" + ns + "&pod=" + pod:            workerC,
		"pod=" + pod + "&container=app":              workerC,
		"container=" + mainContainer:                 mainC,
		"container=" + mainC[:12]:                    mainC,
		"namespace=" + ns + "&container=" + mainName: "",
	} {
		ks, err := e.kills(query)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range ks {
			if k.Container == nil {
				got = append(got, k.Place)
				continue
			}
			got = append(got, k.Container.ID)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: %.12v, want %.12s", query, got, want)
		}
	}

	t.Run("browser", func(t *testing.T) {
		chrome := chromium(t)
		url := "http://" + e.addr + "/kills"
		// All the records kept: other kills on the host may be newer.
		dom := chrome.dumpDOM(t, url+"?limit=1000")
		rows := domRows(dom)
		for _, k := range []apiKill{w, m, h} {
			row := rows[k.Victim.Name]
			if row == "" {
				t.Errorf("the page in the browser has no row of %s:\n%s", k.Victim.Name, dom)
				continue
			}
			for _, s := range pageRow(k) {
				if !strings.Contains(row, s) {
					t.Errorf("the row of %s lacks %q: %s", k.Victim.Name, s, row)
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
		filtered := domRows(chrome.dumpDOM(t, url+"?container="+mainContainer))
		if len(filtered) != 1 || filtered[mainName] == "" {
			t.Errorf("filtered by container %s, the browser shows %v", mainContainer, filtered)
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

// domRows returns the text of each row of the page's kills table (its
// first table's body; a row holds tables of its own, the task list), by the
// name of its first victim.
func domRows(dom string) map[string]string {
	out := map[string]string{}
	doc, err := xhtml.Parse(strings.NewReader(dom))
	if err != nil {
		return out
	}
	table := domFind(doc, func(n *xhtml.Node) bool { return n.DataAtom == atom.Table })
	if table == nil {
		return out
	}
	body := domFind(table, func(n *xhtml.Node) bool { return n.DataAtom == atom.Tbody })
	if body == nil {
		return out
	}
	for row := body.FirstChild; row != nil; row = row.NextSibling {
		if row.DataAtom != atom.Tr {
			continue
		}
		victim := domFind(row, func(n *xhtml.Node) bool { return n.DataAtom == atom.Span && hasClass(n, "victim") })
		if victim == nil {
			continue
		}
		out[strings.TrimSpace(domText(victim))] = strings.Join(strings.Fields(domText(row)), " ")
	}
	return out
}

// domFind returns the first node below n, n itself included, in document order
// that ok accepts.
func domFind(n *xhtml.Node, ok func(*xhtml.Node) bool) *xhtml.Node {
	if n.Type == xhtml.ElementNode && ok(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := domFind(c, ok); f != nil {
			return f
		}
	}
	return nil
}

// domText is what n shows: its text nodes, each followed by a space, so that
// cells do not run together.
func domText(n *xhtml.Node) string {
	if n.Type == xhtml.TextNode {
		return n.Data + " "
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(domText(c))
	}
	return b.String()
}

func hasClass(n *xhtml.Node, class string) bool {
	for _, a := range n.Attr {
		if a.Key == "class" && slices.Contains(strings.Fields(a.Val), class) {
			return true
		}
	}
	return false
}
