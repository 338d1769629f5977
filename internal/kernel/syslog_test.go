package kernel

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeRing is the kernel's log ring as syslog(2) gives it.
type fakeRing struct {
	size  int
	lines []string
	err   error // of every call
	reads int
}

func (r *fakeRing) klogctl(action int, buf []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	switch action {
	case syslogActionSizeBuffer:
		return r.size, nil
	case syslogActionReadAll:
		r.reads++
		text := strings.Join(r.lines, "")
		if len(text) > len(buf) {
			text = text[len(text)-len(buf):] // the newest, as the kernel copies them
		}
		return copy(buf, text), nil
	}
	return 0, unix.EINVAL
}

func (r *fakeRing) add(lines ...string) {
	for _, l := range lines {
		r.lines = append(r.lines, l+"\n")
	}
}

// readAll reads records from l until it would wait, and returns them parsed.
func readAll(t *testing.T, l *syslogLog) (recs []Record, waited []bool, errs []error) {
	t.Helper()
	buf := make([]byte, 16<<10)
	for {
		n, w, err := l.next(buf, func() {}, time.Nanosecond)
		switch {
		case errors.Is(err, errQuiet):
			return recs, waited, errs
		case err != nil:
			errs = append(errs, err)
			continue
		}
		r, err := ParseRecord(buf[:n])
		if err != nil {
			t.Fatalf("%q: %v", buf[:n], err)
		}
		recs = append(recs, r)
		waited = append(waited, w)
	}
}

func texts(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Text)
	}
	return out
}

// The first read gives what the ring holds; later reads only what came
// since, also when the ring holds the same text twice; a record is never
// handed out twice. Records become /dev/kmsg's, their facility and time
// kept, bytes that are not printable ASCII escaped and back.
func TestSyslogReaderTakesEachRecordOnce(t *testing.T) {
	ring := &fakeRing{size: 4096}
	ring.add("<6>[    1.000001] booted", "<3>[   12.500000] Memory cgroup out of memory: Killed process 42 (d\x01d) total-vm:1kB")
	kick := make(chan struct{}, 1)
	l, err := newSyslog(ring.klogctl, kick, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, waited, errs := readAll(t, l)
	if len(errs) != 0 || len(recs) != 2 || waited[0] || recs[1].Facility != 0 || recs[1].Time != 12500*time.Millisecond ||
		recs[1].Text != "Memory cgroup out of memory: Killed process 42 (d\x01d) total-vm:1kB" || recs[0].Seq >= recs[1].Seq {
		t.Fatalf("first read: %+v %v %v", recs, waited, errs)
	}
	ring.add("<14>[   13.000000] booted", "<3>[   13.000001] later")
	kick <- struct{}{}
	recs, waited, errs = readAll(t, l)
	if len(errs) != 0 || strings.Join(texts(recs), "|") != "booted|later" || !waited[0] || recs[0].Facility != 1 {
		t.Fatalf("second read: %+v %v %v", recs, waited, errs)
	}
	kick <- struct{}{}
	if recs, _, _ := readAll(t, l); len(recs) != 0 {
		t.Fatalf("read again: %+v", recs)
	}
	// A session after a failure goes on where the last one stopped, with
	// its numbers (the store takes a record only if it is newer).
	ring.add("<3>[   14.000000] after the reconnect")
	next, err := newSyslog(ring.klogctl, kick, l)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, _ = readAll(t, next)
	if len(recs) != 1 || recs[0].Text != "after the reconnect" || recs[0].Seq <= l.seq-1 {
		t.Fatalf("next session: %+v", recs)
	}
}

// Where the last record handed out is no longer in the ring, the kernel
// overwrote records before they were read: the reader says so once (as
// /dev/kmsg does, EPIPE), then goes on with all the ring holds.
func TestSyslogReaderSaysWhenRecordsWereOverwritten(t *testing.T) {
	ring := &fakeRing{size: 64}
	ring.add("<6>[    1.000000] first")
	kick := make(chan struct{}, 1)
	l, err := newSyslog(ring.klogctl, kick, nil)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, l)
	for i := range 10 {
		ring.add("<6>[    2.00000" + string(rune('0'+i)) + "] filler")
	}
	kick <- struct{}{}
	recs, _, errs := readAll(t, l)
	if len(errs) != 1 || !errors.Is(errs[0], unix.EPIPE) || len(recs) == 0 || recs[len(recs)-1].Time != 2*time.Second+9*time.Microsecond {
		t.Fatalf("records %+v, errors %v", recs, errs)
	}
	for _, r := range recs {
		if r.Text == "first" {
			t.Fatal("a record handed out twice")
		}
	}
}

// Without CAP_SYSLOG (or where seccomp refuses syslog(2)) the reader says
// why, and the choice of reader falls to none with what is missing.
func TestSyslogReaderRefused(t *testing.T) {
	ring := &fakeRing{err: unix.EPERM}
	if _, err := newSyslog(ring.klogctl, nil, nil); !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "syslog(2)") {
		t.Fatalf("%v", err)
	}
	if r, why := chooseLog(Config{Kmsg: "", Log: LogAuto}); r != LogNone || !strings.Contains(why, "--path.kmsg is empty") {
		t.Fatalf("%s: %s", r, why)
	}
	if r, _ := chooseLog(Config{Kmsg: "/dev/kmsg", Log: LogNone}); r != LogNone {
		t.Fatal(r)
	}
}

// The real kernel's ring, read through syslog(2) (root, or CAP_SYSLOG).
func TestSyslogReaderRealKernel(t *testing.T) {
	l, err := openSyslog(make(chan struct{}, 1), nil)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("syslog(2) is needed under CI: %v", err)
		}
		t.Skipf("syslog(2) cannot be read (root is needed): %v", err)
	}
	recs, _, errs := readAll(t, l)
	if len(errs) != 0 || len(recs) == 0 {
		t.Fatalf("%d records, errors %v", len(recs), errs)
	}
	for _, r := range recs {
		if r.Time <= 0 {
			t.Fatalf("record without its time: %+v", r)
		}
	}
	if r, why := chooseLog(Config{Kmsg: "/nonexistent/kmsg", Log: LogAuto, ProcFS: "/proc"}); r != LogSyslog || !strings.Contains(why, "/nonexistent/kmsg") {
		t.Fatalf("auto without the device: %s (%s), want syslog", r, why)
	}
}
