// Package kernel reads the kernel's first-hand account of OOM kills: the OOM
// counters of every container's memory cgroup (cgroup v1 and v2) and the
// victims the kernel log names. It decides nothing about counts: it sends
// what it reads to the store as typed events, and the store reconciles them
// with the runtimes' reports (docs/design.md).
package kernel

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/missing-container-metrics/missing-container-metrics/internal/source"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// Config says where the kernel's files are: in a container, the host's are
// mounted elsewhere (--path.sysfs=/host/sys, --path.procfs=/host/proc).
type Config struct {
	SysFS  string // /sys
	ProcFS string // /proc
	Kmsg   string // /dev/kmsg; empty: the kernel log is not read (no victims' names)
	// CgroupParents are cgroups, besides those runtimes use by default,
	// under which containers' cgroups are made: Docker's --cgroup-parent,
	// the kubelet's --cgroup-root (see ParseContainerPath).
	CgroupParents []string
}

// Source reads the kernel's OOM counters and log.
type Source struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger

	cg      *cgroups
	reports chan string // keys of containers a runtime reported an OOM kill in
	// readAll asks that every counter be read at once; requests made while
	// one is read make one more read (see readAllSoon).
	readAll chan struct{}

	// everLive is set once the log reader has read everything the kernel
	// had when it started: later records happened while the exporter ran.
	everLive bool

	// walked is closed once the cgroup reader's first session has walked
	// the hierarchy (or failed): the victims in the kernel log's buffer
	// from before the exporter started count only in a cgroup the reader
	// knows, so they wait for it.
	walked     chan struct{}
	walkedOnce sync.Once
}

// New returns a kernel source that sends what it reads to st. It reads
// nothing before Run.
func New(cfg Config, st *store.Store, log *slog.Logger) *Source {
	s := &Source{
		cfg:     cfg,
		store:   st,
		log:     log.With("kernel", store.KmsgSource),
		reports: make(chan string, 1024),
		readAll: make(chan struct{}, 1),
		walked:  make(chan struct{}),
	}
	s.cg = newCgroups(cfg, st, s.reports, log.With("kernel", store.CgroupSource))
	st.AddSource(store.CgroupSource)
	if cfg.Kmsg != "" {
		st.AddSource(store.KmsgSource)
	}
	st.OnOOMReport(func(key string) {
		select {
		case s.reports <- key:
		default: // the next rescan reads every counter anyway
		}
	})
	return s
}

// Run reads the cgroups and the kernel log until ctx ends, each in its own
// session that is retried with back-off when it fails (no cgroup hierarchy,
// no permission to read /dev/kmsg): the health of each shows as
// missing_container_metrics_source_up{source="cgroup"|"kmsg"}.
func (s *Source) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.readAll:
				s.cg.readAll(time.Second)
			}
		}
	}()
	if s.cfg.Kmsg != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			source.Run(ctx, store.KmsgSource, s.store, s.log, source.DefaultBackoff, s.kmsgSession)
		}()
	} else {
		s.log.Info("not reading the kernel log (--path.kmsg is empty): OOM kills are counted, their victims not named")
	}
	source.Run(ctx, store.CgroupSource, s.store, s.cg.log, source.DefaultBackoff, func(ctx context.Context, up func()) error {
		defer s.walkDone()
		return s.cg.session(ctx, func() { up(); s.walkDone() })
	})
	s.walkDone()
	wg.Wait()
}

// walkedYet reports whether walked is closed.
func (s *Source) walkedYet() bool {
	select {
	case <-s.walked:
		return true
	default:
		return false
	}
}

// walkDone says that the cgroup reader's first session has walked the
// hierarchy, or failed.
func (s *Source) walkDone() { s.walkedOnce.Do(func() { close(s.walked) }) }

// kmsgSession follows the kernel log until it fails or ctx ends.
func (s *Source) kmsgSession(ctx context.Context, up func()) error {
	f, err := openKmsg(s.cfg.Kmsg)
	if err != nil {
		return err
	}
	defer f.close()
	return s.follow(ctx, f, up)
}

