package collector

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// fixture is a store with one container of each interesting kind.
func fixture() *store.Store {
	s := store.New(time.Minute)
	s.AddSource("docker")
	s.SetUp("docker", true, nil)
	s.CountEvent("docker", false)
	// A plain container whose worker was OOM-killed twice; never exited.
	s.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: "0123456789abcdef", Name: "fluentd", ImageID: "sha256:aa"},
		State: store.State{StartedAt: t0, Running: true}})
	s.Apply(store.OOMKilled{Key: "docker://0123456789abcdef", At: t0.Add(time.Second)})
	s.Apply(store.OOMKilled{Key: "docker://0123456789abcdef", At: t0.Add(2 * time.Second)})
	// A Kubernetes container that exited 137 after restarting once.
	s.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: "fedcba9876543210", Name: "app", KubeContainer: "app", Pod: "web-1", Namespace: "shop", PodUID: "5c0ffee0-1234-4abc-8def-000000000001", ImageID: "sha256:bb"},
		State: store.State{StartedAt: t0, FinishedAt: t0.Add(time.Second), ExitCode: 137, OOMKilled: true, Restarts: 1}})
	return s
}

// kernelFixture is a store with what the kernel reader reports: a worker
// named by the kernel log, a cgroup v2 group kill, a container only the
// kernel knows (no CRI-O source), and a kill outside any container.
func kernelFixture() *store.Store {
	s := store.New(time.Minute)
	s.AddSource("docker")
	s.SetUp("docker", true, nil)
	fluentd := store.Meta{Runtime: "docker", ID: "0123456789abcdef", Name: "fluentd", ImageID: "sha256:aa"}
	s.Apply(store.Observed{Meta: fluentd, State: store.State{StartedAt: t0, Running: true}})
	s.Apply(store.KernelOOMCount{Cgroup: cgroupOf(store.Meta{Runtime: "docker", ID: fluentd.ID}), Instance: 7, Born: t0, BornExact: true, At: t0})
	for i, p := range []string{"ruby", "ruby", "fluentd"} {
		s.Apply(store.OOMVictim{Cgroup: cgroupOf(store.Meta{Runtime: "docker", ID: fluentd.ID}), Instance: 7, Process: p, At: t0.Add(time.Duration(i+1) * time.Second), Seq: uint64(i + 1), Live: true})
	}
	// cgroup v1: the limit hits of memory.failcnt, no high, no PSI.
	s.Apply(store.KernelOOMCount{Cgroup: cgroupOf(store.Meta{Runtime: "docker", ID: fluentd.ID}), Instance: 7, Kills: 3, Born: t0, BornExact: true, At: t0.Add(3 * time.Second),
		Pressure: store.MemoryPressure{LimitHits: 1204, HasLimitHits: true}, PressureSampled: true})
	grouped := store.Meta{Runtime: "cri-o", ID: "fedcba9876543210"}
	// cgroup v2: memory.events max and high, and PSI; its pod's own limit hits.
	s.Apply(store.KernelOOMCount{Cgroup: cgroupOf(grouped), Instance: 9, Kills: 4, GroupKills: 1, HasGroup: true, Born: t0, At: t0.Add(5 * time.Second),
		Pressure: store.MemoryPressure{LimitHits: 40, HasLimitHits: true, HighHits: 5, HasHighHits: true, Waiting: 1500 * time.Millisecond, Stalled: 250 * time.Millisecond, HasStall: true,
			PodLimitHits: 310, HasPodLimitHits: true}, PressureSampled: true})
	s.Apply(store.OOMVictim{Host: true, HostCgroup: "/user.slice", Process: "java", At: t0, Seq: 10, Live: true, Details: store.KillDetails{Scope: store.ScopeNode}})
	s.Apply(store.OOMVictim{Host: true, HostCgroup: "/system.slice/backup.service", Process: "restic", At: t0, Seq: 11, Live: true,
		Details: store.KillDetails{Scope: store.ScopeCgroup, LimitCgroup: "/system.slice/backup.service"}})
	// The outcomes decided: fluentd lived on after its workers' kills.
	s.AnnounceKills(t0.Add(time.Minute))
	return s
}

// The exposition of each fixture is written in testdata/*.prom, as
// client_golang wrote it before the collector wrote its families itself; run
// with UPDATE_GOLDEN=1 to write them again, and read the diff.
func TestGoldenExposition(t *testing.T) {
	for _, tc := range []struct {
		golden  string
		fixture func() *store.Store
		opts    Options
	}{
		{"testdata/metrics.prom", fixture, Options{}},
		{"testdata/metrics-legacy.prom", fixture, Options{LegacyNames: true}},
		{"testdata/metrics-kernel.prom", kernelFixture, Options{}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got := scrape(t, New(tc.fixture(), tc.opts))
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(tc.golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tc.golden)
			if err != nil {
				t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("exposition differs from %s:\n%s", filepath.Base(tc.golden), got)
			}
		})
	}
}

