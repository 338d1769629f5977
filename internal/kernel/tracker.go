package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// The tracker: it follows the memory cgroup hierarchy (inotify and rescans),
// keeps one tracked instance per container cgroup, reads their counters and
// sends what it reads to the store.

// rescanInterval is how often the whole hierarchy is walked again: inotify
// tells of every cgroup made and removed, the walk catches what a full
// inotify queue (or a missing watch) let pass.
const rescanInterval = 30 * time.Second

// cgroups finds the containers' memory cgroups and reads their OOM
// counters when the kernel log names a kill in one, when a runtime reports
// one, and at every rescan; on cgroup v2 also whenever the kernel notifies a
// change of memory.events (v1 notifies no kill). A scrape reads none: at
// tens of microseconds a cgroup, that would slow every scrape of a large
// node.
type cgroups struct {
	cfg     Config
	store   *store.Store
	reports <-chan string // keys of containers a runtime reported an OOM kill in
	log     *slog.Logger
	rescan  chan struct{}

	mu     sync.Mutex
	h      Hierarchy
	found  bool                // h is known
	w      *watcher            // nil: rescans only
	warned bool                // a failed watch was logged
	capped bool                // the watch cap was reached, and logged
	byDir  map[string]*tracked // by cgroup path (from the hierarchy's root)
	byID   map[string]*tracked // by ContainerCgroup.key
	// below counts the tracked cgroups under each directory that holds
	// any: a removed directory is looked up, not searched for among them.
	below map[string]int
	// parents are the cgroups that hold containers' cgroups (v2), by path.
	parents map[string]*parent
	serial  uint64 // of the last instance seen
	// onRise, if set, is called when a reading shows more kills than the
	// one before: the syslog(2) reader reads the log then.
	onRise func()
}

// tracked is one instance of a container's cgroup: the directory from
// its mkdir to its rmdir. Only runtime and refined change, under
// cgroups.mu.
type tracked struct {
	c ContainerCgroup
	// id names the instance for the store. The inode tells instances at
	// one path apart (cgroupfs does not reuse inode numbers soon), but the
	// reader also gives a new id to a directory it saw removed and made
	// again, whatever its inode.
	id        uint64
	ino       uint64
	born      time.Time
	bornExact bool
	runtime   string // c.Runtime, or what the container's shim told
	refined   bool   // the runtime guess was checked against the shim
	// What its counter counts that the kernel log placed (room): kills
	// from before the reader looked (base, the first reading of a cgroup
	// that existed then), and victims the log placed in it since (named).
	read  bool
	base  uint64
	named uint64
	kills uint64 // the highest reading of its oom_kill
	// groups is the highest reading of its oom_group_kill, groupBase the
	// first of a cgroup that existed before the reader looked.
	groups, groupBase uint64
	// pressureAt is when its memory.pressure or memory.failcnt was read
	// last (pressure.go).
	pressureAt time.Time
}

func newCgroups(cfg Config, st *store.Store, reports <-chan string, log *slog.Logger) *cgroups {
	return &cgroups{
		cfg:     cfg,
		store:   st,
		reports: reports,
		log:     log,
		rescan:  make(chan struct{}, 1),
		byDir:   map[string]*tracked{},
		byID:    map[string]*tracked{},
		below:   map[string]int{},
		parents: map[string]*parent{},
	}
}

func (c *cgroups) requestRescan() {
	select {
	case c.rescan <- struct{}{}:
	default:
	}
}

