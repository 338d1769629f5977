// Package store is the one owner of container state. Runtime sources send it
// typed events; it alone decides what counts as an OOM kill, a restart or an
// exit, and it hands the collector consistent snapshots.
//
// Every event carries the runtime's own timestamp. The store uses those
// timestamps to make applying an event idempotent: an event replayed after a
// reconnect, or a change seen both in a listing and in the event stream, is
// counted once. The rules are written down in docs/design.md.
package store

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The runtimes a container can be of: its Meta.Runtime, the "<runtime>" of
// its key and container_id ("<runtime>://<id>", as kube-state-metrics writes
// it), and, for Docker and containerd, the name of the source that follows
// them. The kernel reader also recognises CRI-O's and Podman's containers by
// their cgroup paths, though no source follows those runtimes.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
)

// The kernel reader's two sources, beside the runtimes' (each named after
// its runtime). The cgroup source's container count is the containers whose
// memory cgroup it watches.
const (
	CgroupSource = "cgroup"
	KmsgSource   = "kmsg"
)

// Meta is what identifies and describes a container: the labels of its series.
type Meta struct {
	Runtime string // RuntimeDocker, RuntimeContainerd; for a container only the kernel knows, also RuntimeCRIO or RuntimePodman
	// ContainerdNamespace is the containerd namespace of a containerd
	// container: its ids are unique only within one. Empty for others.
	ContainerdNamespace string
	ID                  string // the runtime's full container id
	Name                string // pod-spec container name for Kubernetes, else the runtime's name
	// KubeContainer is the pod-spec container name
	// (io.kubernetes.container.name), else empty: the "container" label.
	KubeContainer string
	Pod           string // the Kubernetes pod's name
	Namespace     string // the Kubernetes namespace
	PodUID        string // io.kubernetes.pod.uid: a pod made again under its name has a new one
	ImageID       string
}

// The labels the kubelet sets on the containers it runs. Both Docker
// (dockershim, cri-dockerd) and containerd's CRI plugin carry them.
const (
	LabelKubeContainer = "io.kubernetes.container.name"
	LabelKubePod       = "io.kubernetes.pod.name"
	LabelKubeNamespace = "io.kubernetes.pod.namespace"
	LabelKubePodUID    = "io.kubernetes.pod.uid"
)

// SetKubeletLabels fills the Kubernetes fields from a container's labels. A
// Kubernetes container is then named by its pod-spec name: the runtime's own
// name for it is one the kubelet made up.
func (m *Meta) SetKubeletLabels(labels map[string]string) {
	m.KubeContainer = labels[LabelKubeContainer]
	m.Pod = labels[LabelKubePod]
	m.Namespace = labels[LabelKubeNamespace]
	m.PodUID = labels[LabelKubePodUID]
	if m.KubeContainer != "" {
		m.Name = m.KubeContainer
	}
}

// Key names the container in the store: Key(Runtime, ContainerdNamespace, ID).
func (m Meta) Key() string { return Key(m.Runtime, m.ContainerdNamespace, m.ID) }

// ContainerID is the container's id as the kubelet and kube-state-metrics
// write it: "<runtime>://<id>".
func (m Meta) ContainerID() string { return m.Runtime + "://" + m.ID }

// Key is how the store names a container of a runtime: "<runtime>://<id>",
// or "containerd://<namespace>/<id>" for a containerd container, whose id is
// unique only in its namespace. Neither ids nor namespace names hold a "/".
func Key(runtime, containerdNamespace, id string) string {
	if containerdNamespace != "" {
		return runtime + "://" + containerdNamespace + "/" + id
	}
	return runtime + "://" + id
}

// parseKey is the Meta a runtime's key names. Only a containerd key holds a
// namespace.
func parseKey(k string) Meta {
	runtime, rest, _ := strings.Cut(k, "://")
	if runtime != RuntimeContainerd {
		return Meta{Runtime: runtime, ID: rest}
	}
	ns, id, ok := strings.Cut(rest, "/")
	if !ok {
		ns, id = "", rest
	}
	return Meta{Runtime: runtime, ContainerdNamespace: ns, ID: id}
}

