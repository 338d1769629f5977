package pages

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// What the kill pages show of a record, in words an SRE reads at a glance.

// killRow is one kill on the page: one victim, or every member of a
// memory.oom.group kill.
type killRow struct {
	ISO, Date, Clock, Ago string
	Where                 where
	// Described is false for a kill the kernel log did not describe; only
	// its time, its container and FromText are known then.
	Described bool
	FromText  string
	Victims   []victim
	Group     string // the cgroup of a group kill
	Scope     string // whose limit was hit, in words
	ScopeKey  string // store.Scope*, or "unknown": for the style
	// LimitCgroup is shown for a limit above the container's.
	LimitCgroup string
	Usage       string // "32 MiB of 32 MiB"; "" if not known
	UsageTitle  string // the exact bytes
	// The usage against the limit, for a meter that turns red near it.
	UsageValue, LimitValue, Low, High float64
	NoLimit                           bool // a node's OOM: no cgroup limit
	Trigger                           *trigger
	Outcome                           string
	OutcomeKey                        string // "died", "lived", "unknown", "none": for the style
	// HeldBy says what held most of the memory; Held its breakdown and
	// Tasks the largest tasks, TasksMore how many more the kernel listed.
	HeldBy    string
	Held      []heldPart
	Tasks     []task
	TasksMore int
	// Before says what the container's cgroup counted of memory pressure
	// in the minute before the kill; "" if not known.
	Before string
}

// heldPart is one part of what the cgroup held.
type heldPart struct{ Name, Bytes string }

// task is one task of the report's dump.
type task struct{ PID, Name, UID, RSS, Detail, Swap, OOMScoreAdj string }

// where says where a kill happened.
type where struct {
	Kind                 string // store.Place*
	Cgroup               string // for a kill in no container, the victim's cgroup
	Namespace, Pod, Name string // Name: the container's (the pod spec's, or the runtime's)
	ID, IDTitle          string // a short container_id, and the full one
}

// trigger is the process whose allocation invoked the OOM killer.
type trigger struct {
	Name, PID string
	Self      bool // the victim itself
}

// victim is one killed process.
type victim struct {
	Name, PID   string
	RSS         string // the victim's resident memory, "" if not known
	Anon        string // the anonymous part of it: what the process allocated; "" if all of it
	RSSDetail   string // what it is made of
	MainProcess *bool
}

// rows makes the page's rows of records (newest first): one a record, the
// victims of one kernel report in one container.
func rows(kills []store.Kill, now time.Time) []killRow {
	out := make([]killRow, 0, len(kills))
	for _, k := range kills {
		out = append(out, newRow(k, now))
	}
	return out
}