// session watches the hierarchy until it fails or ctx ends.
func (c *cgroups) session(ctx context.Context, up func()) error {
	h, err := FindHierarchy(c.cfg.SysFS)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.h, c.found = h, true
	c.mu.Unlock()
	log := c.log.With("hierarchy", h.Root, "cgroup_v2", h.V2)

	w, err := newWatcher(h.Root, c.cfg.MaxWatches)
	if err != nil {
		// Rescans alone still find every cgroup, later.
		log.Warn("cannot watch the cgroup hierarchy with inotify; finding cgroups by rescans only", "err", err, "rescan_interval", rescanInterval)
	} else {
		defer func() {
			c.mu.Lock()
			c.w = nil
			c.mu.Unlock()
			w.close()
			c.updateWatches()
		}()
	}
	c.mu.Lock()
	c.w = w
	c.mu.Unlock()
	c.scan()
	// Up once it knows every container's cgroup that exists: also those
	// found through the pids the runtimes give in their first listing.
	if !c.store.WaitSettled(ctx, true) {
		return ctx.Err()
	}
	c.watchPids()
	up()
	log.Info("watching the memory cgroups of containers", "containers", c.count())

	tick := time.NewTicker(rescanInterval)
	defer tick.Stop()
	var events <-chan watchEvent
	var errs <-chan error
	if w != nil {
		events, errs = w.events, w.errs
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-events:
			c.handle(ev)
		case err := <-errs:
			return fmt.Errorf("inotify: %w", err)
		case <-tick.C:
			c.scan()
			c.watchPids()
		case <-c.rescan:
			c.scan()
			c.watchPids()
		case key := <-c.reports:
			if t := c.lookupKey(key); t != nil {
				c.read(t.c.Dir)
			}
		}
	}
}

func (c *cgroups) handle(ev watchEvent) {
	switch {
	case ev.overflow:
		c.log.Warn("inotify queue overflowed; rescanning the cgroup hierarchy")
		c.scan()
	case ev.created:
		now := time.Now()
		// The new cgroup and whatever was made in it before its watch was set.
		_ = filepath.WalkDir(ev.path, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			return c.visit(p, now, true)
		})
		c.otherChanged(c.rel(ev.path))
		c.updateWatches()
	case ev.removed:
		rel := c.rel(ev.path)
		c.removedUnder(rel, time.Now())
		c.otherChanged(rel)
		c.updateWatches()
	case ev.modified:
		c.read(c.rel(ev.path))
	}
}

// rel turns a path under the hierarchy's mount into a cgroup path.
func (c *cgroups) rel(p string) string {
	c.mu.Lock()
	root := c.h.Root
	c.mu.Unlock()
	r := strings.TrimPrefix(p, root)
	if r == "" {
		return "/"
	}
	return r
}

func (c *cgroups) abs(cgroup string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return filepath.Join(c.h.Root, cgroup)
}

// scan walks the whole hierarchy: it finds cgroups that inotify did not
// report, and those that are gone or were made again.
func (c *cgroups) scan() {
	c.mu.Lock()
	root := c.h.Root
	c.mu.Unlock()
	seen := map[string]bool{}
	walked := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // removed while walking
		}
		if !d.IsDir() {
			return nil
		}
		walked[p] = true
		if rel := c.rel(p); c.containerDir(rel) {
			seen[rel] = true
		}
		return c.visit(p, time.Time{}, false)
	})
	if err != nil {
		c.log.Warn("cannot walk the cgroup hierarchy", "err", err)
		return
	}
	if w := c.watcher(); w != nil {
		w.prune(walked)
	}
	c.updateWatches()
	now := time.Now()
	for _, t := range c.all() {
		if !seen[t.c.Dir] {
			c.check(t, now) // pid-found cgroups have no recognisable path
		}
	}
	c.pressureDue()
	for _, t := range c.all() {
		c.read(t.c.Dir)
	}
	for _, dir := range c.parentDirs() {
		c.settle(dir)
	}
}

// parentDirs returns the parent cgroups the reader follows.
func (c *cgroups) parentDirs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.parents))
	for dir := range c.parents {
		out = append(out, dir)
	}
	return out
}

// visit looks at a directory of the hierarchy, as a WalkDir function: a
// container's cgroup is tracked, and nothing below it is walked or watched
// (nothing there is read, and a tenant can make any number of cgroups in
// it: Docker in Docker, systemd in a container); nor is a directory where
// no container's cgroup can be (mayHoldContainers); any other directory is
// watched for the cgroups made in it.
func (c *cgroups) visit(p string, born time.Time, exact bool) error {
	rel := c.rel(p)
	switch {
	case !mayHoldContainers(rel, c.cfg.CgroupParents):
	case !exact && c.tracks(rel):
		// A walk's look at a cgroup it tracks: the walk reads every
		// tracked cgroup next, and that reading finds an instance made
		// again at the path.
	case c.appeared(rel, born, exact), c.tracks(rel):
	default:
		c.addWatch(p)
		return nil
	}
	return fs.SkipDir
}

