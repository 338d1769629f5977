package store

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

const key = "docker://abc"

func meta() Meta { return Meta{Runtime: "docker", ID: "abc", Name: "web"} }

func get(t *testing.T, s *Store, k string) Container {
	t.Helper()
	for _, c := range s.Snapshot().Containers {
		if c.Meta.Key() == k {
			return c
		}
	}
	t.Fatalf("container %s not exported", k)
	return Container{}
}

func want(t *testing.T, c Container, ooms, restarts uint64, exited bool, code int) {
	t.Helper()
	if c.OOMs != ooms || c.Restarts != restarts || c.Exited != exited || (exited && c.ExitCode != code) {
		t.Fatalf("got ooms=%d restarts=%d exited=%v code=%d; want ooms=%d restarts=%d exited=%v code=%d",
			c.OOMs, c.Restarts, c.Exited, c.ExitCode, ooms, restarts, exited, code)
	}
}

func TestFirstSightTakesWhatTheRuntimeKnows(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(1000), FinishedAt: at(500), ExitCode: 137, OOMKilled: true, Restarts: 2}})
	want(t, get(t, s, key), 1, 2, true, 137)
}

// Docker sets ExitCode to 0 at every start: a running container's last exit
// code is not known from its state, and no code is better than a wrong 0.
func TestRunningContainersExitCodeIsUnknown(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(1100), State: State{StartedAt: at(1000), FinishedAt: at(500), ExitCode: 0, Restarts: 2, Running: true}})
	want(t, get(t, s, key), 0, 2, false, 0)
	s.Apply(Exited{Key: key, At: at(2000), Code: 7})
	want(t, get(t, s, key), 0, 2, true, 7)
	s.Apply(Started{Key: key, At: at(2100)})
	want(t, get(t, s, key), 0, 3, true, 7)
	// dockerd was away while the container exited and was started again:
	// the relisting shows the restart, and the exit without its code.
	s.Apply(Observed{Meta: meta(), At: at(9000), State: State{StartedAt: at(5000), FinishedAt: at(4000), ExitCode: 0, Restarts: 4, Running: true}})
	want(t, get(t, s, key), 0, 4, false, 0)
}

func TestNeverExitedHasNoExitCode(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	want(t, get(t, s, key), 0, 0, false, 0)
}

func TestFirstStartIsNoRestart(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta()}) // created, never started
	s.Apply(Started{Key: key, At: at(100)})
	want(t, get(t, s, key), 0, 0, false, 0)
	s.Apply(Exited{Key: key, At: at(200), Code: 3})
	want(t, get(t, s, key), 0, 0, true, 3)
	s.Apply(Started{Key: key, At: at(400)})
	want(t, get(t, s, key), 0, 1, true, 3)
}

func TestWorkerOOMsWhileContainerLivesOn(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	for i := 1; i <= 3; i++ {
		s.Apply(OOMKilled{Key: key, At: at(1000 * i)})
	}
	want(t, get(t, s, key), 3, 0, false, 0)
}

func TestReplayedEventsCountOnce(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	evs := []Event{
		OOMKilled{Key: key, At: at(1000)},
		Exited{Key: key, At: at(1001), Code: 137},
		Started{Key: key, At: at(1200)},
		OOMKilled{Key: key, At: at(2000)},
	}
	for range 3 {
		for _, ev := range evs {
			s.Apply(ev)
		}
	}
	want(t, get(t, s, key), 2, 1, true, 137)
}

func TestListingAndEventOfOneChangeCountOnce(t *testing.T) {
	s := New(time.Minute)
	// The listing saw the restart at 1000 and the OOM exit at 900; the
	// stream then delivers the events of the same changes, logged a few
	// milliseconds after the runtime recorded them.
	// The listing was asked for at 1002, before the start event was logged.
	s.Apply(Observed{Meta: meta(), At: at(1002), State: State{StartedAt: at(1000), FinishedAt: at(900), ExitCode: 137, OOMKilled: true, Restarts: 1, Running: true}})
	s.Apply(OOMKilled{Key: key, At: at(899)})
	s.Apply(Exited{Key: key, At: at(902), Code: 137})
	s.Apply(Started{Key: key, At: at(1003)})
	want(t, get(t, s, key), 1, 1, true, 137)
	// A later real restart still counts.
	s.Apply(Exited{Key: key, At: at(2000), Code: 1})
	s.Apply(Started{Key: key, At: at(2100)})
	want(t, get(t, s, key), 1, 2, true, 1)
}