// State is a runtime's view of a container at one moment (a listing or an
// inspect), used to initialise a container and to catch up on missed events.
type State struct {
	Running bool
	// StartedAt and FinishedAt are the runtime's times of the last start and
	// the last exit; zero if the container never started or never exited.
	StartedAt  time.Time
	FinishedAt time.Time
	// ExitCode is the code of the exit at FinishedAt, meaningful only when
	// the container is not Running: Docker sets it to 0 at every start.
	ExitCode int
	// OOMKilled says an OOM kill happened in the container (Docker keeps it
	// set once a kill was seen, until the next start).
	OOMKilled bool
	// Restarts is the runtime's own restart count, taken as the starting
	// value when the exporter first sees the container.
	Restarts int
	// Pid is the main process's pid while Running (0 if not known): where
	// the kernel reader finds a cgroup whose path it does not recognise,
	// and whether an OOM kill's victim was the main process.
	Pid int
	// CreatedAt is when the container was created; zero if not known. A
	// kill the kernel log's buffer holds from before it is no kill of this
	// container.
	CreatedAt time.Time
}

// Event is something a source saw. The runtimes' events are below; the
// kernel reader's are in kernel.go.
type Event interface{ key() string }

// Observed reports a container's metadata and state from a listing or an inspect.
type Observed struct {
	Meta  Meta
	State State
	// At is when the source asked the runtime: the exporter's time.Now()
	// just before the listing or inspect. Every start and exit event the
	// runtime stamped before it is reflected in State; the runtime runs on
	// the same host, so its clock and the exporter's agree.
	At time.Time
	// Gone says the container no longer existed: Meta comes from its last
	// event and State is empty. It only labels a container the store still
	// holds; it never brings back one that was removed and swept.
	Gone bool
}

// Started reports that the container's main process started at At.
type Started struct {
	Key string
	At  time.Time
	Pid int // the main process's pid, if the runtime says (0 if not)
}

// Exited reports that the container's main process exited at At with Code.
type Exited struct {
	Key  string
	At   time.Time
	Code int
}

// OOMKilled reports an OOM kill of some process in the container at At.
type OOMKilled struct {
	Key string
	At  time.Time
}

// Removed reports that the container is gone; its series stay for the retention.
type Removed struct {
	Key string
	At  time.Time
}

func (e Observed) key() string  { return e.Meta.Key() }
func (e Started) key() string   { return e.Key }
func (e Exited) key() string    { return e.Key }
func (e OOMKilled) key() string { return e.Key }
func (e Removed) key() string   { return e.Key }

// Container is one container's exported values, as the collector sees them.
// Its flags come last, together, so that a container of 10,000 takes no
// padding after each (docs/performance.md).
type Container struct {
	Meta     Meta
	OOMs     uint64
	Restarts uint64
	// ExitCode is meaningful only when Exited.
	ExitCode int
	// ProcessKills counts the victims the kernel log named, by command name.
	ProcessKills map[string]uint64
	// LastOOM is the time of the newest OOM kill counted, from the kernel or
	// a runtime's report; zero if none.
	LastOOM time.Time
	// GroupKills counts memory.oom.group kills, meaningful when HasGroupKills
	// (cgroup v2).
	GroupKills uint64
	// ExitReason says why the main process last exited (Exit*), where it
	// is known exactly; "" if not, or if it never exited.
	ExitReason string
	// KillsByScope counts the kills the kernel log described by whose limit
	// was hit (Scope*). LastOOMUsage and LastOOMLimit are the memory usage
	// and limit, in bytes, of the cgroup whose limit the newest of them hit,
	// if HasLastOOMUsage.
	KillsByScope               map[string]uint64
	LastOOMUsage, LastOOMLimit uint64
	// KillsByOutcome counts the kills whose outcome is known by it
	// (Outcome*): whether they ended the container or it lived on.
	KillsByOutcome map[string]uint64
	// Pressure is what the container's memory cgroup counted of memory
	// pressure, over every instance of it (pressure.go).
	Pressure MemoryPressure
	// Exited is true once the code of the main process's last exit is
	// known. It is false until the first exit, and again after an exit
	// only a later state showed, once the container ran again (its code is
	// lost then).
	Exited bool
	// KernelOnly is true for a container no runtime reported: only its
	// cgroup path is known, so it has no restarts and no exit code.
	KernelOnly      bool
	HasGroupKills   bool
	HasLastOOMUsage bool
}

