package pages

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// The JSON of /api/v1/kills. docs/kills.md documents it: field names are
// stable, new fields may be added. A field whose value is not known is left
// out, never null and never a zero in its place.

// APIKills is the answer of /api/v1/kills.
type APIKills struct {
	// Kills are the matching records, newest first.
	Kills []APIKill `json:"kills"`
	// More says more records matched than the limit let through.
	More bool `json:"more"`
}

// APIKill is the record of one OOM kill: one kernel report's victims in one
// container (the chosen victim, and the members of a group kill).
type APIKill struct {
	Seq  uint64 `json:"seq"`
	Time string `json:"time"` // RFC 3339, UTC
	// From is where the record comes from: kernel_log, cgroup_counter or runtime.
	From string `json:"from"`
	// Place is where the victim was: container; host (in no container,
	// when the node ran out of memory); cgroup (in no container, in a
	// cgroup with a limit of its own: Cgroup); or unplaced (in a cgroup not
	// known).
	Place     string        `json:"place"`
	Cgroup    string        `json:"cgroup,omitempty"`
	Container *APIContainer `json:"container,omitempty"`
	Victim    *APIProcess   `json:"victim,omitempty"`
	// MainProcess says whether the victim was its container's main process
	// (the pid its runtime gave).
	MainProcess *bool `json:"main_process,omitempty"`
	// Outcome is what became of the container: ended (the kill ended it)
	// or lived_on; left out where it is not known.
	Outcome string `json:"outcome,omitempty"`
	// Members are the processes a memory.oom.group kill took in the
	// container, in the kernel's order, each once (the victim first).
	Members []APIProcess `json:"members,omitempty"`
	Trigger *APIProcess  `json:"trigger,omitempty"`
	// Scope is whose limit was hit: container, pod, ancestor or node; for
	// a victim in no container, cgroup or node.
	Scope       string  `json:"scope,omitempty"`
	LimitCgroup string  `json:"limit_cgroup,omitempty"`
	UsageBytes  *uint64 `json:"usage_bytes,omitempty"`
	LimitBytes  *uint64 `json:"limit_bytes,omitempty"`
	// GroupCgroup is the cgroup of a memory.oom.group kill: every process
	// in it was killed.
	GroupCgroup string `json:"group_cgroup,omitempty"`
	// ReportSeq is the kernel log's number of the kill's report: the
	// victims of one kill share it.
	ReportSeq uint64 `json:"report_seq,omitempty"`
	// HeldBy says in one sentence what held most of the memory; Held is
	// the breakdown of the cgroup whose limit was hit, Tasks its largest
	// tasks by RSS (at most 10) and TasksTotal how many the kernel listed.
	HeldBy     string       `json:"held_by,omitempty"`
	Held       *APIHeld     `json:"held,omitempty"`
	Tasks      []APIProcess `json:"tasks,omitempty"`
	TasksTotal int          `json:"tasks_total,omitempty"`
	// Before is what the container's cgroup counted of memory pressure
	// in the minute or so before the kill.
	Before *APIBefore `json:"before,omitempty"`
}

// APIBefore is what a container's memory cgroup counted between two
// readings of its counters, from one a minute or more before the kill to
// the first after it. A counter the kernel does not give is left out:
// high hits and the stall on cgroup v1, the pod's limit hits of a
// container in no Kubernetes pod.
type APIBefore struct {
	From           string   `json:"from"` // RFC 3339, UTC
	To             string   `json:"to"`
	LimitHits      *uint64  `json:"limit_hits,omitempty"`
	PodLimitHits   *uint64  `json:"pod_limit_hits,omitempty"`
	HighHits       *uint64  `json:"high_hits,omitempty"`
	WaitingSeconds *float64 `json:"pressure_waiting_seconds,omitempty"`
	StalledSeconds *float64 `json:"pressure_stalled_seconds,omitempty"`
}

// newAPIBefore is the JSON of a record's Before.
func newAPIBefore(b *store.Before) *APIBefore {
	a := &APIBefore{From: b.From.UTC().Format(time.RFC3339Nano), To: b.To.UTC().Format(time.RFC3339Nano)}
	if b.HasLimitHits {
		a.LimitHits = &b.LimitHits
	}
	if b.HasPodLimitHits {
		a.PodLimitHits = &b.PodLimitHits
	}
	if b.HasHighHits {
		a.HighHits = &b.HighHits
	}
	if b.HasStall {
		w, s := b.Waiting.Seconds(), b.Stalled.Seconds()
		a.WaitingSeconds, a.StalledSeconds = &w, &s
	}
	return a
}

// APIHeld is what the cgroup whose limit was hit held at the kill, in
// bytes, from the kernel's report. Kernel and socket memory are known on
// cgroup v2 only.
type APIHeld struct {
	AnonBytes       uint64  `json:"anon_bytes"`
	FileBytes       uint64  `json:"file_bytes"`
	ShmemBytes      uint64  `json:"shmem_bytes"`
	FileMappedBytes uint64  `json:"file_mapped_bytes"`
	FileDirtyBytes  uint64  `json:"file_dirty_bytes"`
	SwapBytes       uint64  `json:"swap_bytes"`
	KernelBytes     *uint64 `json:"kernel_bytes,omitempty"`
	SockBytes       *uint64 `json:"sock_bytes,omitempty"`
	PageTablesBytes *uint64 `json:"pagetables_bytes,omitempty"`
	SlabBytes       *uint64 `json:"slab_bytes,omitempty"`
}

