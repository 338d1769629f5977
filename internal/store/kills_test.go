package store

import (
	"testing"
	"time"
)

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

// A kill the counter counts first and the kernel log describes a moment
// later is one record, described, announced once.
func TestKillRecordCounterThenLog(t *testing.T) {
	s := New(time.Minute)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	s.Apply(count(7, 1, 1000)) // the counter, read first
	s.AnnounceKills(at(1500))
	if got := s.Kills(0, nil); len(got) != 0 {
		t.Fatalf("a record before the kernel log had its moment: %+v", got)
	}
	d := KillDetails{PID: 41, Scope: ScopeContainer, LimitCgroup: "/docker/abc", Usage: 32 << 20, Limit: 32 << 20, HasUsage: true,
		Trigger: &Process{PID: 41, Name: "ruby"}, Memory: &VictimMemory{AnonRSS: 30 << 20}, ReportSeq: 4}
	v := victim(7, "ruby", 990, 5)
	v.Details = d
	s.Apply(v)
	s.Apply(ReportEnd{Seq: 4})
	got := s.Kills(0, nil)
	if len(got) != 1 || got[0].From != FromKernelLog || got[0].Process != "ruby" || got[0].Details.Usage != 32<<20 || got[0].Container.Name != "web" ||
		got[0].Details.MainProcess == nil || *got[0].Details.MainProcess {
		t.Fatalf("after the victim: %+v", got)
	}
	s.AnnounceKills(at(3000))
	if len(announced) != 0 {
		t.Fatalf("a worker's kill announced before its outcome was known: %+v", announced)
	}
	s.AnnounceKills(at(1_000_000))
	s.AnnounceKills(at(1_000_001))
	if len(announced) != 1 || announced[0].Process != "ruby" || announced[0].Outcome != OutcomeLivedOn {
		t.Fatalf("announced %+v, want the one described kill, the container living on", announced)
	}
	c := get(t, s, key)
	if c.OOMs != 1 || c.KillsByScope[ScopeContainer] != 1 || !c.HasLastOOMUsage || c.LastOOMLimit != 32<<20 || c.KillsByOutcome[OutcomeLivedOn] != 1 {
		t.Fatalf("container %+v", c)
	}
}

// A kill only a counter counted (the kernel log is off, or its record was
// lost) is recorded with what is known, once the log has had its moment,
// and announced once its outcome is known.
func TestKillRecordOfACounterAlone(t *testing.T) {
	s := New(time.Minute)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	s.Apply(born(7, 0, 0, 10))
	s.Apply(count(7, 2, 1000))
	s.AnnounceKills(at(1500))
	if len(announced) != 0 || len(s.Kills(0, nil)) != 0 {
		t.Fatalf("recorded before the kernel log had its moment: %+v", announced)
	}
	s.AnnounceKills(at(3500))
	if got := s.Kills(0, nil); len(got) != 2 || got[0].From != FromCounter || got[0].Process != "" || got[0].Container.Name != "web" {
		t.Fatalf("records %+v", got)
	}
	s.AnnounceKills(at(6500))
	if len(announced) != 2 || announced[0].Outcome != OutcomeLivedOn {
		t.Fatalf("announced %+v", announced)
	}
	s.AnnounceKills(at(9000))
	if len(announced) != 2 {
		t.Fatalf("announced twice: %+v", announced)
	}
	if c := get(t, s, key); c.KillsByOutcome[OutcomeLivedOn] != 2 {
		t.Fatalf("outcomes %v", c.KillsByOutcome)
	}
}