// entry is a container as the store keeps it. Its counts of kills by
// process, scope and outcome are the Container's maps, which Snapshot copies;
// its flags come last, together (Container's doc).
type entry struct {
	Container
	applied    int       // runtime events applied before the first observation
	startedAt  time.Time // the last start known (event or state time)
	finished   time.Time // the last exit known (event or state time)
	syncedAt   time.Time // Observed.At of the newest observation
	lastReport time.Time // the time of the newest runtime OOM report taken: one no newer is a replay
	removedAt  time.Time
	pid        int
	// exitedPid is the main pid of the run that ended last, and
	// exitedStart when it began: the kernel log may name its victims after
	// the runtime told of its exit.
	exitedPid   int
	exitedStart time.Time

	createdAt time.Time
	ooms      oomCount
	pressure  pressureCount

	// explained is how many kills of ooms.total() records hold (or, from
	// before the exporter started, need none); trail is the rest of what it
	// keeps of its kills (kills.go), nil until its first.
	explained uint64
	trail     *killTrail
	// lastKill is the time of the newest kill counted: an exit by SIGKILL
	// right after it is its.
	lastKill time.Time
	// lastEnding is the time of the newest kill the kernel said ended the
	// container (its main process's, a group kill's): the exit of its run
	// is that kill's, however late the runtime stamps it.
	lastEnding time.Time

	observed bool // metadata known: exported only from then on
	// fromKernel is true for an entry the kernel reader made, of a cgroup no
	// runtime's container could be told to own (yet): its key is the
	// cgroup's path (kernelKey), and Meta.Runtime is a guess if guessed.
	fromKernel    bool
	guessed       bool
	running       bool // started, and no exit known since
	kernelRemoved bool // removedAt was set because the kernel saw the cgroup go
}

// SourceStatus is the health of one runtime source.
type SourceStatus struct {
	Name       string
	Up         bool
	LastError  string
	Events     uint64
	Malformed  uint64
	Reconnects uint64
	Panics     uint64 // sessions that ended in a recovered panic
	Containers int    // containers of this source currently tracked
	Watches    int    // inotify watches held (the cgroup source)
	WatchLimit int    // the most it holds; 0: no bound
}

// Snapshot is a consistent copy of everything the collector exports.
type Snapshot struct {
	Containers []Container
	Sources    []SourceStatus
	// HostKills counts OOM kills of processes in no container when the
	// node ran out of memory, by command name; CgroupKills those in cgroups
	// of no container with a limit of their own, by cgroup (nil if there
	// were none).
	HostKills, CgroupKills map[string]uint64
}

// Store holds the state of all containers of all sources.
type Store struct {
	mu         sync.Mutex
	retention  time.Duration
	containers map[string]*entry
	ids        map[string][]string // container ID -> the keys of the entries with that ID
	kernelOnly int                 // entries with fromKernel set
	sources    map[string]*SourceStatus
	hostKills  map[string]uint64
	// cgroupKills counts the kills in cgroups of no container with a
	// limit of their own, by the victim's cgroup.
	cgroupKills map[string]uint64
	// unattributed counts the kills of a pod that none of its containers
	// could be given (CountUnattributed).
	unattributed uint64
	kmsgSeq      uint64 // newest kernel log record applied
	kmsgSeen     bool
	onOOM        func(key string)
	kills        killLog
	onKill       func(Kill)
	rising       map[string]struct{} // keys of entries whose count rose beyond their records
	// started is when the store was made: a container that started later
	// has no kill from before the exporter.
	started time.Time

	// settled holds the sources that told what they found at start: they
	// listed once, or failed once. settledChanged is closed and made anew
	// at every change.
	settled        map[string]bool
	settledChanged chan struct{}

	limit      int                 // most entries kept; 0: no limit
	refused    map[string]struct{} // keys turned away at the limit, until removed
	turnedAway uint64
	// noneRemoved: the last look for a removed container found none, and
	// none was removed since. At the limit it spares a look at every
	// container for each event of a container turned away.
	noneRemoved bool

	// counted is what sourcesLocked last counted, at countedAt: the
	// containers of each source, for RecentSources.
	counted   map[string]int
	countedAt time.Time
}

// New returns an empty store that keeps removed containers for retention.
func New(retention time.Duration) *Store {
	return &Store{
		retention:  retention,
		containers: map[string]*entry{},
		ids:        map[string][]string{},
		sources:    map[string]*SourceStatus{},
		settled:    map[string]bool{},
		kills:      killLog{keep: DefaultKillsKept},
		started:    time.Now(),

		settledChanged: make(chan struct{}),
	}
}

