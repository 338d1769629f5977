package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// global is what the kernel log says of a kill when the node ran out of
// memory.
var global = KillDetails{Scope: ScopeNode}

func dockerMeta() Meta { return Meta{Runtime: "docker", ID: "abc"} }

func count(ino uint64, kills uint64, ms int) KernelOOMCount {
	return KernelOOMCount{Cgroup: cgroupOf(dockerMeta()), Instance: ino, Kills: kills, At: at(ms), Born: at(0), BornExact: false}
}

func born(ino uint64, bornMs int, kills uint64, ms int) KernelOOMCount {
	return KernelOOMCount{Cgroup: cgroupOf(dockerMeta()), Instance: ino, Kills: kills, At: at(ms), Born: at(bornMs), BornExact: true}
}

func victim(ino uint64, process string, ms int, seq uint64) OOMVictim {
	return OOMVictim{Cgroup: cgroupOf(dockerMeta()), Instance: ino, Process: process, At: at(ms), Seq: seq, Live: true}
}

func ooms(t *testing.T, s *Store) uint64 {
	t.Helper()
	return get(t, s, key).OOMs
}

// Docker's "oom" event fires for every OOM of the cgroup, also those the
// kernel resolves without a new kill: 36 events for 4 kills were measured.
// Once the kernel counts for the cgroup, its counter decides.
func TestKernelCounterIsTheTruthOverRuntimeEvents(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(100), Running: true}})
	s.Apply(born(7, 90, 0, 95))
	for i := 1; i <= 36; i++ {
		s.Apply(OOMKilled{Key: key, At: at(1000 + i)})
	}
	s.Apply(count(7, 4, 1100))
	if n := ooms(t, s); n != 4 {
		t.Fatalf("ooms %d, want the kernel's 4", n)
	}
}

// Reports counted before the kernel's counter was read stay counted: a
// counter never goes down.
func TestCountNeverGoesDownWhenTheKernelComesLate(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(100), Running: true}})
	for i := 1; i <= 3; i++ {
		s.Apply(OOMKilled{Key: key, At: at(1000 * i)})
	}
	s.Apply(count(7, 1, 5000)) // the cgroup existed before the kernel reader looked
	if n := ooms(t, s); n != 3 {
		t.Fatalf("ooms %d, want 3 (nothing taken back)", n)
	}
	s.Apply(count(7, 5, 6000))
	if n := ooms(t, s); n != 5 {
		t.Fatalf("ooms %d, want 5", n)
	}
}

// After an exporter restart, a running container's count is the kernel's,
// whichever reports first; Docker's OOMKilled flag is about the same kills.
func TestExporterRestartTakesTheKernelsCount(t *testing.T) {
	for _, kernelFirst := range []bool{true, false} {
		s := New(time.Minute)
		obs := Observed{Meta: meta(), State: State{StartedAt: at(100), Running: true, OOMKilled: true}}
		if kernelFirst {
			s.Apply(count(7, 5, 5000))
			s.Apply(obs)
		} else {
			s.Apply(obs)
			s.Apply(count(7, 5, 5000))
		}
		if n := ooms(t, s); n != 5 {
			t.Fatalf("kernel first %v: ooms %d, want 5", kernelFirst, n)
		}
	}
}

// Each start makes a new cgroup whose counter starts at 0: the counts of
// the instances add up, and a kill before the first instance counts apart.
func TestInstancesAddUp(t *testing.T) {
	s := New(time.Minute)
	// Exited after an OOM kill before the exporter started.
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), FinishedAt: at(500), ExitCode: 137, OOMKilled: true}})
	if n := ooms(t, s); n != 1 {
		t.Fatalf("ooms %d, want 1", n)
	}
	s.Apply(born(10, 60_000, 0, 60_001))
	s.Apply(Started{Key: key, At: at(60_010)})
	s.Apply(count(10, 2, 61_000))
	s.Apply(OOMKilled{Key: key, At: at(60_990)})
	s.Apply(OOMKilled{Key: key, At: at(60_995)})
	s.Apply(CgroupGone{Cgroup: cgroupOf(dockerMeta()), Instance: 10, At: at(62_000)})
	s.Apply(born(11, 62_100, 0, 62_101))
	s.Apply(count(11, 3, 63_000))
	if n := ooms(t, s); n != 6 {
		t.Fatalf("ooms %d, want 1 + 2 + 3", n)
	}
	// A late read of the first instance changes nothing more.
	s.Apply(count(10, 2, 64_000))
	if n := ooms(t, s); n != 6 {
		t.Fatalf("ooms %d after a late read, want 6", n)
	}
}

