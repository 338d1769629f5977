package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/missing-container-metrics/missing-container-metrics/test/harness"
	"github.com/missing-container-metrics/missing-container-metrics/test/vm/guest/report"
)

// exporterConfig is one way the exporter runs in the guest. Both have its
// defaults as on a node: Docker at /var/run/docker.sock, containerd at
// /run/containerd/containerd.sock, the kernel's cgroups under /sys.
type exporterConfig struct {
	name string   // as report.Report.Scrapes names it
	addr string   // listen address
	args []string // beyond the defaults
}

var exporterConfigs = []exporterConfig{
	// The kernel log as the chart reads it by default, through syslog(2)
	// (/dev/kmsg is TestCgroupV2InVM's and the host's e2e tests'): the
	// kill's victims by name.
	{name: report.WithKmsg, addr: "127.0.0.1:3001", args: []string{"--kernel.log=syslog"}},
	// A node that refuses CAP_SYSLOG: the counters only, no kernel log.
	{name: report.WithoutKmsg, addr: "127.0.0.1:3002", args: []string{"--kernel.log=none"}},
}

// exporterProc is a running exporter.
type exporterProc struct {
	cfg  exporterConfig
	cmd  *exec.Cmd
	out  *harness.LockedBuffer
	done chan struct{}
}

func startExporter(bin string, cfg exporterConfig) (*exporterProc, error) {
	e := &exporterProc{cfg: cfg, out: &harness.LockedBuffer{}, done: make(chan struct{})}
	e.cmd = exec.Command(bin, append([]string{"--web.listen-address=" + cfg.addr, "--log.level=debug"}, cfg.args...)...)
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	if err := e.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	// As its DaemonSet's pod would be: never the OOM killer's choice.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", e.cmd.Process.Pid), []byte("-1000"), 0)
	err := waitFor(2*time.Minute, func() error {
		select {
		case <-e.done:
			return fmt.Errorf("the exporter exited: %s", tail(e.out.String(), 20))
		default:
		}
		fams, err := scrapeFamilies(e.url())
		if err != nil {
			return err
		}
		up := map[string]float64{}
		for _, m := range fams["missing_container_metrics_source_up"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" {
					up[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		sources := []string{"docker", "containerd", "cgroup"}
		if cfg.name == report.WithKmsg {
			sources = append(sources, "kmsg")
		}
		for _, s := range sources {
			if up[s] != 1 {
				return fmt.Errorf("sources up: %v", up)
			}
		}
		return nil
	})
	if err != nil {
		_ = e.stop()
		return nil, fmt.Errorf("exporter %s: %w\n%s", cfg.name, err, tail(e.out.String(), 30))
	}
	return e, nil
}

// stop ends the exporter as a rolling update of its DaemonSet does: SIGTERM.
func (e *exporterProc) stop() error {
	select {
	case <-e.done:
		return nil
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
		return fmt.Errorf("the exporter did not end within 30 s of SIGTERM")
	}
}

func (e *exporterProc) log() string { return tail(e.out.String(), 400) }

func (e *exporterProc) url() string { return "http://" + e.cfg.addr + "/metrics" }

// scrapeFamilies reads and parses url (test/harness: the tests' one copy).
func scrapeFamilies(url string) (map[string]*dto.MetricFamily, error) {
	m, err := harness.ScrapeMetrics(context.Background(), url)
	if err != nil {
		return nil, err
	}
	return m.Families, nil
}

// scrape is every container's series by container_id.
func (e *exporterProc) scrape() (map[string]report.Series, error) {
	fams, err := scrapeFamilies(e.url())
	if err != nil {
		return nil, err
	}
	out := map[string]report.Series{}
	for _, name := range []string{report.OOMs, report.GroupKills, report.Restarts, report.ExitCode, report.ByProcess,
		report.HostKills, report.ByScope, report.OOMLimit, report.PodLimitHits} {
		extra, hasExtra := report.Labelled(name)
		for _, m := range fams[name].GetMetric() {
			var id, value, reason string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "container_id":
					id = l.GetValue()
				case extra:
					value = l.GetValue()
				case "reason":
					if name == report.ExitCode {
						reason = l.GetValue()
					}
				}
			}
			key := name
			if hasExtra {
				key += "/" + value
			}
			if out[id] == nil {
				out[id] = report.Series{}
			}
			v := m.GetCounter().GetValue()
			if m.Gauge != nil {
				v = m.GetGauge().GetValue()
			}
			out[id][key] = v
			if reason != "" {
				out[id][report.ExitReason+"/"+reason] = 1
			}
		}
	}
	return out, nil
}

