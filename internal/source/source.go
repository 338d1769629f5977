// Package source holds what every runtime source shares: the loop that keeps
// a source connected, with back-off, the queue that lets a source read its
// runtime's event stream without ever stalling it, and the order in which a
// session applies its listing and the events queued meanwhile (Catchup).
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// Backoff bounds the wait between two attempts to connect to a runtime.
type Backoff struct{ Min, Max time.Duration }

// DefaultBackoff is the back-off of every source: retry soon, but never
// hammer a runtime that is down.
var DefaultBackoff = Backoff{Min: 250 * time.Millisecond, Max: 10 * time.Second}

// Session connects to a runtime, lists its containers, and follows its
// events until the connection breaks or ctx ends. It calls up once it is
// connected and has listed: what it found is in the store then. It returns
// why it ended.
type Session func(ctx context.Context, up func()) error

// Run keeps a source connected until ctx ends: it runs session again and
// again, waiting with exponential back-off between failed attempts, and keeps
// the source's up gauge, reconnect count and last error in st. log should
// already name the source (log.With("runtime", name)). A panic in a
// session is recovered, logged and counted as a failure, so one bad event
// never takes the exporter down.
//
// The back-off starts afresh only after a session that stayed connected for
// b.Max: one that breaks right after its listing would otherwise list again
// every b.Min. The first failure is logged as a warning, the retries while
// the source stays down at debug level, the recovery at info.
func Run(ctx context.Context, name string, st *store.Store, log *slog.Logger, b Backoff, session Session) {
	st.AddSource(name)
	wait := b.Min
	connectedBefore := false
	var downSince time.Time // zero while the source is up
	for ctx.Err() == nil {
		var upAt time.Time
		err := runSafely(ctx, session, func() {
			upAt = time.Now()
			st.SetUp(name, true, nil)
			switch {
			case !downSince.IsZero() && connectedBefore:
				st.CountReconnect(name)
				log.Info("source connected again", "down_for", upAt.Sub(downSince).Round(time.Millisecond))
			case !downSince.IsZero():
				log.Info("source connected", "after", upAt.Sub(downSince).Round(time.Millisecond))
			case connectedBefore:
				st.CountReconnect(name)
				log.Info("source connected again")
			default:
				log.Info("source connected")
			}
			connectedBefore, downSince = true, time.Time{}
		})
		if ctx.Err() != nil {
			return
		}
		st.SetUp(name, false, err)
		var p *PanicError
		if errors.As(err, &p) {
			st.CountPanic(name)
			log.Error("source panicked; recovered", "panic", p.Value, "stack", p.Stack)
		}
		if !upAt.IsZero() && time.Since(upAt) >= b.Max {
			wait = b.Min // it was up long enough: a new failure, not the same one
		}
		if downSince.IsZero() {
			downSince = time.Now()
			log.Warn("source down; retrying with back-off", "err", err, "retry_in", wait)
		} else {
			log.Debug("source still down; retrying", "err", err, "retry_in", wait, "down_for", time.Since(downSince).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, b.Max)
	}
}

func runSafely(ctx context.Context, session Session, up func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: string(debug.Stack())}
		}
	}()
	return session(ctx, up)
}

// PanicError is a recovered panic of a session.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprint("panic in source: ", e.Value) }

// Queue is an unbounded FIFO between the goroutine that reads a runtime's
// event stream and the one that applies the events: the reader never waits,
// so the runtime never drops the subscription for being slow.
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	err    error
	notify chan struct{}
}

// NewQueue returns an empty queue.
func NewQueue[T any]() *Queue[T] {
	return &Queue[T]{notify: make(chan struct{}, 1)}
}

// Push appends an item.
func (q *Queue[T]) Push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
}

// Close ends the queue with err once the items before it are taken.
func (q *Queue[T]) Close(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	q.signal()
}

func (q *Queue[T]) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// TakeAll returns every item queued now, without waiting.
func (q *Queue[T]) TakeAll() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// Next waits for items and returns all of them, or the error the queue was
// closed with once it is empty, or ctx's error.
func (q *Queue[T]) Next(ctx context.Context) ([]T, error) {
	for {
		q.mu.Lock()
		items, err := q.items, q.err
		q.items = nil
		q.mu.Unlock()
		if len(items) > 0 {
			return items, nil
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.notify:
		}
	}
}

// Catchup is how a session of every runtime source catches up and then
// follows: its event stream is subscribed to and queued before the listing,
// so that nothing that happens during or after the listing is missed, and
// the store's timestamps make what both report count once.
type Catchup[T any] struct {
	Runtime string // the runtime whose containers List lists (store.Runtime*)
	Store   *store.Store
	Events  *Queue[T] // the event stream, queued since before the listing
	// List lists every container the source follows, with its state.
	List func(context.Context) ([]store.Observed, error)
	// Early, if set, picks among the events queued during the listing those
	// to apply before it: events the runtime replayed after a reconnect
	// that the listing reflects already, so that the listing only adds what
	// they miss. The others are applied after the listing.
	Early func(T) bool
	// Apply applies one event; an error ends the session.
	Apply func(context.Context, T) error
}

// Follow lists, applies the listing, marks as removed every container of
// the runtime the listing no longer has, calls up, then applies the queued
// events and the stream's, in order, until the stream or ctx ends.
func (c Catchup[T]) Follow(ctx context.Context, up func()) error {
	obs, err := c.List(ctx)
	if err != nil {
		return err
	}
	var later []T
	for _, ev := range c.Events.TakeAll() {
		if c.Early == nil || !c.Early(ev) {
			later = append(later, ev)
		} else if err := c.Apply(ctx, ev); err != nil {
			return err
		}
	}
	present := make(map[string]bool, len(obs))
	for _, o := range obs {
		c.Store.Apply(o)
		present[o.Meta.Key()] = true
	}
	c.Store.MarkGone(c.Runtime, present, time.Now())
	up()
	for {
		for _, ev := range later {
			if err := c.Apply(ctx, ev); err != nil {
				return err
			}
		}
		if later, err = c.Events.Next(ctx); err != nil {
			return err
		}
	}
}