// The reader handles inotify's events in turn: it may say it saw a cgroup
// made after the runtime reported a kill in it. The kill counts once.
func TestReportJustBeforeTheCgroupWasSeenCountsOnce(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	s.Apply(OOMKilled{Key: key, At: at(100)}) // the main process, right at its start
	s.Apply(born(10, 300, 1, 301))            // the reader saw the mkdir late
	s.Apply(victim(10, "dd", 99, 1))          // and the kernel log's record
	if c := get(t, s, key); c.OOMs != 1 || c.ProcessKills["dd"] != 1 {
		t.Fatalf("got %+v, want one kill of dd", c)
	}
}

func TestVictimsAndCounterOfOneKillCountOnce(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(100), Running: true}})
	s.Apply(born(7, 90, 0, 95))
	s.Apply(victim(7, "worker", 1000, 50))
	s.Apply(count(7, 1, 1001))
	s.Apply(victim(7, "worker", 2000, 51))
	s.Apply(victim(7, "ruby", 2001, 52))
	s.Apply(count(7, 3, 2002))
	c := get(t, s, key)
	if c.OOMs != 3 || c.ProcessKills["worker"] != 2 || c.ProcessKills["ruby"] != 1 {
		t.Fatalf("ooms %d by process %v", c.OOMs, c.ProcessKills)
	}
	if !c.LastOOM.Equal(at(2001)) {
		t.Fatalf("last OOM %v, want the last victim's time %v", c.LastOOM, at(2001))
	}
	// The same records again (the log reread from its start) count once.
	s.Apply(victim(7, "worker", 2000, 51))
	if c := get(t, s, key); c.ProcessKills["worker"] != 2 || c.OOMs != 3 {
		t.Fatalf("replayed record counted: %+v", c)
	}
}

// With the counter unread (the cgroup gone first, on cgroup v1), the kernel
// log's victims still count, in the instance of their time.
func TestVictimsCountWhereTheCounterMissedThem(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(100), Running: true}})
	s.Apply(born(7, 90, 0, 95))
	s.Apply(CgroupGone{Cgroup: cgroupOf(dockerMeta()), Instance: 7, At: at(1005)})
	s.Apply(victim(0, "app", 1000, 1))
	s.Apply(born(8, 1200, 0, 1201))
	s.Apply(victim(0, "app", 1300, 2))
	if c := get(t, s, key); c.OOMs != 2 || c.ProcessKills["app"] != 2 {
		t.Fatalf("got %+v, want 2 kills of app", c)
	}
}

// Records in the kernel's buffer from before the exporter started are
// history. A container restarted by its policy runs in a new cgroup each
// time, whose counter starts at 0: the kills of its earlier runs are the
// buffer's to tell, as long as it holds them. They count where the runtime
// says the container ran: since it was made, in the run going on (inside
// the live cgroup, whose counter counts them too) or before it.
func TestHistoryCountsEveryRunSinceTheContainerWasMade(t *testing.T) {
	s := New(time.Minute)
	// Exited, killed at each of its three runs (restart policy), as Docker shows it.
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(900), FinishedAt: at(1000), ExitCode: 137, OOMKilled: true, Restarts: 2}})
	for i, ms := range []int{300, 600, 999} {
		ev := victim(0, "dd", ms, uint64(i+1))
		ev.Live = false
		s.Apply(ev)
	}
	if c := get(t, s, key); c.OOMs != 3 || c.ProcessKills["dd"] != 3 {
		t.Fatalf("kills of the earlier runs not counted: %+v", c)
	}
	// Made after a kill the buffer holds in the same cgroup path (the id
	// of another, older container would differ; a forged path may not).
	s1 := New(time.Minute)
	s1.Apply(Observed{Meta: meta(), State: State{CreatedAt: at(500), StartedAt: at(900), FinishedAt: at(1000), ExitCode: 137, Restarts: 2}})
	for i, ms := range []int{300, 600, 999} {
		ev := victim(0, "dd", ms, uint64(i+1))
		ev.Live = false
		s1.Apply(ev)
	}
	if c := get(t, s1, key); c.OOMs != 2 {
		t.Fatalf("a kill from before the container was made counted: %+v", c)
	}

	// A running container: history after its cgroup's birth counts.
	s2 := New(time.Minute)
	s2.Apply(count(7, 2, 5000)) // born at(0) (the directory's time), not seen
	for i, ms := range []int{-500, 100, 200} {
		ev := victim(0, "worker", ms, uint64(i+1))
		ev.Live = false
		s2.Apply(ev)
	}
	s2.Apply(Observed{Meta: meta(), State: State{StartedAt: at(10), Running: true, OOMKilled: true}})
	if c := get(t, s2, key); c.OOMs != 2 || c.ProcessKills["worker"] != 2 {
		t.Fatalf("got %+v, want 2 kills of worker", c)
	}
}

