package pipe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/source"
)

// DefaultQueue bounds the kills that wait for the companion: as many as
// client-go's event recorder queues itself.
const DefaultQueue = 1000

// DefaultBackoff is the wait between two starts of the companion: soon
// after a crash, once a minute while it keeps failing (a missing API
// token, say), so that its error is not logged every few seconds.
var DefaultBackoff = source.Backoff{Min: time.Second, Max: time.Minute}

// stopTimeout is how long the companion has to end once its input is
// closed, before it is killed.
var stopTimeout = 5 * time.Second

// Options configure a Companion: a program to run, or the socket of a
// companion that runs on its own.
type Options struct {
	Path string   // the companion program
	Args []string // its arguments
	Env  []string // its environment (nil: the exporter's)
	// Socket is the unix socket of a companion that runs on its own, in a
	// container of its own (the chart's sidecar): connect to it instead of
	// running Path.
	Socket string
	// Queue bounds the kills waiting to be written (DefaultQueue if 0).
	Queue int
	// Backoff between two starts (DefaultBackoff if zero).
	Backoff source.Backoff
}

// Companion runs the companion program, writes each kill sent to it to
// the program's standard input, relays what the program logs into the
// exporter's log, and starts it again with back-off whenever it exits; or,
// with Options.Socket, connects to a companion that runs on its own, writes
// the kills to the connection, and connects again whenever it is lost.
// Send never waits: while the companion is away or slow, kills wait in a
// bounded queue, and those beyond it are dropped and counted.
type Companion struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	queue    []Kill
	dropping bool // dropped since the queue was last empty: warned once
	notify   chan struct{}

	sent, dropped, starts atomic.Uint64
	up                    atomic.Bool
}

// New returns a Companion that is not started yet (Run). log should name
// the companion.
func New(opts Options, log *slog.Logger) *Companion {
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Backoff == (source.Backoff{}) {
		opts.Backoff = DefaultBackoff
	}
	return &Companion{opts: opts, log: log, notify: make(chan struct{}, 1)}
}

// Send queues k for the companion. It never waits; it drops k, and
// counts it, when the queue is full.
func (c *Companion) Send(k Kill) {
	c.mu.Lock()
	if len(c.queue) >= c.opts.Queue {
		warn := !c.dropping
		c.dropping = true
		c.mu.Unlock()
		c.dropped.Add(1)
		if warn {
			c.log.Warn("kills for Kubernetes Events dropped: the companion is away or slow, and the queue is full",
				"queue", c.opts.Queue, "up", c.up.Load())
		}
		return
	}
	c.queue = append(c.queue, k)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Sent counts the kills written to the companion.
func (c *Companion) Sent() uint64 { return c.sent.Load() }

// Dropped counts the kills dropped because the queue was full.
func (c *Companion) Dropped() uint64 { return c.dropped.Load() }

// Starts counts the times the companion was started, or connected to.
func (c *Companion) Starts() uint64 { return c.starts.Load() }

// Up reports whether the companion runs now (is connected to).
func (c *Companion) Up() bool { return c.up.Load() }

// Run starts the companion, or connects to it, and keeps it so until ctx
// ends; then it closes the companion's input, on which a program it started
// ends, and waits for it. The back-off starts afresh after a run that
// lasted Backoff.Max.
func (c *Companion) Run(ctx context.Context) {
	b := c.opts.Backoff
	wait := b.Min
	once, again := c.runOnce, "the companion ended; starting it again"
	if c.opts.Socket != "" {
		once, again = c.connectOnce, "no connection to the companion; connecting again"
	}
	for ctx.Err() == nil {
		t0 := time.Now()
		err := once(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(t0) >= b.Max {
			wait = b.Min
		}
		c.log.Warn(again, "err", err, "ran_for", time.Since(t0).Round(time.Millisecond), "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, b.Max)
	}
}

// runOnce runs the companion once, until it exits or ctx ends.
func (c *Companion) runOnce(ctx context.Context) error {
	// Not CommandContext: at the end its input is closed, so that it ends
	// of itself, and only then killed.
	cmd := exec.Command(c.opts.Path, c.opts.Args...)
	cmd.Env = c.opts.Env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.starts.Add(1)
	c.up.Store(true)
	defer c.up.Store(false)
	c.log.Debug("companion started", "pid", cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() {
		relay(stderr, c.log)
		// Wait only once its output is read: Wait closes the pipe.
		exited <- cmd.Wait()
	}()
	stopWriting, written := c.startWriting(ctx, stdin)
	select {
	case err = <-exited:
		stopWriting()
		<-written
		if err == nil {
			err = errors.New("exited with status 0")
		}
		return err
	case <-ctx.Done():
	}
	stopWriting()
	<-written
	_ = stdin.Close() // its end of input: it ends of itself
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
	return ctx.Err()
}

// connectOnce connects to the companion's socket and writes it the kills
// until the connection is lost or ctx ends. The companion writes nothing
// back: a read ends when it closes the connection.
func (c *Companion) connectOnce(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.opts.Socket)
	if err != nil {
		return err
	}
	c.starts.Add(1)
	c.up.Store(true)
	defer c.up.Store(false)
	c.log.Debug("connected to the companion", "socket", c.opts.Socket)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, conn)
	}()
	stopWriting, written := c.startWriting(ctx, conn)
	select {
	case <-closed:
		err = errors.New("the companion closed the connection")
	case <-written: // a write failed
		err = errors.New("the connection to the companion broke")
	case <-ctx.Done():
		err = ctx.Err()
	}
	stopWriting()
	<-written
	_ = conn.Close()
	<-closed
	return err
}

// startWriting writes the queued kills to w in a goroutine of its own
// (write) until stop is called or a write fails; written is closed when it
// has stopped.
func (c *Companion) startWriting(ctx context.Context, w io.WriteCloser) (stop func(), written <-chan struct{}) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.write(wctx, w)
	}()
	return cancel, done
}

