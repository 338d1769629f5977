package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

func TestQueueKeepsOrderAndEndsWithItsError(t *testing.T) {
	q := NewQueue[int]()
	for i := range 1000 {
		q.Push(i)
	}
	boom := errors.New("stream closed")
	q.Close(boom)
	ctx := context.Background()
	items, err := q.Next(ctx)
	if err != nil || len(items) != 1000 || items[0] != 0 || items[999] != 999 {
		t.Fatalf("got %d items, err %v", len(items), err)
	}
	if _, err := q.Next(ctx); !errors.Is(err, boom) {
		t.Fatalf("after the items: %v, want %v", err, boom)
	}
}

func TestQueueNextWaitsForAPush(t *testing.T) {
	q := NewQueue[string]()
	go func() { q.Push("x") }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items, err := q.Next(ctx)
	if err != nil || len(items) != 1 || items[0] != "x" {
		t.Fatalf("got %v, %v", items, err)
	}
	cancel()
	if _, err := q.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A failing session is retried; a panicking one is recovered; the source's
// state in the store follows.
func TestRunRetriesAndRecoversPanics(t *testing.T) {
	st := store.New(time.Minute)
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, "fake", st, quietLog(), Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond},
			func(ctx context.Context, up func()) error {
				switch calls.Add(1) {
				case 1:
					return errors.New("connection refused")
				case 2:
					up()
					panic("bad event")
				default:
					up()
					<-ctx.Done()
					return ctx.Err()
				}
			})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		src := st.Sources()
		if len(src) == 1 && src[0].Up && calls.Load() >= 3 {
			if src[0].Reconnects != 1 {
				t.Fatalf("reconnects %d, want 1 (the connection after the panic)", src[0].Reconnects)
			}
			if src[0].Panics != 1 {
				t.Fatalf("panics %d, want 1", src[0].Panics)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("source never came up again: %+v, %d calls", src, calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

func TestRunReportsWhyItIsDown(t *testing.T) {
	st := store.New(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Run(ctx, "fake", st, quietLog(), Backoff{Min: time.Hour, Max: time.Hour},
		func(context.Context, func()) error { return errors.New("dial unix /x.sock: no such file") })
	deadline := time.Now().Add(10 * time.Second)
	for {
		src := st.Sources()
		if len(src) == 1 && src[0].LastError != "" {
			if src[0].Up || src[0].LastError != "dial unix /x.sock: no such file" {
				t.Fatalf("%+v", src[0])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no error recorded: %+v", src)
		}
		time.Sleep(time.Millisecond)
	}
}

// A session that connects and breaks at once (a stream that fails right
// after its listing) is retried with a growing back-off, not every Min: only
// a session that stayed up for Max starts the back-off afresh.
func TestBackoffGrowsWhenSessionsBreakAtOnce(t *testing.T) {
	st := store.New(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := Backoff{Min: time.Millisecond, Max: 64 * time.Millisecond}
	const attempts = 8
	calls := make(chan time.Time, attempts)
	go Run(ctx, "fake", st, quietLog(), b, func(ctx context.Context, up func()) error {
		up()
		select {
		case calls <- time.Now():
		default:
			<-ctx.Done()
		}
		return errors.New("event stream: unexpected EOF")
	})
	var first, last time.Time
	for i := range attempts {
		select {
		case last = <-calls:
		case <-time.After(30 * time.Second):
			t.Fatalf("attempt %d never came", i+1)
		}
		if i == 0 {
			first = last
		}
	}
	// 1+2+4+...+64 ms of back-off at least between the first and the eighth.
	if min := 127 * time.Millisecond; last.Sub(first) < min {
		t.Fatalf("%d attempts within %s, want at least %s of back-off between them", attempts, last.Sub(first), min)
	}
}

// A source that stays down is logged once as a warning, its retries at
// debug level, and its recovery at info: not a warning every 10 s for ever.
func TestDownSourceLogsOnceThenAtDebug(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("kernel", "kmsg")
	st := store.New(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	connected := make(chan struct{})
	go Run(ctx, "kmsg", st, log, Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}, func(ctx context.Context, up func()) error {
		if calls.Add(1) <= 5 {
			return errors.New("open /dev/kmsg: permission denied")
		}
		up()
		close(connected)
		<-ctx.Done()
		return ctx.Err()
	})
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatal("never connected")
	}
	cancel()
	out := buf.String()
	warn, debug, info := strings.Count(out, "level=WARN"), strings.Count(out, "level=DEBUG"), strings.Count(out, "level=INFO")
	if warn != 1 || debug != 4 || info != 1 || strings.Count(out, "kernel=kmsg") != 6 || !strings.Contains(out, "source down") {
		t.Fatalf("%d warnings, %d debug, %d info lines, want 1, 4, 1 naming the source:\n%s", warn, debug, info, out)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A session applies, in this order: the events queued during the listing
// that Early picks, the listing (marking gone what it no longer has), up,
// the other queued events, then the stream's; an error of Apply ends it.
func TestCatchupOrder(t *testing.T) {
	st := store.New(time.Minute)
	st.AddSource(store.RuntimeDocker)
	at := time.Now()
	listed := func(id string) store.Observed {
		return store.Observed{Meta: store.Meta{Runtime: store.RuntimeDocker, ID: id, Name: id}, State: store.State{Running: true, StartedAt: at}, At: at}
	}
	st.Apply(listed("gone")) // seen by an earlier session, not in this listing
	q := NewQueue[string]()
	var order []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := Catchup[string]{
		Runtime: store.RuntimeDocker,
		Store:   st,
		Events:  q,
		List: func(context.Context) ([]store.Observed, error) {
			order = append(order, "list")
			q.Push("early-1") // the runtime's events during the listing
			q.Push("late-1")
			q.Push("early-2")
			return []store.Observed{listed("kept")}, nil
		},
		Early: func(ev string) bool { return strings.HasPrefix(ev, "early") },
		Apply: func(_ context.Context, ev string) error {
			order = append(order, ev)
			if ev == "late-2" {
				return errors.New("stop")
			}
			return nil
		},
	}
	err := c.Follow(ctx, func() {
		var tracked int
		for _, s := range st.Sources() {
			if s.Name == store.RuntimeDocker {
				tracked = s.Containers
			}
		}
		order = append(order, fmt.Sprintf("up with %d tracked", tracked))
		q.Push("late-2") // the stream's, after up
	})
	if err == nil || err.Error() != "stop" {
		t.Fatalf("Follow ended with %v, want Apply's error", err)
	}
	want := []string{"list", "early-1", "early-2", "up with 1 tracked", "late-1", "late-2"}
	if !slices.Equal(order, want) {
		t.Fatalf("order %q, want %q", order, want)
	}
}