// follow reads records from r: first what the kernel log holds already,
// then every new record as it is written.
func (s *Source) follow(ctx context.Context, r recordReader, up func()) error {
	stop := context.AfterFunc(ctx, r.stop)
	defer stop()
	var (
		buf      = make([]byte, 16<<10) // a record is at most 8 KiB
		oom      oomLog
		clk      = newClock()
		caughtUp bool // everything the kernel had when the session began was read
	)
	// The victims of the buffer wait for the cgroup walk (see walked),
	// in the log's order. Up once it has read and applied what the kernel
	// log held when it began: a scrape waits for every source to be up,
	// so a kill after the first scrape is read as one that happened while
	// the exporter ran, never as history (which counts only where a
	// cgroup confirms it).
	type backlogVictim struct {
		v    Victim
		at   time.Time
		live bool
	}
	var (
		backlog []backlogVictim
		once    sync.Once
	)
	// flush applies the queued victims, before any later one: the store
	// takes a record only if it is newer than the last it took.
	flush := func() {
		for _, b := range backlog {
			s.victim(b.v, b.at, b.live, false)
		}
		backlog = nil
	}
	caughtUpNow := func() {
		once.Do(func() {
			select {
			case <-s.walked:
			case <-ctx.Done():
				return
			}
			flush()
			caughtUp, s.everLive = true, true
			up()
		})
	}
	for {
		n, waited, err := r.next(buf, caughtUpNow)
		switch {
		case errors.Is(err, unix.EPIPE):
			// The kernel overwrote records before they were read. The next
			// record's sequence number says how many; counters stay exact.
			s.store.CountEvent(store.KmsgSource, true)
			s.log.Warn("kernel log records were overwritten before they could be read; victims' names may be missing", "err", err)
			oom.reset()
			s.cg.requestRescan()
			continue
		case errors.Is(err, errStopped):
			return ctx.Err()
		case err != nil:
			return err
		}
		if waited {
			caughtUp, s.everLive = true, true
		}
		rec, err := ParseRecord(buf[:n])
		if err != nil {
			s.store.CountEvent(store.KmsgSource, true)
			s.log.Warn("skipping a malformed kernel log record", "err", err)
			continue
		}
		s.store.CountEvent(store.KmsgSource, false)
		if waited {
			clk.calibrate(rec.Time, time.Now())
		}
		v, lost := oom.add(rec)
		if lost > 0 {
			s.log.Warn("kernel log records lost", "records", lost, "before_seq", rec.Seq)
		}
		switch {
		case v == nil:
		case !caughtUp && !s.walkedYet():
			backlog = append(backlog, backlogVictim{*v, clk.wall(v.Time), s.everLive})
		default:
			flush()
			s.victim(*v, clk.wall(v.Time), s.everLive, caughtUp)
		}
	}
}

// victim attributes one victim to its container (or to the host) and sends
// it to the store. prompt says the record was read right after it was
// written: the victim's cgroup and process are still there to look at.
func (s *Source) victim(v Victim, at time.Time, live, prompt bool) {
	path := v.CgroupPath
	d := details(v)
	if prompt {
		// Whether it was its container's main process: pid 1 of its pid
		// namespace. It is still there, dying, right after its record.
		d.MainProcess = s.procInit(v.PID)
		if path == "" || v.Guessed {
			// A process that has exited shows the root cgroup: that says
			// nothing of where it was killed.
			if p, err := procCgroup(s.cfg.ProcFS, v.PID); err == nil && p != "/" {
				path = p
			}
		}
	}
	if path == "" {
		// Its report was rate-limited (ten in five seconds) or lost, and
		// the process is gone. Its cgroup's counter counts it, but cgroup
		// v1 notifies no kill: read every counter now, before a runtime
		// removes the cgroup of a container whose main process this was.
		s.log.Debug("OOM kill of a process whose cgroup the kernel log does not give; reading every cgroup's counters",
			"pid", v.PID, "process", v.Process, "seq", v.Seq)
		if prompt && !s.cg.v2() {
			s.readAllSoon()
		}
		s.store.Apply(store.UnplacedVictim{Process: v.Process, At: at, Seq: v.Seq, Live: live, Details: d})
		return
	}
	c, ok := ParseContainerPath(path, s.cfg.CgroupParents)
	if !ok {
		c, ok = s.cg.byPath(path) // a container found by its main process's pid
	}
	if !ok && prompt {
		// A container started since the last look, whose path names no
		// container (ctr's /NAMESPACE/ID): its runtime gave its pid.
		s.cg.watchPids()
		c, ok = s.cg.byPath(path)
	}
	if !ok {
		d.Scope = scope(d, "")
		s.store.Apply(store.HostOOMKill{Process: v.Process, At: at, Seq: v.Seq, Live: live, Details: d})
		return
	}
	c = s.cg.known(c)
	d.Scope = scope(d, c.Dir)
	var instance uint64
	if prompt {
		// The counter first: the store then knows the instance the victim
		// was in, whose counter also counts it.
		if instance = s.cg.ensure(c); instance != 0 {
			s.cg.read(c.Dir)
		}
	}
	s.log.Debug("OOM victim", "process", v.Process, "pid", v.PID, "container", c.key(), "cgroup", path, "live", live)
	s.store.Apply(store.OOMVictim{Cgroup: storeCgroup(c), Instance: instance, Process: v.Process, At: at, Seq: v.Seq, Live: live, Details: d})
}

