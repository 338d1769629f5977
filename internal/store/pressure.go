package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The warnings before an OOM kill, as a container's memory cgroup counts
// them: how often its usage hit the limit or memory.high, and how long its
// tasks stalled on memory. Each cgroup instance counts from 0 (a restart
// makes a new cgroup), so a container's count is the sum over its
// instances, as its OOM count is (oom.go): it never goes down while the
// container exists. A few readings kept at hand tell each kill record what
// came in the minute before it.

// MemoryPressure is what a memory cgroup counts of the pressure before an
// OOM kill; each Has field says the kernel gives that counter (cgroup v1
// has no high and no PSI).
type MemoryPressure struct {
	// LimitHits: usage hit the limit (v2 memory.events max, v1
	// memory.failcnt): the kernel reclaimed, and if that failed, OOM-killed.
	LimitHits uint64
	// HighHits: usage went over memory.high, and the tasks were throttled
	// to reclaim (v2 memory.events high).
	HighHits uint64
	// Waiting and Stalled are PSI's total stall time on memory (v2
	// memory.pressure): some task waited (some), every task that was not
	// idle waited at once (full).
	Waiting, Stalled time.Duration
	// PodLimitHits: usage of a Kubernetes container's pod hit the pod's
	// limit (its own hits, v1 memory.failcnt, v2 memory.events.local max).
	// The pod's cgroup outlives the container's instances: its count is
	// the highest reading, never a sum over them.
	PodLimitHits uint64
	// Which of them were read; the flags together, so that the 10,000
	// containers' counts and samples take no padding after each.
	HasLimitHits, HasHighHits, HasStall, HasPodLimitHits bool
}

// merge takes the highest of each counter of p and q that q has.
func (p *MemoryPressure) merge(q MemoryPressure) {
	if q.HasLimitHits {
		p.LimitHits, p.HasLimitHits = max(p.LimitHits, q.LimitHits), true
	}
	if q.HasHighHits {
		p.HighHits, p.HasHighHits = max(p.HighHits, q.HighHits), true
	}
	if q.HasStall {
		p.Waiting, p.Stalled, p.HasStall = max(p.Waiting, q.Waiting), max(p.Stalled, q.Stalled), true
	}
	if q.HasPodLimitHits {
		p.PodLimitHits, p.HasPodLimitHits = max(p.PodLimitHits, q.PodLimitHits), true
	}
}

// add adds q's counters, those of another instance of the container's
// cgroup, to p; of the pod's, which both read, it keeps the highest.
func (p *MemoryPressure) add(q MemoryPressure) {
	p.LimitHits += q.LimitHits
	p.HighHits += q.HighHits
	p.Waiting += q.Waiting
	p.Stalled += q.Stalled
	p.PodLimitHits = max(p.PodLimitHits, q.PodLimitHits)
	p.HasLimitHits = p.HasLimitHits || q.HasLimitHits
	p.HasHighHits = p.HasHighHits || q.HasHighHits
	p.HasStall = p.HasStall || q.HasStall
	p.HasPodLimitHits = p.HasPodLimitHits || q.HasPodLimitHits
}

// since is what p counted beyond an earlier reading of the same counters;
// a counter only one of them has is not known.
func (p MemoryPressure) since(earlier MemoryPressure) MemoryPressure {
	sub := func(a, b uint64) uint64 { return a - min(a, b) }
	return MemoryPressure{
		LimitHits: sub(p.LimitHits, earlier.LimitHits), HasLimitHits: p.HasLimitHits && earlier.HasLimitHits,
		HighHits: sub(p.HighHits, earlier.HighHits), HasHighHits: p.HasHighHits && earlier.HasHighHits,
		Waiting: p.Waiting - min(p.Waiting, earlier.Waiting), Stalled: p.Stalled - min(p.Stalled, earlier.Stalled),
		HasStall:     p.HasStall && earlier.HasStall,
		PodLimitHits: sub(p.PodLimitHits, earlier.PodLimitHits), HasPodLimitHits: p.HasPodLimitHits && earlier.HasPodLimitHits,
	}
}

// Before is what a container's cgroup counted of memory pressure before a
// kill: from one reading of its counters, at or before a minute before the
// kill (BeforeWindow), to the first one after it. The readings come at
// least every 30 s and at each kill, so the window is a minute to a
// minute and a half; shorter where the container or the exporter is
// younger, and it may end before the kill where no reading came after it.
type Before struct {
	From, To time.Time
	MemoryPressure
}

// BeforeWindow is how far before a kill its record's Before begins.
const BeforeWindow = time.Minute

// samplesKept and sampleEvery bound the readings a container keeps for
// Before: the newest, and those before it at least sampleEvery apart,
// which then reach back at least BeforeWindow.
const (
	samplesKept = 6
	sampleEvery = BeforeWindow / (samplesKept - 2)
)