// containerDir reports whether the cgroup at rel is named as a container's.
func (c *cgroups) containerDir(rel string) bool {
	ct, ok := ParseContainerPath(rel, c.cfg.CgroupParents)
	return ok && ct.Dir == rel
}

// tracks reports whether the cgroup at rel is a tracked container's: also
// one found through a runtime's pid, whatever its name.
func (c *cgroups) tracks(rel string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byDir[rel] != nil
}

// appeared looks at one cgroup directory and starts tracking it if it is a
// container's. born is when it was made, if known. It reports whether the
// directory is a container's.
func (c *cgroups) appeared(rel string, born time.Time, exact bool) bool {
	if !c.containerDir(rel) {
		return false
	}
	ct, _ := ParseContainerPath(rel, c.cfg.CgroupParents)
	st, err := c.stat(rel)
	if err != nil {
		return true // gone already; a kill in it still shows in the kernel log
	}
	if !exact {
		born = st.ctime // an estimate: the directory's change time
	}
	t := &tracked{c: ct, ino: st.ino, born: born, bornExact: exact, runtime: ct.Runtime}
	switch {
	case !c.track(t):
	case exact && !c.v2():
		c.born(t)
	default:
		c.read(rel)
	}
	return true
}

// track starts tracking a cgroup instance, unless the same instance is
// tracked already: the event loop and the kernel log reader may find it
// at once. An older instance at the same path is gone. On cgroup v2
// the kernel then notifies every change of the instance's counters.
func (c *cgroups) track(t *tracked) bool {
	c.mu.Lock()
	old := c.byDir[t.c.Dir]
	if old != nil && old.ino == t.ino {
		c.mu.Unlock()
		return false
	}
	var gone *store.CgroupGone
	if old != nil {
		// Made again between two looks.
		t.runtime, t.refined = old.runtime, old.refined
		gone = &store.CgroupGone{Cgroup: c.cgroupLocked(old), Instance: old.id, At: time.Now()}
	}
	c.serial++
	t.id = c.serial
	if old == nil {
		c.countBelow(t.c.Dir, 1)
	}
	c.byDir[t.c.Dir], c.byID[t.c.key()] = t, t
	v2, dir := c.h.V2, filepath.Join(c.h.Root, t.c.Dir)
	c.mu.Unlock()
	if gone != nil {
		c.store.Apply(*gone)
		c.childGone(old)
	}
	if w := c.watcher(); w != nil {
		// Found by a pid after a walk went into it: nothing below is read.
		w.forget(dir)
	}
	if v2 {
		c.addFileWatch(dir)
	}
	c.adopt(t)
	return true
}

// addWatch watches a directory for cgroups made in it. When the kernel
// refuses (fs.inotify.max_user_watches), rescans still find them.
func (c *cgroups) addWatch(dir string) {
	c.mu.Lock()
	w := c.w
	c.mu.Unlock()
	if w != nil {
		c.watchFailed(w.add(dir))
	}
}

func (c *cgroups) addFileWatch(dir string) {
	c.mu.Lock()
	w := c.w
	c.mu.Unlock()
	if w != nil {
		c.watchFailed(w.addFile(dir))
	}
}

func (c *cgroups) watchFailed(err error) {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return
	}
	capped := errors.Is(err, errWatchCap)
	c.mu.Lock()
	first := !c.warned && !capped || !c.capped && capped
	c.warned = c.warned || !capped
	c.capped = c.capped || capped
	c.mu.Unlock()
	switch {
	case first && capped:
		c.log.Warn("the inotify watch cap is reached: new cgroups are found by rescans, and on cgroup v2 their counters read at rescans and kernel log reports, not at once (--kernel.max-watches)",
			"max_watches", c.cfg.MaxWatches, "rescan_interval", rescanInterval)
	case first:
		c.log.Warn("cannot watch a cgroup with inotify; rescans find what it misses", "err", err, "rescan_interval", rescanInterval)
	}
}

