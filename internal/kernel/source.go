// Package kernel reads the kernel's first-hand account of OOM kills: the OOM
// counters of every container's memory cgroup (cgroup v1 and v2) and the
// victims the kernel log names. It decides nothing about counts: it sends
// what it reads to the store as typed events, and the store reconciles them
// with the runtimes' reports (docs/design.md).
package kernel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	Kmsg   string // /dev/kmsg; empty: it is not read
	// Log says how the kernel log is read (Log*): LogAuto tries /dev/kmsg,
	// then syslog(2).
	Log string
	// CgroupParents are cgroups, besides those runtimes use by default,
	// under which containers' cgroups are made: Docker's --cgroup-parent,
	// the kubelet's --cgroup-root (see ParseContainerPath).
	CgroupParents []string
	// MaxWatches is the most inotify watches the reader holds on the
	// hierarchy (0: no bound): they count against fs.inotify.max_user_watches,
	// shared with the kubelet and systemd.
	MaxWatches int
}

// DefaultMaxWatches is Config.MaxWatches by default: the whole of
// fs.inotify.max_user_watches on kernels before 5.11, and a watch a
// directory above the containers' cgroups, and on cgroup v2 one a
// container, for some 8,000 containers.
const DefaultMaxWatches = 8192

// How the kernel log is read: Config.Log, and what Source.LogReader says
// is in use.
const (
	LogAuto   = "auto"   // /dev/kmsg where it can be opened, else syslog(2), else none
	LogKmsg   = "kmsg"   // the device /dev/kmsg (Config.Kmsg)
	LogSyslog = "syslog" // syslog(2): CAP_SYSLOG, no device
	LogNone   = "none"   // not read: kills are counted, their victims not named
)

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

	// logReader is how the kernel log is read (Log*, never LogAuto), and
	// logWhy why, in words for the log and the landing page.
	logReader, logWhy string
	// kick asks the syslog(2) reader to read the ring now: a counter rose.
	kick chan struct{}
	// syslog is the syslog(2) reader of the session before, to go on from.
	syslog *syslogLog
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
		kick:    make(chan struct{}, 1),
	}
	s.cg = newCgroups(cfg, st, s.reports, log.With("kernel", store.CgroupSource))
	s.cg.onRise = s.kickLog
	st.AddSource(store.CgroupSource)
	s.logReader, s.logWhy = chooseLog(cfg)
	if s.logReader != LogNone {
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
		s.serveReadAll(ctx)
	}()
	if s.logReader != LogNone {
		s.log.Info("reading the kernel log", "reader", s.logReader, "why", s.logWhy)
		wg.Add(1)
		go func() {
			defer wg.Done()
			source.Run(ctx, store.KmsgSource, s.store, s.log, source.DefaultBackoff, s.kmsgSession)
		}()
	} else {
		s.log.Warn("not reading the kernel log: OOM kills are counted, their victims not named and their records not described", "why", s.logWhy)
	}
	source.Run(ctx, store.CgroupSource, s.store, s.cg.log, source.DefaultBackoff, func(ctx context.Context, up func()) error {
		defer s.walkDone()
		return s.cg.session(ctx, func() { up(); s.walkDone() })
	})
	s.walkDone()
	wg.Wait()
}

// serveReadAll reads every cgroup's counters each time readAllSoon asks,
// until ctx ends.
func (s *Source) serveReadAll(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.readAll:
			s.cg.readAll(time.Second)
		}
	}
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

// LogReader says how the kernel log is read (Log*) and why.
func (s *Source) LogReader() (reader, why string) { return s.logReader, s.logWhy }

// kickLog asks the syslog(2) reader to read the ring now.
func (s *Source) kickLog() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// kmsgSession follows the kernel log until it fails or ctx ends.
func (s *Source) kmsgSession(ctx context.Context, up func()) error {
	var r recordReader
	switch s.logReader {
	case LogSyslog:
		l, err := openSyslog(s.kick, s.syslog)
		if err != nil {
			return err
		}
		s.syslog, r = l, l
	default:
		f, err := openKmsg(s.cfg.Kmsg)
		if err != nil {
			return fmt.Errorf("%w (%s)", err, kmsgHint)
		}
		r = f
	}
	defer r.close()
	return s.follow(ctx, r, up)
}

