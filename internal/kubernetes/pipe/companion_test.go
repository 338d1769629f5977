package pipe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/source"
)

// fakeCompanion is a companion that appends every line it reads to the
// file its first argument names, logs a JSON record at its start and a
// Go-like panic before it exits 3 on a kill in pod "crash", and appends
// "eof" to FILE.eof when its input ends.
const fakeCompanion = `#!/bin/sh
echo '{"time":"2026-11-29T10:00:00Z","level":"WARN","source":"main.go:1","msg":"fake companion started","node":"'"$2"'"}' >&2
while IFS= read -r line; do
	printf '%s\n' "$line" >> "$1"
	case "$line" in *'"pod":"crash"'*) echo 'panic: crash' >&2; exit 3 ;; esac
done
echo eof >> "$1.eof"
`

// syncBuffer is a log destination the test reads while the companion writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fake struct {
	script, out string
	logs        *syncBuffer
	log         *slog.Logger
}

func newFake(t *testing.T, script string) *fake {
	t.Helper()
	dir := t.TempDir()
	f := &fake{script: filepath.Join(dir, "companion"), out: filepath.Join(dir, "kills"), logs: &syncBuffer{}}
	if err := os.WriteFile(f.script, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f.log = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return f
}

// pods are the pods of the kills the fake companion read, in order.
func (f *fake) pods(t *testing.T) []string {
	t.Helper()
	var pods []string
	b, err := os.ReadFile(f.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := Read(bytes.NewReader(b), func(k Kill) { pods = append(pods, k.Pod) },
		func(line []byte, err error) { t.Errorf("the companion read a bad line %q: %v", line, err) }); err != nil {
		t.Fatal(err)
	}
	return pods
}

func kill(pod string) Kill {
	return Kill{Time: time.Now(), Namespace: "ns", Pod: pod, PodUID: "uid-" + pod, Container: "c", From: "kernel log"}
}

// waitFor polls cond every 10 ms until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, c *Companion) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// Each kill is written to the companion once, in order; the companion's
// log records reach the exporter's log; a companion that dies is started
// again and gets the kills sent after; at the end its input is closed and
// it ends of itself.
func TestCompanionDeliversAndRestarts(t *testing.T) {
	f := newFake(t, fakeCompanion)
	c := New(Options{Path: f.script, Args: []string{f.out, "node-1"}, Backoff: source.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}}, f.log)
	stop := run(t, c)
	c.Send(kill("a"))
	c.Send(kill("b"))
	waitFor(t, "kills a and b read", func() bool { return len(f.pods(t)) == 2 })
	if !c.Up() || c.Starts() != 1 {
		t.Errorf("up %v after %d starts, want up after 1", c.Up(), c.Starts())
	}
	c.Send(kill("crash"))
	waitFor(t, "the companion started again", func() bool { return c.Starts() == 2 && c.Up() })
	c.Send(kill("c"))
	waitFor(t, "kill c read", func() bool { return len(f.pods(t)) == 4 })
	if got := strings.Join(f.pods(t), " "); got != "a b crash c" {
		t.Errorf("the companion read %q, want \"a b crash c\"", got)
	}
	if c.Sent() != 4 || c.Dropped() != 0 {
		t.Errorf("sent %d dropped %d, want 4 and 0", c.Sent(), c.Dropped())
	}
	stop()
	if c.Up() {
		t.Errorf("up after Run returned")
	}
	if b, err := os.ReadFile(f.out + ".eof"); err != nil || string(b) != "eof\n" {
		t.Errorf("the companion did not see its input end: %q %v", b, err)
	}
	logs := f.logs.String()
	for _, want := range []string{
		`level=WARN msg="fake companion started" node=node-1`,
		`level=ERROR msg="companion output" line="panic: crash"`,
		`level=WARN msg="the companion ended; starting it again" err="exit status 3"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "fake companion started"); n != 2 {
		t.Errorf("the companion logged its start %d times, want 2", n)
	}
}

// While no companion runs, kills wait in the queue up to its bound; those
// beyond it are dropped and counted; the companion then gets the queued
// ones, oldest first.
func TestCompanionAwayQueueBound(t *testing.T) {
	f := newFake(t, fakeCompanion)
	c := New(Options{Path: f.script, Args: []string{f.out, "n"}, Queue: 10}, f.log)
	for i := range 15 {
		c.Send(kill(fmt.Sprint(i)))
	}
	if c.Dropped() != 5 {
		t.Errorf("dropped %d, want 5", c.Dropped())
	}
	if n := strings.Count(f.logs.String(), "kills for Kubernetes Events dropped"); n != 1 {
		t.Errorf("the drops were logged %d times, want once:\n%s", n, f.logs.String())
	}
	run(t, c)
	waitFor(t, "10 kills read", func() bool { return len(f.pods(t)) == 10 })
	if got := strings.Join(f.pods(t), " "); got != "0 1 2 3 4 5 6 7 8 9" {
		t.Errorf("the companion read %q", got)
	}
	if c.Sent() != 10 {
		t.Errorf("sent %d, want 10", c.Sent())
	}
}

// A companion that never reads: Send never waits; once the pipe and the
// queue are full, kills are dropped and counted, every kill is either
// written, queued or dropped; at the end the companion, which does not end
// of itself, is killed.
func TestCompanionSlowQueueBound(t *testing.T) {
	f := newFake(t, "#!/bin/sh\nexec sleep 1000\n")
	c := New(Options{Path: f.script, Queue: 100}, f.log)
	stopTimeout = 100 * time.Millisecond
	t.Cleanup(func() { stopTimeout = 5 * time.Second })
	stop := run(t, c)
	waitFor(t, "the companion up", c.Up)
	n := 0
	send := func() { c.Send(kill(fmt.Sprint(n))); n++ }
	for range 5000 { // some 150 bytes each: more than a pipe holds
		send()
	}
	// The writer may have taken a batch from the queue just before it
	// blocked: more kills fill the queue again.
	waitFor(t, "the writer blocked on a full pipe", func() bool {
		c.mu.Lock()
		full := len(c.queue) == c.opts.Queue
		c.mu.Unlock()
		if !full {
			send()
		}
		return full
	})
	// The writer holds at most one batch of kills taken from the queue
	// that it could not write yet.
	if d := c.Dropped(); d == 0 || c.Sent()+d+uint64(c.opts.Queue) > uint64(n) {
		t.Errorf("sent %d, dropped %d, queued %d of %d", c.Sent(), d, c.opts.Queue, n)
	}
	stop()
	if c.Up() {
		t.Error("the companion still up")
	}
}

// A program that cannot be started is retried with back-off, and logged.
func TestCompanionMissingProgram(t *testing.T) {
	f := newFake(t, fakeCompanion)
	c := New(Options{Path: filepath.Join(t.TempDir(), "missing"), Backoff: source.Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}}, f.log)
	run(t, c)
	waitFor(t, "three attempts logged", func() bool {
		return strings.Count(f.logs.String(), "the companion ended; starting it again") >= 3
	})
	if c.Starts() != 0 || c.Up() {
		t.Errorf("starts %d, up %v", c.Starts(), c.Up())
	}
	c.Send(kill("a"))
	if c.Dropped() != 0 {
		t.Errorf("a kill was dropped with room in the queue")
	}
}

// sidecar is a companion that runs on its own and listens on a unix
// socket: it keeps the pods of the kills it reads, and closes a
// connection on a kill in pod "hangup".
type sidecar struct {
	socket string
	l      net.Listener
	mu     sync.Mutex
	pods   []string
}

func newSidecar(t *testing.T, socket string) *sidecar {
	t.Helper()
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{socket: socket, l: l}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = lines(conn, func(line []byte, _ bool) {
					var k Kill
					if json.Unmarshal(line, &k) != nil {
						t.Errorf("the sidecar read a bad line %q", line)
					}
					s.mu.Lock()
					s.pods = append(s.pods, k.Pod)
					s.mu.Unlock()
					if k.Pod == "hangup" {
						_ = conn.Close()
					}
				})
			}()
		}
	}()
	return s
}

func (s *sidecar) read() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.pods, " ")
}

// With a socket, the exporter connects to a companion that runs on its own
// (the chart's sidecar) instead of starting one: it waits for the socket to
// be there, writes each kill once, in order, and connects again when the
// companion closes the connection; kills sent meanwhile wait in the queue.
func TestCompanionSocket(t *testing.T) {
	f := newFake(t, fakeCompanion)
	socket := filepath.Join(t.TempDir(), "events.sock")
	c := New(Options{Socket: socket, Path: f.script, Backoff: source.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}}, f.log)
	stop := run(t, c)
	c.Send(kill("a"))
	waitFor(t, "attempts to connect logged", func() bool {
		return strings.Contains(f.logs.String(), "no connection to the companion; connecting again")
	})
	if c.Up() || c.Starts() != 0 {
		t.Errorf("up %v, connected %d times, before the companion listens", c.Up(), c.Starts())
	}
	s := newSidecar(t, socket)
	c.Send(kill("b"))
	waitFor(t, "kills a and b read", func() bool { return s.read() == "a b" })
	if !c.Up() || c.Starts() != 1 {
		t.Errorf("up %v after %d connections, want up after 1", c.Up(), c.Starts())
	}
	c.Send(kill("hangup"))
	waitFor(t, "connected again", func() bool { return c.Starts() == 2 && c.Up() })
	c.Send(kill("c"))
	waitFor(t, "kill c read", func() bool { return s.read() == "a b hangup c" })
	if c.Sent() != 4 || c.Dropped() != 0 {
		t.Errorf("sent %d dropped %d, want 4 and 0", c.Sent(), c.Dropped())
	}
	stop()
	if c.Up() {
		t.Errorf("up after Run returned")
	}
	if _, err := os.Stat(f.out); err == nil {
		t.Errorf("the program ran: with a socket it is not started")
	}
}

// The program gets the environment of Options.Env, not the exporter's:
// GOMEMLIMIT of its own (the exporter's is the whole container's).
func TestCompanionEnvironment(t *testing.T) {
	f := newFake(t, "#!/bin/sh\necho \"GOMEMLIMIT=$GOMEMLIMIT\" > \"$1\"\nexec cat >/dev/null\n")
	t.Setenv("GOMEMLIMIT", "128MiB")
	c := New(Options{Path: f.script, Args: []string{f.out}, Env: []string{"GOMEMLIMIT=24MiB"}}, f.log)
	run(t, c)
	waitFor(t, "the environment written", func() bool {
		b, _ := os.ReadFile(f.out)
		return strings.HasSuffix(string(b), "\n")
	})
	if b, _ := os.ReadFile(f.out); string(b) != "GOMEMLIMIT=24MiB\n" {
		t.Errorf("the companion's environment: %q", b)
	}
}