// Why the container last exited, decided from what is known exactly (the
// cases Kubernetes gets wrong: kubernetes/kubernetes#140718, #104454).
func TestExitReasons(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kmsgUp    bool
		mainKill  bool
		otherKill bool
		code      int
		want      string
	}{
		{"the main process OOM-killed", true, true, false, 137, ExitOOMKilled},
		{"a worker OOM-killed, then a stop's SIGTERM", true, false, true, 143, ExitSignal},
		{"a stop's SIGKILL, no OOM kill", true, false, false, 137, ExitSignal},
		{"a wrapper (tini) exits 137 as its child is OOM-killed", true, false, true, 137, ExitOOMKilled},
		{"its own exit code", true, false, false, 3, ExitExited},
		{"SIGKILL without the kernel log: not known", false, false, false, 137, ""},
		{"SIGTERM without the kernel log", false, false, false, 143, ExitSignal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(time.Minute)
			s.AddSource(KmsgSource)
			s.SetUp(KmsgSource, tc.kmsgUp, nil)
			s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
			s.Apply(born(7, 0, 0, 10))
			if tc.mainKill || tc.otherKill {
				v := victim(7, "dd", 100, 1)
				v.Details = KillDetails{PID: 41, MainProcess: no()}
				if tc.mainKill {
					v.Details = KillDetails{PID: 40, MainProcess: yes()}
				}
				s.Apply(v)
			}
			s.Apply(Exited{Key: key, At: at(200), Code: tc.code})
			if c := get(t, s, key); c.ExitReason != tc.want {
				t.Fatalf("reason %q, want %q", c.ExitReason, tc.want)
			}
		})
	}
}

// An exit by SIGKILL long after an OOM kill in its run (a stop an hour on)
// is not the kill's: only a kill within seconds before the exit is its
// cause (a kill of pid 1 of a nested pid namespace turned a later stop into
// oom_killed).
func TestExitReasonOnlyFromAKillJustBefore(t *testing.T) {
	s := New(time.Minute)
	s.AddSource(KmsgSource)
	s.SetUp(KmsgSource, true, nil)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	inner := victim(7, "init", 150, 1)
	inner.NSInit = yes() // pid 1 of a pid namespace inside the container
	inner.Details = KillDetails{PID: 77, ReportSeq: 1}
	s.Apply(inner)
	if k := s.Kills(0, nil); len(k) != 1 || k[0].Details.MainProcess == nil || *k[0].Details.MainProcess {
		t.Fatalf("pid 1 of an inner namespace taken for the main process: %+v", k)
	}
	s.Apply(Exited{Key: key, At: at(3_600_000), Code: 137})
	if c := get(t, s, key); c.ExitReason != ExitSignal {
		t.Fatalf("reason %q an hour after the kill, want signal", c.ExitReason)
	}
}

// The main process is the pid the runtime gave, in a shared pid namespace
// (where pause is pid 1) too; pid 1 of the namespace only where the runtime
// gave none.
func TestMainProcessIsTheRuntimesPid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pid    int
		nsInit *bool
		victim int
		want   bool
	}{
		{"shared pid namespace: the main process is not pid 1", 40, no(), 40, true},
		{"shared pid namespace: pause is pid 1, a worker is killed", 40, no(), 41, false},
		{"a wrapper's child", 40, no(), 41, false},
		{"no pid from the runtime: the namespace decides", 0, yes(), 41, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(time.Minute)
			s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: tc.pid}})
			s.Apply(born(7, 0, 0, 10))
			v := victim(7, "p", 150, 1)
			v.NSInit = tc.nsInit
			v.Details = KillDetails{PID: tc.victim, ReportSeq: 1}
			s.Apply(v)
			k := s.Kills(0, nil)
			if len(k) != 1 || k[0].Details.MainProcess == nil || *k[0].Details.MainProcess != tc.want {
				t.Fatalf("records %+v, want main process %v", k, tc.want)
			}
			if tc.want && k[0].Outcome != OutcomeEnded {
				t.Fatalf("outcome %q, want ended", k[0].Outcome)
			}
		})
	}
}