func TestListingCatchesUpOnMissedChanges(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(0), Running: true}})
	// The exporter lost the stream; meanwhile the container exited and was
	// started again. A fresh listing shows both. Its sticky OOMKilled flag
	// is no new kill: a worker's kill before the listing may have set it.
	s.Apply(OOMKilled{Key: key, At: at(1000)})
	s.Apply(Observed{Meta: meta(), At: at(6000), State: State{StartedAt: at(5000), FinishedAt: at(4000), OOMKilled: true, Running: true}})
	want(t, get(t, s, key), 1, 1, false, 0) // the code of the missed exit is lost
	// The same listing again changes nothing.
	s.Apply(Observed{Meta: meta(), At: at(6000), State: State{StartedAt: at(5000), FinishedAt: at(4000), OOMKilled: true, Running: true}})
	want(t, get(t, s, key), 1, 1, false, 0)
}

func TestEventsBeforeMetadataAreKept(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Started{Key: key, At: at(100)})
	s.Apply(OOMKilled{Key: key, At: at(200)})
	if n := len(s.Snapshot().Containers); n != 0 {
		t.Fatalf("a container without metadata was exported (%d)", n)
	}
	// The inspect that follows saw the same start: no restart, one OOM.
	s.Apply(Observed{Meta: meta(), State: State{StartedAt: at(99), Running: true, OOMKilled: true}})
	want(t, get(t, s, key), 1, 0, false, 0)
}

func TestRemovedContainersGoAfterRetention(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta()})
	other := Meta{Runtime: "docker", ID: "def"}
	s.Apply(Observed{Meta: other})
	s.Apply(Removed{Key: key, At: at(0)})
	s.Sweep(at(59_000))
	if n := len(s.Snapshot().Containers); n != 2 {
		t.Fatalf("removed container dropped before its retention: %d left", n)
	}
	s.Sweep(at(60_000))
	snap := s.Snapshot()
	if len(snap.Containers) != 1 || snap.Containers[0].Meta.ID != "def" {
		t.Fatalf("after retention: %+v", snap.Containers)
	}
	// A container a fresh listing no longer has is removed too, and so are
	// events of a container that was never observed.
	s.Apply(Started{Key: "docker://ghost", At: at(1)})
	s.MarkGone("docker", map[string]bool{}, at(60_000))
	s.Sweep(at(120_000))
	if n := len(s.Snapshot().Containers); n != 0 {
		t.Fatalf("gone container kept: %d", n)
	}
	if n := len(s.containers); n != 0 {
		t.Fatalf("%d entries left after every container is gone", n)
	}
}

func TestSourcesCountTrackedContainers(t *testing.T) {
	s := New(time.Minute)
	s.AddSource("docker")
	s.Apply(Observed{Meta: meta()})
	s.Apply(Observed{Meta: Meta{Runtime: "docker", ID: "def"}})
	s.Apply(Removed{Key: "docker://def", At: at(0)})
	s.CountEvent("docker", false)
	s.CountEvent("docker", true)
	s.SetUp("docker", true, nil)
	src := s.Sources()
	if len(src) != 1 || src[0].Containers != 1 || src[0].Events != 2 || src[0].Malformed != 1 || !src[0].Up {
		t.Fatalf("sources: %+v", src)
	}
}