// scrape returns what WriteText writes for c registered alone in a pedantic
// registry, which checks what Collect sends against what Describe describes.
func scrape(t testing.TB, c *Collector) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	var buf bytes.Buffer
	if err := c.WriteText(&buf, reg, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// parse parses exposition text as Prometheus does, and checks that no family
// comes twice.
func parse(t testing.TB, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%.2000s", err, text)
	}
	if n := bytes.Count(text, []byte("# TYPE ")); n != len(mfs) {
		t.Fatalf("%d TYPE lines for %d families", n, len(mfs))
	}
	return mfs
}

// labelsOf returns a series' labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// checkLabels checks that every series of every per-container family parses
// back with the labels of one of the containers, made valid UTF-8, and that
// each container has its series.
func checkLabels(t testing.TB, mfs map[string]*dto.MetricFamily, metas []store.Meta) {
	t.Helper()
	want := map[string]map[string]string{} // by container_id
	for _, m := range metas {
		ls := map[string]string{
			"container_id": m.ContainerID(), "name": m.Name, "container": m.KubeContainer, "pod": m.Pod, "namespace": m.Namespace,
			"uid": m.PodUID, "containerd_namespace": m.ContainerdNamespace,
		}
		for k, v := range ls {
			ls[k] = strings.ToValidUTF8(v, "\uFFFD")
			if v == "" {
				delete(ls, k) // an empty label is no label: not written
			}
		}
		want[ls["container_id"]] = ls
	}
	for _, name := range []string{"container_ooms_total", "container_restarts_total"} {
		series := mfs[name].GetMetric()
		if len(series) != len(want) {
			t.Fatalf("%s: %d series, want %d", name, len(series), len(want))
		}
		for _, m := range series {
			got := labelsOf(m)
			if w := want[got["container_id"]]; fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("%s: labels\n%q, want\n%q", name, got, w)
			}
		}
	}

}

// promtoolCheck runs promtool check metrics on text. Without promtool the
// test skips, and under CI=true it fails.
func promtoolCheck(t *testing.T, text []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool is needed under CI=true: %v", err)
		}
		t.Skipf("no promtool (Debian's prometheus package has it): %v", err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

var hostile = []string{
	`quote"d`, `back\slash`, "new\nline", "\xff\xfeinvalid utf-8", strings.Repeat("x", 10<<10),
	"", "{}=,", "\x00nul", "ünïcødé ✓", `\"\n`, "cr\rtab\t", "#", "a\xffb\xfe\xfdc",
}

func TestHostileLabelValuesGiveValidExposition(t *testing.T) {
	s := store.New(time.Minute)
	var metas []store.Meta
	for i, v := range hostile {
		m := store.Meta{Runtime: "docker", ID: v + string(rune('a'+i)), Name: v, KubeContainer: v, Pod: v, Namespace: v, ImageID: v}
		metas = append(metas, m)
		s.Apply(store.Observed{Meta: m})
		// Victims named as hostilely, in the container and on the host,
		// and cgroups of no container too.
		s.Apply(store.OOMVictim{Cgroup: cgroupOf(store.Meta{Runtime: "docker", ID: m.ID}), Instance: 1, Process: v, At: t0, Seq: uint64(3*i + 1), Live: true})
		s.Apply(store.OOMVictim{Host: true, Process: v, At: t0, Seq: uint64(3*i + 2), Live: true, Details: store.KillDetails{Scope: store.ScopeNode}})
		s.Apply(store.OOMVictim{Host: true, HostCgroup: v, Process: "p", At: t0, Seq: uint64(3*i + 3), Live: true, Details: store.KillDetails{Scope: store.ScopeCgroup}})
	}
	text := scrape(t, New(s, Options{}))
	mfs := parse(t, text)
	checkLabels(t, mfs, metas)
	for name, label := range map[string]string{"container_oom_kills_by_process_total": "process", "host_oom_kills_total": "process", "cgroup_oom_kills_total": "cgroup"} {
		var got []string
		for _, m := range mfs[name].GetMetric() {
			got = append(got, labelsOf(m)[label])
		}
		// \xff\xfeinvalid utf-8 and a\xffb\xfe\xfdc stay two processes.
		var want []string
		for _, v := range hostile {
			want = append(want, strings.ToValidUTF8(v, "\uFFFD"))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: processes %q, want %q", name, got, want)
		}
	}
	promtoolCheck(t, text)
}

// Ids that differ only in invalid UTF-8 have the same labels once it is
// replaced: they are exported as one series, the same one at every scrape,
// where two would make the scrape invalid. Process names that become the
// same are one series counting both.
func TestLabelsThatBecomeTheSameAreOneSeries(t *testing.T) {
	s := store.New(time.Minute)
	for i, id := range []string{"a\xff", "a\xfe", "a\xfd\xfc"} {
		s.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: id, Name: id}, State: store.State{Restarts: i}})
	}
	s.Apply(store.OOMVictim{Cgroup: cgroupOf(store.Meta{Runtime: "docker", ID: "b"}), Instance: 1, Process: "w\xff", At: t0, Seq: 1, Live: true})
	s.Apply(store.OOMVictim{Cgroup: cgroupOf(store.Meta{Runtime: "docker", ID: "b"}), Instance: 1, Process: "w\xfe", At: t0, Seq: 2, Live: true})
	c := New(s, Options{})
	first := scrape(t, c)
	for range 5 {
		if again := scrape(t, c); !bytes.Equal(again, first) {
			t.Fatalf("scrapes differ:\n%s\n%s", first, again)
		}
	}
	mfs := parse(t, first)
	if n := len(mfs["container_ooms_total"].GetMetric()); n != 2 {
		t.Fatalf("%d series, want 2 (a\uFFFD and b):\n%s", n, first)
	}
	// b, which only the kernel knows, has no restarts.
	restarts := mfs["container_restarts_total"].GetMetric()
	if len(restarts) != 1 || restarts[0].GetCounter().GetValue() != 2 {
		t.Errorf("a\\xfd\\xfc (2 restarts), whose id sorts first, did not win: %v", restarts)
	}
	kills := mfs["container_oom_kills_by_process_total"].GetMetric()
	if len(kills) != 1 || kills[0].GetCounter().GetValue() != 2 || labelsOf(kills[0])["process"] != "w\uFFFD" {
		t.Errorf("process kills: %v", kills)
	}
	promtoolCheck(t, first)
}