// The kernel log's time of a kill and the runtime's time of the exit it
// caused come from two clocks: a main process's kill stamped a little after
// its exit is still that exit's cause.
func TestExitReasonOfAKillStampedJustAfterTheExit(t *testing.T) {
	for _, order := range []string{"exit first", "kill first"} {
		s := New(time.Minute)
		s.AddSource(KmsgSource)
		s.SetUp(KmsgSource, true, nil)
		s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
		s.Apply(born(7, 0, 0, 10))
		v := victim(7, "sh", 230, 1) // 30 ms after the exit
		v.Details = KillDetails{PID: 40, MainProcess: yes()}
		if order == "kill first" {
			s.Apply(v)
		}
		s.Apply(Exited{Key: key, At: at(200), Code: 137})
		if order == "exit first" {
			s.Apply(v)
		}
		if c := get(t, s, key); c.ExitReason != ExitOOMKilled {
			t.Errorf("%s: reason %q, want oom_killed", order, c.ExitReason)
		}
	}
}

// A group kill (memory.oom.group) of the container's cgroup or of one
// above it kills every process in it: its exit is an OOM kill of the main
// process, whatever the reader could tell of each victim.
func TestExitReasonOfAGroupKill(t *testing.T) {
	for _, group := range []string{"/docker/abc", "/docker"} {
		s := New(time.Minute)
		s.AddSource(KmsgSource)
		s.SetUp(KmsgSource, true, nil)
		s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
		s.Apply(born(7, 0, 0, 10))
		for i, pid := range []int{41, 40, 42} {
			v := victim(7, "p", 150, uint64(i+1))
			v.Details = KillDetails{PID: pid, MainProcess: no(), Group: group, ReportSeq: 1} // each told apart wrongly
			s.Apply(v)
		}
		s.Apply(Exited{Key: key, At: at(200), Code: 137})
		if c := get(t, s, key); c.ExitReason != ExitOOMKilled {
			t.Errorf("group %s: reason %q, want oom_killed", group, c.ExitReason)
		}
	}
}

// A victim whose report was rate-limited, whose process was gone when the
// reader looked, and whose pid no runtime gave as a main pid is not placed:
// counted in no container, recorded as such.
func TestUnplacedVictimCountsNowhere(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	if m, ok := s.MainProcess(40, at(100)); !ok || m.Key() != key {
		t.Fatalf("main pid 40: %v %v", m, ok)
	}
	if _, ok := s.MainProcess(99, at(100)); ok {
		t.Fatal("pid 99 is no container's main process")
	}
	s.Apply(OOMVictim{Process: "stranger", At: at(110), Seq: 4, Live: true, Details: KillDetails{PID: 99, ReportSeq: 4}})
	s.Apply(OOMVictim{Cgroup: Cgroup{Meta: meta(), ByPid: true}, Process: "dd", At: at(120), Seq: 5, Live: true, Details: KillDetails{PID: 40, ReportSeq: 5}})
	c := get(t, s, key)
	if c.OOMs != 1 || c.ProcessKills["dd"] != 1 {
		t.Fatalf("container %+v", c)
	}
	kills := s.Kills(0, nil)
	if len(kills) != 2 || !kills[1].Unplaced || kills[1].Process != "stranger" || kills[0].Container.ID != "abc" || kills[0].Details.MainProcess == nil || !*kills[0].Details.MainProcess {
		t.Fatalf("records %+v", kills)
	}
}

// The store keeps the newest records only.
func TestKillRecordsAreBounded(t *testing.T) {
	s := New(time.Minute)
	s.SetKillsKept(3)
	for i := range 10 {
		s.Apply(OOMVictim{Host: true, Process: "p", At: at(i), Seq: uint64(i + 1), Live: true, Details: KillDetails{ReportSeq: uint64(i + 1)}})
	}
	got := s.Kills(0, nil)
	if len(got) != 3 || got[0].Seq != 10 || got[2].Seq != 8 {
		t.Fatalf("kept %+v", got)
	}
	if n := len(s.Kills(2, nil)); n != 2 {
		t.Fatalf("asked for 2, got %d", n)
	}
}

