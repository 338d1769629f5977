package pages

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func ptr[T any](v T) *T { return &v }

// fill is a store filled with records as the kernel reader makes them:
// through store.Apply of the events it sends.
type fill struct {
	st   *store.Store
	seq  uint64 // the kernel log's sequence numbers
	inst uint64 // cgroup instances
}

func newFill() *fill { return &fill{st: store.New(time.Hour)} }

// container makes a running Docker container whose memory cgroup the
// kernel reader watches; it returns its cgroup and the cgroup's instance.
func (f *fill) container(m store.Meta, pid int) (store.Cgroup, uint64) {
	f.st.Apply(store.Observed{Meta: m, At: at(0), State: store.State{StartedAt: at(0), Running: true, Pid: pid}})
	f.inst++
	cg := store.Cgroup{Meta: store.Meta{Runtime: m.Runtime, ID: m.ID}, Path: "/docker/" + m.ID}
	f.st.Apply(store.KernelOOMCount{Cgroup: cg, Instance: f.inst, Born: at(0), BornExact: true, At: at(1)})
	return cg, f.inst
}

// victim applies the kernel log's record of a victim in the cgroup.
func (f *fill) victim(cg store.Cgroup, inst uint64, process string, sec int, d store.KillDetails) {
	f.seq++
	f.st.Apply(store.OOMVictim{Cgroup: cg, Instance: inst, Process: process, At: at(sec), Seq: f.seq, Live: true, Details: d})
}

func dockerID(c byte) string { return strings.Repeat(string(c), 64) }

// sample fills a store with one record of each kind, oldest first.
func sample() *fill {
	f := newFill()
	// A Kubernetes container whose worker was killed at its own limit.
	web := store.Meta{Runtime: "docker", ID: dockerID('a'), Name: "app", KubeContainer: "app", Pod: "web-1", Namespace: "shop", PodUID: "uid-1"}
	cg, in := f.container(web, 4000)
	f.victim(cg, in, "ruby-worker", 10, store.KillDetails{PID: 4041, UID: ptr(1000), OOMScoreAdj: ptr(-998), MainProcess: ptr(false),
		Memory:  &store.VictimMemory{AnonRSS: 30 << 20, FileRSS: 512 << 10, ShmemRSS: 0},
		Trigger: &store.Process{PID: 4041, Name: "ruby-worker"}, Scope: store.ScopeContainer, LimitCgroup: cg.Path,
		Usage: 32 << 20, Limit: 32 << 20, HasUsage: true, ReportSeq: f.seq + 1})
	// A Docker container whose main process was killed at its pod's limit.
	batch := store.Meta{Runtime: "docker", ID: dockerID('b'), Name: "batch"}
	cg, in = f.container(batch, 5000)
	f.victim(cg, in, "java", 20, store.KillDetails{PID: 5000, UID: ptr(0), MainProcess: ptr(true),
		Memory:  &store.VictimMemory{AnonRSS: 1 << 30},
		Trigger: &store.Process{PID: 5003, Name: "GC Thread#0"}, Scope: store.ScopePod, LimitCgroup: "/kubepods/burstable/poduid-2",
		Usage: 2 << 30, Limit: 2 << 30, HasUsage: true, ReportSeq: f.seq + 1})
	// A memory.oom.group kill: two victims of one report.
	grp := store.Meta{Runtime: "docker", ID: dockerID('c'), Name: "grouped"}
	cg, in = f.container(grp, 6000)
	report := f.seq + 1
	for i, p := range []string{"postgres", "pg-worker"} {
		f.victim(cg, in, p, 30, store.KillDetails{PID: 6001 + i, MainProcess: ptr(false), Group: cg.Path, ReportSeq: report,
			Scope: store.ScopeContainer, LimitCgroup: cg.Path, Usage: 64 << 20, Limit: 64 << 20, HasUsage: true,
			Trigger: &store.Process{PID: 6001, Name: "postgres"}})
	}
	// A kill only the cgroup's counter counted.
	quiet := store.Meta{Runtime: "docker", ID: dockerID('d'), Name: "quiet"}
	cg, in = f.container(quiet, 7000)
	f.st.Apply(store.KernelOOMCount{Cgroup: cg, Instance: in, Born: at(0), BornExact: true, Kills: 1, At: at(40)})
	// A kill in no container, of a global OOM.
	f.seq++
	f.st.Apply(store.OOMVictim{Host: true, Process: "chrome", At: at(50), Seq: f.seq, Live: true,
		Details: store.KillDetails{PID: 900, Scope: store.ScopeNode, Memory: &store.VictimMemory{AnonRSS: 3 << 30}}})
	// A kill in a systemd service that hit its own MemoryMax: no
	// container's, and not the node running out.
	f.seq++
	f.st.Apply(store.OOMVictim{Host: true, HostCgroup: "/system.slice/backup.service", Process: "restic", At: at(55), Seq: f.seq, Live: true,
		Details: store.KillDetails{PID: 950, Scope: store.ScopeCgroup, LimitCgroup: "/system.slice/backup.service",
			Usage: 32 << 20, Limit: 32 << 20, HasUsage: true, ReportSeq: f.seq}})
	// A victim whose report the kernel rate-limited, in no known container.
	f.seq++
	f.st.Apply(store.OOMVictim{Process: "stray", At: at(60), Seq: f.seq, Live: true, Details: store.KillDetails{PID: 8000, ReportSeq: f.seq}})
	// The kernel log has had its moment, and the outcomes are known.
	f.st.AnnounceKills(at(100))
	return f
}