// check sees whether a tracked cgroup still exists as the same instance.
func (c *cgroups) check(t *tracked, now time.Time) {
	st, err := c.stat(t.c.Dir)
	if err == nil && st.ino == t.ino {
		return
	}
	c.gone(t, now)
	if err == nil {
		// Made again: a new instance, born at an unknown time.
		c.mu.Lock()
		nt := &tracked{c: t.c, ino: st.ino, born: st.ctime, runtime: t.runtime, refined: t.refined}
		c.mu.Unlock()
		if c.track(nt) {
			c.read(nt.c.Dir)
		}
	}
}

// removedUnder lets go of the tracked cgroup at rel and of those below it:
// rel was removed. A container's own cgroup, the usual case, has nothing
// tracked below it, and is found without going through the others.
func (c *cgroups) removedUnder(rel string, now time.Time) {
	c.mu.Lock()
	t, nested := c.byDir[rel], c.below[rel] > 0
	c.mu.Unlock()
	if t != nil {
		c.gone(t, now)
	}
	if !nested {
		return
	}
	for _, t := range c.all() {
		if strings.HasPrefix(t.c.Dir, rel+"/") {
			c.gone(t, now)
		}
	}
}

// countBelow adds n to the count of tracked cgroups of each directory
// above dir, with c.mu held.
func (c *cgroups) countBelow(dir string, n int) {
	for p := path.Dir(dir); ; p = path.Dir(p) {
		if c.below[p] += n; c.below[p] == 0 {
			delete(c.below, p)
		}
		if p == "/" || p == "." {
			return
		}
	}
}

func (c *cgroups) gone(t *tracked, now time.Time) {
	c.mu.Lock()
	if c.byDir[t.c.Dir] != t {
		c.mu.Unlock()
		return
	}
	delete(c.byDir, t.c.Dir)
	c.countBelow(t.c.Dir, -1)
	if c.byID[t.c.key()] == t {
		delete(c.byID, t.c.key())
	}
	ev := store.CgroupGone{Cgroup: c.cgroupLocked(t), Instance: t.id, At: now}
	c.mu.Unlock()
	c.store.Apply(ev)
	c.childGone(t)
}

// cgroupLocked is how the store is told of a tracked cgroup: its runtime
// checked against its shim where the path left it a guess.
func (c *cgroups) cgroupLocked(t *tracked) store.Cgroup {
	ct := t.c
	ct.Runtime, ct.Sure = t.runtime, ct.Sure || t.refined
	return storeCgroup(ct)
}

// read reads the OOM counters of the tracked cgroup at rel and sends them
// to the store.
func (c *cgroups) read(rel string) {
	c.mu.Lock()
	t, h := c.byDir[rel], c.h
	c.mu.Unlock()
	if t == nil {
		return
	}
	dir := filepath.Join(h.Root, t.c.Dir)
	b, err := readFile(filepath.Join(dir, h.counterFile()))
	at := time.Now()
	if err != nil {
		// A cgroup removed while it is read gives ENODEV.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
			c.log.Warn("cannot read a cgroup's OOM counters", "cgroup", t.c.Dir, "err", err)
		}
		return
	}
	// The counters must be the tracked instance's, not a newer one's.
	if st, err := c.stat(t.c.Dir); err != nil || st.ino != t.ino {
		c.check(t, at)
		return
	}
	n, err := h.parse(b)
	if err != nil {
		c.store.CountEvent(store.CgroupSource, true)
		c.log.Warn("cannot parse a cgroup's OOM counters", "cgroup", t.c.Dir, "err", err)
		return
	}
	c.store.CountEvent(store.CgroupSource, false)
	c.mu.Lock()
	refine := !t.c.Sure && !t.refined
	if !t.read {
		t.read = true
		if !t.bornExact {
			t.base, t.groupBase = n.Kills, n.GroupKills
		}
	}
	t.groups = max(t.groups, n.GroupKills)
	rose := t.read && n.Kills > t.kills
	t.kills = max(t.kills, n.Kills)
	c.mu.Unlock()
	p, sampled := c.pressure(h, t, dir, b, at, rose)
	if rose && c.onRise != nil {
		c.onRise()
	}
	// The shim is asked only for a container no runtime reports: the store
	// counts the cgroup of a reported one as that container's anyway.
	if refine && !c.store.Reported(t.c.ID) {
		if r, ok := guessRuntime(c.cfg.ProcFS, dir); ok {
			c.mu.Lock()
			t.runtime, t.refined = r, true
			c.mu.Unlock()
		}
	}
	c.report(t, n, p, sampled, at)
}