func TestLastExitCodeAbsentUntilExit(t *testing.T) {
	s := store.New(time.Minute)
	s.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: "a"}, State: store.State{StartedAt: t0, Running: true}})
	c := New(s, Options{})
	if text := scrape(t, c); bytes.Contains(text, []byte("container_last_exit_code")) {
		t.Fatalf("exit code exported for a container that never exited:\n%s", text)
	}
	s.Apply(store.Exited{Key: "docker://a", At: t0.Add(time.Second), Code: 0})
	if n := len(parse(t, scrape(t, c))["container_last_exit_code"].GetMetric()); n != 1 {
		t.Fatalf("exit code 0 not exported after an exit")
	}
}

// A container whose metadata changes gets its new labels at the next scrape,
// and the cache forgets the old ones and those of removed containers.
func TestLabelsFollowTheMetadata(t *testing.T) {
	s := store.New(0)
	c := New(s, Options{})
	m := store.Meta{Runtime: "docker", ID: "a", Name: "before"}
	s.Apply(store.Observed{Meta: m, At: t0})
	s.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: "b", Name: "gone"}, At: t0})
	scrape(t, c)
	m.Name = "after"
	s.Apply(store.Observed{Meta: m, At: t0.Add(time.Second)})
	s.Apply(store.Removed{Key: "docker://b", At: t0})
	s.Sweep(t0.Add(time.Second))
	text := scrape(t, c)
	if !bytes.Contains(text, []byte(`name="after"`)) || bytes.Contains(text, []byte(`name="before"`)) || bytes.Contains(text, []byte(`name="gone"`)) {
		t.Fatalf("labels not renewed:\n%s", text)
	}
	if n := len(c.labels.sets); n != 1 {
		t.Errorf("the cache holds %d label sets for 1 container", n)
	}
}

// The names the collector describes are those it writes: the registry's
// check for a second collector of the same names covers them.
func TestDescribeCoversWhatIsWritten(t *testing.T) {
	c := New(kernelFixture(), Options{})
	described := map[string]bool{}
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		described[strings.Split(d.String(), `"`)[1]] = true
	}
	for name := range parse(t, scrape(t, New(fixture(), Options{}))) {
		if !described[name] {
			t.Errorf("%s written but not described", name)
		}
	}
	for _, tf := range c.text {
		if !described[tf.name] {
			t.Errorf("%s written but not described", tf.name)
		}
	}
	if all := append(slices.Clone(ContainerLabels), LegacyLabels...); !slices.Equal(sortedLabels[:], slices.Sorted(slices.Values(all))) {
		t.Errorf("sortedLabels %q are not ContainerLabels and LegacyLabels sorted", sortedLabels)
	}
	for i, name := range sortedLabels {
		if legacyOnly[i] != slices.Contains(LegacyLabels, name) {
			t.Errorf("legacyOnly[%d] (%s) is %v", i, name, legacyOnly[i])
		}
	}
}