func TestGroupKills(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(100), Running: true}})
	if get(t, s, key).HasGroupKills {
		t.Fatal("group kills known before any v2 reading")
	}
	ev := born(7, 90, 3, 1000)
	ev.GroupKills, ev.HasGroup = 1, true
	s.Apply(ev)
	c := get(t, s, key)
	if !c.HasGroupKills || c.GroupKills != 1 || c.OOMs != 3 {
		t.Fatalf("got %+v", c)
	}
}

func TestContainersOnlyTheKernelKnows(t *testing.T) {
	s := New(time.Minute)
	guess := Cgroup{Meta: Meta{Runtime: "containerd", ID: "abc"}, Path: "/kubepods/pod1/abc", Guessed: true}
	ev := KernelOOMCount{Cgroup: guess, Instance: 7, Kills: 2, At: at(100), Born: at(0)}
	s.Apply(ev)
	snap := s.Snapshot()
	if len(snap.Containers) != 1 || !snap.Containers[0].KernelOnly || snap.Containers[0].Meta.Key() != "containerd://abc" || snap.Containers[0].OOMs != 2 {
		t.Fatalf("no runtime at all: %+v", snap.Containers)
	}
	if src := snap.Sources; len(src) != 0 {
		t.Fatalf("sources %+v", src)
	}

	// A configured runtime source that is still connecting, or up, holds it back.
	s.AddSource("containerd")
	if n := len(s.Snapshot().Containers); n != 0 {
		t.Fatalf("exported while its runtime connects: %d", n)
	}
	s.SetUp("containerd", false, errors.New("no socket"))
	if n := len(s.Snapshot().Containers); n != 1 {
		t.Fatalf("not exported while its runtime is down: %d", n)
	}

	// The runtime that knows the id takes it over, with its counts, under its own key.
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(50), Running: true}})
	snap = s.Snapshot()
	if len(snap.Containers) != 1 || snap.Containers[0].Meta.Key() != key || snap.Containers[0].OOMs != 2 || snap.Containers[0].KernelOnly {
		t.Fatalf("after the runtime reported it: %+v", snap.Containers)
	}
	s.Apply(KernelOOMCount{Cgroup: guess, Instance: 7, Kills: 3, At: at(200), Born: at(0)})
	if n := ooms(t, s); n != 3 {
		t.Fatalf("later kernel readings under the guessed runtime: ooms %d, want 3", n)
	}
}

func TestKernelOnlyContainerGoesWithItsCgroup(t *testing.T) {
	s := New(time.Minute)
	m := Meta{Runtime: "cri-o", ID: "abc"}
	s.Apply(KernelOOMCount{Cgroup: cgroupOf(m), Instance: 7, At: at(0)})
	s.Apply(CgroupGone{Cgroup: cgroupOf(m), Instance: 7, At: at(1000)})
	s.Sweep(at(59_000))
	if n := len(s.Snapshot().Containers); n != 1 {
		t.Fatalf("dropped before its retention: %d", n)
	}
	s.Sweep(at(61_000))
	if n := len(s.Snapshot().Containers); n != 0 {
		t.Fatalf("kept after its retention: %d", n)
	}
}

