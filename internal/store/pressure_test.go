package store

import (
	"testing"
	"time"
)

// reading is a reading of instance ino's counters at ms: v1's limit hits
// alone where stall < 0, else v2's limit and high hits and PSI (stall as
// both some and half of it as full); sampled as the walk reads them.
func reading(ino, hits uint64, stall time.Duration, ms int) KernelOOMCount {
	ev := born(ino, 0, 0, ms)
	ev.Pressure = MemoryPressure{LimitHits: hits, HasLimitHits: true}
	if stall >= 0 {
		ev.Pressure.HighHits, ev.Pressure.HasHighHits = hits/2, true
		ev.Pressure.Waiting, ev.Pressure.Stalled, ev.Pressure.HasStall = stall, stall/2, true
	}
	ev.PressureSampled = true
	return ev
}

// The limit hits and the stall of a container never go down while it
// exists: a restart makes a new cgroup that counts from 0, a reading of
// an older instance comes late or lower, and more instances than are kept
// open are folded into a sum.
func TestPressureNeverGoesDown(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	var last MemoryPressure
	check := func(step string, want uint64) {
		t.Helper()
		p := get(t, s, key).Pressure
		if p.LimitHits < last.LimitHits || p.HighHits < last.HighHits || p.Waiting < last.Waiting || p.Stalled < last.Stalled {
			t.Fatalf("%s: went down from %+v to %+v", step, last, p)
		}
		if p.LimitHits != want || !p.HasLimitHits || !p.HasHighHits || !p.HasStall {
			t.Fatalf("%s: %+v, want %d limit hits and every counter", step, p, want)
		}
		last = p
	}
	s.Apply(reading(1, 10, time.Second, 1000))
	check("first reading", 10)
	s.Apply(reading(1, 25, 3*time.Second, 2000))
	check("more hits", 25)
	s.Apply(reading(2, 4, 0, 3000)) // restarted: a new cgroup from 0
	check("after a restart", 29)
	s.Apply(reading(1, 20, 2*time.Second, 3500)) // the old one's, read before it went, applied late
	check("a late lower reading of the old cgroup", 29)
	s.Apply(CgroupGone{Cgroup: cgroupOf(dockerMeta()), Instance: 1, At: at(4000)})
	check("the old cgroup gone", 29)
	// Restarts beyond the instances kept open: each folds the oldest into the sum.
	want := uint64(29)
	for ino := uint64(3); ino < 3+2*maxInstances; ino++ {
		s.Apply(reading(ino, 1, 0, int(ino)*1000))
		want++
		check("restart", want)
	}
	s.Apply(reading(2, 100, 0, 100_000)) // folded long ago: not counted again
	check("a late reading of a folded cgroup", want)
	if p := get(t, s, key).Pressure; p.Waiting != 3*time.Second+0 || p.Stalled != 1500*time.Millisecond {
		t.Fatalf("stall %+v, want 3 s some and 1.5 s full: the sum of each cgroup's highest", p)
	}
}

// cgroup v1 gives only the limit hits: no high, no PSI, and so no series
// of them; a container the kernel reader has not read has none at all.
func TestPressureOnlyWhatTheKernelGives(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	if p := get(t, s, key).Pressure; p != (MemoryPressure{}) {
		t.Fatalf("before any reading: %+v", p)
	}
	s.Apply(reading(1, 7, -1, 1000))
	p := get(t, s, key).Pressure
	if !p.HasLimitHits || p.LimitHits != 7 || p.HasHighHits || p.HasStall {
		t.Fatalf("cgroup v1: %+v, want 7 limit hits and nothing else", p)
	}
	// A reading of memory.events alone (v2, between two reads of the
	// pressure file) keeps the stall known before.
	s.Apply(reading(2, 3, 2*time.Second, 2000))
	ev := born(2, 0, 0, 3000)
	ev.Pressure = MemoryPressure{LimitHits: 5, HasLimitHits: true, HighHits: 1, HasHighHits: true}
	s.Apply(ev)
	if p := get(t, s, key).Pressure; p.LimitHits != 12 || !p.HasStall || p.Waiting != 2*time.Second {
		t.Fatalf("after a memory.events reading alone: %+v", p)
	}
}

// mainKilled is a store following one container (pid 40), and applies
// its main process's kill at ms with the reading of its counters it
// brought (hits and stall, as reading takes them); announced holds what
// was announced.
func mainKilled(readings []KernelOOMCount, ms int, hits uint64, stall time.Duration) (s *Store, announced *[]Kill) {
	s = New(time.Minute)
	announced = new([]Kill)
	s.OnKill(func(k Kill) { *announced = append(*announced, k) })
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	for _, r := range readings {
		s.Apply(r)
	}
	kill := reading(7, hits, stall, ms+10)
	kill.Kills = 1
	s.Apply(kill)
	v := victim(7, "dd", ms, 1)
	v.Details = KillDetails{PID: 40, ReportSeq: 1} // the main process: decided at once
	s.Apply(v)
	s.Apply(ReportEnd{Seq: 1})
	return s, announced
}