// Apply applies one event. It is safe to apply the same event twice.
func (s *Store) Apply(ev Event) {
	a := s.apply(ev)
	if a.onOOM != nil {
		a.onOOM(a.key)
	}
	if a.onKill != nil {
		for _, k := range a.kills {
			a.onKill(*k)
		}
	}
}

// applied is what apply leaves to do once the lock is released.
type applied struct {
	onOOM  func(string)
	key    string
	onKill func(Kill)
	kills  []*Kill
}

func (s *Store) apply(ev Event) (a applied) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.onKill = s.onKill
	switch h := ev.(type) {
	case ReportEnd:
		a.kills = s.reportEnded(h.Seq)
		return a
	case OOMVictim:
		if !h.placed() {
			a.kills = s.victim(nil, "", h)
			return a
		}
	}
	var k string
	ke, fromKernel := ev.(kernelEvent)
	if fromKernel {
		k = s.keyFor(ke.cgroup())
	} else {
		k = ev.key()
		s.adopt(k)
	}
	e := s.containers[k]
	if o, ok := ev.(Observed); ok && o.Gone && e == nil {
		return a
	}
	if e == nil {
		if !s.admit(k, ev) {
			return a
		}
		e = &entry{}
		if fromKernel && k == kernelKey(ke.cgroup().Path) {
			cg := ke.cgroup()
			e.Meta = Meta{Runtime: cg.Meta.Runtime, ID: cg.Meta.ID, PodUID: cg.Meta.PodUID}
			e.fromKernel, e.guessed = true, cg.Guessed
			s.kernelOnly++
		} else {
			e.Meta = parseKey(k)
		}
		s.containers[k] = e
		s.ids[e.Meta.ID] = append(s.ids[e.Meta.ID], k)
	}
	reportBefore, wasRemoved, before := e.lastReport, !e.removedAt.IsZero(), e.ooms.total()
	switch ev := ev.(type) {
	case Observed:
		_, kernel := s.sources[CgroupSource]
		e.observe(ev, kernel)
		e.relabel(k)
		if e.ooms.total() > before {
			s.risen(e, k, ev.At, FromRuntime, true) // what a state says happened before it was read
		}
		s.placeHistory(e, k)
		for _, r := range e.recorded() {
			a.kills = append(a.kills, s.readyNow(r)...)
		}
	case Started:
		e.start(ev.At, ev.Pid)
	case Exited:
		e.exit(ev.At, ev.Code, s.describesKills())
	case OOMKilled:
		e.oom(ev.At)
		s.risen(e, k, ev.At, FromRuntime, false)
	case Removed:
		if e.removedAt.IsZero() || e.kernelRemoved {
			e.removedAt, e.kernelRemoved = ev.At, false
		}
	case KernelOOMCount:
		history := s.applyKernel(e, ev)
		if e.ooms.total() > before {
			s.risen(e, k, ev.At, FromCounter, history)
		}
	case CgroupGone:
		s.applyKernel(e, ev)
	case OOMVictim:
		a.kills = s.victim(e, k, ev)
	}
	if _, ok := ev.(kernelEvent); !ok {
		if _, ok := ev.(Observed); !ok && !e.observed {
			e.applied++
		}
	}
	e.refresh()
	if !wasRemoved && !e.removedAt.IsZero() {
		s.noneRemoved = false
	}
	if _, ok := ev.(OOMKilled); ok && e.lastReport != reportBefore {
		a.onOOM, a.key = s.onOOM, k
	}
	return a
}