// APIContainer is the container a kill happened in, with the labels its
// series have on /metrics.
type APIContainer struct {
	ContainerID         string `json:"container_id"`
	Runtime             string `json:"runtime"`
	ID                  string `json:"id"`
	Name                string `json:"name,omitempty"`
	Container           string `json:"container,omitempty"`
	Pod                 string `json:"pod,omitempty"`
	Namespace           string `json:"namespace,omitempty"`
	PodUID              string `json:"pod_uid,omitempty"`
	ImageID             string `json:"image_id,omitempty"`
	ContainerdNamespace string `json:"containerd_namespace,omitempty"`
}

// APIProcess is a process the kernel log names. The memory fields are the
// victim's only.
type APIProcess struct {
	PID           int     `json:"pid,omitempty"`
	Name          string  `json:"name,omitempty"`
	UID           *int    `json:"uid,omitempty"`
	AnonRSSBytes  *uint64 `json:"anon_rss_bytes,omitempty"`
	FileRSSBytes  *uint64 `json:"file_rss_bytes,omitempty"`
	ShmemRSSBytes *uint64 `json:"shmem_rss_bytes,omitempty"`
	OOMScoreAdj   *int    `json:"oom_score_adj,omitempty"`
	// RSSBytes and SwapBytes are a dump's task's.
	RSSBytes  *uint64 `json:"rss_bytes,omitempty"`
	SwapBytes *uint64 `json:"swap_bytes,omitempty"`
}

// apiFrom names the store's sources of a record in the API's words.
var apiFrom = map[string]string{
	store.FromKernelLog: "kernel_log",
	store.FromCounter:   "cgroup_counter",
	store.FromRuntime:   "runtime",
}

// newAPIKill is the JSON of one record.
func newAPIKill(k store.Kill) APIKill {
	d := k.Details
	a := APIKill{
		Seq:         k.Seq,
		Time:        k.Time.UTC().Format(time.RFC3339Nano),
		From:        apiFrom[k.From],
		MainProcess: d.MainProcess,
		Outcome:     k.Outcome,
		Scope:       d.Scope,
		LimitCgroup: d.LimitCgroup,
		GroupCgroup: d.Group,
		ReportSeq:   d.ReportSeq,
		Cgroup:      k.Cgroup,
	}
	a.Place = k.Place()
	if a.Place == store.PlaceContainer {
		m := k.Container
		a.Container = &APIContainer{ContainerID: m.ContainerID(), Runtime: m.Runtime, ID: m.ID, Name: m.Name,
			Container: m.KubeContainer, Pod: m.Pod, Namespace: m.Namespace, PodUID: m.PodUID, ImageID: m.ImageID,
			ContainerdNamespace: m.ContainerdNamespace}
	}
	if k.Process != "" || d.PID != 0 {
		v := &APIProcess{PID: d.PID, Name: k.Process, UID: d.UID, OOMScoreAdj: d.OOMScoreAdj}
		if m := d.Memory; m != nil {
			v.AnonRSSBytes, v.FileRSSBytes, v.ShmemRSSBytes = &m.AnonRSS, &m.FileRSS, &m.ShmemRSS
		}
		a.Victim = v
	}
	for _, m := range k.Members {
		p := APIProcess{PID: m.PID, Name: m.Name}
		if mem := m.Memory; mem != nil {
			p.AnonRSSBytes, p.FileRSSBytes, p.ShmemRSSBytes = &mem.AnonRSS, &mem.FileRSS, &mem.ShmemRSS
		}
		a.Members = append(a.Members, p)
	}
	if t := d.Trigger; t != nil {
		a.Trigger = &APIProcess{PID: t.PID, Name: t.Name}
	}
	if d.HasUsage {
		a.UsageBytes, a.LimitBytes = &d.Usage, &d.Limit
	}
	a.HeldBy = d.HeldBy()
	if h := d.Held; h != nil {
		a.Held = &APIHeld{AnonBytes: h.Anon, FileBytes: h.File, ShmemBytes: h.Shmem, FileMappedBytes: h.FileMapped,
			FileDirtyBytes: h.FileDirty, SwapBytes: h.Swap}
		if h.KernelKnown {
			a.Held.KernelBytes, a.Held.SockBytes, a.Held.PageTablesBytes, a.Held.SlabBytes = &h.Kernel, &h.Sock, &h.PageTables, &h.Slab
		}
	}
	for _, t := range d.Tasks {
		p := APIProcess{PID: t.PID, Name: t.Name, UID: &t.UID, RSSBytes: &t.RSS, SwapBytes: &t.Swap, OOMScoreAdj: &t.OOMScoreAdj}
		if t.PartsKnown {
			p.AnonRSSBytes, p.FileRSSBytes, p.ShmemRSSBytes = &t.Anon, &t.File, &t.Shmem
		}
		a.Tasks = append(a.Tasks, p)
	}
	a.TasksTotal = d.TaskCount
	if k.Before != nil {
		a.Before = newAPIBefore(k.Before)
	}
	return a
}

// KillsAPI serves /api/v1/kills: the kill records of st as JSON, newest
// first, filtered as /kills is.
func KillsAPI(st *store.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !allowRead(w, r) {
			return
		}
		f, err := parseFilter(r)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(struct {
				Error string `json:"error"`
			}{err.Error()})
			return
		}
		kills, more := f.kills(st)
		out := APIKills{Kills: make([]APIKill, 0, len(kills)), More: more}
		for _, k := range kills {
			out.Kills = append(out.Kills, newAPIKill(k))
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}
