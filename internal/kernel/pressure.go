package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// What comes before an OOM kill, as a container's memory cgroup counts it:
// how often its usage hit the limit (v2 memory.events max, v1
// memory.failcnt and memory.memsw.failcnt) or memory.high (v2 memory.events high), and how long its
// tasks stalled on memory (v2 memory.pressure, PSI), and, for a Kubernetes
// container, how often its pod's limit was hit. memory.events is read
// with the OOM counters, whenever the kernel notifies a change of it; the
// other files at most every pressureEvery and at least at every walk of
// the hierarchy, and at once when a kill is counted.

// pressureEvery is how often, at most, a cgroup's memory.pressure or
// failcnt files are read between two walks: the walk every rescanInterval
// reads each, and on cgroup v2 a notified change of memory.events reads it
// too, if this long has passed since.
const pressureEvery = rescanInterval / 2

// pressureDue makes the next reading of every tracked cgroup read its
// memory.pressure or failcnt files: the walk's.
func (c *cgroups) pressureDue() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.byDir {
		t.pressureAt = time.Time{}
	}
}

// pressure returns what the cgroup dir counts of memory pressure, from its
// OOM counters file b (v2 memory.events) and, when due (or kill, a counted
// kill), its other files; t.pressureAt tells when those were read last.
// sampled says they were read: every counter the kernel gives is fresh.
// With c.mu not held.
func (c *cgroups) pressure(h Hierarchy, t *tracked, dir string, b []byte, at time.Time, kill bool) (p store.MemoryPressure, sampled bool) {
	if h.V2 {
		// memory.events, read already: its limit hits are always fresh.
		var err error
		if p, err = ParseLimitEvents(b); err != nil {
			c.log.Warn("cannot parse a cgroup's memory.events limit hits", "cgroup", t.c.Dir, "err", err)
			p = store.MemoryPressure{}
		}
	}
	c.mu.Lock()
	due := kill || t.pressureAt.IsZero() || at.Sub(t.pressureAt) >= pressureEvery
	if due {
		t.pressureAt = at
	}
	c.mu.Unlock()
	if !due {
		return p, false
	}
	var err error
	if h.V2 {
		p.Waiting, p.Stalled, p.HasStall, err = readPSI(dir)
	} else {
		p.LimitHits, p.HasLimitHits, err = readFailcnt(dir)
	}
	if err != nil {
		c.log.Warn("cannot read a cgroup's memory pressure", "cgroup", t.c.Dir, "err", err)
		return p, false
	}
	c.podPressure(h, t, &p)
	return p, true
}

// podPressure reads the limit hits of a Kubernetes container's pod into p.
func (c *cgroups) podPressure(h Hierarchy, t *tracked, p *store.MemoryPressure) {
	pod, ok := podDir(t.c)
	if !ok {
		return
	}
	var err error
	p.PodLimitHits, p.HasPodLimitHits, err = readPodLimitHits(h, filepath.Join(h.Root, pod))
	if err != nil {
		c.log.Warn("cannot read the limit hits of a container's pod", "cgroup", pod, "err", err)
		p.PodLimitHits, p.HasPodLimitHits = 0, false
	}
}

// podDir returns the cgroup of a Kubernetes container's pod: the parent of
// its own, which ParseContainerPath found named as the pod's (PodUID).
func podDir(c ContainerCgroup) (string, bool) {
	return filepath.Dir(c.Dir), c.PodUID != ""
}