// kmsgHint says what it takes to open /dev/kmsg.
const kmsgHint = "opening /dev/kmsg takes CAP_SYSLOG where kernel.dmesg_restrict is 1, and in a container the device: " +
	"--kernel.log=syslog reads the log through syslog(2) with CAP_SYSLOG alone; --kernel.log=none counts kills without it"

// chooseLog decides how the kernel log is read: as cfg says, or with
// LogAuto /dev/kmsg where it opens, else syslog(2) where it may be read,
// else not at all. It returns the reader and why, in words.
func chooseLog(cfg Config) (reader, why string) {
	mode := cfg.Log
	if mode == "" {
		mode = LogAuto
	}
	if cfg.Kmsg == "" && mode == LogAuto {
		return LogNone, "--path.kmsg is empty"
	}
	switch mode {
	case LogNone:
		return LogNone, "--kernel.log=none"
	case LogKmsg:
		return LogKmsg, "--kernel.log=kmsg: " + cfg.Kmsg
	case LogSyslog:
		return LogSyslog, "--kernel.log=syslog"
	}
	f, kerr := openKmsg(cfg.Kmsg)
	if kerr == nil {
		f.close()
		return LogKmsg, cfg.Kmsg + " opens"
	}
	l, serr := newSyslog(func(action int, buf []byte) (int, error) { return unix.Klogctl(action, buf) }, nil, nil)
	if serr == nil {
		_ = l.close()
		return LogSyslog, fmt.Sprintf("%v; syslog(2) may be read", kerr)
	}
	why = fmt.Sprintf("%v; %v", kerr, serr)
	if b, err := os.ReadFile(filepath.Join(cfg.ProcFS, "sys/kernel/dmesg_restrict")); err == nil && strings.TrimSpace(string(b)) == "1" {
		why += "; kernel.dmesg_restrict is 1: reading the kernel log takes CAP_SYSLOG (in a container: --cap-add SYSLOG, the Helm chart's default), and a seccomp profile that allows syslog(2) with it (the runtimes' default profiles do)"
	} else {
		why += "; in a container, give it CAP_SYSLOG and keep the runtime's default seccomp profile, or mount the host's /dev/kmsg"
	}
	return LogNone, why
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
	// in the log's order, with the ends of their reports. Up once it has
	// read and applied what the kernel log held when it began: a scrape
	// waits for every source to be up, so a kill after the first scrape is
	// read as one that happened while the exporter ran, never as history
	// (which counts only where the runtime says the container ran).
	type queued struct {
		v     *Victim
		ended uint64 // a report that ended, if v is nil
		at    time.Time
		live  bool
	}
	var (
		backlog []queued
		once    sync.Once
		// buffered: a victim of the buffer was placed, and no counter was
		// read for it (place reads one only for a prompt record).
		buffered bool
	)
	apply := func(q queued, prompt bool) {
		if q.v == nil {
			s.store.Apply(store.ReportEnd{Seq: q.ended})
			return
		}
		buffered = buffered || !prompt
		s.victim(*q.v, q.at, q.live, prompt)
	}
	// flush applies the queued victims, before any later one: the store
	// takes a record only if it is newer than the last it took.
	flush := func() {
		for _, q := range backlog {
			apply(q, false)
		}
		backlog = nil
	}
	// emit applies what a record told, or queues it while the cgroup
	// walk is not done.
	emit := func(q queued) {
		if !caughtUp && !s.walkedYet() {
			backlog = append(backlog, q)
			return
		}
		flush()
		apply(q, caughtUp)
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
			if buffered && !s.cg.v2() {
				// A kill between the walk's reading and now is in the
				// buffer, but its victim alone cannot raise the count (the
				// counter also counts kills the buffer may not hold), and
				// v1 notifies none: read every counter again, before a
				// runtime removes a cgroup (v2 notifies each change).
				s.readAllSoon()
			}
			up()
		})
	}
	for {
		quiet := time.Duration(0)
		if oom.open != 0 {
			quiet = reportQuiet
		}
		n, waited, err := r.next(buf, caughtUpNow, quiet)
		switch {
		case errors.Is(err, errQuiet):
			// Nothing more came: the report under way is complete.
			if ended := oom.idle(); ended != 0 {
				emit(queued{ended: ended})
			}
			continue
		case errors.Is(err, unix.EPIPE):
			// The kernel overwrote records before they were read. The next
			// record's sequence number says how many; counters stay exact.
			s.store.CountEvent(store.KmsgSource, true)
			s.log.Warn("kernel log records were overwritten before they could be read; victims' names may be missing", "err", err)
			if ended := oom.reset(); ended != 0 {
				emit(queued{ended: ended})
			}
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
		v, ended, lost := oom.add(rec)
		if lost > 0 {
			s.log.Warn("kernel log records lost", "records", lost, "before_seq", rec.Seq)
		}
		if ended != 0 {
			emit(queued{ended: ended})
		}
		if v != nil {
			emit(queued{v: v, at: clk.wall(v.Time), live: s.everLive})
		}
	}
}

