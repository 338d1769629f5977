package collector

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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
	s.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: "fedcba9876543210", Name: "app", Container: "app", Pod: "web-1", Namespace: "shop", ImageID: "sha256:bb"},
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
	s.Apply(store.KernelOOMCount{Meta: store.Meta{Runtime: "docker", ID: fluentd.ID}, Cgroup: 7, Born: t0, BornExact: true, At: t0})
	for i, p := range []string{"ruby", "ruby", "fluentd"} {
		s.Apply(store.OOMVictim{Meta: store.Meta{Runtime: "docker", ID: fluentd.ID}, Cgroup: 7, Process: p, At: t0.Add(time.Duration(i+1) * time.Second), Seq: uint64(i + 1), Live: true})
	}
	s.Apply(store.KernelOOMCount{Meta: store.Meta{Runtime: "docker", ID: fluentd.ID}, Cgroup: 7, Kills: 3, Born: t0, BornExact: true, At: t0.Add(3 * time.Second)})
	grouped := store.Meta{Runtime: "cri-o", ID: "fedcba9876543210"}
	s.Apply(store.KernelOOMCount{Meta: grouped, Cgroup: 9, Kills: 4, GroupKills: 1, HasGroup: true, Born: t0, At: t0.Add(5 * time.Second)})
	s.Apply(store.HostOOMKill{Process: "java", At: t0, Seq: 10, Live: true})
	return s
}

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
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(New(tc.fixture(), tc.opts))
			got := gather(t, reg)
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

func gather(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestHostileLabelValuesGiveValidExposition(t *testing.T) {
	hostile := []string{
		`quote"d`, `back\slash`, "new\nline", "\xff\xfeinvalid utf-8", strings.Repeat("x", 10<<10),
		"", "{}=,", "\x00nul", "ünïcødé ✓",
	}
	s := store.New(time.Minute)
	for i, v := range hostile {
		s.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: v + string(rune('a'+i)), Name: v, Container: v, Pod: v, Namespace: v, ImageID: v}})
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(s, Options{}))
	text := gather(t, reg)
	// The text must parse back, with one series per container and family.
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	if n := len(mfs["container_ooms_total"].GetMetric()); n != len(hostile) {
		t.Fatalf("container_ooms_total has %d series, want %d", n, len(hostile))
	}
	if n, err := testutil.GatherAndCount(reg, "container_restarts_total"); err != nil || n != len(hostile) {
		t.Fatalf("container_restarts_total: %d series, err %v", n, err)
	}
}

func TestLastExitCodeAbsentUntilExit(t *testing.T) {
	s := store.New(time.Minute)
	s.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: "a"}, State: store.State{StartedAt: t0, Running: true}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(s, Options{}))
	if n, _ := testutil.GatherAndCount(reg, "container_last_exit_code"); n != 0 {
		t.Fatalf("exit code exported for a container that never exited")
	}
	s.Apply(store.Exited{Key: "docker://a", At: t0.Add(time.Second), Code: 0})
	if n, _ := testutil.GatherAndCount(reg, "container_last_exit_code"); n != 1 {
		t.Fatalf("exit code 0 not exported after an exit")
	}
}

func TestRefreshRunsBeforeEachScrape(t *testing.T) {
	s := store.New(time.Minute)
	calls := 0
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(s, Options{Refresh: func() {
		calls++
		s.Apply(store.KernelOOMCount{Meta: store.Meta{Runtime: "docker", ID: "a"}, Cgroup: 1, Kills: uint64(calls), At: t0})
	}}))
	for want := 1; want <= 2; want++ {
		if n, err := testutil.GatherAndCount(reg, "container_ooms_total"); err != nil || n != 1 {
			t.Fatalf("scrape %d: %d series, err %v", want, n, err)
		}
		if calls != want {
			t.Fatalf("refresh called %d times in %d scrapes", calls, want)
		}
	}
}
