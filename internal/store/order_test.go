package store

import (
	"slices"
	"testing"
	"time"
)

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// A short-lived Docker container with the kernel reader on: whatever order
// the kernel's and Docker's reports arrive in (Docker's lag seconds behind
// on a loaded host), and whenever the sweeper runs, the container is
// exported with its exit code until a retention after its removal.
func TestShortLivedContainerAnyOrder(t *testing.T) {
	const ino = 9
	m := Meta{Runtime: "docker", ID: "abc", Name: "web"}
	evs := []Event{
		KernelOOMCount{Cgroup: cgroupOf(Meta{Runtime: "docker", ID: "abc"}), Instance: ino, At: at(10), Born: at(0), BornExact: true},
		CgroupGone{Cgroup: cgroupOf(Meta{Runtime: "docker", ID: "abc"}), Instance: ino, At: at(120)},
		Started{Key: key, At: at(50)},
		Exited{Key: key, At: at(100), Code: 2},
		Observed{Meta: m, State: State{StartedAt: at(50), FinishedAt: at(100), ExitCode: 2}, At: at(7000)},
	}
	for _, sweepEvery := range []bool{false, true} {
		for _, p := range permutations(len(evs)) {
			if slices.Index(p, 0) > slices.Index(p, 1) || slices.Index(p, 2) > slices.Index(p, 3) {
				continue // each stream keeps its own order
			}
			s := New(3 * time.Second)
			s.AddSource("docker")
			s.SetUp("docker", true, nil)
			for _, i := range p {
				s.Apply(evs[i])
				if sweepEvery {
					s.Sweep(at(7000))
				}
			}
			s.Sweep(at(60000))
			c, ok := find(s, key)
			if !ok || !c.Exited || c.ExitCode != 2 || c.Restarts != 0 {
				t.Fatalf("order %v (sweeps %v): exported %v %+v; want exit code 2, no restart", p, sweepEvery, ok, c)
			}
			s.Apply(Removed{Key: key, At: at(70000)})
			s.Sweep(at(72999))
			if _, ok := find(s, key); !ok {
				t.Fatalf("order %v (sweeps %v): gone before its retention", p, sweepEvery)
			}
			s.Sweep(at(73000))
			if _, ok := find(s, key); ok {
				t.Fatalf("order %v (sweeps %v): still there after its retention", p, sweepEvery)
			}
		}
	}
}

func find(s *Store, k string) (Container, bool) {
	for _, c := range s.Snapshot().Containers {
		if c.Meta.Key() == k {
			return c, true
		}
	}
	return Container{}, false
}
