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
	if got := s.Kills(0, nil); len(got) != 1 || got[0].From != FromCounter {
		t.Fatalf("after the counter: %+v", got)
	}
	d := KillDetails{PID: 41, MainProcess: no(), Scope: ScopeContainer, LimitCgroup: "/docker/abc", Usage: 32 << 20, Limit: 32 << 20, HasUsage: true,
		Trigger: &Process{PID: 41, Name: "ruby"}, Memory: &VictimMemory{AnonRSS: 30 << 20}}
	v := victim(7, "ruby", 990, 5)
	v.Details = d
	s.Apply(v)
	got := s.Kills(0, nil)
	if len(got) != 1 || got[0].From != FromKernelLog || got[0].Process != "ruby" || got[0].Details.Usage != 32<<20 || got[0].Container.Name != "web" {
		t.Fatalf("after the victim: %+v", got)
	}
	s.AnnounceKills(at(1_000_000))
	if len(announced) != 1 || announced[0].Process != "ruby" {
		t.Fatalf("announced %+v, want the one described kill", announced)
	}
	c := get(t, s, key)
	if c.OOMs != 1 || c.KillsByScope[ScopeContainer] != 1 || !c.HasLastOOMUsage || c.LastOOMLimit != 32<<20 {
		t.Fatalf("container %+v", c)
	}
}

// A kill only a counter counted (the kernel log is off, or its record was
// lost) is recorded with what is known, and announced once the log has had
// its moment.
func TestKillRecordOfACounterAlone(t *testing.T) {
	s := New(time.Minute)
	var announced []Kill
	s.OnKill(func(k Kill) { announced = append(announced, k) })
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	s.Apply(born(7, 0, 0, 10))
	s.Apply(count(7, 2, 1000))
	s.AnnounceKills(at(1500))
	if len(announced) != 0 {
		t.Fatalf("announced before the kernel log had its moment: %+v", announced)
	}
	s.AnnounceKills(at(3500))
	if len(announced) != 2 || announced[0].From != FromCounter || announced[0].Process != "" || announced[0].Container.Name != "web" {
		t.Fatalf("announced %+v", announced)
	}
	s.AnnounceKills(at(9000))
	if len(announced) != 2 {
		t.Fatalf("announced twice: %+v", announced)
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
		{"a worker OOM-killed, then a stop's SIGKILL", true, false, true, 137, ExitSignal},
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

// The victim's record comes after the exit's event: the exit's reason is
// still the kill's.
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
	v.Details = KillDetails{PID: 40, MainProcess: yes()}
	s.Apply(v)
	if c := get(t, s, key); c.ExitReason != ExitOOMKilled {
		t.Fatalf("after the victim: %q", c.ExitReason)
	}
}

// The same when the reader could not ask whether the victim was pid 1 of
// its namespace (it was gone): the main pid of the run that ended decides
// (a group kill in the cgroup v2 VM, under load, ended as "signal").
func TestExitReasonOfAGoneVictimDescribedAfterTheExit(t *testing.T) {
	s := New(time.Minute)
	s.AddSource(KmsgSource)
	s.SetUp(KmsgSource, true, nil)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	s.Apply(Exited{Key: key, At: at(200), Code: 137})
	worker := victim(7, "dd", 150, 1)
	worker.Details = KillDetails{PID: 41}
	s.Apply(worker)
	if c := get(t, s, key); c.ExitReason != ExitSignal {
		t.Fatalf("after a worker's kill: %q", c.ExitReason)
	}
	main := victim(7, "sh", 150, 2)
	main.Details = KillDetails{PID: 40}
	s.Apply(main)
	if c := get(t, s, key); c.ExitReason != ExitOOMKilled {
		t.Fatalf("after the main process's kill: %q", c.ExitReason)
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

// Where it is not known whether the victim was the main process (it was
// gone, and no runtime gave the main pid: a container that lived for
// milliseconds), an exit by SIGKILL in its run has no reason: not known,
// never "signal".
func TestExitReasonNotKnownWhereTheVictimIsNot(t *testing.T) {
	s := New(time.Minute)
	s.AddSource(KmsgSource)
	s.SetUp(KmsgSource, true, nil)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true}}) // no pid yet
	s.Apply(born(7, 0, 0, 10))
	s.Apply(Exited{Key: key, At: at(200), Code: 137})
	v := victim(7, "dd", 150, 1)
	v.Details = KillDetails{PID: 40}
	s.Apply(v)
	if c := get(t, s, key); c.ExitReason != "" {
		t.Fatalf("reason %q, want none: whether the main process was killed is not known", c.ExitReason)
	}
}

// A victim whose report was rate-limited, and whose process was gone when
// the reader looked, has no cgroup; its pid is the main pid a runtime gave
// for a running container: it is that container's main process.
func TestUnplacedVictimIsTheMainProcessOfItsContainer(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(5), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(born(7, 0, 0, 10))
	s.Apply(UnplacedVictim{Process: "dd", At: at(100), Seq: 3, Live: true, Details: KillDetails{PID: 40}})
	s.Apply(UnplacedVictim{Process: "stranger", At: at(110), Seq: 4, Live: true, Details: KillDetails{PID: 99}})
	c := get(t, s, key)
	if c.OOMs != 1 || c.ProcessKills["dd"] != 1 {
		t.Fatalf("container %+v", c)
	}
	kills := s.Kills(0, nil)
	if len(kills) != 2 || !kills[0].Unplaced || kills[0].Process != "stranger" || kills[1].Container.ID != "abc" || kills[1].Details.MainProcess == nil || !*kills[1].Details.MainProcess {
		t.Fatalf("records %+v", kills)
	}
}

// The store keeps the newest records only.
func TestKillRecordsAreBounded(t *testing.T) {
	s := New(time.Minute)
	s.SetKillsKept(3)
	for i := range 10 {
		s.Apply(HostOOMKill{Process: "p", At: at(i), Seq: uint64(i + 1), Live: true})
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
