package kernel

import (
	"testing"
	"time"
)

// A batch of records read late, as syslog(2)'s reader reads the ring up to
// seconds after: each keeps its own time, not the time of the read.
func TestClockKeepsTheTimesOfABatchReadLate(t *testing.T) {
	boot := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	c := clock{boot: boot, cur: boot, prev: boot, window: boot}
	// A record written at 100 s, read at once: the clock is right.
	c.calibrate(100*time.Second, boot.Add(100*time.Second+time.Millisecond))
	// Three kills at 200, 201.5 and 202 s, read together at 207 s.
	read := boot.Add(207 * time.Second)
	var got []time.Time
	for _, since := range []time.Duration{200 * time.Second, 201500 * time.Millisecond, 202 * time.Second} {
		c.calibrate(since, read)
		got = append(got, c.wall(since))
	}
	want := []time.Duration{200 * time.Second, 201500 * time.Millisecond, 202 * time.Second}
	for i := range got {
		if d := got[i].Sub(boot.Add(want[i])); d < 0 || d > time.Millisecond {
			t.Errorf("record %d: at %s, %s from its time %s", i, got[i].Format(time.StampMilli), d, want[i])
		}
	}
}

// The first records tell the clock better than CLOCK_MONOTONIC did, and a
// drift of the log's clock over weeks is followed within two windows.
func TestClockFollowsTheLogClock(t *testing.T) {
	boot := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	c := clock{boot: boot.Add(2 * time.Second), cur: boot.Add(2 * time.Second), prev: boot.Add(2 * time.Second), window: boot}
	c.calibrate(10*time.Second, boot.Add(10*time.Second))
	if !c.boot.Equal(boot) {
		t.Fatalf("after a record read at once: boot %s, want %s", c.boot, boot)
	}
	// The log's clock now runs 1 s behind: records read at once show it.
	drifted := boot.Add(time.Second)
	at := boot.Add(time.Minute)
	for range 3 * int(calibrationWindow/time.Minute) {
		at = at.Add(time.Minute)
		c.calibrate(at.Sub(drifted), at)
	}
	if !c.boot.Equal(drifted) {
		t.Errorf("after three windows of a drifted log clock: boot %s, want %s", c.boot, drifted)
	}
}