// A restarted exporter reads the kernel log's buffer and the counters of
// cgroups that existed before it: the kills they hold were announced by the
// exporter that ran then, and are not again. A kill after the start is.
func TestKillsFromBeforeTheStartAreNotAnnounced(t *testing.T) {
	s := New(time.Minute)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40, OOMKilled: true}})
	s.Apply(count(7, 41, 10)) // a cgroup that existed before the reader looked, with 41 kills
	h := victim(0, "dd", 8, 1)
	h.Live = false
	s.Apply(h)
	s.AnnounceKills(at(100_000))
	if len(announced) != 0 {
		t.Fatalf("announced %d kills from before the start: %+v", len(announced), announced[0])
	}
	s.Apply(count(7, 42, 20_000))
	s.AnnounceKills(at(100_000))
	if c := get(t, s, key); len(announced) != 1 || c.OOMs != 42 {
		t.Fatalf("announced %d, ooms %d; want the one new kill of 42", len(announced), c.OOMs)
	}
}

// The victim's record comes after the exit's event: the exit's reason is
// still the kill's, and the kill's outcome the exit's.
func TestExitReasonOfAKillDescribedAfterTheExit(t *testing.T) {
	s := New(time.Minute)
	s.AddSource(KmsgSource)
	s.SetUp(KmsgSource, true, nil)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(Exited{Key: key, At: at(200), Code: 137})
	if c := get(t, s, key); c.ExitReason != ExitSignal {
		t.Fatalf("before the victim: %q", c.ExitReason)
	}
	v := victim(0, "dd", 150, 1)
	v.Details = KillDetails{PID: 40, ReportSeq: 1}
	s.Apply(v)
	if c := get(t, s, key); c.ExitReason != ExitOOMKilled {
		t.Fatalf("after the victim: %q", c.ExitReason)
	}
	if k := s.Kills(0, nil); len(k) != 1 || k[0].Outcome != OutcomeEnded || !*k[0].Details.MainProcess {
		t.Fatalf("records %+v", k)
	}
}

// One group kill (memory.oom.group): the kernel logs the chosen victim,
// then every member, the chosen victim again among them. It is one record,
// with each member once, one announcement, and the container ended — never
// a "lived on" record beside a "died" one.
func TestGroupKillIsOneRecord(t *testing.T) {
	s := New(time.Minute)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}}) // tini
	s.Apply(born(7, 0, 0, 10))
	cg := "/docker/abc"
	chosen := victim(7, "ruby", 100, 10)
	chosen.Cgroup.Path = cg
	chosen.Details = KillDetails{PID: 42, ReportSeq: 3, Scope: ScopeContainer}
	s.Apply(chosen)
	if len(announced) != 0 {
		t.Fatalf("announced before its report ended: %+v", announced)
	}
	for i, m := range []struct {
		pid  int
		name string
	}{{42, "ruby"}, {40, "tini"}, {41, "sleep"}} {
		v := victim(7, m.name, 101+i, uint64(12+i))
		v.Cgroup.Path = cg
		v.Details = KillDetails{PID: m.pid, ReportSeq: 3, Group: cg}
		s.Apply(v)
	}
	s.Apply(ReportEnd{Seq: 3})
	s.Apply(Exited{Key: key, At: at(150), Code: 137})
	s.AnnounceKills(at(60_000))
	k := s.Kills(0, nil)
	if len(k) != 1 || len(k[0].Members) != 3 || k[0].Members[0].PID != 42 || k[0].Members[1].PID != 40 || k[0].Outcome != OutcomeEnded || k[0].Details.Group != cg {
		t.Fatalf("records %+v", k)
	}
	if len(announced) != 1 || announced[0].Outcome != OutcomeEnded || len(announced[0].Members) != 3 {
		t.Fatalf("announced %+v", announced)
	}
	c := get(t, s, key)
	if c.OOMs != 4 || c.KillsByOutcome[OutcomeEnded] != 4 || c.KillsByScope[ScopeContainer] != 1 || c.ExitReason != ExitOOMKilled {
		t.Fatalf("container %+v", c)
	}
}