// born tells the store of a cgroup seen made on cgroup v1, without reading
// it: a memory cgroup's counters are all 0 when it is made. They are read,
// as any v1 cgroup's (v1 notifies no change), when the kernel log names a
// kill in it, when a runtime reports one, and at the next walk. A
// Kubernetes container's pod is older than it: the pod's limit hits are
// read. On cgroup v2 the first reading is needed: the kernel notifies only
// the changes after the watch was set.
func (c *cgroups) born(t *tracked) {
	at := time.Now()
	c.mu.Lock()
	h := c.h
	t.read, t.pressureAt = true, at
	c.mu.Unlock()
	p := store.MemoryPressure{HasLimitHits: true}
	c.podPressure(h, t, &p)
	c.report(t, Counters{}, p, true, at)
}

// report sends a reading of the tracked cgroup's counters to the store.
func (c *cgroups) report(t *tracked, n Counters, p store.MemoryPressure, sampled bool, at time.Time) {
	c.mu.Lock()
	ev := store.KernelOOMCount{Cgroup: c.cgroupLocked(t), Instance: t.id, Born: t.born, BornExact: t.bornExact,
		Kills: n.Kills, GroupKills: n.GroupKills, HasGroup: n.HasGroup, Pressure: p, PressureSampled: sampled, At: at}
	c.mu.Unlock()
	c.store.Apply(ev)
}

// ensure tracks the instance of a container's cgroup that exists now, if
// the reader did not know it yet (the kernel log can report a kill in a new
// cgroup before inotify does), and returns its id: 0 if the cgroup is gone or
// is no container's.
func (c *cgroups) ensure(ct ContainerCgroup) uint64 {
	c.mu.Lock()
	found := c.found
	c.mu.Unlock()
	if !found {
		return 0
	}
	if id := c.instance(ct.Dir); id != 0 {
		return id
	}
	st, err := c.stat(ct.Dir)
	if err != nil {
		return 0
	}
	if t := c.lookupDir(ct.Dir); t != nil {
		c.check(t, time.Now()) // made again since the reader looked
		return c.instance(ct.Dir)
	}
	if parsed, ok := ParseContainerPath(ct.Dir, c.cfg.CgroupParents); !ok || parsed.Dir != ct.Dir {
		return 0 // found by pid and gone since: tracked again by the next walk
	}
	c.track(&tracked{c: ct, ino: st.ino, born: st.ctime, runtime: ct.Runtime})
	return c.instance(ct.Dir)
}

// readAll reads every tracked cgroup's counters, for at most limit.
func (c *cgroups) readAll(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, t := range c.all() {
		if time.Now().After(deadline) {
			return
		}
		c.read(t.c.Dir)
	}
}

// watchPids finds the cgroups of running containers whose path names no
// container the reader recognises: a runtime gave their main process's pid.
func (c *cgroups) watchPids() {
	for _, tg := range c.store.Unwatched() {
		if c.lookupKey(tg.Meta.Key()) != nil {
			continue
		}
		path, err := procCgroup(c.cfg.ProcFS, tg.Pid)
		if err != nil {
			continue // exited since
		}
		// The pid may be stale (Docker inspects once) and reused: only a
		// cgroup whose name holds the container's id is the container's.
		if !strings.Contains(filepath.Base(path), tg.Meta.ID) || path == "/" {
			c.log.Debug("a container's main process is not in a cgroup named after it", "container", tg.Meta.Key(), "pid", tg.Pid, "cgroup", path)
			continue
		}
		st, err := c.stat(path)
		if err != nil {
			continue
		}
		if c.lookupDir(path) != nil {
			continue
		}
		owner := tg.Meta
		t := &tracked{c: ContainerCgroup{Runtime: tg.Meta.Runtime, ID: tg.Meta.ID, Dir: path, Sure: true, Owner: &owner}, ino: st.ino, born: st.ctime, runtime: tg.Meta.Runtime}
		if c.track(t) {
			c.read(path)
		}
	}
}

