package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// What comes before an OOM kill, as a container's memory cgroup counts it:
// how often its usage hit the limit (v2 memory.events max, v1
// memory.failcnt) or memory.high (v2 memory.events high), and how long its
// tasks stalled on memory (v2 memory.pressure, PSI). memory.events is read
// with the OOM counters, whenever the kernel notifies a change of it; the
// other files at most every pressureEvery and at least at every walk of
// the hierarchy, and at once when a kill is counted.

// pressureEvery is how often, at most, a cgroup's memory.pressure or
// memory.failcnt is read between two walks: the walk every rescanInterval
// reads each, and on cgroup v2 a notified change of memory.events reads it
// too, if this long has passed since.
const pressureEvery = rescanInterval / 2

// pressureDue makes the next reading of every tracked cgroup read its
// pressure file: the walk's.
func (c *cgroups) pressureDue() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.byDir {
		t.pressureAt = time.Time{}
	}
}

// pressureFile is the file that holds a cgroup's stall or limit-hit counts
// read apart from the OOM counters: memory.pressure on v2, memory.failcnt
// on v1.
func (h Hierarchy) pressureFile() string {
	if h.V2 {
		return "memory.pressure"
	}
	return "memory.failcnt"
}

// pressure returns what the cgroup dir counts of memory pressure, from its
// OOM counters file b (v2 memory.events) and, when due (or kill, a counted
// kill), its pressure file; t.pressureAt tells when that was read last.
// sampled says the pressure file was read: every counter the kernel gives
// is fresh. With c.mu not held.
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
	f, err := os.ReadFile(filepath.Join(dir, h.pressureFile()))
	switch {
	case err == nil && h.V2:
		some, full, perr := ParsePSI(f)
		if perr != nil {
			c.log.Warn("cannot parse a cgroup's memory.pressure", "cgroup", t.c.Dir, "err", perr)
			return p, false
		}
		p.Waiting, p.Stalled, p.HasStall = some, full, true
	case err == nil:
		n, perr := ParseFailcnt(f)
		if perr != nil {
			c.log.Warn("cannot parse a cgroup's memory.failcnt", "cgroup", t.c.Dir, "err", perr)
			return p, false
		}
		p.LimitHits, p.HasLimitHits = n, true
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENODEV):
		// No PSI (a kernel built or booted without it, or turned off for
		// the cgroup), or the cgroup was removed while it was read: a
		// sample all the same, of what memory.events tells.
	default:
		c.log.Warn("cannot read a cgroup's "+h.pressureFile(), "cgroup", t.c.Dir, "err", err)
		return p, false
	}
	return p, true
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

// ParseFailcnt reads cgroup v1's memory.failcnt: how often usage hit the
// limit.
func ParseFailcnt(b []byte) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory.failcnt: %w", err)
	}
	return n, nil
}