func TestHostKills(t *testing.T) {
	s := New(time.Minute)
	s.Apply(OOMVictim{Host: true, Process: "cron", At: at(0), Seq: 9, Details: global}) // history: not counted
	s.Apply(OOMVictim{Host: true, Process: "java", At: at(0), Seq: 10, Live: true, Details: global})
	s.Apply(OOMVictim{Host: true, Process: "java", At: at(0), Seq: 10, Live: true, Details: global})
	s.Apply(OOMVictim{Host: true, Process: "sshd", At: at(1), Seq: 11, Live: true, Details: global})
	snap := s.Snapshot()
	if snap.HostKills["java"] != 1 || snap.HostKills["sshd"] != 1 || len(snap.HostKills) != 2 || len(snap.Containers) != 0 {
		t.Fatalf("host kills %v containers %d", snap.HostKills, len(snap.Containers))
	}
}

// Three kills in no known container are told apart: the node ran out of
// memory; a cgroup that is no container's hit its own limit (a systemd
// service's MemoryMax); the victim's cgroup is not known. Only the first
// is the host's, only the second the cgroup's, and the third neither: its
// container's counter, if any, counts it.
func TestKillsInNoContainerAreToldApart(t *testing.T) {
	s := New(time.Minute)
	service := "/system.slice/backup.service"
	s.Apply(OOMVictim{Host: true, HostCgroup: "/user.slice", Process: "chrome", At: at(0), Seq: 10, Live: true,
		Details: KillDetails{Scope: ScopeNode, ReportSeq: 10}})
	s.Apply(OOMVictim{Host: true, HostCgroup: service, Process: "restic", At: at(1), Seq: 11, Live: true,
		Details: KillDetails{Scope: ScopeCgroup, LimitCgroup: service, Usage: 1 << 30, Limit: 1 << 30, HasUsage: true, ReportSeq: 11}})
	s.Apply(OOMVictim{Process: "stray", At: at(2), Seq: 12, Live: true, Details: KillDetails{ReportSeq: 12}})
	snap := s.Snapshot()
	if snap.HostKills["chrome"] != 1 || len(snap.HostKills) != 1 {
		t.Errorf("host kills %v, want chrome's alone", snap.HostKills)
	}
	if snap.CgroupKills[service] != 1 || len(snap.CgroupKills) != 1 {
		t.Errorf("cgroup kills %v, want %s's alone", snap.CgroupKills, service)
	}
	places := map[string]string{}
	for _, k := range s.Kills(0, nil) {
		places[k.Process] = k.Place() + " " + k.Cgroup
	}
	want := map[string]string{"chrome": "host /user.slice", "restic": "cgroup " + service, "stray": "unplaced "}
	if !maps.Equal(places, want) {
		t.Errorf("places %q, want %q", places, want)
	}
}

func TestOldInstancesAreFoldedNotLost(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	for i := range 3 * maxInstances {
		ino := uint64(100 + i)
		s.Apply(born(ino, 1000*i+1, 0, 1000*i+2))
		s.Apply(count(ino, 1, 1000*i+500))
		s.Apply(CgroupGone{Cgroup: cgroupOf(dockerMeta()), Instance: ino, At: at(1000*i + 900)})
	}
	if n := ooms(t, s); n != 3*maxInstances {
		t.Fatalf("ooms %d, want %d", n, 3*maxInstances)
	}
}

func TestOOMReportHookAndUnwatched(t *testing.T) {
	s := New(time.Minute)
	var got []string
	s.OnOOMReport(func(k string) { got = append(got, k) })
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true, Pid: 42}})
	if u := s.Unwatched(); len(u) != 1 || u[0].Pid != 42 || u[0].Meta.Key() != key {
		t.Fatalf("unwatched %+v", u)
	}
	s.Apply(OOMKilled{Key: key, At: at(100)})
	s.Apply(OOMKilled{Key: key, At: at(100)}) // a replay: no new report
	if len(got) != 1 || got[0] != key {
		t.Fatalf("hook calls %v", got)
	}
	s.Apply(count(7, 1, 200))
	if u := s.Unwatched(); len(u) != 0 {
		t.Fatalf("a watched container is unwatched: %+v", u)
	}
}