// MainProcess returns the container whose main process had pid at t: a
// running container's, or that of the run that ended just before (the
// runtime may tell of the exit its kill caused before the kernel log's
// record is read). The kernel reader places a victim whose cgroup it could
// not find by it.
func (s *Store) MainProcess(pid int, t time.Time) (Meta, bool) {
	if pid <= 0 {
		return Meta{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.containers {
		if (e.pid == pid && e.running) || (e.exitedPid == pid && !e.running && !t.After(e.finished.Add(exitClockSlack)) && e.finished.Sub(t) < time.Minute) {
			return e.Meta, true
		}
	}
	return Meta{}, false
}

// describesKills reports whether the kernel log is read now: an exit by
// SIGKILL with no kill of the main process in it is then no OOM kill.
// With s.mu held.
func (s *Store) describesKills() bool {
	src := s.sources[KmsgSource]
	return src != nil && src.Up
}

// SetLimit sets the most containers the store tracks (0: no limit). At the
// limit, a new container takes the place of the one removed longest ago;
// when none is removed, it is turned away and counted.
func (s *Store) SetLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = max(n, 0)
}

// Limit returns the most containers tracked (0: no limit) and how many
// containers were turned away at it.
func (s *Store) Limit() (limit int, turnedAway uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit, s.turnedAway
}

// admit decides, with s.mu held, whether a new entry for k may be made.
func (s *Store) admit(k string, ev Event) bool {
	if s.limit == 0 || len(s.containers) < s.limit {
		delete(s.refused, k)
		return true
	}
	if _, gone := ev.(Removed); gone {
		// Nothing to track, nothing more to count; the same id, if ever
		// seen again, is a new container.
		delete(s.refused, k)
		return false
	}
	if oldest := s.oldestRemoved(); oldest != "" {
		s.forget(oldest)
		delete(s.refused, k)
		return true
	}
	if _, kernel := ev.(kernelEvent); !kernel && s.kernelOnly > 0 {
		// Containers only the kernel knows never crowd out a runtime's:
		// whoever may make cgroups could make thousands.
		for key, e := range s.containers {
			if e.fromKernel {
				s.forget(key)
				delete(s.refused, k)
				return true
			}
		}
	}
	if _, ok := s.refused[k]; ok {
		return false
	}
	if o, ok := ev.(Observed); ok && o.Gone {
		return false
	}
	s.turnedAway++
	if len(s.refused) < s.limit { // bounded: beyond it, a container may count twice
		if s.refused == nil {
			s.refused = map[string]struct{}{}
		}
		s.refused[k] = struct{}{}
	}
	return false
}

// room reports, with s.mu held, whether a new container can be tracked.
func (s *Store) room() bool {
	return s.limit == 0 || len(s.containers) < s.limit || s.oldestRemoved() != ""
}

// oldestRemoved returns the key of the container removed longest ago, or "".
// It looks at every container: only at the limit, and only once after each
// removal when it finds none.
func (s *Store) oldestRemoved() string {
	if s.noneRemoved {
		return ""
	}
	var oldest string
	var when time.Time
	for k, e := range s.containers {
		if !e.removedAt.IsZero() && (oldest == "" || e.removedAt.Before(when)) {
			oldest, when = k, e.removedAt
		}
	}
	s.noneRemoved = oldest == ""
	return oldest
}

func (s *Store) forget(k string) {
	e := s.containers[k]
	delete(s.containers, k)
	if e.fromKernel {
		s.kernelOnly--
	}
	keys := slices.DeleteFunc(s.ids[e.Meta.ID], func(key string) bool { return key == k })
	if len(keys) == 0 {
		delete(s.ids, e.Meta.ID)
	} else {
		s.ids[e.Meta.ID] = keys
	}
}

// refresh recomputes the exported values that the OOM accounting decides.
func (e *entry) refresh() {
	e.OOMs = e.ooms.total()
	e.GroupKills, e.HasGroupKills = e.ooms.groupKills(), e.ooms.hasGroup
	e.Pressure = e.pressure.total()
	e.KernelOnly = !e.observed
}

// observe takes a listing's or an inspect's state of the container;
// kernel says the kernel's counters are read (--kernel).
func (e *entry) observe(ev Observed, kernel bool) {
	st := ev.State
	e.Meta = ev.Meta
	if !st.CreatedAt.IsZero() {
		e.createdAt = st.CreatedAt
	}
	switch {
	case st.Running && st.Pid > 0:
		e.pid = st.Pid
	case !st.Running && !st.FinishedAt.IsZero():
		e.pid = 0 // exited: no main process
	}
	// A state neither running nor exited (created, never started) tells
	// nothing of the pid: it stays.
	if e.kernelRemoved {
		// The kernel saw the cgroup go; the runtime decides when the
		// container is removed.
		e.removedAt, e.kernelRemoved = time.Time{}, false
	}
	if !e.observed && e.applied == 0 {
		// First sight of a container: start from what the runtime knows.
		e.observed = true
		e.startedAt, e.finished, e.running, e.syncedAt = st.StartedAt, st.FinishedAt, st.Running, ev.At
		e.Restarts = uint64(max(st.Restarts, 0))
		if !st.FinishedAt.IsZero() && !st.Running {
			// A running container's code was reset at its start: unknown.
			e.exitedStart = st.StartedAt
			e.Exited, e.ExitCode = true, st.ExitCode
			e.ExitReason = e.exitReasonSeen(st.ExitCode, st.FinishedAt, false)
		}
		if st.OOMKilled {
			e.lastReport = latest(latest(st.FinishedAt, st.StartedAt), ev.At)
		}
		if st.OOMKilled && !(st.Running && kernel) {
			// A kill before the exporter started: counted once; its event,
			// if the stream still delivers it, is older than the observation.
			// Docker keeps the flag of a run's kill through its restart (it
			// is set anew at the next exit): for a running container it may
			// be this run's kill, which its cgroup's counter counts, or the
			// last run's, which the kernel log's buffer holds. Where the
			// kernel counts, it decides.
			e.report(e.lastReport)
		}
		return
	}
	// Seen before (a relisting after a reconnect, or an inspect after the
	// container's first events): take from the state only what the events
	// missed — an exit first, then a start after it.
	e.observed = true
	e.syncedAt = latest(e.syncedAt, ev.At)
	if st.FinishedAt.After(e.finished) {
		if e.running || e.startedAt.Before(st.FinishedAt) {
			e.exitedStart = e.startedAt
		}
		if !st.Running && !e.finished.IsZero() && st.StartedAt.After(e.finished) && st.StartedAt.After(e.startedAt) {
			// The state's run began after the last exit known, and no
			// event told its start yet: a restart, and its start is the
			// state's (its event, logged a moment later, is that run's).
			e.Restarts++
			e.startedAt = st.StartedAt
		}
		e.finished, e.running = st.FinishedAt, false
		// The code of an exit missed while the container ran again since
		// is lost (reset at the start): the exit code is left out rather
		// than reported as a wrong 0.
		e.Exited, e.ExitCode = !st.Running, st.ExitCode
		e.ExitReason = ""
		if e.Exited {
			// An exit the events did not tell: whether the kernel log
			// named the main process is only known if it did.
			e.ExitReason = e.exitReasonSeen(st.ExitCode, st.FinishedAt, false)
		}
	}
	// An observation asked for before the last exit the events told is
	// older than that exit: its Running is stale, no missed start.
	if st.Running && !e.running && ev.At.After(e.finished) {
		if !e.finished.IsZero() {
			e.Restarts++
		}
		e.startedAt, e.running = latest(e.startedAt, st.StartedAt), true
	}
	// OOMKilled is not taken here: Docker keeps it set after a worker's kill
	// until the next start, so it cannot tell whether this exit was a new
	// kill. Kills come from events (and the kernel's counters).
}

// start applies a start event. A start is a restart when the container had
// exited since its last start: this needs the events in the runtime's order.
// A state's times, which a runtime records a little earlier than its events
// (tens of milliseconds on a busy host), only tell the start of the run the
// state showed.
func (e *entry) start(at time.Time, pid int) {
	if at.Before(e.syncedAt) || !at.After(e.startedAt) {
		return // reflected in an observation already, or a replay
	}
	if !e.running && !e.startedAt.After(e.finished) && (!at.After(e.finished) || at.Sub(e.startedAt) < sameStart) {
		// The event of the start of a run that a state showed ended: the
		// state was read after that start, before its event was logged
		// (Podman logs its start a moment after it stamps StartedAt, and
		// a container that exits at once may have ended by then). No
		// restart: a later run starts after that exit, and after
		// Docker's restart back-off of 100 ms at least.
		return
	}
	if !e.running && !e.finished.IsZero() {
		e.Restarts++
	}
	e.startedAt, e.running = at, true
	if pid > 0 {
		e.pid = pid
	}
}

func (e *entry) exit(at time.Time, code int, describes bool) {
	if !e.finished.IsZero() &&
		((!at.Before(e.finished) && at.Before(e.startedAt)) || (!at.After(e.finished) && !at.Before(e.startedAt)) ||
			(!e.startedAt.After(e.finished) && at.Sub(e.finished).Abs() <= sameExit)) {
		// The event of the exit an observation showed: logged after that
		// exit and before the next start, or stamped a little before or
		// after the exit's time in the state, in the run it ended (Docker
		// stamps FinishedAt a moment before it logs the die event). No
		// second exit: a state in the restart back-off is Running with its
		// coming start counted already. Where the state showed it without
		// its code (the container ran again before the runtime answered),
		// it brings the code back.
		if !e.Exited {
			e.Exited, e.ExitCode = true, code
			e.ExitReason = e.exitReasonSeen(code, at, false)
			e.exited(at, code)
		}
		return
	}
	if at.Before(e.syncedAt) || !at.After(e.finished) {
		return // reflected in an observation already, or a replay
	}
	e.Exited, e.ExitCode, e.finished, e.running = true, code, at, false
	e.ExitReason = e.exitReasonSeen(code, at, describes)
	e.pid, e.exitedPid, e.exitedStart = 0, e.pid, e.startedAt
	e.exited(at, code)
}

// sameExit is how far apart the runtime may stamp one exit in its state and
// in its event.
const sameExit = time.Second

// sameStart is how long after a run's StartedAt in its state the runtime
// may log the start event of that run: below Docker's smallest restart
// back-off (100 ms), so that a restart's start is never taken for it.
const sameStart = 100 * time.Millisecond

// exitReasonSeen is exitReason for an exit with code at 'at'. An exit by
// SIGKILL (137) with no kill of the main process known is an OOM kill's or
// not: it is told apart only where the kernel log was read while the
// container ran (watched), else it is not known ("").
func (e *entry) exitReasonSeen(code int, at time.Time, watched bool) string {
	r := e.exitReason(code, at)
	if r == ExitSignal && code == 137 && !watched {
		return ""
	}
	return r
}

func (e *entry) oom(at time.Time) {
	if !at.After(e.lastReport) {
		return // a replay of a kill already counted
	}
	e.lastReport = at
	e.report(at)
}

// report takes a runtime's report of an OOM kill at t.
func (e *entry) report(t time.Time) {
	before := e.ooms.total()
	e.ooms.report(t)
	if e.ooms.total() > before {
		e.LastOOM = latest(e.LastOOM, t)
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// MarkGone marks as removed, at time at, every container of runtime that is
// not in present: a fresh listing no longer has it.
func (s *Store) MarkGone(runtime string, present map[string]bool, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := runtime + "://"
	for k := range s.refused {
		if strings.HasPrefix(k, prefix) && !present[k] {
			delete(s.refused, k)
		}
	}
	for k, e := range s.containers {
		// Entries never observed (events of a container that could not be
		// inspected) go too, so that they cannot pile up.
		if strings.HasPrefix(k, prefix) && !present[k] && e.removedAt.IsZero() {
			e.removedAt = at
			s.noneRemoved = false
		}
	}
}

// Sweep forgets containers removed longer ago than the retention.
func (s *Store) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.containers {
		if !e.removedAt.IsZero() && now.Sub(e.removedAt) >= s.retention {
			s.forget(k)
		}
	}
}

// Known reports whether the store has metadata of the container with key k.
// It is also true for a container turned away at the limit while there is
// still no room for it: the source need not ask the runtime about it again.
func (s *Store) Known(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.refused[k]; ok && !s.room() {
		return true // turned away, and still no room: no need to ask the runtime
	}
	e := s.containers[k]
	return e != nil && e.observed
}

// Reported reports whether a runtime reports a container with the id. A
// cgroup named after such a container is counted as its, whatever runtime
// its name only suggests.
func (s *Store) Reported(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.owners(id, "", true, "")) > 0
}

// Snapshot returns a copy of everything exported. Containers come in no
// particular order; sources are sorted by name.
func (s *Store) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Containers: make([]Container, 0, len(s.containers))}
	for _, e := range s.containers {
		if !s.exported(e) {
			continue
		}
		c := e.Container
		c.KillsByScope = maps.Clone(c.KillsByScope)
		c.ProcessKills = maps.Clone(c.ProcessKills)
		c.KillsByOutcome = maps.Clone(c.KillsByOutcome)
		snap.Containers = append(snap.Containers, c)
	}
	if len(s.hostKills) > 0 {
		snap.HostKills = maps.Clone(s.hostKills)
	}
	if len(s.cgroupKills) > 0 {
		snap.CgroupKills = maps.Clone(s.cgroupKills)
	}
	snap.Sources = s.sourcesLocked()
	return snap
}