// readPodLimitHits reads how often a pod's own limit was hit. Kubernetes
// sets the pod's cgroup limit to the sum of its containers' (and the pod's
// overhead): for a pod of one container, the same limit as the container's,
// which the pod's cgroup, holding the sandbox's pause process too, reaches
// first. Each charge counts a hit only in the cgroup whose limit it hit, so
// such a container's own count stays 0 while it thrashes. v1:
// memory.failcnt (and memsw's) of the pod's cgroup alone; v2:
// memory.events.local max, the hits of the pod's own limit (memory.events
// adds those of its containers).
func readPodLimitHits(h Hierarchy, dir string) (uint64, bool, error) {
	if !h.V2 {
		return readFailcnt(dir)
	}
	b, err := readFile(filepath.Join(dir, "memory.events.local"))
	if absent(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	p, err := ParseLimitEvents(b) // the same keys as memory.events
	return p.LimitHits, err == nil, err
}

// absent reports whether a cgroup file's read error says only that the
// kernel gives no such counter (a kernel without PSI, or with it off for
// the cgroup; v1 without swap accounting), or that the cgroup was removed
// while it was read.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV)
}

// readPSI reads a v2 cgroup's memory.pressure; ok false where it has none.
func readPSI(dir string) (some, full time.Duration, ok bool, err error) {
	b, err := readFile(filepath.Join(dir, "memory.pressure"))
	if absent(err) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	some, full, err = ParsePSI(b)
	return some, full, err == nil, err
}

// readFailcnt reads a v1 cgroup's limit hits: memory.failcnt, and
// memory.memsw.failcnt where swap is accounted. The kernel charges memory
// and swap together first (memsw), then memory: a charge that fails at
// memsw's limit counts there, one that fails at memory's limit in
// memory.failcnt, so their sum is every hit. Where the two limits are one
// (no swap: Kubernetes' containers on v1, docker --memory-swap equal to
// --memory), every hit is memsw's; Linux 6.18 no longer counts those.
func readFailcnt(dir string) (n uint64, ok bool, err error) {
	for _, name := range []string{"memory.failcnt", "memory.memsw.failcnt"} {
		b, err := readFile(filepath.Join(dir, name))
		if absent(err) {
			continue
		}
		if err != nil {
			return 0, false, err
		}
		v, err := ParseFailcnt(b)
		if err != nil {
			return 0, false, err
		}
		n, ok = n+v, true
	}
	return n, ok, nil
}

// ParseLimitEvents reads the limit hits of cgroup v2's memory.events: max
// (usage about to go over memory.max) and high (over memory.high).
func ParseLimitEvents(b []byte) (store.MemoryPressure, error) {
	hits, okMax, err := field(b, "max")
	if err != nil {
		return store.MemoryPressure{}, err
	}
	high, okHigh, err := field(b, "high")
	if err != nil {
		return store.MemoryPressure{}, err
	}
	if !okMax || !okHigh {
		return store.MemoryPressure{}, errors.New("memory.events has no max or no high")
	}
	return store.MemoryPressure{LimitHits: hits, HasLimitHits: true, HighHits: high, HasHighHits: true}, nil
}

// ParsePSI reads a pressure file of cgroup v2 (memory.pressure):
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=1234
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=567
//
// and returns the total stall time of each line: some (some task waited)
// and full (every task that was not idle waited at once).
func ParsePSI(b []byte) (some, full time.Duration, err error) {
	var found int
	for _, line := range strings.Split(string(b), "\n") {
		kind, rest, ok := strings.Cut(line, " ")
		if !ok || kind != "some" && kind != "full" {
			continue
		}
		var total time.Duration
		var has bool
		for _, f := range strings.Fields(rest) {
			v, ok := strings.CutPrefix(f, "total=")
			if !ok {
				continue
			}
			us, err := strconv.ParseUint(v, 10, 63)
			if err != nil || us > uint64(1<<63-1)/uint64(time.Microsecond) {
				return 0, 0, fmt.Errorf("%s total %q: not a count of microseconds", kind, v)
			}
			total, has = time.Duration(us)*time.Microsecond, true
		}
		if !has {
			return 0, 0, fmt.Errorf("%s line without total=", kind)
		}
		if kind == "some" {
			some = total
		} else {
			full = total
		}
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("no some and full lines")
	}
	return some, full, nil
}

// ParseFailcnt reads cgroup v1's memory.failcnt (or memory.memsw.failcnt):
// how often usage hit the limit.
func ParseFailcnt(b []byte) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory.failcnt: %w", err)
	}
	return n, nil
}