// Whatever order and mix of reports arrive, a container's count never goes
// down, and the victims named never exceed it.
func TestCountNeverGoesDown(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := New(time.Minute)
		s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true, OOMKilled: rng.IntN(2) == 0}})
		kills := map[uint64]uint64{}
		ino, ms, seq := uint64(1), 0, uint64(0)
		var last uint64
		var trace []string
		for range 60 {
			ms += rng.IntN(300)
			switch rng.IntN(6) {
			case 0:
				s.Apply(OOMKilled{Key: key, At: at(ms)})
				trace = append(trace, "report")
			case 1:
				kills[ino] += uint64(rng.IntN(3))
				ev := count(ino, kills[ino], ms)
				if rng.IntN(2) == 0 {
					ev = born(ino, ms-rng.IntN(1000), kills[ino], ms)
				}
				s.Apply(ev)
				trace = append(trace, "count")
			case 2:
				seq++
				v := victim(ino*uint64(rng.IntN(2)), "p", ms-rng.IntN(500), seq)
				v.Live = rng.IntN(3) != 0
				s.Apply(v)
				trace = append(trace, "victim")
			case 3:
				s.Apply(CgroupGone{Cgroup: cgroupOf(dockerMeta()), Instance: ino, At: at(ms)})
				ino++
				trace = append(trace, "gone")
			case 4:
				s.Apply(Started{Key: key, At: at(ms)})
				trace = append(trace, "start")
			case 5:
				s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(ms - 50), Running: true, OOMKilled: true}})
				trace = append(trace, "observed")
			}
			c := get(t, s, key)
			if c.OOMs < last {
				t.Fatalf("seed %d: ooms went down from %d to %d after %v", seed, last, c.OOMs, trace)
			}
			var named uint64
			for _, n := range c.ProcessKills {
				named += n
			}
			if named > c.OOMs {
				t.Fatalf("seed %d: %d victims named, ooms %d after %v", seed, named, c.OOMs, trace)
			}
			last = c.OOMs
		}
	}
}

// A reading of a cgroup's counters can reach the store after the cgroup's
// removal: the reader read the file just before the rmdir, the watcher
// reported the rmdir first. The late reading still counts, but it must not
// bring the removed container back to life, or Sweep never drops it.
func TestLateCounterReadDoesNotReviveRemovedContainer(t *testing.T) {
	for _, known := range []bool{true, false} {
		s := New(time.Minute)
		m := Meta{Runtime: "cri-o", ID: "abc"}
		if known {
			s.Apply(KernelOOMCount{Cgroup: cgroupOf(m), Instance: 7, At: at(0)})
		}
		s.Apply(CgroupGone{Cgroup: cgroupOf(m), Instance: 7, At: at(1000)})
		s.Apply(KernelOOMCount{Cgroup: cgroupOf(m), Instance: 7, Kills: 1, At: at(900)}) // read before the rmdir, applied after
		if c, ok := find(s, "cri-o://abc"); known && (!ok || c.OOMs != 1) {
			t.Fatalf("known %v: the late reading is lost: %+v", known, c)
		}
		s.Sweep(at(62_000))
		if _, ok := find(s, "cri-o://abc"); ok {
			t.Fatalf("known %v: kept for ever after its cgroup went", known)
		}
	}
}

// A tenant that renames its processes and is OOM-killed in a loop must not
// add a series at every kill: beyond MaxProcessNames names per container
// (MaxHostProcessNames for the host) kills count under "other", none lost.
func TestVictimNamesAreBounded(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	const kills = 1000
	for i := range kills {
		name := fmt.Sprintf("w%d", i)
		s.Apply(victim(0, name, 10+i, uint64(2*i+1)))
		s.Apply(OOMVictim{Host: true, Process: name, At: at(10 + i), Seq: uint64(2*i + 2), Live: true, Details: global})
	}
	c := get(t, s, key)
	check := func(what string, m map[string]uint64, limit int) {
		t.Helper()
		var sum uint64
		for _, n := range m {
			sum += n
		}
		if len(m) != limit+1 || sum != kills || m[OtherProcesses] != kills-uint64(limit) {
			t.Errorf("%s: %d names, %d kills, %d other; want %d names and other, %d kills", what, len(m), sum, m[OtherProcesses], limit, kills)
		}
	}
	check("container", c.ProcessKills, MaxProcessNames)
	check("host", s.Snapshot().HostKills, MaxHostProcessNames)
	if c.OOMs != kills {
		t.Errorf("ooms %d, want %d", c.OOMs, kills)
	}
}