func get(t *testing.T, h http.Handler, url string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
	return rec
}

var site = Site{Version: "1.2.3", MetricsPath: "/metrics", KillsKept: 1000}

// tags drops the page's tags, to read its text.
var tags = regexp.MustCompile(`<[^>]*>`)

func text(s string) string {
	return strings.Join(strings.Fields(html.UnescapeString(tags.ReplaceAllString(s, " "))), " ")
}

// rowsOf returns the text of each row of the page's kills table.
func rowsOf(t *testing.T, page string) []string {
	t.Helper()
	_, body, ok := strings.Cut(page, "<tbody>")
	if !ok {
		t.Fatalf("no table:\n%s", page)
	}
	body, _, _ = strings.Cut(body, "</tbody>")
	var out []string
	for _, r := range strings.Split(body, "</tr>") {
		if s := text(r); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Every kind of record reads as what it is, newest first, a group kill as
// one row.
func TestKillsPageShowsEachKindOfRecord(t *testing.T) {
	f := sample()
	rec := get(t, Kills(f.st, site), "/kills")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !strings.Contains(rec.Body.String(), `title="anon 30 MiB, file 512 KiB"`) {
		t.Error("the RSS's parts are not in its title")
	}
	rows := rowsOf(t, rec.Body.String())
	want := [][]string{
		{"2026-11-27 10:01:00", "not known", "stray", "pid 8000", "not known"},
		{"2026-11-27 10:00:55", "/system.slice/backup.service", "a cgroup of no container", "restic", "pid 950", "its cgroup's limit",
			"32 MiB of 32 MiB", "no container"},
		{"2026-11-27 10:00:50", "host", "in no container", "chrome", "pid 900", "RSS 3 GiB", "node memory", "no limit: the node ran out", "no container"},
		{"2026-11-27 10:00:40", "quiet", "docker://dddddddddddd", "The kernel log did not describe this kill; the container's cgroup counter counted it",
			"Who was killed and which limit was hit are not known."},
		{"2026-11-27 10:00:30", "grouped", "postgres pid 6001 pg-worker pid 6002", "group kill: all of /docker/" + dockerID('c'),
			"container's limit", "64 MiB of 64 MiB", "64 MiB postgres pid 6001 the victim itself container died"},
		{"2026-11-27 10:00:20", "batch", "docker://bbbbbbbbbbbb", "java", "pid 5000", "RSS 1 GiB", "pod's limit", "/kubepods/burstable/poduid-2",
			"2 GiB of 2 GiB", "GC Thread#0 pid 5003", "container died"},
		{"2026-11-27 10:00:10", "shop / web-1 / app", "docker://aaaaaaaaaaaa", "ruby-worker", "pid 4041", "RSS 30.5 MiB (30 MiB anon) container's limit",
			"32 MiB of 32 MiB", "32 MiB of 32 MiB ruby-worker pid 4041 the victim itself", "container lived on"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), strings.Join(rows, "\n"))
	}
	for i, w := range want {
		for _, s := range w {
			if !strings.Contains(rows[i], s) {
				t.Errorf("row %d lacks %q:\n%s", i, s, rows[i])
			}
		}
	}
	for i, r := range rows {
		if i != 4 && strings.Contains(r, "group kill") {
			t.Errorf("row %d is no group kill: %s", i, r)
		}
	}
	if !strings.Contains(rows[3], "container lived on") {
		t.Errorf("a kill only a counter counted, in a container running on, does not say it lived on: %s", rows[3])
	}
}

// A group kill above the containers (a pod's cgroup with memory.oom.group)
// kills in each of them: a row for each container, its own members in it.
func TestKillsPageGroupKillAcrossContainers(t *testing.T) {
	f := newFill()
	a := store.Meta{Runtime: "docker", ID: dockerID('1'), Name: "app", KubeContainer: "app", Pod: "web-1", Namespace: "shop"}
	b := store.Meta{Runtime: "docker", ID: dockerID('2'), Name: "sidecar", KubeContainer: "sidecar", Pod: "web-1", Namespace: "shop"}
	cga, ina := f.container(a, 100)
	cgb, inb := f.container(b, 200)
	report := f.seq + 1
	d := func(pid int) store.KillDetails {
		return store.KillDetails{PID: pid, MainProcess: ptr(true), Group: "/kubepods/podx", ReportSeq: report, Scope: store.ScopePod,
			LimitCgroup: "/kubepods/podx", Usage: 1 << 30, Limit: 1 << 30, HasUsage: true}
	}
	f.victim(cga, ina, "app-main", 10, d(100))
	f.victim(cgb, inb, "envoy", 10, d(200))
	f.victim(cga, ina, "app-worker", 10, d(101))
	rows := rowsOf(t, get(t, Kills(f.st, site), "/kills").Body.String())
	slices.Sort(rows)
	if len(rows) != 2 || !strings.Contains(rows[0], "app-main pid 100 app-worker pid 101") || strings.Contains(rows[0], "envoy") ||
		!strings.Contains(rows[1], "sidecar") || !strings.Contains(rows[1], "envoy") || strings.Contains(rows[1], "app-") {
		t.Errorf("rows:\n%s", strings.Join(rows, "\n"))
	}
}

// Names come from tenants: a container's name and labels, a process's
// name. None of them may become markup, in the page or in its form.
func TestKillsPageEscapesHostileNames(t *testing.T) {
	const (
		script = `<script>alert(1)</script>`
		img    = `"><img src=x onerror=alert(2)>`
		attr   = `' onmouseover='alert(3)`
	)
	f := newFill()
	m := store.Meta{Runtime: "docker", ID: dockerID('e'), Name: script, KubeContainer: img, Pod: attr, Namespace: script + img}
	cg, in := f.container(m, 100)
	f.victim(cg, in, "<img src=x>", 5, store.KillDetails{PID: 101, MainProcess: ptr(false), Scope: store.ScopeAncestor,
		LimitCgroup: "/x/" + script, Group: "/g/" + img, ReportSeq: f.seq + 1, Trigger: &store.Process{PID: 102, Name: "<b>bold</b>"}})
	f.seq++
	f.st.Apply(store.OOMVictim{Host: true, Process: img, At: at(6), Seq: f.seq, Live: true})

	for _, url := range []string{"/kills", "/kills?namespace=" + urlQuery(script+img) + "&pod=" + urlQuery(attr) + "&container=" + urlQuery(img), "/"} {
		h := Kills(f.st, site)
		if url == "/" {
			h = Landing(f.st, site)
		}
		rec := get(t, h, url)
		body := rec.Body.String()
		for _, bad := range []string{"<script", "<img", "<b>bold", "' onmouseover"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: the page holds %q unescaped:\n%s", url, bad, body)
			}
		}
		for _, good := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x&gt;", "&lt;b&gt;bold&lt;/b&gt;", "&#39; onmouseover=&#39;alert(3)"} {
			if !strings.Contains(body, good) {
				t.Errorf("%s: the page lacks %q:\n%s", url, good, body)
			}
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || !strings.Contains(csp, styleHash) {
			t.Errorf("%s: Content-Security-Policy %q", url, csp)
		}
	}
}

