// Command bench measures the exporter end to end against real runtimes (the
// test harness's dockerd and containerd, scripts/harness.sh) and real kernel
// OOM kills, and prints one table: resident memory with 0 and N containers,
// time from start until all N are tracked, CPU per 1,000 runtime events under
// a churn of containers, and time from a kernel OOM kill to its count on
// /metrics. Run it through scripts/bench.sh, which starts the runtimes and
// builds the exporter. Every figure is the median of several runs; the
// targets are those of docs/performance.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var (
	exporterBin = flag.String("exporter", "", "the exporter binary to measure (required)")
	containers  = flag.Int("containers", 200, "containers running for the memory and tracking figures")
	runs        = flag.Int("runs", 5, "exporter starts for the memory and tracking figures (median taken)")
	churn       = flag.Int("churn", 200, "containers created, started, stopped and removed for the CPU figure")
	churnRuns   = flag.Int("churn-runs", 3, "churn rounds (median taken)")
	kills       = flag.Int("kills", 25, "OOM kills timed from the kernel log to /metrics")
	parallel    = flag.Int("parallel", 4, "docker commands run at once")
)

var env struct{ dockerHost, containerd, cgroupParent, image string }

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	env.dockerHost = os.Getenv("MCM_TEST_DOCKER_HOST")
	env.containerd = os.Getenv("MCM_TEST_CONTAINERD_ADDRESS")
	env.cgroupParent = os.Getenv("MCM_TEST_CGROUP_PARENT")
	env.image = os.Getenv("MCM_TEST_IMAGE")
	if *exporterBin == "" || env.dockerHost == "" || env.containerd == "" || env.cgroupParent == "" || env.image == "" {
		log.Fatal("needs -exporter and the harness's MCM_TEST_* variables: run scripts/bench.sh")
	}
	defer removeAll()

	var rows []row
	idle := measureRSS(0)
	rows = append(rows, row{"Resident memory, 0 containers", "", idle.String()})

	log.Printf("starting %d containers", *containers)
	ids := startContainers(*containers)
	rss, track := measureTracking(ids)
	rows = append(rows,
		row{fmt.Sprintf("Resident memory, %d containers", len(ids)), "< 20 MiB", rss.String()},
		row{fmt.Sprintf("Start to all %d tracked", len(ids)), "< 1 s", ms(track)})

	rows = append(rows, row{fmt.Sprintf("CPU when idle, %d containers, scraped every 15 s", len(ids)), "", measureIdle(ids)})

	cpu, rate := measureChurn()
	rows = append(rows,
		row{"CPU per 1,000 Docker events (churn)", "< 100 ms (10% of a core at 1,000/s)", ms(cpu)},
		row{"Docker events per second in the churn", "", fmt.Sprintf("%.0f (dockerd's pace)", rate)})

	p50, p99, worst := measureOOMLatency()
	rows = append(rows,
		row{fmt.Sprintf("OOM kill to /metrics, p50 of %d", *kills), "", ms(p50)},
		row{fmt.Sprintf("OOM kill to /metrics, p99 of %d", *kills), "< 100 ms", ms(p99)},
		row{"OOM kill to /metrics, worst", "", ms(worst)})

	printTable(rows)
}

type row struct{ measure, target, result string }

func printTable(rows []row) {
	fmt.Println()
	fmt.Println(machine())
	fmt.Println()
	fmt.Println("| Measure | Target | Result |")
	fmt.Println("|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s |\n", r.measure, r.target, r.result)
	}
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	_ = unix.Uname(&u)
	dockerd, _ := dockerOut("version", "--format", "{{.Server.Version}}")
	return fmt.Sprintf("Machine: %d CPUs (%s), Linux %s, dockerd %s, %s; medians of %d exporter starts, %d churn rounds, %d kills.",
		nproc(), model, unix.ByteSliceToString(u.Release[:]), dockerd, time.Now().UTC().Format("2006-01-02"),
		*runs, *churnRuns, *kills)
}

func nproc() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return 0
	}
	return set.Count()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// medianMemory is the run of median total resident memory.