// cgroupOf is the cgroup the kernel reader finds for a container of m's
// runtime and id, at a path such as that runtime makes.
func cgroupOf(m Meta) Cgroup {
	return Cgroup{Meta: Meta{Runtime: m.Runtime, ID: m.ID}, Path: "/" + m.Runtime + "/" + m.ID}
}

// The kernel log off, cgroup v1: a container's main process is OOM-killed,
// the runtime reports it, and the runtime removes the cgroup before its
// counter could be read after the kill. The instance the runtime's report
// falls in counts the kill it must hold; a report near a restart, which
// could be either run's, is left to the counters.
func TestReportInAnInstanceWhoseCounterWasGone(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true}})
	s.Apply(born(7, 0, 0, 10)) // read once, at 0 kills
	s.Apply(OOMKilled{Key: key, At: at(20_000)})
	s.Apply(CgroupGone{Cgroup: cgroupOf(meta()), Instance: 7, At: at(20_100)})
	if n := ooms(t, s); n != 1 {
		t.Fatalf("ooms %d, want 1: the runtime's report falls in the run whose cgroup went unread", n)
	}
	// The next run, killed too; its report is stamped while its cgroup lives.
	s.Apply(born(8, 21_000, 0, 21_010))
	s.Apply(OOMKilled{Key: key, At: at(40_000)})
	s.Apply(count(8, 1, 40_050)) // and the counter read in time: one kill, not two
	if n := ooms(t, s); n != 2 {
		t.Fatalf("ooms %d, want 2", n)
	}
	// A report right at a restart could be either run's: not taken.
	s.Apply(CgroupGone{Cgroup: cgroupOf(meta()), Instance: 8, At: at(60_000)})
	s.Apply(born(9, 60_500, 0, 60_600))
	s.Apply(OOMKilled{Key: key, At: at(61_000)})
	if n := ooms(t, s); n != 2 {
		t.Fatalf("ooms %d, want 2: a report a moment after a restart is no kill of its own", n)
	}
}

// The exporter was not running when a container's main process was
// OOM-killed: its cgroup is gone, and Docker's OOMKilled flag may not be
// set (dockerd can handle the exit before the OOM event). The kernel log's
// buffer still holds the victim, in the container's cgroup: it counts, once,
// if it falls in the last run the runtime reports, whichever comes first.
func TestHistoryVictimOfAGoneCgroupCountsInTheLastRun(t *testing.T) {
	for _, tc := range []struct {
		name              string
		flag, victimFirst bool
	}{
		{"victim first, no flag", false, true},
		{"listing first, no flag", false, false},
		{"victim first, the flag too", true, true},
		{"listing first, the flag too", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(time.Minute)
			obs := Observed{Meta: meta(), At: at(10_000), State: State{StartedAt: at(1000), FinishedAt: at(5000), ExitCode: 137, OOMKilled: tc.flag}}
			v := OOMVictim{Cgroup: cgroupOf(meta()), Process: "dd", At: at(4900), Seq: 1, Live: false}
			old := OOMVictim{Cgroup: cgroupOf(meta()), Process: "dd", At: at(500), Seq: 2, Live: false} // an earlier run's
			if tc.victimFirst {
				s.Apply(v)
				s.Apply(old)
				s.Apply(obs)
			} else {
				s.Apply(obs)
				s.Apply(v)
				s.Apply(old)
			}
			if c := get(t, s, key); c.OOMs != 1 || c.ProcessKills["dd"] != 1 {
				t.Fatalf("container %+v, want 1 kill of dd", c)
			}
		})
	}
}

