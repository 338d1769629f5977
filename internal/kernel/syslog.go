package kernel

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel log over syslog(2), for a container that may not open
// /dev/kmsg: SYSLOG_ACTION_READ_ALL copies the whole ring, as text, and
// takes nothing from it (SYSLOG_ACTION_READ would take from the syslog
// reader, rsyslog's). It needs CAP_SYSLOG where kernel.dmesg_restrict is
// set, and a seccomp profile that allows syslog(2) with it (Docker's and
// containerd's defaults do). Each line of the text is a record:
//
//	<3>[ 7125.153047] Memory cgroup out of memory: Killed process 10251 (dd) ...
//
// with the record's facility and level, and its time since boot on the
// kernel's log clock; no sequence number. The reader reads the ring when it
// is asked to (a cgroup's OOM counter rose: kick), every syslogPoll
// besides, and never more often than syslogGap; it hands out, as records
// of /dev/kmsg, those after the newest it handed out before. Where that one
// is no longer in the ring, records were overwritten before they were read.

// The syslog(2) actions read (include/linux/syslog.h).
const (
	syslogActionReadAll    = 3
	syslogActionSizeBuffer = 10
)

// syslogPoll is how often the ring is read when nothing asks; syslogGap the
// least time between two reads, however often a storm asks.
const (
	syslogPoll = 5 * time.Second
	syslogGap  = 200 * time.Millisecond
)

// klogctl is syslog(2); tests replace it.
type klogctl func(action int, buf []byte) (int, error)

// syslogLog reads the kernel log through syslog(2).
type syslogLog struct {
	klogctl klogctl
	buf     []byte
	queue   [][]byte // records read, as /dev/kmsg gives them, not handed out yet
	waited  bool     // the queue was read after the first read: its records are new
	lost    bool     // records were overwritten since the last read: say so once
	// last is the newest line handed out (its time and text), the place to
	// go on from in the next read.
	last     []byte
	seq      uint64 // the records' numbers, made up: the ring has none
	lastRead time.Time
	poll     time.Duration

	kick     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
}

// openSyslog checks that syslog(2) may be read, and returns a reader that
// reads when kick says or every syslogPoll. prev is the reader of the
// session before, if any: the new one goes on after the last record it
// handed out, with its numbers, so that the store takes none twice.
func openSyslog(kick chan struct{}, prev *syslogLog) (*syslogLog, error) {
	return newSyslog(func(action int, buf []byte) (int, error) { return unix.Klogctl(action, buf) }, kick, prev)
}

func newSyslog(k klogctl, kick chan struct{}, prev *syslogLog) (*syslogLog, error) {
	size, err := k(syslogActionSizeBuffer, nil)
	if err != nil {
		return nil, fmt.Errorf("syslog(2): %w", err)
	}
	if size <= 0 || size > 1<<30 {
		return nil, fmt.Errorf("syslog(2): the kernel log's size is %d bytes", size)
	}
	l := &syslogLog{klogctl: k, buf: make([]byte, size), poll: syslogPoll, kick: kick, stopped: make(chan struct{})}
	if prev != nil {
		l.last, l.seq, l.waited = prev.last, prev.seq, true
	}
	// READ_ALL is restricted apart from SIZE_BUFFER on some kernels.
	if _, err := k(syslogActionReadAll, l.buf); err != nil {
		return nil, fmt.Errorf("syslog(2): %w", err)
	}
	return l, nil
}

func (l *syslogLog) next(buf []byte, caughtUp func(), quiet time.Duration) (int, bool, error) {
	first := l.lastRead.IsZero() // the first read of a session: at once
	for {
		if l.lost {
			l.lost = false
			return 0, false, fmt.Errorf("read kernel log: records overwritten before they were read: %w", unix.EPIPE)
		}
		if len(l.queue) > 0 {
			rec := l.queue[0]
			l.queue = l.queue[1:]
			return copy(buf, rec), l.waited, nil
		}
		if !first {
			caughtUp()
			if err := l.wait(quiet); err != nil {
				return 0, false, err
			}
		}
		first = false
		if err := l.read(); err != nil {
			return 0, false, err
		}
	}
}

// wait waits until a read is asked for, syslogPoll has passed, quiet has
// passed (errQuiet), or the reader is stopped (errStopped); then until
// syslogGap has passed since the last read.
func (l *syslogLog) wait(quiet time.Duration) error {
	poll := time.NewTimer(l.poll)
	defer poll.Stop()
	var timeout <-chan time.Time
	if quiet > 0 {
		t := time.NewTimer(quiet)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-l.kick: // asked for already: no wait
	default:
		select {
		case <-l.stopped:
			return errStopped
		case <-timeout:
			return errQuiet
		case <-l.kick:
		case <-poll.C:
		}
	}
	if gap := syslogGap - time.Since(l.lastRead); gap > 0 {
		t := time.NewTimer(gap)
		defer t.Stop()
		select {
		case <-l.stopped:
			return errStopped
		case <-t.C:
		}
	}
	return nil
}

// read reads the ring and queues the records after the last one handed
// out.
func (l *syslogLog) read() error {
	n, err := l.klogctl(syslogActionReadAll, l.buf)
	l.lastRead = time.Now()
	if err != nil {
		return fmt.Errorf("read kernel log: syslog(2): %w", err)
	}
	text := l.buf[:n]
	start := 0
	if l.last != nil {
		// The last line handed out, from the end: the ring holds it once
		// (its time and text), unless it was overwritten since.
		if i := bytes.LastIndex(text, l.last); i >= 0 && (i == 0 || text[i-1] == '\n') {
			start = i + len(l.last)
		} else {
			l.lost = true
		}
		l.waited = true
	}
	for _, line := range bytes.Split(text[start:], []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		rec, ok := l.record(line)
		if !ok {
			continue // not a record's line (cut off at the ring's start)
		}
		l.queue = append(l.queue, rec)
		l.last = append(l.last[:0], line...)
		l.last = append(l.last, '\n')
	}
	return nil
}

// record turns one line of the ring, "<PRI>[ SECONDS.MICROS] TEXT", into a
// record as /dev/kmsg writes it, with a made-up sequence number.
func (l *syslogLog) record(line []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(line, []byte{'<'})
	if !ok {
		return nil, false
	}
	pri, rest, ok := bytes.Cut(rest, []byte{'>'})
	if !ok {
		return nil, false
	}
	p, err := strconv.ParseUint(string(pri), 10, 16)
	if err != nil {
		return nil, false
	}
	rest, ok = bytes.CutPrefix(rest, []byte{'['})
	if !ok {
		return nil, false
	}
	ts, msg, ok := bytes.Cut(rest, []byte("] "))
	if !ok {
		return nil, false
	}
	secs, micros, ok := bytes.Cut(bytes.TrimSpace(ts), []byte{'.'})
	if !ok {
		return nil, false
	}
	s, err1 := strconv.ParseUint(string(secs), 10, 40)
	us, err2 := strconv.ParseUint(string(micros), 10, 20)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	l.seq++ // in the ring's order; its times may be out of order across CPUs
	out := fmt.Appendf(nil, "%d,%d,%d,-;", p, l.seq, s*1e6+us)
	return append(escape(out, msg), '\n'), true
}

// escape appends msg as /dev/kmsg writes a message: bytes that are not
// printable ASCII, and the backslash, as \xNN (ParseRecord undoes it).
func escape(out, msg []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range msg {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			out = append(out, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		out = append(out, c)
	}
	return out
}

func (l *syslogLog) stop() { l.stopOnce.Do(func() { close(l.stopped) }) }

func (l *syslogLog) close() error { return nil }