// Unattributed returns how many OOM kills CountUnattributed counted.
func (s *Store) Unattributed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unattributed
}

// CountUnattributed counts n OOM kills that a pod's cgroup counted, that
// none of its containers' counters did, and that the kernel reader could
// not tell to one container (two or more went since it last looked).
func (s *Store) CountUnattributed(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unattributed += n
}

// exported reports whether a container's series are exported: once a
// runtime reported it, or, for a container only the kernel knows, while no
// source of its runtime answers.
func (s *Store) exported(e *entry) bool {
	return e.observed || ((e.ooms.kernelSeen() || len(e.ProcessKills) > 0) && s.silent(e.Meta.Runtime))
}

// Sources returns the state of every source, sorted by name.
func (s *Store) Sources() []SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sourcesLocked()
}

// RecentSources is Sources with each source's count of containers at most
// maxAge old: the landing page, which any client may ask for without pause,
// then walks the containers under the lock at most once in maxAge, not at
// every request.
func (s *Store) RecentSources(maxAge time.Duration) []SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counted != nil && time.Since(s.countedAt) < maxAge {
		return s.statuses(s.counted)
	}
	return s.sourcesLocked()
}

// sourcesLocked counts, for each runtime source, the containers it reported
// that are not removed, and for the cgroup source those whose cgroup it
// watches.
func (s *Store) sourcesLocked() []SourceStatus {
	count := map[string]int{}
	for _, e := range s.containers {
		if e.observed && e.removedAt.IsZero() {
			count[e.Meta.Runtime]++
		}
		if s.exported(e) && e.ooms.live() {
			count[CgroupSource]++
		}
	}
	s.counted, s.countedAt = count, time.Now()
	return s.statuses(count)
}