// A worker killed under a wrapper (tini, dumb-init, a shell), which exits by
// SIGKILL (137) as its child dies: the kill ended the container, as the
// runtime says (OOMKilled), though the victim was not its main process.
func TestWrappersChildKillEndsTheContainer(t *testing.T) {
	s := New(time.Minute)
	s.AddSource(KmsgSource)
	s.SetUp(KmsgSource, true, nil)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	v := victim(7, "java", 1000, 1)
	v.Details = KillDetails{PID: 41, ReportSeq: 1}
	s.Apply(v)
	s.Apply(ReportEnd{Seq: 1})
	s.Apply(Exited{Key: key, At: at(1020), Code: 137})
	k := s.Kills(0, nil)
	if len(k) != 1 || k[0].Outcome != OutcomeEnded || *k[0].Details.MainProcess {
		t.Fatalf("records %+v", k)
	}
	if c := get(t, s, key); c.ExitReason != ExitOOMKilled || c.KillsByOutcome[OutcomeEnded] != 1 {
		t.Fatalf("container %+v", c)
	}
}

// A kill read before the runtime told whose container it is (Docker
// inspects a container at its start; a crash loop is killed before):
// held until the labels come, then announced with them, and the record
// names the pod.
func TestKillBeforeTheLabelsWaitsForThem(t *testing.T) {
	s := New(time.Minute)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.AddSource(RuntimeDocker)
	s.SetUp(RuntimeDocker, true, nil)
	s.Apply(Started{Key: key, At: at(0)})
	s.Apply(born(7, 0, 0, 10))
	v := victim(7, "java", 100, 1)
	v.NSInit = yes()
	v.Details = KillDetails{PID: 40, ReportSeq: 1}
	s.Apply(v)
	s.Apply(ReportEnd{Seq: 1})
	if len(announced) != 0 {
		t.Fatalf("announced without its labels: %+v", announced)
	}
	m := meta()
	m.SetKubeletLabels(map[string]string{LabelKubePod: "api-0", LabelKubeNamespace: "shop", LabelKubeContainer: "api", LabelKubePodUID: "u1"})
	s.Apply(Observed{Meta: m, At: at(300), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	if len(announced) != 1 || announced[0].Container.Pod != "api-0" || announced[0].Container.Namespace != "shop" {
		t.Fatalf("announced %+v, want the kill with its pod", announced)
	}
	if k := s.Kills(0, nil); k[0].Container.Pod != "api-0" {
		t.Fatalf("record %+v", k[0])
	}
}

// Whoever's labels never come, a record is announced after announceAfter.
func TestKillWithoutLabelsIsAnnouncedInTheEnd(t *testing.T) {
	s := New(time.Minute)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.AddSource(RuntimeDocker)
	s.SetUp(RuntimeDocker, true, nil)
	s.Apply(Started{Key: key, At: at(0)})
	v := victim(0, "java", 100, 1)
	v.NSInit = yes()
	v.Details = KillDetails{PID: 40, ReportSeq: 1}
	s.Apply(v)
	s.Apply(ReportEnd{Seq: 1})
	s.AnnounceKills(at(1000))
	if len(announced) != 0 {
		t.Fatal("announced at once")
	}
	s.AnnounceKills(at(2200))
	if len(announced) != 1 {
		t.Fatalf("not announced after the wait: %+v", announced)
	}
}

// A group kill's exit stamped long after it (an emulated machine's shim
// reported it 11 s later): the kernel said the kill ended the container,
// so the exit of its run is the kill's, however late.
func TestExitLongAfterAKillThatEndedTheContainer(t *testing.T) {
	s := New(time.Minute)
	s.AddSource(KmsgSource)
	s.SetUp(KmsgSource, true, nil)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	v := victim(7, "add", 1000, 1)
	v.Cgroup.Path = "/docker/abc"
	v.Details = KillDetails{PID: 41, ReportSeq: 1, Group: "/docker/abc"}
	s.Apply(v)
	s.Apply(Exited{Key: key, At: at(12_000), Code: 137})
	if c := get(t, s, key); c.ExitReason != ExitOOMKilled {
		t.Fatalf("reason %q, want oom_killed", c.ExitReason)
	}
}

// What held the memory, in one sentence: tmpfs, a process's anonymous
// memory, many small processes, the page cache.
func TestHeldBy(t *testing.T) {
	limit := uint64(32 << 20)
	for _, tc := range []struct {
		name string
		d    KillDetails
		want string
	}{
		{"a tmpfs filler", KillDetails{HasUsage: true, Limit: limit, Held: &Held{Anon: 2 << 20, File: 28 << 20, Shmem: 27 << 20}},
			"shmem 27 MiB of 32 MiB: tmpfs or an emptyDir with medium Memory"},
		{"dd", KillDetails{Held: &Held{Anon: 31 << 20}, TaskCount: 2, Tasks: []Task{{PID: 4242, Name: "dd", RSS: 31 << 20, Anon: 30 << 20, PartsKnown: true}}},
			`anonymous memory of "dd" (pid 4242), 30 MiB`},
		{"a fork bomb", KillDetails{HasUsage: true, Limit: limit, Held: &Held{Anon: 30 << 20}, TaskCount: 300, Tasks: []Task{{PID: 7, Name: "sh", RSS: 200 << 10}}},
			`anonymous memory 30 MiB of 32 MiB, in 300 processes, the largest "sh" (pid 7) with 200 KiB`},
		{"page cache", KillDetails{Held: &Held{Anon: 1 << 20, File: 20 << 20, FileDirty: 19 << 20}},
			"page cache 20 MiB: files read or written, not given back"},
		{"sockets", KillDetails{Held: &Held{Anon: 1 << 20, Kernel: 20 << 20, Sock: 25 << 20, KernelKnown: true}},
			"kernel memory (sockets) 25 MiB"},
		{"rate-limited: no breakdown", KillDetails{}, ""},
	} {
		if got := tc.d.HeldBy(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The kernel log read more than announceAfter after the counter (an
// emulated node under load): the counter's records are made first, then
// filled by the victims, and every kill still counts by its scope.
func TestLateDescriptionsCountTheirScope(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	s.Apply(count(7, 3, 1000))
	s.AnnounceKills(at(4000))
	for i, pid := range []int{41, 41, 42} {
		v := victim(7, "dd", 900, uint64(10+i))
		v.Details = KillDetails{PID: pid, ReportSeq: 10, Scope: ScopePod, Group: "/docker/abc"}
		v.Cgroup.Path = "/docker/abc"
		s.Apply(v)
	}
	if c := get(t, s, key); c.OOMs != 3 || c.KillsByScope[ScopePod] != 3 {
		t.Fatalf("container %+v", c)
	}
}

// An inspect that comes after a counter counted a kill, before its record
// was made, takes nothing from it: the kill still gets its record.
func TestInspectDoesNotSwallowAKillsRecord(t *testing.T) {
	s := New(time.Minute)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.Apply(Observed{Meta: meta(), At: at(0), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	s.Apply(count(7, 1, 1000))
	s.Apply(Observed{Meta: meta(), At: at(1200), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.AnnounceKills(at(3500))
	s.AnnounceKills(at(7000))
	if len(s.Kills(0, nil)) != 1 || len(announced) != 1 {
		t.Fatalf("records %+v, announced %+v", s.Kills(0, nil), announced)
	}
}