// Scrapes run concurrently with each other and with changes to the store
// (run with -race): each one is valid and has every container once.
func TestConcurrentScrapes(t *testing.T) {
	s := store.New(0)
	c := New(s, Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	const containers = 50
	var wg sync.WaitGroup
	wg.Go(func() {
		for round := range 20 {
			for i := range containers {
				m := store.Meta{Runtime: "docker", ID: fmt.Sprint(i), Name: fmt.Sprint("n", round)}
				s.Apply(store.Observed{Meta: m, At: t0.Add(time.Duration(round) * time.Second)})
				s.Apply(store.OOMKilled{Key: m.Key(), At: t0.Add(time.Duration(round) * time.Second)})
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 20 {
				var buf bytes.Buffer
				if err := c.WriteText(&buf, reg, nil); err != nil {
					t.Error(err)
					return
				}
				p := expfmt.NewTextParser(model.UTF8Validation)
				mfs, err := p.TextToMetricFamilies(&buf)
				if err != nil {
					t.Error(err)
					return
				}
				if n := len(mfs["container_ooms_total"].GetMetric()); n > containers {
					t.Errorf("%d series of %d containers", n, containers)
				}
			}
		})
	}
	wg.Wait()
}

// Values are written as client_golang writes them.
func TestValuesAsClientGolangWritesThem(t *testing.T) {
	for _, v := range []float64{0, math.Copysign(0, -1), 1, -1, 137, 255, 999999, 1e6, 1234567, -999999, -1e6,
		0.5, 1.795773602e+09, 1795773602.123, 1 << 53, 1e21, math.Inf(1), math.Inf(-1), math.NaN(), 4e-7} {
		mf := &dto.MetricFamily{Name: proto.String("x"), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(v)}}}}
		var want bytes.Buffer
		if _, err := expfmt.MetricFamilyToText(&want, mf); err != nil {
			t.Fatal(err)
		}
		_, wantValue, _ := strings.Cut(strings.TrimSpace(want.String()), "\nx ")
		if got := string(appendValue(nil, v)); got != wantValue {
			t.Errorf("%v: %q, client_golang %q", v, got, wantValue)
		}
	}
}

// The order kept from scrape to scrape is the one a full sort gives, after
// containers come, go and change their labels, also ids that invalid UTF-8
// makes the same.
func TestKeptOrderIsTheSortedOrder(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	s := store.New(0)
	c := New(s, Options{})
	ids := []string{"a", "b", "c\xff", "c\xfe", "d", "e", "f\xff", "f\xfd", "g", "h"}
	now := t0
	for round := range 300 {
		for range rnd.IntN(4) {
			now = now.Add(time.Second)
			id := ids[rnd.IntN(len(ids))]
			switch rnd.IntN(3) {
			case 0, 1: // a container comes, or changes its labels
				s.Apply(store.Observed{Meta: store.Meta{Runtime: []string{"docker", "containerd"}[rnd.IntN(2)], ID: id,
					Name: fmt.Sprint(rnd.IntN(3)), KubeContainer: []string{"", "app", "\xffx"}[rnd.IntN(3)]}, At: now})
			case 2: // one goes
				for _, rt := range []string{"docker", "containerd"} {
					s.Apply(store.Removed{Key: rt + "://" + id, At: now})
				}
				s.Sweep(now)
			}
		}
		snap := s.Snapshot()
		got := c.labels.rows(snap.Containers)
		want := make([]row, len(snap.Containers))
		for i := range snap.Containers {
			want[i] = row{&snap.Containers[i], newLabelSet(snap.Containers[i].Meta, false)}
		}
		slices.SortFunc(want, compareRows)
		want = slices.CompactFunc(want, func(a, b row) bool { return a.l.text == b.l.text })
		if len(got) != len(want) {
			t.Fatalf("round %d: %d rows, want %d", round, len(got), len(want))
		}
		for i := range got {
			if got[i].c.Meta != want[i].c.Meta || got[i].l.text != want[i].l.text {
				t.Fatalf("round %d, row %d: %+v, want %+v", round, i, got[i].c.Meta, want[i].c.Meta)
			}
		}
		if len(c.labels.sets) != len(snap.Containers) {
			t.Fatalf("round %d: %d label sets kept for %d containers", round, len(c.labels.sets), len(snap.Containers))
		}
	}
}

// cgroupOf is the cgroup the kernel reader finds for a container of m's
// runtime and id.
func cgroupOf(m store.Meta) store.Cgroup {
	return store.Cgroup{Meta: store.Meta{Runtime: m.Runtime, ID: m.ID}, Path: "/" + m.Runtime + "/" + m.ID}
}
