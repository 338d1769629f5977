package source

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