// write writes the queued kills to w, one line each, until ctx ends or a
// write fails. Kills it could not write go back to the queue's front for
// the next run. A write blocks while the companion is slow: only this
// goroutine waits then, never Send.
func (c *Companion) write(ctx context.Context, w io.WriteCloser) {
	// A write blocked on a companion that neither reads nor exits ends
	// when the pipe is closed.
	stop := context.AfterFunc(ctx, func() { _ = w.Close() })
	defer stop()
	for {
		c.mu.Lock()
		items := c.queue
		c.queue = nil
		if len(items) == 0 {
			c.dropping = false
		}
		c.mu.Unlock()
		for i, k := range items {
			if err := Encode(w, k); err != nil {
				c.requeue(items[i:])
				if ctx.Err() == nil {
					c.log.Debug("writing to the companion failed", "err", err)
				}
				return
			}
			c.sent.Add(1)
		}
		if len(items) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-c.notify:
		}
	}
}

// requeue puts kills that were not written back before those queued since,
// within the bound: the newest beyond it are dropped.
func (c *Companion) requeue(items []Kill) {
	c.mu.Lock()
	q := append(items[:len(items):len(items)], c.queue...)
	n := max(len(q)-c.opts.Queue, 0)
	c.queue = q[:len(q)-n]
	c.mu.Unlock()
	c.dropped.Add(uint64(n))
}

// relay logs each line the companion writes to its standard error: its
// JSON log records as the exporter's own records at their level, anything
// else (a Go panic's trace) as an error with the line.
func relay(r io.Reader, log *slog.Logger) {
	err := lines(r, func(line []byte, tooLong bool) {
		if len(bytes.TrimSpace(line)) == 0 {
			return
		}
		if tooLong {
			log.Error("companion output, cut", "line", string(line[:200]))
			return
		}
		level, msg, attrs, err := parseRecord(line)
		if err != nil {
			log.Error("companion output", "line", string(line))
			return
		}
		log.Log(context.Background(), level, msg, attrs...)
	})
	if err != nil {
		log.Error("reading the companion's output", "err", err)
		// Never leave it blocked on a full pipe.
		_, _ = io.Copy(io.Discard, r)
	}
}

// parseRecord reads one JSON log record of log/slog's JSON handler: its
// level and message, and its other attributes in order (its time and
// source are the companion's, and left out).
func parseRecord(line []byte) (slog.Level, string, []any, error) {
	level, msg := slog.LevelInfo, ""
	var attrs []any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0, "", nil, errors.New("not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return 0, "", nil, err
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return 0, "", nil, err
		}
		switch key {
		case slog.TimeKey, slog.SourceKey:
		case slog.LevelKey:
			s, _ := v.(string)
			if err := level.UnmarshalText([]byte(s)); err != nil {
				return 0, "", nil, fmt.Errorf("level %q: %w", s, err)
			}
		case slog.MessageKey:
			msg, _ = v.(string)
		default:
			attrs = append(attrs, key, v)
		}
	}
	if _, err := dec.Token(); err != nil {
		return 0, "", nil, err
	}
	if dec.More() || strings.TrimSpace(string(line[dec.InputOffset():])) != "" {
		return 0, "", nil, errors.New("more after the record")
	}
	return level, msg, attrs, nil
}