// statuses returns the state of every source with its count of
// containers, sorted by name. With s.mu held.
func (s *Store) statuses(count map[string]int) []SourceStatus {
	out := make([]SourceStatus, 0, len(s.sources))
	for _, src := range s.sources {
		st := *src
		st.Containers = count[src.Name]
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Store) source(name string) *SourceStatus {
	src := s.sources[name]
	if src == nil {
		src = &SourceStatus{Name: name}
		s.sources[name] = src
	}
	return src
}

// settle records, with s.mu held, that source name told what it found at
// start: it listed every container once, or it failed once (it will not
// tell soon).
func (s *Store) settle(name string) {
	if !s.settled[name] {
		s.settled[name] = true
		close(s.settledChanged)
		s.settledChanged = make(chan struct{})
	}
}

// WaitSettled waits until every source added has settled, or only every
// runtime's (not the kernel reader's) if runtimesOnly. It returns false if
// ctx ends first.
func (s *Store) WaitSettled(ctx context.Context, runtimesOnly bool) bool {
	for {
		s.mu.Lock()
		done, changed := true, s.settledChanged
		for name := range s.sources {
			if !s.settled[name] && !(runtimesOnly && (name == CgroupSource || name == KmsgSource)) {
				done = false
			}
		}
		s.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// AddSource registers a source so that it is reported (down) before it first connects.
func (s *Store) AddSource(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.source(name)
}

// SetUp records whether a source is connected; err says why not. A source
// is up once it has listed what it found (Session), so up, or down with an
// error, it has settled (WaitSettled).
func (s *Store) SetUp(name string, up bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.source(name)
	src.Up = up
	src.LastError = ""
	if err != nil {
		src.LastError = err.Error()
	}
	if up || err != nil {
		s.settle(name)
	}
}

// CountEvent counts an event a source received; malformed ones also count apart.
func (s *Store) CountEvent(name string, malformed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.source(name)
	src.Events++
	if malformed {
		src.Malformed++
	}
}

// CountReconnect counts a source's attempt to connect again after a failure.
func (s *Store) CountReconnect(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.source(name).Reconnects++
}

// SetWatches records how many inotify watches a source holds, and the most
// it may (0: no bound).
func (s *Store) SetWatches(name string, n, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.source(name)
	src.Watches, src.WatchLimit = n, limit
}

// CountPanic counts a source's session that ended in a recovered panic.
func (s *Store) CountPanic(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.source(name).Panics++
}
