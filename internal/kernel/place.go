package kernel

import (
	"strings"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// Where a victim of the kernel log belongs: the one place that decides it.
// The store then counts it (store.OOMVictim); docs/design.md ("Where a
// victim belongs") has the rules.

// place decides where the victim v belongs: a container's cgroup (and the
// instance of it, where the reader looks at once), a cgroup that is no
// container's (the host), or nowhere it can tell. Only the kernel's own
// word places a victim: the cgroup its report printed for it, its
// /proc/PID/cgroup, the task dump of the group kill it is a member of, a
// rise of a counter no victim has explained, or its pid against the main
// pid a runtime gave. A cgroup only guessed (a member of a
// group kill, a child sacrificed for its parent) that none of these
// confirms is no place: the victim is then not placed, never counted in
// another container, and the report it seemed to belong to is not its.
// prompt says the record was read right after it was written: the victim
// and its cgroup are still there to look at.
func (s *Source) place(v Victim, at time.Time, live, prompt bool) store.OOMVictim {
	out := store.OOMVictim{Process: v.Process, At: at, Seq: v.Seq, Live: live}
	path := ""
	if v.CgroupPath != "" && !v.Guessed {
		path = v.CgroupPath // the kernel printed it for this victim
	}
	if prompt {
		// Whether it was pid 1 of its pid namespace, while it dies.
		out.NSInit = s.procInit(v.PID)
		if path == "" {
			// A process that has exited shows the root cgroup: that says
			// nothing of where it was killed.
			if p, err := procCgroup(s.cfg.ProcFS, v.PID); err == nil && p != "/" {
				path = p
			}
		}
	}
	if v.Guessed {
		switch {
		case path != "" && !within(path, v.CgroupPath):
			// /proc puts it elsewhere: the victim of another kill, printed
			// alone while its report was rate-limited.
			v = v.alone()
		case path == "" && v.Member && v.Report != nil && v.Report.LimitCgroup != "" && within(v.Group, v.Report.LimitCgroup) && v.Report.has(v.PID):
			// The report's dump lists every task of the cgroup whose limit
			// was hit, the group's among them, and the group kill's loop
			// kills right after its "Tasks in" line.
			path = v.CgroupPath
		case path == "" && s.cg.room(v.CgroupPath):
			path = v.CgroupPath // a counter counts a kill no victim named yet
		case path == "":
			v = v.alone()
		}
	}
	out.Details = details(v)
	if path == "" {
		// Its report was rate-limited (ten in five seconds) or lost, and
		// the process is gone. Its cgroup's counter counts it, but cgroup
		// v1 notifies no kill: read every counter now, before a runtime
		// removes the cgroup of a container whose main process this was.
		if prompt && !s.cg.v2() {
			s.readAllSoon()
		}
		if m, ok := s.store.MainProcess(v.PID, at); ok {
			// The main process of a container, whose death is the container's.
			out.Cgroup = store.Cgroup{Meta: m, ByPid: true}
			return out
		}
		s.log.Debug("OOM kill of a process whose cgroup is not known", "pid", v.PID, "process", v.Process, "seq", v.Seq)
		return out
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
		out.Host, out.HostCgroup = true, path
		out.Details.Scope = scope(out.Details, "")
		return out
	}
	c = s.cg.known(c)
	out.Details.Scope = scope(out.Details, c.Dir)
	out.Cgroup = storeCgroup(c)
	if prompt {
		// The counter first: the store then knows the instance the victim
		// was in, whose counter also counts it.
		if out.Instance = s.cg.ensure(c); out.Instance != 0 {
			s.cg.read(c.Dir)
		}
	}
	if live {
		s.cg.named(c.Dir)
	}
	s.log.Debug("OOM victim", "process", v.Process, "pid", v.PID, "container", c.key(), "cgroup", path, "live", live)
	return out
}

// within reports whether the cgroup path is dir or one below it.
func within(path, dir string) bool {
	return path == dir || dir == "/" || len(path) > len(dir) && path[len(dir)] == '/' && strings.HasPrefix(path, dir)
}

// alone is the victim as the kill of one process that its report was
// rate-limited away for: not the member of a group kill it seemed, nor
// in the cgroup guessed for it, and none of that report's.
func (v Victim) alone() Victim {
	v.CgroupPath, v.Guessed, v.Member, v.Group, v.Report = "", false, false, "", nil
	v.ReportSeq = v.Seq
	return v
}
