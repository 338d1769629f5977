package kernel

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// recordReader gives the kernel log's records one at a time.
type recordReader interface {
	// next reads one record into buf. waited is true when the reader had
	// read everything and the record arrived while it waited: it was just
	// written. It returns an error wrapping unix.EPIPE when records were
	// overwritten before they could be read (the next call goes on with the
	// oldest record left), errStopped once stop was called. Each time it
	// has read every record there is and is about to wait, it calls
	// caughtUp. If quiet is not 0 and no record comes within quiet of
	// the wait's start, it returns errQuiet.
	next(buf []byte, caughtUp func(), quiet time.Duration) (n int, waited bool, err error)
	stop()
	close() error
}

var (
	errStopped = errors.New("stopped")
	errQuiet   = errors.New("no record within the wait")
)

// kmsgFile reads /dev/kmsg: each read() returns one record; EAGAIN says
// that every record was read, EPIPE that the reader fell behind and records
// were lost. A pipe wakes a reader that waits in poll() when it is stopped.
type kmsgFile struct {
	fd        int
	wakeR     int
	wakeW     int
	stopOnce  sync.Once
	closeOnce sync.Once
}

func openKmsg(path string) (*kmsgFile, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pipe: %w", err)
	}
	return &kmsgFile{fd: fd, wakeR: p[0], wakeW: p[1]}, nil
}

func (k *kmsgFile) next(buf []byte, caughtUp func(), quiet time.Duration) (int, bool, error) {
	waited := false
	for {
		n, err := unix.Read(k.fd, buf)
		switch {
		case err == nil && n == 0:
			return 0, false, io.EOF // a plain file given as --path.kmsg
		case err == nil:
			return n, waited, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			caughtUp()
			if err := k.wait(quiet); err != nil {
				return 0, false, err
			}
			waited = true
		default:
			return 0, false, fmt.Errorf("read kernel log: %w", err)
		}
	}
}

// wait waits until a record can be read, for at most quiet (0: for ever).
func (k *kmsgFile) wait(quiet time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(k.fd), Events: unix.POLLIN}, {Fd: int32(k.wakeR), Events: unix.POLLIN}}
	timeout, deadline := -1, time.Now().Add(quiet)
	for {
		if quiet > 0 {
			timeout = int(max(time.Until(deadline), 0) / time.Millisecond)
		}
		n, err := unix.Poll(fds, timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll kernel log: %w", err)
		}
		if fds[1].Revents != 0 {
			return errStopped
		}
		if n == 0 {
			return errQuiet
		}
		return nil
	}
}

func (k *kmsgFile) stop() {
	k.stopOnce.Do(func() { _, _ = unix.Write(k.wakeW, []byte{0}) })
}

func (k *kmsgFile) close() error {
	var err error
	k.closeOnce.Do(func() {
		err = unix.Close(k.fd)
		unix.Close(k.wakeR)
		unix.Close(k.wakeW)
	})
	return err
}

// clock turns the kernel log's timestamps (time since boot on the kernel's
// log clock) into wall-clock time. It starts from CLOCK_MONOTONIC, which
// counts the same time since boot, and corrects itself by the records that
// arrive while the reader waits. Such a record was written at the latest
// when it was read, so the boot was at the latest then less its time: each
// is a bound, and the clock keeps the earliest. A record read late says
// little: syslog(2)'s reader reads the ring up to syslogPoll after, and a
// whole batch at once, so taking each record's read time as its time put
// kills of seconds apart at one instant, after their containers' exits.
// The bounds of the last two calibrationWindows count, so that the clock
// follows the two clocks' drift over weeks of uptime.
type clock struct {
	boot      time.Time // in use: the earlier of cur and prev
	cur, prev time.Time // the earliest bounds of this window and the one before
	window    time.Time // when this window began
}

// calibrationWindow is how long a bound of the boot time counts, at least.
const calibrationWindow = time.Hour

func newClock() clock {
	var mono unix.Timespec
	now := time.Now()
	boot := now
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err == nil {
		boot = now.Add(-time.Duration(mono.Nano()))
	}
	return clock{boot: boot, cur: boot, prev: boot, window: now}
}

// calibrate takes the bound of a record of time since, read at now.
func (c *clock) calibrate(since time.Duration, now time.Time) {
	b := now.Add(-since)
	if now.Sub(c.window) > calibrationWindow {
		c.prev, c.cur, c.window = c.cur, b, now
	}
	if b.Before(c.cur) {
		c.cur = b
	}
	c.boot = c.cur
	if c.prev.Before(c.boot) {
		c.boot = c.prev
	}
}

func (c clock) wall(since time.Duration) time.Time { return c.boot.Add(since) }