// details is what the kernel log said of the kill of v, for the store.
func details(v Victim) store.KillDetails {
	d := store.KillDetails{PID: v.PID, Group: v.Group}
	if m := v.Memory; m.Known {
		d.Memory = &store.VictimMemory{AnonRSS: m.AnonRSS, FileRSS: m.FileRSS, ShmemRSS: m.ShmemRSS}
	}
	if uid := v.Memory.UID; uid >= 0 {
		d.UID = &uid
	}
	if adj := v.Memory.OOMScoreAdj; v.Memory.HasOOMScoreAdj {
		d.OOMScoreAdj = &adj
	}
	if r := v.Report; r != nil {
		d.ReportSeq = r.Seq
		if r.TriggerProcess != "" || r.TriggerPID != 0 {
			d.Trigger = &store.Process{PID: r.TriggerPID, Name: r.TriggerProcess}
		}
		d.LimitCgroup = r.LimitCgroup
		d.Usage, d.Limit, d.HasUsage = r.Usage, r.Limit, r.HasUsage
		if r.Global {
			d.Scope = store.ScopeNode
		}
	}
	return d
}

// scope says whose limit the kill was for: the container's (dir, its
// cgroup) or one inside it, the kubelet's pod cgroup above it, another
// cgroup above it, or none (the node's memory). "" if not known.
func scope(d store.KillDetails, dir string) string {
	switch {
	case d.Scope == store.ScopeNode:
		return store.ScopeNode
	case d.LimitCgroup == "":
		return ""
	case dir != "" && (d.LimitCgroup == dir || strings.HasPrefix(d.LimitCgroup, dir+"/")):
		return store.ScopeContainer
	case dir != "" && strings.HasPrefix(dir, d.LimitCgroup+"/"):
		parts := strings.Split(d.LimitCgroup, "/")
		if podUID(parts) != "" {
			return store.ScopePod
		}
		return store.ScopeAncestor
	}
	return ""
}

// procInit reports whether the live process pid is pid 1 of its pid
// namespace (a container's main process), from the NSpid line of
// /proc/PID/status; nil if that cannot be told: the process is gone, or it
// shares the host's pid namespace (one pid, not 1).
func (s *Source) procInit(pid int) *bool {
	b, err := os.ReadFile(filepath.Join(s.cfg.ProcFS, strconv.Itoa(pid), "status"))
	if err != nil {
		return nil
	}
	return parseNSpid(b)
}

// readAllSoon has every cgroup's counters read now, off the log reader's
// path: a burst of kills makes one read, or two, not one per kill.
func (s *Source) readAllSoon() {
	select {
	case s.readAll <- struct{}{}:
	default: // a read is asked for already, and will start after this kill
	}
}

// storeCgroup is how the store is told of a container's cgroup.
func storeCgroup(c ContainerCgroup) store.Cgroup {
	if c.Owner != nil {
		return store.Cgroup{Meta: *c.Owner, Path: c.Dir, ByPid: true}
	}
	return store.Cgroup{Meta: store.Meta{Runtime: c.Runtime, ID: c.ID, PodUID: c.PodUID}, Path: c.Dir, Guessed: !c.Sure}
}