// With the systemd driver on cgroup v2, systemd removes a container's scope
// as soon as a group kill has emptied it, often before the reader reads its
// counter: the kernel log's report of the group kill counts it, once per
// report, and never on top of the counter's count of the same kill.
func TestGroupKillsFromTheKernelLog(t *testing.T) {
	groupVictim := func(ino uint64, process string, ms int, seq, report uint64, group string) OOMVictim {
		v := victim(ino, process, ms, seq)
		v.Details.Group, v.Details.ReportSeq = group, report
		return v
	}
	own := cgroupOf(dockerMeta()).Path
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(100), Running: true}})
	s.Apply(born(7, 90, 0, 95))
	// One group kill of 3 processes, one report: the cgroup gone unread.
	s.Apply(groupVictim(7, "dd", 1000, 10, 10, own))
	s.Apply(groupVictim(7, "sleep", 1000, 11, 10, own))
	s.Apply(groupVictim(7, "sh", 1000, 12, 10, own))
	s.Apply(CgroupGone{Cgroup: cgroupOf(dockerMeta()), Instance: 7, At: at(1001)})
	c := get(t, s, key)
	if !c.HasGroupKills || c.GroupKills != 1 || c.OOMs != 3 {
		t.Fatalf("got group kills %d (known %v), OOMs %d; want 1, 3", c.GroupKills, c.HasGroupKills, c.OOMs)
	}
	// The counter of the same kill, read late, adds nothing.
	late := born(7, 90, 3, 1002)
	late.GroupKills, late.HasGroup = 1, true
	s.Apply(late)
	if c := get(t, s, key); c.GroupKills != 1 || c.OOMs != 3 {
		t.Fatalf("the counter of the same kill counted again: group kills %d, OOMs %d", c.GroupKills, c.OOMs)
	}
	// A group kill of a cgroup above the container (the pod's) is not the
	// container's group kill: the kernel counts it above.
	s.Apply(born(8, 2000, 0, 2001))
	s.Apply(groupVictim(8, "dd", 3000, 20, 20, "/kubepods/pod1"))
	if c := get(t, s, key); c.GroupKills != 1 || c.OOMs != 4 {
		t.Fatalf("a pod's group kill counted as the container's: group kills %d, OOMs %d", c.GroupKills, c.OOMs)
	}
}

// A container the runtime says started after the exporter did has no kill
// from before it: the first reading of its cgroup's counter (made under a
// parent the reader did not know, found through its main pid, so its birth
// was not seen) is no history, and its kill gets a record.
func TestFirstReadingAfterTheStartIsNoHistory(t *testing.T) {
	s := New(time.Minute)
	s.started = at(0)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.Apply(Observed{Meta: meta(), At: at(1000), State: State{StartedAt: at(1000), Running: true, Pid: 40}})
	s.Apply(count(7, 1, 3000)) // first read after the kill
	s.AnnounceKills(at(10_000))
	s.AnnounceKills(at(10_001))
	if k := s.Kills(0, nil); len(k) != 1 || len(announced) != 1 {
		t.Fatalf("records %+v, announced %+v: want the kill's", k, announced)
	}
	// One that ran before the exporter: the same reading is history.
	s2 := New(time.Minute)
	s2.started = at(2000)
	s2.Apply(Observed{Meta: meta(), At: at(2500), State: State{StartedAt: at(1000), Running: true, Pid: 40}})
	s2.Apply(count(7, 1, 3000))
	s2.AnnounceKills(at(10_000))
	if k := s2.Kills(0, nil); len(k) != 0 || get(t, s2, key).OOMs != 1 {
		t.Fatalf("history recorded: %+v", k)
	}
}