// A late inspect of a container that is gone never brings back a container
// whose retention has passed.
func TestGoneObservationDoesNotResurrect(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Started{Key: key, At: at(0)})
	s.Apply(Exited{Key: key, At: at(100), Code: 18})
	s.Apply(Removed{Key: key, At: at(200)})
	s.Apply(Observed{Meta: meta(), Gone: true})
	want(t, get(t, s, key), 0, 0, true, 18) // labelled from the event, in its retention
	s.Sweep(at(60_200))
	s.Apply(Observed{Meta: meta(), Gone: true})
	if n := len(s.Snapshot().Containers); n != 0 {
		t.Fatalf("swept container came back: %+v", s.Snapshot().Containers)
	}
}

// On a busy host Docker logs a start event well after the StartedAt it
// records; an inspect between the two must not turn that start into a restart.
func TestSlowStartEventIsNoRestart(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(800), State: State{StartedAt: at(750), Running: true}})
	s.Apply(Started{Key: key, At: at(822)})
	s.Apply(Exited{Key: key, At: at(900), Code: 3})
	want(t, get(t, s, key), 0, 0, true, 3)
	s.Apply(Started{Key: key, At: at(1400)})
	want(t, get(t, s, key), 0, 1, true, 3)
}

// A relisting after a reconnect catches an exit and a start that the events
// missed, once, and the events that arrive late change nothing.
func TestRelistingCatchesMissedRestart(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(10), State: State{StartedAt: at(0), Running: true}})
	s.Apply(Observed{Meta: meta(), At: at(5000), State: State{StartedAt: at(3000), FinishedAt: at(2000), Running: true}})
	want(t, get(t, s, key), 0, 1, false, 0) // running again: the exit's code is not in the state
	// The events dockerd replays bring the code back, and count nothing.
	s.Apply(Exited{Key: key, At: at(2010), Code: 1})
	s.Apply(Started{Key: key, At: at(3010)})
	want(t, get(t, s, key), 0, 1, true, 1)
	s.Apply(Exited{Key: key, At: at(2010), Code: 1})
	want(t, get(t, s, key), 0, 1, true, 1)
}

// The inspect of a new container was asked for while it ran, and its answer
// arrives after the container's exit event: it is no missed start.
func TestStaleObservationIsNoRestart(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Started{Key: key, At: at(100)})
	s.Apply(Exited{Key: key, At: at(300), Code: 7})
	s.Apply(Observed{Meta: meta(), At: at(200), State: State{StartedAt: at(95), Running: true}})
	want(t, get(t, s, key), 0, 0, true, 7)
}

func observed(id string, at time.Time) Observed {
	return Observed{Meta: Meta{Runtime: "docker", ID: id}, State: State{StartedAt: at, Running: true}, At: at}
}

func keys(s *Store) map[string]bool {
	out := map[string]bool{}
	for _, c := range s.Snapshot().Containers {
		out[c.Meta.ID] = true
	}
	return out
}

// At the limit a new container takes the place of the one removed longest
// ago; with none removed it is turned away, counted once however many of its
// events and observations come, and tracked once there is room again.
func TestLimitOfTrackedContainers(t *testing.T) {
	s := New(time.Minute)
	s.SetLimit(2)
	s.Apply(observed("a", at(1)))
	s.Apply(observed("b", at(2)))
	for range 3 {
		s.Apply(observed("c", at(3)))
		s.Apply(OOMKilled{Key: "docker://c", At: at(4)})
	}
	if got := keys(s); len(got) != 2 || !got["a"] || !got["b"] {
		t.Fatalf("tracked %v, want a and b", got)
	}
	if limit, away := s.Limit(); away != 1 || limit != 2 {
		t.Fatalf("turned away %d (limit %d), want 1 (2)", away, limit)
	}
	if !s.Known("docker://c") {
		t.Fatal("a turned-away container must count as known at the limit, or the source asks for it at every event")
	}

	s.Apply(Removed{Key: "docker://b", At: at(10)})
	s.Apply(Removed{Key: "docker://a", At: at(11)})
	if s.Known("docker://c") {
		t.Fatal("still known after room was made: the source would never inspect it")
	}
	s.Apply(observed("c", at(12))) // takes b's place: removed longest ago
	if got := keys(s); len(got) != 2 || !got["a"] || !got["c"] {
		t.Fatalf("tracked %v, want a (removed, in its retention) and c", got)
	}
	s.Apply(observed("d", at(13))) // takes a's place
	s.Apply(observed("e", at(14))) // no room: c and d run
	if got := keys(s); len(got) != 2 || !got["c"] || !got["d"] {
		t.Fatalf("tracked %v, want c and d", got)
	}
	if _, n := s.Limit(); n != 2 {
		t.Fatalf("turned away %d, want 2 (c once, e once)", n)
	}
	// e is removed and then comes back under the same id: a new container.
	s.Apply(Removed{Key: "docker://e", At: at(15)})
	s.Apply(observed("e", at(16)))
	if _, n := s.Limit(); n != 3 {
		t.Fatalf("turned away %d, want 3", n)
	}
	// A relisting that no longer has d makes room too.
	s.MarkGone("docker", map[string]bool{"docker://c": true, "docker://e": true}, at(17))
	s.Apply(observed("e", at(18)))
	if got := keys(s); len(got) != 2 || !got["c"] || !got["e"] {
		t.Fatalf("tracked %v, want c and e (in d's place)", got)
	}
}