// The style sheet is the page's only one, and the policy allows it by its
// hash: a browser applies it.
func TestKillsPageStyleIsAllowedByItsHash(t *testing.T) {
	body := get(t, Kills(newFill().st, site), "/kills").Body.String()
	if !strings.Contains(body, "<style>"+style+"</style>") {
		t.Fatal("the style sheet on the page is not the one hashed")
	}
	if strings.Contains(body, ` style=`) || strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the page loads or runs something besides its style sheet:\n%s", body)
	}
}

func urlQuery(s string) string {
	r := httptest.NewRequest("GET", "/", nil)
	q := r.URL.Query()
	q.Set("x", s)
	return strings.TrimPrefix(q.Encode(), "x=")
}

// apiKills decodes /api/v1/kills.
func apiKills(t *testing.T, h http.Handler, url string) APIKills {
	t.Helper()
	rec := get(t, h, url)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %d %q: %s", url, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var out APIKills
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return out
}

func processes(ks []APIKill) []string {
	var out []string
	for _, k := range ks {
		name := "?"
		if k.Victim != nil {
			name = k.Victim.Name
		} else if k.Container != nil {
			name = "(" + k.Container.Name + ")"
		}
		out = append(out, name)
	}
	return out
}

// The filter is the same on the page and in the API: by namespace, pod (or
// its name's start) and container (its name, the pod spec's name, its id or
// container_id, whole or as short as the page shows it). A kill in no
// container matches no filter.
func TestKillsFilter(t *testing.T) {
	f := sample()
	api := KillsAPI(f.st)
	page := Kills(f.st, site)
	all := []string{"stray", "restic", "chrome", "(quiet)", "postgres", "java", "ruby-worker"}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", all},
		{"namespace=shop", []string{"ruby-worker"}},
		{"namespace=shop&pod=web-1&container=app", []string{"ruby-worker"}},
		{"pod=web-1&container=batch", nil},
		{"pod=web", []string{"ruby-worker"}}, // a Deployment's pods, by the start of their names
		{"pod=web-10", nil},
		{"pod=eb-1", nil},
		{"namespace=nope", nil},
		{"container=batch", []string{"java"}},
		{"container=grouped", []string{"postgres"}},
		{"container=" + dockerID('b')[:12], []string{"java"}},
		{"container=" + dockerID('b'), []string{"java"}},
		{"container=docker://" + dockerID('d'), []string{"(quiet)"}},
		{"container=docker://" + dockerID('b')[:12], []string{"java"}}, // as the page shows it
		{"container=containerd://" + dockerID('b')[:12], nil},          // another runtime's
		{"container=docker://" + dockerID('b')[:11], nil},
		{"container=" + dockerID('b')[:11], nil}, // too short to name a container
		{"container=host", nil},
		{"container=/system.slice/backup.service", nil}, // a filter finds containers alone
		{"limit=2", all[:2]},
		{"limit=2&container=grouped", []string{"postgres"}},
		{"limit=1&container=grouped", []string{"postgres"}},
		{"limit=1&container=batch", []string{"java"}},
	} {
		got := apiKills(t, api, "/api/v1/kills?"+tc.query)
		if names := processes(got.Kills); !slices.Equal(names, tc.want) {
			t.Errorf("%q: %v, want %v", tc.query, names, tc.want)
		}
		limited := strings.Contains(tc.query, "limit=")
		if wantMore := limited && !strings.Contains(tc.query, "&container="); got.More != wantMore {
			t.Errorf("%q: more %v, want %v", tc.query, got.More, wantMore)
		}
		// The page shows the same kills (a group kill's members in its row).
		body := get(t, page, "/kills?"+tc.query).Body.String()
		for _, name := range all {
			name = strings.Trim(name, "()")
			if in := strings.Contains(body, `class="proc victim">`+name+"<") || strings.Contains(body, "<b>"+name+"</b>"); in != slices.ContainsFunc(tc.want, func(w string) bool { return strings.Trim(w, "()") == name }) {
				t.Errorf("page %q: shows %s: %v, want the opposite", tc.query, name, in)
			}
		}
	}
	// The form shows the filter, and keeps the limit.
	body := get(t, page, "/kills?namespace=shop&limit=7").Body.String()
	for _, want := range []string{`name="namespace" value="shop"`, `name="limit" value="7"`, `href="/api/v1/kills?limit=7&amp;namespace=shop"`, "Show all"} {
		if !strings.Contains(body, want) {
			t.Errorf("filtered page lacks %q", want)
		}
	}
}