func newRow(k store.Kill, now time.Time) killRow {
	t := k.Time.UTC()
	r := killRow{
		ISO:   t.Format(time.RFC3339Nano),
		Date:  t.Format("2006-01-02"),
		Clock: t.Format("15:04:05"),
		Ago:   ago(now.Sub(k.Time)),
		Where: newWhere(k),
	}
	if k.Before != nil {
		r.Before = k.Before.Summary(k.Time)
	}
	if k.From != store.FromKernelLog {
		r.FromText = "the " + k.From
		if k.From == store.FromCounter {
			r.FromText = "the container's cgroup counter"
		}
		r.Outcome, r.OutcomeKey = outcome(k)
		return r
	}
	d := k.Details
	r.Described = true
	r.Victims = []victim{newVictim(k)}
	for i, m := range k.Members {
		if i == 0 && m.PID == d.PID {
			continue // the chosen victim, shown with all the kernel said of it
		}
		v := victim{Name: m.Name, PID: strconv.Itoa(m.PID)}
		if m.Memory != nil {
			v.RSS, v.Anon, v.RSSDetail = rss(*m.Memory)
		}
		r.Victims = append(r.Victims, v)
	}
	r.Group = d.Group
	r.ScopeKey = d.Scope
	switch d.Scope {
	case store.ScopeContainer:
		r.Scope = "container's limit"
	case store.ScopePod:
		r.Scope, r.LimitCgroup = "pod's limit", d.LimitCgroup
	case store.ScopeAncestor:
		r.Scope, r.LimitCgroup = "a parent cgroup's limit", d.LimitCgroup
	case store.ScopeNode:
		r.Scope, r.NoLimit = "node memory", true
	case store.ScopeCgroup:
		r.Scope, r.LimitCgroup = "its cgroup's limit", d.LimitCgroup
	default:
		r.Scope, r.ScopeKey, r.LimitCgroup = "not known", "unknown", d.LimitCgroup
	}
	if d.HasUsage {
		r.Usage = store.FormatBytes(d.Usage) + " of " + store.FormatBytes(d.Limit)
		r.UsageTitle = fmt.Sprintf("%d of %d bytes", d.Usage, d.Limit)
		r.UsageValue, r.LimitValue = float64(d.Usage), float64(d.Limit)
		r.Low, r.High = 0.7*r.LimitValue, 0.9*r.LimitValue
	}
	if tr := d.Trigger; tr != nil {
		r.Trigger = &trigger{Name: tr.Name, Self: tr.PID == d.PID && d.PID != 0}
		if r.Trigger.Name == "" {
			r.Trigger.Name = "not known"
		}
		if tr.PID != 0 {
			r.Trigger.PID = strconv.Itoa(tr.PID)
		}
	}
	r.HeldBy = d.HeldBy()
	if h := d.Held; h != nil {
		parts := []struct {
			name string
			n    uint64
			ok   bool
		}{{"anonymous", h.Anon, true}, {"page cache and shmem (file)", h.File, true}, {"shmem", h.Shmem, true},
			{"kernel", h.Kernel, h.KernelKnown}, {"sockets", h.Sock, h.KernelKnown}, {"page tables", h.PageTables, h.KernelKnown},
			{"file mapped", h.FileMapped, true}, {"file dirty", h.FileDirty, true}, {"swap", h.Swap, true}}
		for _, p := range parts {
			if p.ok {
				r.Held = append(r.Held, heldPart{Name: p.name, Bytes: store.FormatBytes(p.n)})
			}
		}
	}
	for _, t := range d.Tasks {
		tk := task{PID: strconv.Itoa(t.PID), Name: t.Name, UID: strconv.Itoa(t.UID), RSS: store.FormatBytes(t.RSS),
			Swap: store.FormatBytes(t.Swap), OOMScoreAdj: strconv.Itoa(t.OOMScoreAdj)}
		if t.PartsKnown {
			tk.Detail = "anon " + store.FormatBytes(t.Anon) + ", file " + store.FormatBytes(t.File) + ", shmem " + store.FormatBytes(t.Shmem)
		}
		r.Tasks = append(r.Tasks, tk)
	}
	r.TasksMore = d.TaskCount - len(d.Tasks)
	r.Outcome, r.OutcomeKey = outcome(k)
	return r
}

func newWhere(k store.Kill) where {
	if p := k.Place(); p != store.PlaceContainer {
		return where{Kind: p, Cgroup: k.Cgroup}
	}
	m := k.Container
	w := where{Kind: "container", Namespace: m.Namespace, Pod: m.Pod, Name: m.KubeContainer, IDTitle: m.ContainerID()}
	if w.Name == "" {
		w.Name = m.Name
	}
	id := m.ID
	if len(id) > 12 {
		id = id[:12]
	}
	w.ID = m.Runtime + "://" + id
	return w
}

func newVictim(k store.Kill) victim {
	d := k.Details
	v := victim{Name: k.Process, MainProcess: d.MainProcess}
	if v.Name == "" {
		v.Name = "not known"
	}
	if d.PID != 0 {
		v.PID = strconv.Itoa(d.PID)
	}
	if m := d.Memory; m != nil {
		v.RSS, v.Anon, v.RSSDetail = rss(*m)
	}
	return v
}

// rss says what a victim held: in all, its anonymous part where it held
// other pages too, and what it is made of.
func rss(m store.VictimMemory) (all, anon, detail string) {
	all = store.FormatBytes(m.AnonRSS + m.FileRSS + m.ShmemRSS)
	// The anonymous memory is what the process allocated; file pages
	// count in the RSS too, which may then exceed the limit.
	if m.FileRSS != 0 || m.ShmemRSS != 0 {
		anon = store.FormatBytes(m.AnonRSS)
	}
	parts := []string{"anon " + store.FormatBytes(m.AnonRSS)}
	if m.FileRSS != 0 {
		parts = append(parts, "file "+store.FormatBytes(m.FileRSS))
	}
	if m.ShmemRSS != 0 {
		parts = append(parts, "shmem "+store.FormatBytes(m.ShmemRSS))
	}
	return all, anon, strings.Join(parts, ", ")
}

// outcome says what became of the container, as the store decided it.
func outcome(k store.Kill) (string, string) {
	switch {
	case k.Host || k.Unplaced:
		return "no container", "none"
	case k.Outcome == store.OutcomeEnded:
		return "container died", "died"
	case k.Outcome == store.OutcomeLivedOn:
		return "container lived on", "lived"
	}
	return "not known", "unknown"
}

// ago writes how long ago something was, roughly: 12 s ago, 5 min ago.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now" // the kernel's clock against the exporter's
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}
