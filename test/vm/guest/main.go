// Command guest runs inside the cgroup v2 VM of test/vm (TestRuntimesInVM):
// it starts Debian's containerd and dockerd with one cgroup driver, makes
// pods through the CRI as the kubelet does and Docker containers, OOM-kills
// processes in them, runs the exporter, and writes what it saw — the
// kernel's counters, the runtimes' view, the exporter's series — as a JSON
// report (package report) for the test on the host to check. It only
// observes and waits; the checks are the host's.
//
// It is no use outside that VM: it runs the daemons at their default paths
// and powers the machine off when done.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/missing-container-metrics/missing-container-metrics/test/vm/guest/report"
)

// guest is one run: the driver, the clients, and the report it fills.
type guest struct {
	driver   string
	exporter string // the exporter's binary
	began    time.Time
	last     time.Time
	rep      report.Report
	rt       *runtimes
	exps     []*exporterProc // one per exporterConfigs

	mu sync.Mutex // guards rep.Errors: exporters settle at once
}

func main() {
	driver := flag.String("driver", "", "the cgroup driver of containerd and dockerd: systemd or cgroupfs")
	exporter := flag.String("exporter", "/opt/mcm/missing-container-metrics", "the exporter's binary")
	out := flag.String("report", "/dev/ttyS1", "where the JSON report goes (the VM's second serial port)")
	flag.Parse()

	g := &guest{driver: *driver, exporter: *exporter, began: time.Now(), last: time.Now()}
	g.rep = report.Report{
		Driver:    *driver,
		Versions:  map[string]string{},
		Cgroups:   map[string]report.Events{},
		PodEvents: map[string]report.Events{},
		Scrapes:   map[string]map[string]map[string]report.Series{},
		Records:   map[string][]report.Record{},
		Logs:      map[string]string{},
	}
	if err := g.run(); err != nil {
		g.fail("%v", err)
	}
	g.collectLogs()
	if err := writeReport(*out, &g.rep); err != nil {
		fmt.Fprintf(os.Stderr, "guest: report: %v\n", err)
	}
	fmt.Printf("guest: done in %s, %d errors\n", time.Since(g.began).Round(100*time.Millisecond), len(g.rep.Errors))
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func (g *guest) run() error {
	if g.driver != "systemd" && g.driver != "cgroupfs" {
		return fmt.Errorf("--driver %q: want systemd or cgroupfs", g.driver)
	}
	g.rep.Init = pid1()
	g.rep.Versions["kernel"] = uname()
	if up, err := os.ReadFile("/proc/uptime"); err == nil {
		g.rep.Boot, _ = strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	}
	g.step("boot to the guest program")

	rt, err := startRuntimes(g.driver, g.step)
	g.rt = rt
	if err != nil {
		return err
	}
	for k, v := range rt.versions {
		g.rep.Versions[k] = v
	}
	if err := rt.importImages(); err != nil {
		return err
	}
	g.step("images imported")

	if err := g.startExporters(); err != nil {
		return err
	}
	g.step("exporters serving, every source up")

	for _, s := range scenarios {
		if err := s.run(g); err != nil {
			g.fail("%s: %v", s.name, err)
		}
		g.step("scenario " + s.name)
	}

	// Every container's counts, then the exporters restarted: the counts of
	// the containers whose cgroups are still there come back from the kernel.
	g.refreshRuntimes()
	g.readCgroups()
	for _, e := range g.exps {
		g.rep.Scrapes[e.cfg.name] = map[string]map[string]report.Series{}
	}
	g.settleAll("before", false)
	for _, e := range g.exps {
		// Once every record is announced: complete, its outcome decided.
		var recs []report.Record
		err := waitFor(time.Minute, func() error {
			var err error
			if recs, err = e.records(); err != nil {
				return err
			}
			if n := strings.Count(e.out.String(), `msg="OOM kill"`); n != len(recs) {
				return fmt.Errorf("%d records, %d announced", len(recs), n)
			}
			return nil
		})
		if err != nil {
			g.fail("exporter %s: /api/v1/kills: %v", e.cfg.name, err)
		}
		g.rep.Records[e.cfg.name] = recs
	}
	g.step("settled")
	for _, e := range g.exps {
		if err := e.stop(); err != nil {
			g.fail("stopping exporter %s: %v", e.cfg.name, err)
		}
		g.rep.Logs["exporter "+e.cfg.name+", first run"] = e.log()
	}
	if err := g.startExporters(); err != nil {
		return err
	}
	g.settleAll("after", true)
	g.step("exporters restarted and settled")
	g.rep.KernelLog = oomRecords()
	return nil
}

// settleAll settles every exporter at once (each waits up to its deadline)
// and keeps their scrapes as when.
func (g *guest) settleAll(when string, liveOnly bool) {
	scrapes := make([]map[string]report.Series, len(g.exps))
	var wg sync.WaitGroup
	for i, e := range g.exps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scrapes[i] = g.settle(e, when+" the restart", liveOnly)
		}()
	}
	wg.Wait()
	for i, e := range g.exps {
		g.rep.Scrapes[e.cfg.name][when] = scrapes[i]
	}
}

// startExporters starts one exporter of each configuration.
func (g *guest) startExporters() error {
	for _, e := range g.exps {
		_ = e.stop()
	}
	g.exps = nil
	for _, cfg := range exporterConfigs {
		e, err := startExporter(g.exporter, cfg)
		if err != nil {
			return err
		}
		g.exps = append(g.exps, e)
	}
	return nil
}

// step records how long the phase that ends now took.
func (g *guest) step(name string) {
	now := time.Now()
	g.rep.Steps = append(g.rep.Steps, report.Step{Name: name, Seconds: now.Sub(g.last).Seconds()})
	fmt.Printf("guest: %-50s %6.1fs (%.1fs in)\n", name, now.Sub(g.last).Seconds(), now.Sub(g.began).Seconds())
	g.last = now
}

// fail records what went wrong; the host test fails on any.
func (g *guest) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	g.mu.Lock()
	defer g.mu.Unlock()
	fmt.Printf("guest: error: %s\n", msg)
	g.rep.Errors = append(g.rep.Errors, msg)
}

func (g *guest) collectLogs() {
	for _, e := range g.exps {
		g.rep.Logs["exporter "+e.cfg.name] = e.log()
		_ = e.stop()
	}
	if g.rt != nil {
		for name, path := range g.rt.logs {
			if b, err := os.ReadFile(path); err == nil {
				g.rep.Logs[name] = tail(string(b), 200)
			}
		}
	}
}

// writeReport writes the report as one JSON document to the serial port
// (raw, so the tty changes no byte) or a file.
func writeReport(path string, r *report.Report) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag = t.Cflag&^(unix.CSIZE|unix.PARENB) | unix.CS8
		if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := f.Write(b); err != nil {
		return err
	}
	for { // tcdrain: the host reads the port's file once qemu has ended
		err := unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
		if err == unix.EINTR {
			continue
		}
		if err != nil && err != unix.ENOTTY {
			return fmt.Errorf("drain: %w", err)
		}
		break
	}
	return f.Close()
}

func pid1() string {
	b, err := os.ReadFile("/proc/1/cmdline")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

func uname() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// output runs a command and returns its output, trimmed.
func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// waitFor calls f until it returns nil or timeout passes; it returns f's
// last error then.
func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