// want is what the exporter must show for one container for the scrape to
// be taken: the kernel's count, and the runtime's restarts and exit.
type want struct {
	id       string
	kernel   bool // the kernel's count is known: ooms and groups hold it
	ooms     float64
	groups   float64
	restarts float64
	exit     *float64
}

func (w want) check(s report.Series) error {
	if s == nil {
		return fmt.Errorf("%.25s… not exported", w.id)
	}
	bad := func(metric string, want float64) error {
		got, ok := s.Get(metric)
		if !ok || got != want {
			return fmt.Errorf("%.25s…: %s = %v (present %v), want %v", w.id, metric, got, ok, want)
		}
		return nil
	}
	if err := bad(report.Restarts, w.restarts); err != nil {
		return err
	}
	if w.kernel {
		if err := bad(report.OOMs, w.ooms); err != nil {
			return err
		}
		if err := bad(report.GroupKills, w.groups); err != nil {
			return err
		}
	}
	if w.exit != nil {
		return bad(report.ExitCode, *w.exit)
	}
	if v, ok := s.Get(report.ExitCode); ok {
		return fmt.Errorf("%.25s…: exit code %v, want none", w.id, v)
	}
	return nil
}

// settle waits until the exporter shows every container with the restarts
// and exit code its runtime gives, and, for every container whose count the
// exporter can know (all, or with liveOnly those whose cgroup is still
// there), the kernel's count; then it returns that scrape. After a timeout
// it returns the last one and records why it did not settle.
func (g *guest) settle(e *exporterProc, when string, liveOnly bool) map[string]report.Series {
	var wants []want
	for _, c := range g.rep.Containers {
		w := want{id: c.ID, restarts: float64(c.Attempt)}
		_, live := g.rep.Cgroups[c.Cgroup]
		if live || !liveOnly {
			ev, err := g.rep.KernelCounts(c)
			if err != nil {
				g.fail("%s: %v", when, err)
				continue
			}
			w.kernel, w.ooms, w.groups = true, float64(ev["oom_kill"]), float64(ev["oom_group_kill"])
		}
		if c.Runtime.State == "CONTAINER_EXITED" || c.Runtime.State == "exited" {
			code := float64(c.Runtime.ExitCode)
			w.exit = &code
		}
		wants = append(wants, w)
	}
	var last map[string]report.Series
	// Settled in 0.4 to 2 s in every passing boot, also under stress-ng.
	err := waitFor(time.Minute, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		last = s
		var errs []string
		for _, w := range wants {
			if err := w.check(s[w.id]); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	})
	if err != nil {
		g.fail("%s, exporter %s: it does not show the kernel's and the runtimes' counts: %v", when, e.cfg.name, err)
	}
	return last
}

// records reads the exporter's kill records (/api/v1/kills).
func (e *exporterProc) records() ([]report.Record, error) {
	resp, err := http.Get("http://" + e.cfg.addr + "/api/v1/kills")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Kills []struct {
			Place     string `json:"place"`
			Outcome   string `json:"outcome"`
			Container *struct {
				ContainerID string `json:"container_id"`
			} `json:"container"`
			Victim *struct {
				Name string `json:"name"`
			} `json:"victim"`
			Members []struct {
				Name string `json:"name"`
			} `json:"members"`
			GroupCgroup string     `json:"group_cgroup"`
			LimitCgroup string     `json:"limit_cgroup"`
			HeldBy      string     `json:"held_by"`
			TasksTotal  int        `json:"tasks_total"`
			Tasks       []struct{} `json:"tasks"`
			Held        *struct {
				AnonBytes  uint64 `json:"anon_bytes"`
				ShmemBytes uint64 `json:"shmem_bytes"`
			} `json:"held"`
		} `json:"kills"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := make([]report.Record, 0, len(body.Kills))
	for _, k := range body.Kills {
		r := report.Record{Place: k.Place, Outcome: k.Outcome, Group: k.GroupCgroup, LimitCgroup: k.LimitCgroup,
			HeldBy: k.HeldBy, Tasks: k.TasksTotal, Listed: len(k.Tasks)}
		if k.Held != nil {
			r.AnonBytes, r.ShmemBytes = k.Held.AnonBytes, k.Held.ShmemBytes
		}
		if k.Container != nil {
			r.ContainerID = k.Container.ContainerID
		}
		if k.Victim != nil {
			r.Process = k.Victim.Name
		}
		for _, m := range k.Members {
			r.Members = append(r.Members, m.Name)
		}
		out = append(out, r)
	}
	return out, nil
}