// pressureCount is everything that goes into a container's MemoryPressure:
//
//	settled + Σ over cgroup instances of each one's highest reading
type pressureCount struct {
	instances []pressureInstance
	settled   MemoryPressure // of the instances folded out beyond maxInstances
	// folded is the newest instance folded into settled: a reading of it,
	// or of an older one, that comes late is not counted again.
	folded  uint64
	samples []pressureSample
}

type pressureInstance struct {
	id uint64
	p  MemoryPressure
}

// pressureSample is the container's count at a reading that read every
// counter the kernel gives.
type pressureSample struct {
	at time.Time
	p  MemoryPressure
}

// reading takes a reading of an instance's counters.
func (c *pressureCount) reading(ev KernelOOMCount) {
	if ev.Instance <= c.folded && c.folded != 0 {
		return
	}
	i := len(c.instances) - 1
	for ; i >= 0 && c.instances[i].id != ev.Instance; i-- {
	}
	if i < 0 {
		c.instances = append(c.instances, pressureInstance{id: ev.Instance})
		if len(c.instances) > maxInstances {
			old := c.instances[0]
			c.settled.add(old.p)
			c.folded = max(c.folded, old.id)
			c.instances = c.instances[1:]
		}
		i = len(c.instances) - 1
	}
	c.instances[i].p.merge(ev.Pressure)
	if ev.PressureSampled {
		c.sample(ev.At)
	}
}

// total is the container's count.
func (c *pressureCount) total() MemoryPressure {
	p := c.settled
	for _, in := range c.instances {
		p.add(in.p)
	}
	return p
}

// sample keeps the count at t: in the place of the newest sample if that
// came less than sampleEvery after the one before it.
func (c *pressureCount) sample(t time.Time) {
	s := pressureSample{at: t, p: c.total()}
	n := len(c.samples)
	switch {
	case n >= 2 && c.samples[n-1].at.Sub(c.samples[n-2].at) < sampleEvery:
		c.samples[n-1] = s
	case n < samplesKept:
		c.samples = append(c.samples, s)
	default:
		copy(c.samples, c.samples[1:])
		c.samples[n-1] = s
	}
}

// before is what the container counted in the minute or so before a kill
// at t; nil where fewer than two readings tell.
func (c *pressureCount) before(t time.Time) *Before {
	if len(c.samples) < 2 {
		return nil
	}
	end := c.samples[len(c.samples)-1]
	for _, s := range c.samples {
		if !s.at.Before(t) {
			end = s // the first reading after the kill
			break
		}
	}
	start := c.samples[0]
	for _, s := range c.samples {
		if s.at.After(t.Add(-BeforeWindow)) {
			break
		}
		start = s
	}
	if !start.at.Before(end.at) {
		return nil
	}
	return &Before{From: start.at, To: end.at, MemoryPressure: end.p.since(start.p)}
}

// stampBefore tells a kill record in a container what its cgroup counted
// before the kill, when the record is announced: the reading the kill
// brought is in by then. With s.mu held.
func (s *Store) stampBefore(k *Kill) {
	if e := s.containers[k.key]; e != nil && k.key != "" && k.Before == nil {
		k.Before = e.pressure.before(k.Time)
	}
}

// Summary says in one sentence what the container's cgroup counted before
// the kill at kill: "In the 72 s before the kill the container hit its
// limit 1204 times and waited for memory 3.1 s, 2.0 s of it with every
// process stalled."
func (b *Before) Summary(kill time.Time) string {
	span := fmt.Sprintf("In the %.0f s", b.To.Sub(b.From).Seconds())
	if late := kill.Sub(b.To); late >= time.Second {
		span += fmt.Sprintf(" up to %.0f s before the kill", late.Seconds())
	} else {
		span += " before the kill"
	}
	var parts []string
	switch {
	case b.HasLimitHits && b.LimitHits == 0:
		parts = append(parts, "did not hit its limit")
	case b.HasLimitHits:
		parts = append(parts, "hit its limit "+times(b.LimitHits))
	}
	if b.HasPodLimitHits && b.PodLimitHits > 0 {
		parts = append(parts, "saw its pod hit the pod's limit "+times(b.PodLimitHits))
	}
	if b.HasHighHits && b.HighHits > 0 {
		parts = append(parts, "went over memory.high "+times(b.HighHits))
	}
	if b.HasStall {
		parts = append(parts, fmt.Sprintf("waited for memory %s, %s of it with every process stalled", seconds(b.Waiting), seconds(b.Stalled)))
	}
	if len(parts) == 0 {
		return ""
	}
	if !b.HasStall && !b.HasHighHits {
		parts[len(parts)-1] += " (cgroup v1 counts no stall)"
	}
	return span + " the container " + strings.Join(parts, " and ") + "."
}

// seconds writes a stall in seconds, to a tenth.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
}

// times writes a count of times: once, 12 times.
func times(n uint64) string {
	if n == 1 {
		return "once"
	}
	return strconv.FormatUint(n, 10) + " times"
}
