// Command bench measures the exporter end to end against real runtimes (the
// test harness's dockerd and containerd, scripts/harness.sh) and real kernel
// OOM kills, with the flags a user runs (every source on: Docker, containerd
// and the kernel reader), and prints one table. With -earlier it measures the
// earlier missing-container-metrics side by side in the same run, against the
// same dockerd and containers, so that both meet the same load: ours |
// earlier | ratio (ours to the earlier tool's: below 1 is ours ahead). With -cgroups it also measures a host of that many
// containers, made of the running ones and empty memory cgroups that the
// kernel reader takes for CRI-O's (cgroup v1). Run it through scripts/bench.sh,
// which starts the runtimes and builds the exporter. docs/performance.md
// says what each row measures.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var (
	exporterBin = flag.String("exporter", "", "the exporter binary to measure (required)")
	earlierBin  = flag.String("earlier", "", "a binary of the earlier missing-container-metrics, measured side by side (optional)")
	containers  = flag.Int("containers", 200, "idle containers running for the start, scrape, memory and idle figures")
	runs        = flag.Int("runs", 5, "starts of each exporter for the start, scrape and memory figures (median taken)")
	scrapes     = flag.Int("scrapes", 15, "scrapes timed per start (median taken)")
	lifecycles  = flag.Int("lifecycles", 60, "containers created, run for 1 s, exited and removed for the CPU figure")
	churnRuns   = flag.Int("churn-runs", 3, "rounds of -lifecycles (median taken)")
	kills       = flag.Int("kills", 25, "OOM kills timed from the kernel log to /metrics")
	parallel    = flag.Int("parallel", 4, "docker commands run at once")
	cgroups     = flag.Int("cgroups", 10000, "containers of the large host: the running ones and empty memory cgroups (0: skip)")
)

var env struct{ dockerHost, containerd, cgroupParent, image, tmp string }

// cleanups run at the end and on a fatal error, last first.
var cleanups []func()

func fatalf(format string, args ...any) {
	log.Printf(format, args...)
	runCleanups()
	os.Exit(1)
}

func runCleanups() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

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
	var err error
	if env.tmp, err = os.MkdirTemp("", "mcm-bench."); err != nil {
		fatalf("%v", err)
	}
	cleanups = append(cleanups, func() { _ = os.RemoveAll(env.tmp) }, removeAll)
	defer runCleanups()

	tools := []*tool{ours(nil)}
	if *earlierBin != "" {
		tools = append(tools, earlier())
	}
	t := &table{tools: tools}
	t.load("start")

	log.Printf("starting %d containers", *containers)
	ids := startContainers(*containers)
	t.load(fmt.Sprintf("%d containers running", len(ids)))
	measureStarts(t, ids)
	measureExposition(t, ids)
	measureIdle(t, ids)
	measureLifecycles(t)
	measureOOMLatency(t)
	t.load("end of the side-by-side")
	if *cgroups > 0 {
		measureLarge(t, ids)
	}
	t.print()
}

// ---------------------------------------------------------------- table

type table struct {
	tools []*tool
	rows  []row
	loads []string
}

// row is one measure: a figure per tool, in the order of table.tools.
type row struct {
	measure, target string
	figures         []string
	values          []float64 // for the ratio; 0 where there is none
}

func (t *table) add(measure, target string, figures []string, values []float64) {
	t.rows = append(t.rows, row{measure, target, figures, values})
}

// load records the load average at a point of the run: other work on the
// machine changes every figure.
func (t *table) load(at string) {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		t.loads = append(t.loads, fmt.Sprintf("%s %s %s (%s)", f[0], f[1], f[2], at))
		log.Printf("load average %s %s %s at %s", f[0], f[1], f[2], at)
	}
}