func medianMemory(xs []memory) memory {
	s := slices.Clone(xs)
	slices.SortFunc(s, func(a, b memory) int { return int(a.rss - b.rss) })
	return s[len(s)/2]
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// ---------------------------------------------------------------- exporter

type exporter struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startExporter() *exporter {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(*exporterBin, "--web.listen-address="+addr,
		"--docker.host="+env.dockerHost, "--containerd.address="+env.containerd, "--log.level=warn",
		"--kernel.cgroup-parent="+env.cgroupParent)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	e := &exporter{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(e.done) }()
	return e
}

func (e *exporter) stop() {
	_ = e.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func (e *exporter) metrics() (string, error) {
	resp, err := client.Get("http://" + e.addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/metrics: %s", resp.Status)
	}
	return string(b), err
}

// waitUp waits until both runtime sources are connected.
func (e *exporter) waitUp() {
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := e.metrics()
		if err == nil && strings.Contains(m, `missing_container_metrics_source_up{source="docker"} 1`) &&
			strings.Contains(m, `missing_container_metrics_source_up{source="containerd"} 1`) {
			return
		}
		if time.Now().After(deadline) {
			log.Fatalf("exporter not up after 60 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memory is a process's resident memory: all of it, and its private
// (anonymous) part; the rest is pages of the binary, shared and clean.
type memory struct{ rss, anon float64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (private %.1f, binary %.1f)", m.rss/(1<<20), m.anon/(1<<20), (m.rss-m.anon)/(1<<20))
}

func (e *exporter) memory() memory {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
	if err != nil {
		log.Fatal(err)
	}
	var m memory
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			m.rss = kb * 1024
		case "RssAnon":
			m.anon = kb * 1024
		}
	}
	if m.rss == 0 {
		log.Fatal("no VmRSS")
	}
	return m
}

// cpu is the CPU time the exporter used so far (user and system).
func (e *exporter) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.cmd.Process.Pid))
	if err != nil {
		log.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick
}

// settle scrapes a few times, as Prometheus would, so that the memory
// measured includes what a scrape needs.
func (e *exporter) settle() {
	for range 5 {
		if _, err := e.metrics(); err != nil {
			log.Fatal(err)
		}
	}
}

func sample(m, name, match string) (float64, bool) {
	for _, l := range strings.Split(m, "\n") {
		if strings.HasPrefix(l, name+"{") && strings.Contains(l, match) {
			v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// dockerEvents is the count of events the Docker source received. The
// kernel sources' counts are left out: they see every cgroup of the host,
// also those of whatever else runs on it.
func dockerEvents(m string) float64 {
	v, _ := sample(m, "missing_container_metrics_events_total", `source="docker"`)
	return v
}

// ---------------------------------------------------------------- docker

const label = "mcm-bench=1"

func dockerOut(args ...string) (string, error) {
	cmd := exec.Command("docker", append([]string{"-H", env.dockerHost}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONTEXT=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func runArgs(script string) []string {
	return []string{"--label", label, "--network", "none", "--cgroup-parent", env.cgroupParent,
		"--memory", "32m", "--memory-swap", "32m", env.image, "sh", "-c", script}
}

// each runs f(i) for i in [0, n) on -parallel goroutines.
func each(n int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range *parallel {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		log.Fatal(err)
	}
}

func startContainers(n int) []string {
	ids := make([]string, n)
	each(n, func(i int) (err error) {
		ids[i], err = dockerOut(append([]string{"run", "-d"}, runArgs("sleep 100000")...)...)
		return err
	})
	return ids
}

func removeAll() {
	out, err := dockerOut("ps", "-aq", "--filter", "label="+label)
	if err != nil || out == "" {
		return
	}
	_, _ = dockerOut(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
}

// ---------------------------------------------------------------- measures

func measureRSS(n int) memory {
	var xs []memory
	for range *runs {
		e := startExporter()
		e.waitUp()
		e.settle()
		xs = append(xs, e.memory())
		e.stop()
	}
	log.Printf("resident memory with %d containers: %v", n, xs)
	return medianMemory(xs)
}

// measureTracking starts the exporter -runs times with the containers
// running and times how long until every one of them is on /metrics.
func measureTracking(ids []string) (rss memory, track time.Duration) {
	var rs []memory
	var ts []time.Duration
	for range *runs {
		t0 := time.Now()
		e := startExporter()
		for {
			m, err := e.metrics()
			if err == nil && allTracked(m, ids) {
				break
			}
			if time.Since(t0) > 2*time.Minute {
				log.Fatalf("not all %d containers tracked after 2 min", len(ids))
			}
			time.Sleep(2 * time.Millisecond)
		}
		ts = append(ts, time.Since(t0))
		e.settle()
		rs = append(rs, e.memory())
		e.stop()
	}
	log.Printf("start to all tracked: %v; resident memory: %v", ts, rs)
	return medianMemory(rs), median(ts)
}

func allTracked(m string, ids []string) bool {
	for _, id := range ids {
		if !strings.Contains(m, `container_id="docker://`+id+`"`) {
			return false
		}
	}
	return true
}

// measureIdle takes the exporter's CPU use over 30 s with the containers
// running and nothing happening but two scrapes, as a share of one core.
func measureIdle(ids []string) string {
	e := startExporter()
	defer e.stop()
	for {
		m, err := e.metrics()
		if err == nil && allTracked(m, ids) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.settle()
	cpu0, t0 := e.cpu(), time.Now()
	for range 2 {
		time.Sleep(15 * time.Second)
		if _, err := e.metrics(); err != nil {
			log.Fatal(err)
		}
	}
	cpu, wall := e.cpu()-cpu0, time.Since(t0)
	log.Printf("idle: CPU %s in %s", cpu, wall.Round(time.Millisecond))
	return fmt.Sprintf("%.2f%% of a core", 100*cpu.Seconds()/wall.Seconds())
}

// measureChurn runs containers through create, start, stop and remove while
// the exporter follows, and divides the exporter's CPU time by the runtime
// events it received.
func measureChurn() (perThousand time.Duration, rate float64) {
	var cs []time.Duration
	var rates []float64
	for round := range *churnRuns {
		e := startExporter()
		e.waitUp()
		m, err := e.metrics()
		if err != nil {
			log.Fatal(err)
		}
		events0, cpu0 := dockerEvents(m), e.cpu()
		t0 := time.Now()
		each(*churn, func(int) error {
			id, err := dockerOut(append([]string{"create"}, runArgs("sleep 100000")...)...)
			if err != nil {
				return err
			}
			for _, step := range [][]string{{"start", id}, {"stop", "-t", "0", id}, {"rm", id}} {
				if _, err := dockerOut(step...); err != nil {
					return err
				}
			}
			return nil
		})
		wall := time.Since(t0)
		// Wait until the exporter has taken every event: the count stops moving.
		var events float64
		for last, still := -1.0, 0; still < 10; time.Sleep(100 * time.Millisecond) {
			if m, err = e.metrics(); err != nil {
				log.Fatal(err)
			}
			if events = dockerEvents(m); events == last {
				still++
			} else {
				last, still = events, 0
			}
		}
		cpu := e.cpu() - cpu0
		n := events - events0
		e.stop()
		if n < float64(*churn) {
			log.Fatalf("churn round %d: only %.0f events for %d containers", round, n, *churn)
		}
		cs = append(cs, time.Duration(float64(cpu)*1000/n))
		rates = append(rates, n/wall.Seconds())
		log.Printf("churn round %d: %.0f events in %s, exporter CPU %s", round, n, wall.Round(time.Millisecond), cpu)
	}
	return median(cs), median(rates)
}

// measureOOMLatency OOM-kills a worker in a container -kills times and
// takes, for each kill, the time from the kernel's log record of it to the
// first scrape that shows it.
func measureOOMLatency() (p50, p99, worst time.Duration) {
	e := startExporter()
	defer e.stop()
	e.waitUp()
	kmsg, err := os.Open("/dev/kmsg")
	if err != nil {
		log.Fatal(err)
	}
	defer kmsg.Close()
	if _, err := kmsg.Seek(0, io.SeekEnd); err != nil {
		log.Fatal(err)
	}
	id, err := dockerOut(append([]string{"create"}, runArgs(fmt.Sprintf(
		"while [ ! -e /tmp/go ]; do sleep 0.1; done; for i in $(seq %d); do dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 0.5; done; sleep 100000", *kills))...)...)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := dockerOut("start", id); err != nil {
		log.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for { // the container is tracked before the first kill
		m, _ := e.metrics()
		if _, ok := sample(m, "container_ooms_total", id); ok {
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("the OOM container is not tracked after 1 min")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var mu sync.Mutex
	var killedAt []time.Duration // kernel log times of the kills
	var marks []time.Duration    // kernel log times of our calibration records
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		buf := make([]byte, 8192)
		for ctx.Err() == nil {
			n, err := kmsg.Read(buf)
			if errors.Is(err, unix.EPIPE) {
				continue // records overwritten before they were read
			}
			if err != nil {
				return
			}
			prefix, msg, _ := strings.Cut(string(buf[:n]), ";")
			f := strings.Split(prefix, ",")
			if len(f) < 3 {
				continue
			}
			usec, _ := strconv.ParseInt(f[2], 10, 64)
			t := time.Duration(usec) * time.Microsecond
			mu.Lock()
			switch {
			case strings.HasPrefix(msg, "mcm-bench: calibrate"):
				marks = append(marks, t)
			case strings.HasPrefix(msg, "oom-kill:") && strings.Contains(msg, id):
				killedAt = append(killedAt, t)
			}
			mu.Unlock()
		}
	}()

	// The kernel log's clock is not CLOCK_MONOTONIC (NTP slews only the
	// latter): its offset is taken from records written here and read back.
	var wrote []time.Duration
	for range 5 {
		before := monotonic()
		if err := writeKmsg("mcm-bench: calibrate"); err != nil {
			log.Fatal(err)
		}
		wrote = append(wrote, (before+monotonic())/2)
	}
	wait(func() bool { return len(marks) == len(wrote) }, &mu, "calibration records")
	var offs []time.Duration
	for i := range wrote {
		offs = append(offs, marks[i]-wrote[i])
	}
	offset := median(offs)
	log.Printf("kernel log clock minus CLOCK_MONOTONIC: %v", offs)

	if _, err := dockerOut("exec", id, "touch", "/tmp/go"); err != nil {
		log.Fatal(err)
	}
	seenAt := make([]time.Duration, 0, *kills)
	deadline = time.Now().Add(time.Duration(*kills)*time.Second + time.Minute)
	for len(seenAt) < *kills {
		m, err := e.metrics()
		now := monotonic()
		if err != nil {
			log.Fatal(err)
		}
		v, _ := sample(m, "container_ooms_total", id)
		for len(seenAt) < int(v) {
			seenAt = append(seenAt, now)
		}
		if time.Now().After(deadline) {
			log.Fatalf("only %d of %d kills seen on /metrics", len(seenAt), *kills)
		}
		time.Sleep(time.Millisecond)
	}
	wait(func() bool { return len(killedAt) >= *kills }, &mu, "kills in the kernel log")
	mu.Lock()
	defer mu.Unlock()
	if len(killedAt) != *kills {
		log.Fatalf("%d kills in the kernel log, %d expected", len(killedAt), *kills)
	}
	lat := make([]time.Duration, *kills)
	for i := range lat {
		lat[i] = seenAt[i] - (killedAt[i] - offset)
	}
	log.Printf("OOM kill to /metrics: %v", lat)
	slices.Sort(lat)
	return lat[len(lat)/2], lat[(len(lat)*99+99)/100-1], lat[len(lat)-1]
}

// wait waits until cond, called with mu held, is true.
func wait(cond func() bool, mu *sync.Mutex, what string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok := cond()
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			log.Fatalf("waiting for %s: 10 s passed", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeKmsg(msg string) error {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write([]byte("<6>" + msg + "\n"))
	return err
}

// monotonic is CLOCK_MONOTONIC, the clock of the kernel log's timestamps.
func monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ts.Nano())
}