// A restart-policy container whose main process is killed at each run,
// and an exporter restarted while it runs again: the earlier runs' kills
// come from the buffer, the run going on from its live cgroup. Nothing is
// counted twice, nothing lost.
func TestRestartedExporterCountsEveryRunOfARestartingContainer(t *testing.T) {
	s := New(time.Minute)
	s.started = at(10_000)
	s.Apply(Observed{Meta: meta(), At: at(10_100), State: State{CreatedAt: at(0), StartedAt: at(3000), FinishedAt: at(2900), Running: true, Restarts: 2, Pid: 50}})
	s.Apply(count(9, 1, 10_200)) // the run going on was killed once already (a worker)
	for i, ms := range []int{1000, 2000, 2900, 5000} {
		ev := victim(0, "dd", ms, uint64(i+1))
		ev.Live = false
		s.Apply(ev)
	}
	if c := get(t, s, key); c.OOMs != 4 || c.ProcessKills["dd"] != 4 {
		t.Fatalf("container %+v, want the three earlier runs' kills and this run's one", c)
	}
}

// Docker keeps a run's OOMKilled flag through its restart, to the next
// exit. A restarted exporter that sees the third run of a restart-policy
// container running, with the flag of the second run's kill, and then a
// kill of the third run (its oom event before the cgroup walk): the flag
// is no kill of this run, and the buffer counts the earlier runs. Seen on
// the real dockerd as 5 kills for 4.
func TestDockersStickyFlagOfTheRunBeforeCountsOnce(t *testing.T) {
	s := New(time.Minute)
	s.AddSource(CgroupSource)
	s.started = at(10_000)
	s.Apply(Observed{Meta: meta(), At: at(10_100), State: State{CreatedAt: at(0), StartedAt: at(3000), FinishedAt: at(2900), Running: true, Restarts: 2, Pid: 50, OOMKilled: true}})
	s.Apply(OOMKilled{Key: key, At: at(10_200)})
	s.Apply(count(9, 0, 10_300)) // the walk: read before the kill
	for i, ms := range []int{1000, 2000} {
		ev := victim(0, "dd", ms, uint64(i+1))
		ev.Live = false
		s.Apply(ev)
	}
	s.Apply(count(9, 1, 10_400))
	s.Apply(victim(9, "dd", 10_250, 3))
	if c := get(t, s, key); c.OOMs != 3 {
		t.Fatalf("container %+v, want 3 kills: 2 from the buffer, this run's 1", c)
	}
	s.Apply(Exited{Key: key, At: at(10_500), Code: 137})
	s.Apply(Started{Key: key, At: at(10_800)})
	s.Apply(born(10, 10_790, 0, 10_810))
	s.Apply(count(10, 1, 12_000))
	s.Apply(victim(10, "dd", 11_900, 4))
	if c := get(t, s, key); c.OOMs != 4 {
		t.Fatalf("container %+v, want 4", c)
	}
}

// The exporter restarts while a container that lost workers to the OOM
// killer lives on: its counter's first reading holds those kills, and the
// kernel log's buffer gives their victims again. The kills by scope are
// rebuilt as the kills by process are, once each, in whatever order the
// counter, the runtime's listing and the log's buffer come: they went down
// across an exporter restart (3 before it, none after, on cgroup v2).
func TestHistoryRebuildsTheKillsByScope(t *testing.T) {
	steps := map[string]func(s *Store){
		"listing": func(s *Store) {
			s.Apply(Observed{Meta: meta(), At: at(5000), State: State{StartedAt: at(100), Running: true}})
		},
		"counter": func(s *Store) { s.Apply(count(7, 3, 5000)) },
		"log": func(s *Store) {
			for i, ms := range []int{1000, 1100, 1200} {
				v := victim(7, "dd", ms, uint64(10+i))
				v.Live, v.Details.Scope, v.Details.ReportSeq = false, "container", uint64(10+i)
				s.Apply(v)
			}
		},
	}
	for _, order := range [][]string{
		{"listing", "counter", "log"}, {"listing", "log", "counter"}, {"counter", "listing", "log"},
		{"counter", "log", "listing"}, {"log", "listing", "counter"}, {"log", "counter", "listing"},
	} {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			s := New(time.Minute)
			for _, step := range order {
				steps[step](s)
			}
			c := get(t, s, key)
			if c.OOMs != 3 || c.ProcessKills["dd"] != 3 || c.KillsByScope["container"] != 3 {
				t.Fatalf("ooms %d, by process %v, by scope %v; want 3 each", c.OOMs, c.ProcessKills, c.KillsByScope)
			}
		})
	}
}
