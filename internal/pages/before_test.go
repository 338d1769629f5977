package pages

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// A kill's record says what its cgroup counted before it, on the page
// (with what held the memory) and in the API; a counter the kernel does
// not give (the stall on cgroup v1) is left out.
func TestKillSaysWhatCameBefore(t *testing.T) {
	f := newFill()
	m := store.Meta{Runtime: "docker", ID: dockerID('e'), Name: "cache"}
	cg, in := f.container(m, 300)
	// stall < 0: cgroup v1, no high and no PSI.
	read := func(sec int, hits, kills uint64, stall time.Duration) {
		p := store.MemoryPressure{LimitHits: hits, HasLimitHits: true}
		if stall >= 0 {
			p.HighHits, p.HasHighHits = 0, true
			p.Waiting, p.Stalled, p.HasStall = stall, stall*2/3, true
		}
		f.st.Apply(store.KernelOOMCount{Cgroup: cg, Instance: in, Born: at(0), BornExact: true, Kills: kills, At: at(sec), Pressure: p, PressureSampled: true})
	}
	read(5, 0, 0, 300*time.Millisecond)
	read(75, 1204, 1, 3300*time.Millisecond) // the kill's reading
	f.victim(cg, in, "dd", 75, store.KillDetails{PID: 300, MainProcess: ptr(true), ReportSeq: f.seq + 1, Scope: store.ScopeContainer,
		Held: &store.Held{Anon: 30 << 20}})
	f.st.AnnounceKills(at(100))

	want := "In the 70 s before the kill the container hit its limit 1204 times and waited for memory 3.0 s, 2.0 s of it with every process stalled."
	if page := text(get(t, Kills(f.st, site), "/kills").Body.String()); !strings.Contains(page, "What held the memory "+want) {
		t.Errorf("page:\n%s", page)
	}
	got := before(t, f)
	wantJSON := map[string]any{"from": "2026-11-27T10:00:05Z", "to": "2026-11-27T10:01:15Z", "limit_hits": 1204.0, "high_hits": 0.0,
		"pressure_waiting_seconds": 3.0, "pressure_stalled_seconds": 2.0}
	if len(got) != 1 || len(got[0]) != len(wantJSON) {
		t.Fatalf("API: %+v", got)
	}
	for k, v := range wantJSON {
		if got[0][k] != v {
			t.Errorf("before.%s = %v, want %v", k, got[0][k], v)
		}
	}

	// cgroup v1, a kill only its counter counted: the limit hits alone.
	f = newFill()
	cg, in = f.container(m, 300)
	read(5, 0, 0, -1)
	read(75, 40, 1, -1)
	f.st.AnnounceKills(at(100))
	rows := rowsOf(t, get(t, Kills(f.st, site), "/kills").Body.String())
	if want := "In the 70 s before the kill the container hit its limit 40 times (cgroup v1 counts no stall)."; len(rows) != 1 || !strings.Contains(rows[0], want) {
		t.Errorf("rows:\n%s", strings.Join(rows, "\n"))
	}
	if b := before(t, f)[0]; len(b) != 3 || b["limit_hits"] != 40.0 {
		t.Errorf("API, cgroup v1: %v", b)
	}

	// A pod of one container, on cgroup v1: its pod's cgroup hit the limit.
	f = newFill()
	cg, in = f.container(m, 300)
	for _, r := range []struct {
		sec        int
		pod, kills uint64
	}{{5, 2, 0}, {75, 41, 1}} {
		p := store.MemoryPressure{HasLimitHits: true, PodLimitHits: r.pod, HasPodLimitHits: true}
		f.st.Apply(store.KernelOOMCount{Cgroup: cg, Instance: in, Born: at(0), BornExact: true, Kills: r.kills, At: at(r.sec), Pressure: p, PressureSampled: true})
	}
	f.st.AnnounceKills(at(100))
	rows = rowsOf(t, get(t, Kills(f.st, site), "/kills").Body.String())
	if want := "In the 70 s before the kill the container did not hit its limit and saw its pod hit the pod's limit 39 times (cgroup v1 counts no stall)."; len(rows) != 1 || !strings.Contains(rows[0], want) {
		t.Errorf("rows:\n%s", strings.Join(rows, "\n"))
	}
	if b := before(t, f)[0]; len(b) != 4 || b["limit_hits"] != 0.0 || b["pod_limit_hits"] != 39.0 {
		t.Errorf("API, a pod's limit hits: %v", b)
	}
}

// before is the "before" object of each record of /api/v1/kills.
func before(t *testing.T, f *fill) []map[string]any {
	t.Helper()
	var got struct {
		Kills []struct {
			Before map[string]any `json:"before"`
		} `json:"kills"`
	}
	if err := json.Unmarshal(get(t, KillsAPI(f.st), "/api/v1/kills").Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, k := range got.Kills {
		out = append(out, k.Before)
	}
	return out
}