func TestNoLimitByDefault(t *testing.T) {
	s := New(time.Minute)
	for i := range 1000 {
		s.Apply(observed(string(rune('a'+i%26))+string(rune(i)), at(i)))
	}
	if _, away := s.Limit(); len(s.Snapshot().Containers) != 1000 || away != 0 {
		t.Fatalf("%d tracked, %d turned away; want 1000 and 0", len(s.Snapshot().Containers), away)
	}
}

// containerd's ids are unique only within a namespace: two "web" containers
// in namespaces a and b are two containers, each with its own counts; the
// removal of one leaves the other.
func TestSameIDInTwoContainerdNamespaces(t *testing.T) {
	s := New(time.Minute)
	a := Meta{Runtime: "containerd", ContainerdNamespace: "a", ID: "web", Name: "web"}
	b := Meta{Runtime: "containerd", ContainerdNamespace: "b", ID: "web", Name: "web"}
	s.Apply(Observed{Meta: a, At: at(10), State: State{StartedAt: at(0), Running: true}})
	s.Apply(Observed{Meta: b, At: at(10), State: State{StartedAt: at(0), Running: true}})
	s.Apply(Exited{Key: b.Key(), At: at(100), Code: 1})
	s.Apply(Started{Key: b.Key(), At: at(200)})
	s.Apply(OOMKilled{Key: a.Key(), At: at(300)})
	want(t, get(t, s, a.Key()), 1, 0, false, 0)
	want(t, get(t, s, b.Key()), 0, 1, true, 1)
	s.Apply(Removed{Key: b.Key(), At: at(400)})
	s.Sweep(at(70_000))
	want(t, get(t, s, a.Key()), 1, 0, false, 0)
	if _, ok := find(s, b.Key()); ok {
		t.Fatal("b kept after its retention")
	}
}