func (t *table) print() {
	fmt.Println()
	fmt.Println(machine())
	fmt.Println()
	fmt.Println("Load average (1, 5, 15 min): " + strings.Join(t.loads, "; ") + ".")
	fmt.Println()
	head, sep := "| Measure |", "|---|"
	for _, x := range t.tools {
		head += " " + x.name + " |"
		sep += "---:|"
	}
	if len(t.tools) == 2 {
		head += " ratio |"
		sep += "---:|"
	}
	fmt.Println(head + " target |")
	fmt.Println(sep + "---|")
	for _, r := range t.rows {
		line := "| " + r.measure + " |"
		for i := range t.tools {
			f := ""
			if i < len(r.figures) {
				f = r.figures[i]
			}
			line += " " + f + " |"
		}
		if len(t.tools) == 2 {
			ratio := ""
			if len(r.values) == 2 && r.values[0] > 0 && r.values[1] > 0 {
				ratio = fmt.Sprintf("%.2f×", r.values[0]/r.values[1])
			}
			line += " " + ratio + " |"
		}
		fmt.Println(line + " " + r.target + " |")
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
	return fmt.Sprintf("Machine: %d CPUs (%s), Linux %s, dockerd %s, %s; %d containers, medians of %d starts × %d scrapes, %d rounds of %d lifecycles, %d kills.",
		nproc(), model, unix.ByteSliceToString(u.Release[:]), dockerd, time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		*containers, *runs, *scrapes, *churnRuns, *lifecycles, *kills)
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

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// ---------------------------------------------------------------- exporters

// tool is an exporter to measure: ours, or the earlier one.
type tool struct {
	name  string
	start func() *exporter
	// ooms is the name of the OOM counter.
	ooms string
	// up reports whether the exporter is connected, from its /metrics.
	up func(m string) bool
}

func ours(extra []string) *tool {
	return &tool{
		name: "ours",
		ooms: "container_ooms_total",
		start: func() *exporter {
			addr := freeAddr()
			args := append([]string{"--web.listen-address=" + addr,
				"--docker.host=" + env.dockerHost, "--containerd.address=" + env.containerd,
				"--kernel.cgroup-parent=" + env.cgroupParent}, extra...)
			return startProcess("ours", exec.Command(*exporterBin, args...), addr)
		},
		up: func(m string) bool {
			return strings.Contains(m, `missing_container_metrics_source_up{source="docker"} 1`) &&
				strings.Contains(m, `missing_container_metrics_source_up{source="containerd"} 1`)
		},
	}
}

// earlier is the earlier tool with its Docker source only: its containerd
// source has no flag for the address and would follow the host's containerd.
func earlier() *tool {
	return &tool{
		name: "earlier",
		ooms: "container_ooms",
		start: func() *exporter {
			addr := freeAddr()
			cmd := exec.Command(*earlierBin)
			cmd.Env = append(os.Environ(), "BIND_ADDRESS="+addr, "DOCKER=true", "CONTAINERD=false",
				"DOCKER_HOST="+env.dockerHost, "DOCKER_CONTEXT=")
			return startProcess("earlier", cmd, addr)
		},
		up: func(string) bool { return true },
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

type exporter struct {
	name string
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startProcess(name string, cmd *exec.Cmd, addr string) *exporter {
	logf, err := os.OpenFile(filepath.Join(env.tmp, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fatalf("%v", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// The exporter dies with the benchmark, also when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fatalf("%s: %v", name, err)
	}
	e := &exporter{name: name, cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(e.done) }()
	cleanups = append(cleanups, e.stop)
	return e
}

func (e *exporter) stop() {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}

var (
	// identity asks for the text as it is; gzipped asks for gzip, as
	// Prometheus does, and reads the compressed answer without decoding it.
	identity = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	gzipped  = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true}}
)

func (e *exporter) get(c *http.Client, gzip bool) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+"/metrics", nil)
	if gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s /metrics: %s", e.name, resp.Status)
	}
	return string(b), err
}

func (e *exporter) metrics() (string, error) { return e.get(identity, false) }

// waitTracked waits until /metrics shows every one of ids and the exporter
// is connected, polling every 2 ms; it returns the time since t0.
func (e *exporter) waitTracked(x *tool, ids []string, t0 time.Time) time.Duration {
	for {
		m, err := e.metrics()
		if err == nil && x.up(m) && allTracked(m, ids) {
			return time.Since(t0)
		}
		if time.Since(t0) > 2*time.Minute {
			fatalf("%s: not all %d containers tracked after 2 min (%v)", e.name, len(ids), err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func allTracked(m string, ids []string) bool {
	for _, id := range ids {
		if !strings.Contains(m, `container_id="docker://`+id+`"`) {
			return false
		}
	}
	return true
}

// timeScrapes times n scrapes, one after the other, and returns the median.
func (e *exporter) timeScrapes(n int, gzip bool) time.Duration {
	c := identity
	if gzip {
		c = gzipped
	}
	var ts []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := e.get(c, gzip); err != nil {
			fatalf("%v", err)
		}
		ts = append(ts, time.Since(t0))
	}
	return median(ts)
}

// memory is a process's resident memory: its private (anonymous) pages and
// the pages of files it maps (its binary: shared and clean, so the kernel can
// drop them).
type memory struct{ rss, anon float64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (private %.1f, file-backed %.1f)", m.rss/(1<<20), m.anon/(1<<20), (m.rss-m.anon)/(1<<20))
}

func (e *exporter) memory() memory {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
	if err != nil {
		fatalf("%v", err)
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
		fatalf("no VmRSS")
	}
	return m
}

// cpu is the CPU time the exporter used so far (user and system).
func (e *exporter) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.cmd.Process.Pid))
	if err != nil {
		fatalf("%v", err)
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
		if _, err := e.get(gzipped, true); err != nil {
			fatalf("%v", err)
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
		fatalf("%v", err)
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

// measureStarts starts each exporter -runs times, in turns, with the
// containers running: the time from exec until every container is on
// /metrics, then -scrapes scrapes timed, then its resident memory.
func measureStarts(t *table, ids []string) {
	n := len(t.tools)
	track := make([][]time.Duration, n)
	gz := make([][]time.Duration, n)
	plain := make([][]time.Duration, n)
	mem := make([][]memory, n)
	for r := range *runs {
		for k := range n {
			i := (k + r) % n // alternate which goes first
			x := t.tools[i]
			t0 := time.Now()
			e := x.start()
			track[i] = append(track[i], e.waitTracked(x, ids, t0))
			e.settle()
			gz[i] = append(gz[i], e.timeScrapes(*scrapes, true))
			plain[i] = append(plain[i], e.timeScrapes(*scrapes, false))
			mem[i] = append(mem[i], e.memory())
			e.stop()
		}
	}
	var fs [4][]string
	var vs [4][]float64
	for i, x := range t.tools {
		log.Printf("%s: start to all tracked %v; scrape gzip %v, identity %v; memory %v", x.name, track[i], gz[i], plain[i], mem[i])
		m := medianMemory(mem[i])
		for j, d := range []time.Duration{median(track[i]), median(gz[i]), median(plain[i])} {
			fs[j] = append(fs[j], ms(d))
			vs[j] = append(vs[j], float64(d))
		}
		fs[3] = append(fs[3], m.String())
		vs[3] = append(vs[3], m.rss)
	}
	t.add(fmt.Sprintf("start → all %d tracked", len(ids)), "< 400 ms", fs[0], vs[0])
	t.add(fmt.Sprintf("scrape `/metrics`, gzip (as Prometheus asks), median of %d", *scrapes), "< 4 ms", fs[1], vs[1])
	t.add(fmt.Sprintf("scrape `/metrics`, identity, median of %d", *scrapes), "", fs[2], vs[2])
	t.add("resident memory", "< 18 MB", fs[3], vs[3])
	t.load("after the starts")
}

// medianMemory is the reading of median total resident memory.
func medianMemory(xs []memory) memory {
	s := slices.Clone(xs)
	slices.SortFunc(s, func(a, b memory) int { return int(a.rss - b.rss) })
	return s[len(s)/2]
}

// measureExposition takes what Prometheus stores of each container: the
// series that name one, and the bytes of /metrics (identity) divided by the
// containers; ours also with --compat.legacy-metric-names.
func measureExposition(t *table, ids []string) {
	series := func(x *tool) (float64, float64) {
		e := x.start()
		defer e.stop()
		e.waitTracked(x, ids, time.Now())
		m, err := e.metrics()
		if err != nil {
			fatalf("%v", err)
		}
		n := 0
		for _, l := range strings.Split(m, "\n") {
			if !strings.HasPrefix(l, "#") && strings.Contains(l, `container_id="docker://`) {
				n++
			}
		}
		return float64(n) / float64(len(ids)), float64(len(m)) / float64(len(ids))
	}
	var sf, bf []string
	var sv, bv []float64
	for _, x := range t.tools {
		s, b := series(x)
		sf, sv = append(sf, fmt.Sprintf("%.2f", s)), append(sv, s)
		bf, bv = append(bf, fmt.Sprintf("%.0f B", b)), append(bv, b)
	}
	t.add("series per container", "", sf, sv)
	t.add("bytes of `/metrics` per container", "half of before", bf, bv)
	legacy := ours([]string{"--compat.legacy-metric-names"})
	s, b := series(legacy)
	fig := func(s string) []string { // in the column of ours
		f := make([]string, len(t.tools))
		f[len(f)-1] = s
		return f
	}
	t.add("series per container, --compat.legacy-metric-names", "", fig(fmt.Sprintf("%.2f", s)), nil)
	t.add("bytes of `/metrics` per container, --compat.legacy-metric-names", "", fig(fmt.Sprintf("%.0f B", b)), nil)
}

// running starts every tool and waits until each tracks ids.
func running(t *table, ids []string) []*exporter {
	var es []*exporter
	for _, x := range t.tools {
		e := x.start()
		e.waitTracked(x, ids, time.Now())
		e.settle()
		es = append(es, e)
	}
	return es
}

// measureIdle takes each exporter's CPU time over 30 s with the containers
// running and nothing happening but two scrapes; all run at once.
func measureIdle(t *table, ids []string) {
	es := running(t, ids)
	defer func() {
		for _, e := range es {
			e.stop()
		}
	}()
	cpus, wall := idleCPU(es)
	var fs []string
	var vs []float64
	for _, cpu := range cpus {
		fs = append(fs, idleFigure(cpu, wall))
		vs = append(vs, float64(cpu))
	}
	t.add(fmt.Sprintf("idle CPU, %d containers, scraped every 15 s", len(ids)), "", fs, vs)
	t.load("after idle")
}

// idleCPU is each exporter's CPU time over 30 s in which nothing happens
// but two scrapes, 15 s apart (the kernel reader's walk of the cgroups,
// every 30 s, falls in it), and the wall time it took.
func idleCPU(es []*exporter) ([]time.Duration, time.Duration) {
	cpu0 := make([]time.Duration, len(es))
	for i, e := range es {
		cpu0[i] = e.cpu()
	}
	t0 := time.Now()
	for range 2 {
		time.Sleep(15 * time.Second)
		for _, e := range es {
			if _, err := e.get(gzipped, true); err != nil {
				fatalf("%v", err)
			}
		}
	}
	wall := time.Since(t0)
	out := make([]time.Duration, len(es))
	for i, e := range es {
		out[i] = e.cpu() - cpu0[i]
	}
	return out, wall
}

func idleFigure(cpu, wall time.Duration) string {
	return fmt.Sprintf("%s in %.0f s (%.1f ms/s)", ms(cpu), wall.Seconds(), float64(cpu)/float64(time.Millisecond)/wall.Seconds())
}

// measureLifecycles runs -lifecycles containers each through create, run
// for 1 s, exit and remove, with every exporter following at once, and
// divides each one's CPU time by the containers.
func measureLifecycles(t *table) {
	es := running(t, nil)
	defer func() {
		for _, e := range es {
			e.stop()
		}
	}()
	per := make([][]time.Duration, len(es))
	for round := range *churnRuns {
		cpu0 := make([]time.Duration, len(es))
		read0 := make([]string, len(es))
		for i, e := range es {
			cpu0[i] = e.cpu()
			read0[i], _ = e.metrics()
		}
		t0 := time.Now()
		each(*lifecycles, func(int) error {
			id, err := dockerOut(append([]string{"run", "-d"}, runArgs("sleep 1")...)...)
			if err != nil {
				return err
			}
			if _, err := dockerOut("wait", id); err != nil {
				return err
			}
			_, err = dockerOut("rm", id)
			return err
		})
		wall := time.Since(t0)
		// Until every exporter has taken every event: its CPU time stops moving for 2 s.
		last := make([]time.Duration, len(es))
		for still := 0; still < 8; time.Sleep(250 * time.Millisecond) {
			moved := false
			for i, e := range es {
				if c := e.cpu(); c != last[i] {
					last[i], moved = c, true
				}
			}
			if moved {
				still = 0
			} else {
				still++
			}
		}
		for i, e := range es {
			cpu := last[i] - cpu0[i]
			per[i] = append(per[i], cpu/time.Duration(*lifecycles))
			log.Printf("lifecycles round %d: %s used %s for %d containers in %s%s", round, e.name, cpu, *lifecycles, wall.Round(time.Millisecond), kernelWork(read0[i], e))
		}
	}
	var fs []string
	var vs []float64
	for i := range es {
		d := median(per[i])
		fs = append(fs, ms(d))
		vs = append(vs, float64(d))
	}
	t.add(fmt.Sprintf("CPU per container lifecycle (create, run 1 s, exit, remove; %d of them)", *lifecycles), "< 2.5 ms", fs, vs)
	t.load("after the lifecycles")
}

// kernelWork tells what else the kernel reader read since the scrape m0:
// it follows the whole host's kernel log and cgroups, so other work on
// the machine costs it CPU too.
func kernelWork(m0 string, e *exporter) string {
	m, err := e.metrics()
	if err != nil {
		return ""
	}
	var s string
	for _, src := range []string{"kmsg", "cgroup"} {
		v0, ok0 := sample(m0, "missing_container_metrics_events_total", `source="`+src+`"`)
		v, ok := sample(m, "missing_container_metrics_events_total", `source="`+src+`"`)
		if ok0 && ok {
			s += fmt.Sprintf("; %s events %.0f", src, v-v0)
		}
	}
	return s
}

// measureOOMLatency OOM-kills a worker in a container -kills times, with
// every exporter following, and takes, for each kill and each exporter, the
// time from the kernel's log record of it to the first scrape that shows it.
func measureOOMLatency(t *table) {
	es := running(t, nil)
	defer func() {
		for _, e := range es {
			e.stop()
		}
	}()
	kmsg, err := os.Open("/dev/kmsg")
	if err != nil {
		fatalf("%v", err)
	}
	defer kmsg.Close()
	if _, err := kmsg.Seek(0, io.SeekEnd); err != nil {
		fatalf("%v", err)
	}
	id, err := dockerOut(append([]string{"create"}, runArgs(fmt.Sprintf(
		"while [ ! -e /tmp/go ]; do sleep 0.1; done; for i in $(seq %d); do dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 0.5; done; sleep 100000", *kills))...)...)
	if err != nil {
		fatalf("%v", err)
	}
	if _, err := dockerOut("start", id); err != nil {
		fatalf("%v", err)
	}
	for i, e := range es { // the container is tracked before the first kill
		e.waitTracked(t.tools[i], []string{id}, time.Now())
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
			fatalf("%v", err)
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
		fatalf("%v", err)
	}
	// One poller an exporter, each on its own: a slow one does not delay the other.
	seenAt := make([][]time.Duration, len(es))
	var wg sync.WaitGroup
	for i, e := range es {
		wg.Go(func() {
			deadline := time.Now().Add(time.Duration(*kills)*time.Second + time.Minute)
			for len(seenAt[i]) < *kills {
				m, err := e.metrics()
				now := monotonic()
				if err != nil {
					fatalf("%v", err)
				}
				v, _ := sample(m, t.tools[i].ooms, id)
				for len(seenAt[i]) < min(int(v), *kills) {
					seenAt[i] = append(seenAt[i], now)
				}
				if time.Now().After(deadline) {
					fatalf("%s: only %d of %d kills seen on /metrics", e.name, len(seenAt[i]), *kills)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	// The kernel writes at most 10 OOM reports in 5 s, host-wide: other OOM
	// kills on the host may take them, and then a kill has no time to start
	// from. The other figures of the run still count.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		if len(killedAt) >= *kills || time.Now().After(deadline) {
			break
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	defer mu.Unlock() // held since the loop
	if len(killedAt) != *kills {
		log.Printf("%d of %d kills' oom-kill records in the kernel log: other OOM kills on the host took the kernel's reports; no latency", len(killedAt), *kills)
		na := make([]string, len(es))
		for i := range na {
			na[i] = "n/a (reports rate-limited)"
		}
		t.add(fmt.Sprintf("OOM kill → `/metrics`, p99 of %d", *kills), "< 100 ms", na, nil)
		return
	}
	var f50, f99 []string
	var v50, v99 []float64
	for i, e := range es {
		lat := make([]time.Duration, *kills)
		for k := range lat {
			lat[k] = seenAt[i][k] - (killedAt[k] - offset)
		}
		log.Printf("%s: OOM kill to /metrics: %v", e.name, lat)
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
		f50, v50 = append(f50, ms(p50)), append(v50, float64(p50))
		f99, v99 = append(f99, ms(p99)), append(v99, float64(p99))
	}
	t.add(fmt.Sprintf("OOM kill → `/metrics`, p50 of %d", *kills), "", f50, v50)
	t.add(fmt.Sprintf("OOM kill → `/metrics`, p99 of %d", *kills), "< 100 ms", f99, v99)
}

// measureLarge measures ours on a host of -cgroups containers: the running
// ones, and empty memory cgroups named as CRI-O names its containers'
// (crio-ID) under the trusted cgroup parent. The kernel reader takes each
// for a container that only the kernel knows and, no CRI-O source being
// configured, exports it: one series, its OOM count.
func measureLarge(t *table, ids []string) {
	fake := *cgroups - len(ids)
	if fake <= 0 {
		return
	}
	dirs := makeCgroups(fake)
	all := *cgroups
	x := ours(nil)
	var track, gz, plain []time.Duration
	var mem []memory
	var bytes int
	var idle string
	for range min(*runs, 3) {
		t0 := time.Now()
		e := x.start()
		for {
			m, err := e.metrics()
			if err == nil && x.up(m) && strings.Count(m, "\ncontainer_ooms_total{") >= all {
				bytes = len(m)
				break
			}
			if time.Since(t0) > 5*time.Minute {
				fatalf("ours: not all %d containers tracked after 5 min", all)
			}
			time.Sleep(10 * time.Millisecond)
		}
		track = append(track, time.Since(t0))
		e.settle()
		gz = append(gz, e.timeScrapes(*scrapes, true))
		plain = append(plain, e.timeScrapes(*scrapes, false))
		mem = append(mem, e.memory())
		if len(mem) == min(*runs, 3) {
			cpus, wall := idleCPU([]*exporter{e})
			idle = idleFigure(cpus[0], wall)
		}
		e.stop()
	}
	log.Printf("%d containers: start to all tracked %v; scrape gzip %v, identity %v; memory %v", all, track, gz, plain, mem)
	removeCgroups(dirs)
	// Ours alone: the earlier tool follows Docker's containers only, not
	// the empty cgroups that make up the large host.
	fig := func(s string) []string {
		f := make([]string, len(t.tools))
		f[0] = s
		return f
	}
	n := fmt.Sprintf("%d containers (%d running, %d empty cgroups)", all, len(ids), fake)
	t.add(n+": start → all tracked", "", fig(ms(median(track))), nil)
	t.add(n+": scrape, gzip", "< 50 ms", fig(ms(median(gz))), nil)
	t.add(n+": scrape, identity", "< 50 ms", fig(ms(median(plain))), nil)
	t.add(n+": resident memory", "", fig(medianMemory(mem).String()), nil)
	t.add(n+": idle CPU, scraped every 15 s", "", fig(idle), nil)
	t.add(n+": bytes of `/metrics`", "", fig(fmt.Sprintf("%.1f MB", float64(bytes)/1e6)), nil)
	t.load(fmt.Sprintf("after %d containers", all))
}

// makeCgroups makes n memory cgroups (cgroup v1) under the harness's cgroup
// parent, each named crio-ID with an id of its own; the cleanups remove them
// (and scripts/harness.sh stop removes the parent's whole subtree).
func makeCgroups(n int) []string {
	parent := filepath.Join("/sys/fs/cgroup/memory", env.cgroupParent)
	if _, err := os.Stat(parent); err != nil {
		fatalf("the -cgroups case needs cgroup v1's memory hierarchy: %v", err)
	}
	dirs := make([]string, 0, n)
	cleanups = append(cleanups, func() { removeCgroups(dirs) })
	log.Printf("making %d memory cgroups under %s", n, parent)
	b := make([]byte, 32)
	for range n {
		_, _ = rand.Read(b)
		d := filepath.Join(parent, "crio-"+hex.EncodeToString(b))
		if err := os.Mkdir(d, 0o755); err != nil {
			fatalf("%v", err)
		}
		dirs = append(dirs, d)
	}
	return dirs
}

func removeCgroups(dirs []string) {
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			log.Printf("cannot remove %s: %v", d, err)
		}
	}
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
			fatalf("waiting for %s: 10 s passed", what)
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
		fatalf("%v", err)
	}
	return time.Duration(ts.Nano())
}