// named notes that the kernel log placed a victim in the container's
// cgroup dir.
func (c *cgroups) named(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.byDir[dir]; t != nil {
		t.named++
	}
}

// room reads the counters of the container cgroup that holds path, and
// reports whether they count a kill that no victim of the kernel log
// explains yet: a victim whose cgroup is only guessed is confirmed in it by
// that. The kernel counts a kill before it prints its victim.
func (c *cgroups) room(path string) bool {
	ct, ok := ParseContainerPath(path, c.cfg.CgroupParents)
	if !ok {
		ct, ok = c.byPath(path)
	}
	if !ok || ct.Dir != path && !c.v2() {
		return false // v1 counts a kill only in the victim's own cgroup
	}
	if c.ensure(ct) == 0 {
		return false // gone: no counter to tell
	}
	c.read(ct.Dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.byDir[ct.Dir]
	return t != nil && t.read && t.kills > t.base+t.named
}

// byPath finds the tracked container whose cgroup holds the cgroup path.
func (c *cgroups) byPath(path string) (ContainerCgroup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := path; p != "/" && p != "." && p != ""; p = filepath.Dir(p) {
		if t := c.byDir[p]; t != nil {
			ct := t.c
			ct.Runtime = t.runtime
			return ct, true
		}
	}
	return ContainerCgroup{}, false
}

// known returns the tracked version of a container parsed from a path: the
// runtime checked against its shim.
func (c *cgroups) known(ct ContainerCgroup) ContainerCgroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.byID[ct.key()]; t != nil && t.c.Dir == ct.Dir {
		ct.Runtime = t.runtime
	}
	return ct
}

// instance returns the id of the tracked instance of a container's cgroup
// that exists now, 0 if none.
func (c *cgroups) instance(rel string) uint64 {
	st, err := c.stat(rel)
	if err != nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.byDir[rel]; t != nil && t.ino == st.ino {
		return t.id
	}
	return 0
}

func (c *cgroups) lookupDir(rel string) *tracked {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byDir[rel]
}

// lookupKey finds the tracked cgroup of the container the store keeps under
// key: one found through its pid, or one whose path names its id.
func (c *cgroups) lookupKey(key string) *tracked {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.byID[key]; t != nil {
		return t
	}
	_, rest, _ := strings.Cut(key, "://")
	id := rest[strings.LastIndexByte(rest, '/')+1:] // containerd's keys hold the namespace
	for _, r := range []string{store.RuntimeDocker, store.RuntimeContainerd, store.RuntimeCRIO, store.RuntimePodman} {
		if t := c.byID[store.Key(r, "", id)]; t != nil && t.c.Owner == nil {
			return t
		}
	}
	return nil
}

func (c *cgroups) all() []*tracked {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*tracked, 0, len(c.byDir))
	for _, t := range c.byDir {
		out = append(out, t)
	}
	return out
}

func (c *cgroups) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byDir)
}

type dirStat struct {
	ino   uint64
	ctime time.Time
}

func (c *cgroups) stat(rel string) (dirStat, error) {
	var st unix.Stat_t
	if err := unix.Stat(c.abs(rel), &st); err != nil {
		return dirStat{}, err
	}
	return dirStat{ino: st.Ino, ctime: time.Unix(st.Ctim.Unix())}, nil
}

// updateWatches tells the store how many inotify watches the reader holds,
// which count against fs.inotify.max_user_watches.
func (c *cgroups) updateWatches() {
	n := 0
	if w := c.watcher(); w != nil {
		n = w.count()
	}
	c.store.SetWatches(store.CgroupSource, n, c.cfg.MaxWatches)
}

// v2 reports whether the hierarchy is cgroup v2, which notifies every change
// of the counters.
func (c *cgroups) v2() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.found && c.h.V2
}

// watcher returns the watcher of the session under way, nil if none.
func (c *cgroups) watcher() *watcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w
}