// A cgroup counts for a runtime's container only where the two agree: the
// runtime its path names (or any, where the path only lets it be guessed),
// and only one container of it with the id.
func TestKernelCountsOnlyWhereThePathAgrees(t *testing.T) {
	s := New(time.Minute)
	running := State{StartedAt: at(0), Running: true}
	docker := Meta{Runtime: "docker", ID: "abc", Name: "web"}
	s.Apply(Observed{Meta: docker, State: running})
	// A cgroup that says it is CRI-O's, with the Docker container's id.
	crio := Cgroup{Meta: Meta{Runtime: "cri-o", ID: "abc"}, Path: "/kubepods/pod1/crio-abc"}
	s.Apply(KernelOOMCount{Cgroup: crio, Instance: 1, Kills: 5, At: at(10)})
	want(t, get(t, s, docker.Key()), 0, 0, false, 0)

	// Two containerd containers with one id: the path does not say whose.
	s.AddSource("containerd")
	a := Meta{Runtime: "containerd", ContainerdNamespace: "a", ID: "def"}
	b := Meta{Runtime: "containerd", ContainerdNamespace: "b", ID: "def"}
	s.Apply(Observed{Meta: a, State: running})
	s.Apply(Observed{Meta: b, State: running})
	both := Cgroup{Meta: Meta{Runtime: "containerd", ID: "def"}, Path: "/kubepods/pod2/def", Guessed: true}
	s.Apply(KernelOOMCount{Cgroup: both, Instance: 2, Kills: 3, At: at(20)})
	want(t, get(t, s, a.Key()), 0, 0, false, 0)
	want(t, get(t, s, b.Key()), 0, 0, false, 0)
	// Found through b's main pid, it is b's.
	s.Apply(KernelOOMCount{Cgroup: Cgroup{Meta: b, Path: "/b/def", ByPid: true}, Instance: 3, Kills: 2, At: at(30)})
	want(t, get(t, s, b.Key()), 2, 0, false, 0)
	want(t, get(t, s, a.Key()), 0, 0, false, 0)
}

// Whoever may make cgroups may make thousands that look like containers':
// at the limit, a runtime's container takes the place of one only the
// kernel knows; those never turn a runtime's container away.
func TestKernelOnlyContainersNeverCrowdOutRuntimes(t *testing.T) {
	s := New(time.Minute)
	s.SetLimit(3)
	for i := range 5 {
		id := string(rune('a' + i))
		s.Apply(KernelOOMCount{Cgroup: Cgroup{Meta: Meta{Runtime: "docker", ID: id}, Path: "/docker/" + id}, Instance: uint64(i + 1), At: at(i)})
	}
	for i := range 3 {
		s.Apply(observed("r"+string(rune('0'+i)), at(10+i)))
	}
	if got := keys(s); len(got) != 3 || !got["r0"] || !got["r1"] || !got["r2"] {
		t.Fatalf("tracked %v, want the runtime's three", got)
	}
	if _, away := s.Limit(); away != 2 {
		t.Fatalf("turned away %d, want 2: the kernel's fourth and fifth", away)
	}
}

// The open bug of docs/design.md, replayed in the order a loaded host gave:
// the exporter starts and lists Docker's containers, slowly; a container is
// made, started and exits meanwhile. Its events wait in the queue until the
// listing is done, but the kernel reader has seen its cgroup already. The
// relisting's "gone" must not take that container for one removed: its
// series were dropped a retention after the exporter's start, near its exit,
// instead of a retention after its removal.
func TestContainerMadeDuringTheListingIsNotGone(t *testing.T) {
	s := New(3 * time.Second)
	s.AddSource("docker")
	m := Meta{Runtime: "docker", ID: "abc", Name: "web"}
	cg := Cgroup{Meta: Meta{Runtime: "docker", ID: "abc"}, Path: "/docker/abc"}
	s.Apply(KernelOOMCount{Cgroup: cg, Instance: 1, Born: at(100), BornExact: true, At: at(110)}) // made during the listing
	s.MarkGone("docker", map[string]bool{}, at(200))                                              // the listing did not have it
	s.SetUp("docker", true, nil)
	s.Apply(CgroupGone{Cgroup: cg, Instance: 1, At: at(300)}) // it exits
	s.Apply(Started{Key: m.Key(), At: at(150)})               // the queued events, after the listing
	s.Apply(Exited{Key: m.Key(), At: at(290), Code: 2})
	s.Apply(Observed{Meta: m, At: at(600), State: State{StartedAt: at(150), FinishedAt: at(290), ExitCode: 2}})
	want(t, get(t, s, m.Key()), 0, 0, true, 2)
	s.Sweep(at(10_000)) // long after a retention from the listing and from the exit
	want(t, get(t, s, m.Key()), 0, 0, true, 2)
	s.Apply(Removed{Key: m.Key(), At: at(20_000)})
	s.Sweep(at(22_000))
	want(t, get(t, s, m.Key()), 0, 0, true, 2)
	s.Sweep(at(23_000))
	if _, ok := find(s, m.Key()); ok {
		t.Fatal("kept after a retention from its removal")
	}
}