// reportQuiet is how long the log must stay silent after a report's last
// record for the report to be complete: the kernel writes a whole report,
// a group kill's members included, in one burst under its OOM lock, but
// the reader may read faster than it writes.
const reportQuiet = 250 * time.Millisecond

// victim places one victim (place) and sends it to the store. prompt says
// the record was read right after it was written: the victim's cgroup and
// process are still there to look at.
func (s *Source) victim(v Victim, at time.Time, live, prompt bool) {
	s.store.Apply(s.place(v, at, live, prompt))
}

// details is what the kernel log said of the kill of v, for the store.
func details(v Victim) store.KillDetails {
	d := store.KillDetails{PID: v.PID, Group: v.Group, ReportSeq: v.ReportSeq}
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
		if r.TriggerProcess != "" || r.TriggerPID != 0 {
			d.Trigger = &store.Process{PID: r.TriggerPID, Name: r.TriggerProcess}
		}
		d.LimitCgroup = r.LimitCgroup
		d.Usage, d.Limit, d.HasUsage = r.Usage, r.Limit, r.HasUsage
		if b := r.Breakdown; b != nil {
			d.Held = &store.Held{Anon: b.Anon, File: b.File, Shmem: b.Shmem, Kernel: b.Kernel, Sock: b.Sock, PageTables: b.PageTables,
				Slab: b.Slab, FileMapped: b.FileMapped, FileDirty: b.FileDirty, Swap: b.Swap, KernelKnown: b.V2}
		}
		d.Tasks, d.TaskCount = largestTasks(r.Tasks), r.DumpTasks
		if r.Global {
			d.Scope = store.ScopeNode
		}
	}
	return d
}

// scope says whose limit the kill was for: the container's (dir, its
// cgroup) or one inside it, the kubelet's pod cgroup above it, another
// cgroup above it, or none (the node's memory); for a victim in no
// container (dir ""), a cgroup's or none. "" if not known.
func scope(d store.KillDetails, dir string) string {
	switch {
	case d.Scope == store.ScopeNode:
		return store.ScopeNode
	case d.LimitCgroup == "":
		return ""
	case dir == "":
		return store.ScopeCgroup // a victim in no container, under a cgroup's limit
	case d.LimitCgroup == dir || strings.HasPrefix(d.LimitCgroup, dir+"/"):
		return store.ScopeContainer
	case strings.HasPrefix(dir, d.LimitCgroup+"/"):
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
	b, err := readFile(filepath.Join(s.cfg.ProcFS, strconv.Itoa(pid), "status"))
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

// largestTasks is the store's copy of the MaxTasks largest tasks of a dump
// by RSS, in bytes.
func largestTasks(tasks []Task) []store.Task {
	if len(tasks) == 0 {
		return nil
	}
	sorted := slices.Clone(tasks)
	slices.SortStableFunc(sorted, func(a, b Task) int { return cmp.Compare(b.RSS, a.RSS) })
	page := uint64(os.Getpagesize())
	out := make([]store.Task, 0, min(len(sorted), store.MaxTasks))
	for _, t := range sorted[:min(len(sorted), store.MaxTasks)] {
		out = append(out, store.Task{PID: t.PID, UID: t.UID, Name: t.Name, RSS: t.RSS * page, Anon: t.Anon * page, File: t.File * page,
			Shmem: t.Shmem * page, PartsKnown: t.HasParts, Swap: t.Swap * page, OOMScoreAdj: t.OOMScoreAdj})
	}
	return out
}