// A limit that is no whole number above 0 is a clear error, as is any
// method but GET (and HEAD).
func TestKillsBadRequests(t *testing.T) {
	f := sample()
	for _, limit := range []string{"0", "-1", "ten", "1.5", "99999999999999999999999"} {
		rec := get(t, KillsAPI(f.st), "/api/v1/kills?limit="+limit)
		var e struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); rec.Code != 400 || err != nil || !strings.Contains(e.Error, "limit must be a whole number above 0") {
			t.Errorf("api limit=%s: %d %s", limit, rec.Code, rec.Body)
		}
		rec = get(t, Kills(f.st, site), "/kills?limit="+limit)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "limit must be a whole number above 0") {
			t.Errorf("page limit=%s: %d %s", limit, rec.Code, rec.Body)
		}
	}
	// A misspelt parameter is no filter at all: the answer says which are known.
	for _, q := range []string{"pods=web-1", "namespace=shop&Pod=web-1", "q="} {
		const want = "the known ones are namespace, pod, container, limit"
		rec := get(t, KillsAPI(f.st), "/api/v1/kills?"+q)
		var e struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); rec.Code != 400 || err != nil || !strings.Contains(e.Error, "unknown query parameter") || !strings.Contains(e.Error, want) {
			t.Errorf("api %s: %d %s", q, rec.Code, rec.Body)
		}
		rec = get(t, Kills(f.st, site), "/kills?"+q)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("page %s: %d %s", q, rec.Code, rec.Body)
		}
	}
	if got := apiKills(t, KillsAPI(f.st), fmt.Sprintf("/api/v1/kills?limit=%d", 1<<62)); len(got.Kills) != 7 || got.More {
		t.Errorf("a huge limit: %d kills, more %v", len(got.Kills), got.More)
	}
	for _, h := range []http.Handler{KillsAPI(f.st), Kills(f.st, site)} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/kills", strings.NewReader("x")))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
		}
	}
}