// A kill's record says what the cgroup counted in the minute before it:
// from the reading at or before a minute before the kill (the walk reads
// every 30 s) to the one the kill brought, as announced.
func TestKillRecordSaysWhatCameBefore(t *testing.T) {
	// The walk, every 30 s: quiet at first, then hitting the limit; the
	// kill at 100 s.
	s, announced := mainKilled([]KernelOOMCount{reading(7, 0, 0, 0), reading(7, 0, 0, 30_000),
		reading(7, 100, time.Second, 60_000), reading(7, 900, 4*time.Second, 90_000)}, 100_000, 1000, 5*time.Second)
	if len(*announced) != 1 {
		t.Fatalf("announced %+v", *announced)
	}
	b := (*announced)[0].Before
	if b == nil {
		t.Fatal("the record says nothing of what came before the kill")
	}
	// From the walk's reading at 30 s (the newest a minute or more before
	// the kill) to the kill's own.
	if !b.From.Equal(at(30_000)) || !b.To.Equal(at(100_010)) {
		t.Errorf("window %s to %s, want 30 s to 100.01 s", b.From.Sub(t0), b.To.Sub(t0))
	}
	if b.LimitHits != 1000 || b.HighHits != 500 || b.Waiting != 5*time.Second || b.Stalled != 2500*time.Millisecond ||
		!b.HasLimitHits || !b.HasHighHits || !b.HasStall {
		t.Errorf("before: %+v", b.MemoryPressure)
	}
	if got := s.Kills(0, nil); len(got) != 1 || got[0].Before == nil || got[0].Before.LimitHits != 1000 {
		t.Errorf("the kept record: %+v", got)
	}
}

// A record still waiting for its kernel report's end is shown with what
// came before it as far as the readings tell, before it is announced.
func TestKillRecordNotAnnouncedSaysWhatCameBefore(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true, Pid: 40}})
	s.Apply(reading(7, 0, 0, 30_000))
	kill := reading(7, 300, 2*time.Second, 60_010)
	kill.Kills = 1
	s.Apply(kill)
	v := victim(7, "dd", 60_000, 1)
	v.Details = KillDetails{PID: 40, ReportSeq: 1} // no ReportEnd: not announced
	s.Apply(v)
	got := s.Kills(0, nil)
	if len(got) != 1 || got[0].announced || got[0].Before == nil || got[0].Before.LimitHits != 300 {
		t.Fatalf("the record before its announcement: %+v", got)
	}
}

// A container younger than a minute: the window begins at its first
// reading. With one reading only, nothing is said.
func TestKillRecordOfAYoungContainer(t *testing.T) {
	_, announced := mainKilled([]KernelOOMCount{reading(7, 0, -1, 10)}, 4_990, 50, -1)
	if len(*announced) != 1 || (*announced)[0].Before == nil {
		t.Fatalf("announced %+v", *announced)
	}
	b := (*announced)[0].Before
	if !b.From.Equal(at(10)) || !b.To.Equal(at(5_000)) || b.LimitHits != 50 || b.HasStall {
		t.Errorf("before %+v from %s to %s", b.MemoryPressure, b.From.Sub(t0), b.To.Sub(t0))
	}
	s, _ := mainKilled(nil, 4_990, 50, -1)
	if got := s.Kills(0, nil); len(got) != 1 || got[0].Before != nil {
		t.Errorf("one reading: %+v", got)
	}
}

// The readings kept are bounded, and still reach a minute back, however
// often the cgroup is read (cgroup v2 reads it at every change of
// memory.events while it hits its limit).
func TestPressureSamplesBounded(t *testing.T) {
	var c pressureCount
	for ms := 0; ms <= 600_000; ms += 200 {
		ev := reading(1, uint64(ms), 0, ms)
		c.reading(ev)
		if len(c.samples) > samplesKept {
			t.Fatalf("%d samples kept", len(c.samples))
		}
	}
	b := c.before(at(600_000))
	if b == nil || b.To.Sub(b.From) < BeforeWindow || b.To.Sub(b.From) > BeforeWindow+sampleEvery {
		t.Fatalf("window %+v, want a minute to a minute and %s", b, sampleEvery)
	}
}

func TestBeforeSummary(t *testing.T) {
	kill := at(100_000)
	for _, tc := range []struct {
		b    Before
		want string
	}{
		{Before{From: at(30_000), To: at(100_010), MemoryPressure: MemoryPressure{LimitHits: 1204, HasLimitHits: true, HighHits: 0, HasHighHits: true,
			Waiting: 3100 * time.Millisecond, Stalled: 2 * time.Second, HasStall: true}},
			"In the 70 s before the kill the container hit its limit 1204 times and waited for memory 3.1 s, 2.0 s of it with every process stalled."},
		{Before{From: at(0), To: at(90_000), MemoryPressure: MemoryPressure{LimitHits: 1, HasLimitHits: true}},
			"In the 90 s up to 10 s before the kill the container hit its limit once (cgroup v1 counts no stall)."},
		{Before{From: at(40_000), To: at(100_000), MemoryPressure: MemoryPressure{HasLimitHits: true, HighHits: 7, HasHighHits: true}},
			"In the 60 s before the kill the container did not hit its limit and went over memory.high 7 times."},
		// A pod of one container: its pod's cgroup reaches the limit.
		{Before{From: at(40_000), To: at(100_000), MemoryPressure: MemoryPressure{HasLimitHits: true, PodLimitHits: 39, HasPodLimitHits: true}},
			"In the 60 s before the kill the container did not hit its limit and saw its pod hit the pod's limit 39 times (cgroup v1 counts no stall)."},
		{Before{From: at(40_000), To: at(100_000)}, ""},
	} {
		if got := tc.b.Summary(kill); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}