// A container exits and starts again within one inspect's round trip: the
// inspect was asked for before the exit, and answers with the exit's time
// (a little after the die event's own) and the new run, its code reset.
// The die event that follows still gives the exit's code.
func TestExitCodeOfAnExitWithinAnInspectsRoundTrip(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(0), State: State{StartedAt: at(0), Running: true}})
	s.Apply(Observed{Meta: meta(), At: at(500), State: State{StartedAt: at(700), FinishedAt: at(601), Running: true}})
	s.Apply(Exited{Key: key, At: at(600), Code: 137})
	s.Apply(Started{Key: key, At: at(700)})
	want(t, get(t, s, key), 0, 1, true, 137)
}

// A restarted exporter lists a restart-policy container in its restart
// back-off: Running (and Restarting), the coming restart counted in
// RestartCount, FinishedAt the exit's. The die event, stamped a moment
// after that FinishedAt, is the same exit: the coming start is no second
// restart. (It counted 4 restarts for 3.)
func TestDieEventOfAStateInTheRestartBackoff(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(900), State: State{StartedAt: at(0), FinishedAt: at(1000), Running: true, Restarts: 3}})
	s.Apply(Exited{Key: key, At: at(1003), Code: 137})
	s.Apply(Started{Key: key, At: at(4000)})
	want(t, get(t, s, key), 0, 3, true, 137)
}

// A container seen first by an inspect at its creation, answered after it
// started and exited at once: the start event, logged a moment after the
// state's StartedAt (and here after its FinishedAt too), is that run, not
// a restart; the restarts that follow count. (Podman's on-failure:2
// counted 3 restarts for 2 under load.)
func TestStartEventOfARunAStateShowedEnded(t *testing.T) {
	s := New(time.Minute)
	s.Apply(Observed{Meta: meta(), At: at(0), State: State{StartedAt: at(500), FinishedAt: at(502), ExitCode: 1}})
	s.Apply(Started{Key: key, At: at(504)})
	s.Apply(Exited{Key: key, At: at(505), Code: 1})
	want(t, get(t, s, key), 0, 0, true, 1)
	s.Apply(Started{Key: key, At: at(1500)})
	s.Apply(Exited{Key: key, At: at(1502), Code: 1})
	want(t, get(t, s, key), 0, 1, true, 1)
	// Docker's restart after its back-off of 100 ms, of a run of 2 ms.
	s.Apply(Started{Key: key, At: at(1604)})
	s.Apply(Exited{Key: key, At: at(1606), Code: 1})
	want(t, get(t, s, key), 0, 2, true, 1)
}

// Podman's on-failure:2 of a container that exits at once, as its events and
// inspects came on a loaded host: each inspect answered after the run it
// shows had ended, one of them before the events of the run before it. Two
// restarts, not three (the translation gives an exit stamped before its
// start that start's time).
func TestInstantExitsInspectedBetweenTheirEvents(t *testing.T) {
	s := New(time.Minute)
	exited := func(asked, started int, restarts int) Observed {
		return Observed{Meta: meta(), At: at(asked), State: State{StartedAt: at(started), FinishedAt: at(started), ExitCode: 1, Restarts: restarts}}
	}
	for _, ev := range []Event{
		exited(759, 886, 0),
		Started{Key: key, At: at(888)},
		Exited{Key: key, At: at(889), Code: 1},
		exited(1011, 886, 0),
		Started{Key: key, At: at(1371)},
		Exited{Key: key, At: at(1499), Code: 1},
		exited(1510, 1806, 2),
		Started{Key: key, At: at(1811)},
		Exited{Key: key, At: at(1815), Code: 1},
		exited(2010, 1806, 2),
	} {
		s.Apply(ev)
	}
	want(t, get(t, s, key), 0, 2, true, 1)
}