// The JSON's field names and what is left out where not known, as
// docs/kills.md documents them.
func TestKillsAPISchema(t *testing.T) {
	f := sample()
	rec := get(t, KillsAPI(f.st), "/api/v1/kills")
	var raw struct {
		Kills []map[string]any `json:"kills"`
		More  *bool            `json:"more"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil || raw.More == nil || len(raw.Kills) != 7 {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	keys := func(m map[string]any) string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return strings.Join(k, " ")
	}
	byName := map[string]map[string]any{}
	for _, k := range raw.Kills {
		name := "quiet"
		if v, ok := k["victim"].(map[string]any); ok {
			name = v["name"].(string)
		}
		byName[name] = k
		if _, err := time.Parse(time.RFC3339, k["time"].(string)); err != nil || !strings.HasSuffix(k["time"].(string), "Z") {
			t.Errorf("%s: time %v (%v)", name, k["time"], err)
		}
	}
	for name, want := range map[string]string{
		"ruby-worker": "container from limit_bytes limit_cgroup main_process outcome place report_seq scope seq time trigger usage_bytes victim",
		"postgres":    "container from group_cgroup limit_bytes limit_cgroup main_process members outcome place report_seq scope seq time trigger usage_bytes victim",
		"quiet":       "container from outcome place seq time",
		"chrome":      "from place scope seq time victim",
		"stray":       "from place report_seq seq time victim",
		"restic":      "cgroup from limit_bytes limit_cgroup place report_seq scope seq time usage_bytes victim",
	} {
		if got := keys(byName[name]); got != want {
			t.Errorf("%s: fields %s, want %s", name, got, want)
		}
	}
	ruby := byName["ruby-worker"]
	for field, want := range map[string]any{"from": "kernel_log", "place": "container", "scope": "container", "main_process": false,
		"usage_bytes": float64(32 << 20), "limit_bytes": float64(32 << 20), "limit_cgroup": "/docker/" + dockerID('a'), "time": "2026-11-27T10:00:10Z"} {
		if ruby[field] != want {
			t.Errorf("ruby-worker %s: %v, want %v", field, ruby[field], want)
		}
	}
	if got := keys(ruby["victim"].(map[string]any)); got != "anon_rss_bytes file_rss_bytes name oom_score_adj pid shmem_rss_bytes uid" {
		t.Errorf("victim fields: %s", got)
	}
	if v := ruby["victim"].(map[string]any); v["pid"] != float64(4041) || v["uid"] != float64(1000) || v["oom_score_adj"] != float64(-998) ||
		v["anon_rss_bytes"] != float64(30<<20) || v["shmem_rss_bytes"] != float64(0) {
		t.Errorf("victim %v", v)
	}
	if got := keys(ruby["container"].(map[string]any)); got != "container container_id id name namespace pod pod_uid runtime" {
		t.Errorf("container fields: %s", got)
	}
	if c := ruby["container"].(map[string]any); c["container_id"] != "docker://"+dockerID('a') || c["namespace"] != "shop" || c["pod"] != "web-1" {
		t.Errorf("container %v", c)
	}
	if q := byName["quiet"]; q["from"] != "cgroup_counter" {
		t.Errorf("quiet from %v", q["from"])
	}
	if h := byName["chrome"]; h["place"] != "host" || h["scope"] != "node" {
		t.Errorf("host kill %v", h)
	}
	if c := byName["restic"]; c["place"] != "cgroup" || c["cgroup"] != "/system.slice/backup.service" || c["scope"] != "cgroup" {
		t.Errorf("kill in a cgroup of no container %v", c)
	}
	if u := byName["stray"]; u["place"] != "unplaced" {
		t.Errorf("unplaced kill %v", u)
	}
	if m, _ := byName["postgres"]["members"].([]any); len(m) != 2 || m[1].(map[string]any)["name"] != "pg-worker" || byName["postgres"]["outcome"] != "ended" {
		t.Errorf("a group kill: members %v, outcome %v", m, byName["postgres"]["outcome"])
	}
	if ruby["outcome"] != "lived_on" {
		t.Errorf("ruby-worker outcome %v", ruby["outcome"])
	}
}

// No record yet: the page says so, the API gives an empty list (not null);
// with none kept, the page says why.
func TestKillsEmpty(t *testing.T) {
	st := store.New(time.Minute)
	if body := text(get(t, Kills(st, site), "/kills").Body.String()); !strings.Contains(body, "No OOM kill recorded since the exporter started.") {
		t.Errorf("empty page: %s", body)
	}
	if body := text(get(t, Kills(st, site), "/kills?pod=x").Body.String()); !strings.Contains(body, "No OOM kill recorded matches this filter.") {
		t.Errorf("empty filtered page: %s", body)
	}
	if body := text(get(t, Landing(st, site), "/").Body.String()); !strings.Contains(body, "No OOM kill recorded since the exporter started.") {
		t.Errorf("empty landing page: %s", body)
	}
	none := site
	none.KillsKept = 0
	if body := text(get(t, Kills(st, none), "/kills").Body.String()); !strings.Contains(body, "No kill records are kept: --kills.kept=0") {
		t.Errorf("page with none kept: %s", body)
	}
	if body := get(t, KillsAPI(st), "/api/v1/kills").Body.String(); strings.Join(strings.Fields(body), "") != `{"kills":[],"more":false}` {
		t.Errorf("empty API: %s", body)
	}
}

func TestHumanBytes(t *testing.T) {
	for b, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 32 << 20: "32 MiB",
		32<<20 - 4096: "32 MiB", 31<<20 + 512<<10: "31.5 MiB", 1<<20 - 1: "1 MiB", 3 << 30: "3 GiB", 1<<64 - 1: "16 EiB"} {
		if got := store.FormatBytes(b); got != want {
			t.Errorf("%d: %q, want %q", b, got, want)
		}
	}
}
