package docker

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// running is the inspect of a container running since started, which last
// exited at finished (zero: never) after restarts restarts.
func running(id string, started, finished time.Time, restarts int) container.InspectResponse {
	fin := "0001-01-01T00:00:00Z"
	if !finished.IsZero() {
		fin = finished.UTC().Format(time.RFC3339Nano)
	}
	return container.InspectResponse{ID: id, Name: "/worker", RestartCount: restarts, Config: &container.Config{},
		State: &container.State{Status: "running", Running: true, Pid: 4242,
			StartedAt: started.UTC().Format(time.RFC3339Nano), FinishedAt: fin}}
}

// While the source is away, a container's main process is OOM-killed and
// the container restarted: the listing after the reconnect shows it
// running again, its exit code and OOM flag reset by the start, and dockerd
// replays the oom, die and start events queued meanwhile. Whether the
// replayed events reach the source before or after its listing, the kill
// counts once, the restart once, and the exit code is the kill's 137.
func TestEventsReplayedDuringTheListingCountOnce(t *testing.T) {
	// Which reaches the source first, the replay or the listing, is left to
	// chance: every run must count right either way.
	for i := range 10 {
		f := newFakeDockerd(t)
		const id = "c0ffee"
		t0 := time.Now().Add(-time.Hour)
		f.add(running(id, t0, time.Time{}, 0))
		st := store.New(time.Minute)
		s, err := New(f.host(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel) // before the fake closes: its streams end with ctx
		go s.Run(ctx)
		// The first session sees the start (so that the next stream asks
		// for what came since), then dockerd goes away.
		f.send(event(events.ActionStart, id, t0.UnixNano(), nil))
		waitFor(t, st, id, "the first session's start event", func(src store.SourceStatus, _ store.Container) bool { return src.Events == 1 })
		// The start makes the source inspect the container again: answered
		// before the state below, so that it cannot show an exit after the
		// time it was asked at (the store takes no exit code from such a
		// state; the die event then brings none back either).
		deadline := time.Now().Add(30 * time.Second)
		for f.inspected() < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%d inspects answered, want the listing's and the start's", f.inspected())
			}
			time.Sleep(time.Millisecond)
		}

		// The kill and the restart happen after the first listing, before
		// the second.
		t1 := time.Now()
		t2 := t1.Add(time.Millisecond)
		f.add(running(id, t2, t1, 1))
		f.happened(
			event(events.ActionOOM, id, t1.Add(-time.Millisecond).UnixNano(), nil),
			event(events.ActionDie, id, t1.UnixNano(), map[string]string{"exitCode": "137"}),
			event(events.ActionStart, id, t2.UnixNano(), nil),
		)
		f.breakStreams()
		c := waitFor(t, st, id, "the replay and the listing applied", func(src store.SourceStatus, c store.Container) bool {
			return src.Reconnects == 1 && src.Up && src.Events == 4
		})
		if c.OOMs != 1 || c.Restarts != 1 || !c.Exited || c.ExitCode != 137 {
			t.Fatalf("run %d: ooms %d, restarts %d, exited %v with %d; want 1 kill, 1 restart, exit code 137", i, c.OOMs, c.Restarts, c.Exited, c.ExitCode)
		}
	}
}

// waitFor waits until ok holds of the Docker source and the container id
// (zero if the store exports none), and returns that container.
func waitFor(t *testing.T, st *store.Store, id, what string, ok func(store.SourceStatus, store.Container) bool) store.Container {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var src store.SourceStatus
		for _, s := range st.Sources() {
			if s.Name == store.RuntimeDocker {
				src = s
			}
		}
		var c store.Container
		for _, x := range st.Snapshot().Containers {
			if x.Meta.ID == id {
				c = x
			}
		}
		if ok(src, c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: source %+v, container %+v", what, src, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
