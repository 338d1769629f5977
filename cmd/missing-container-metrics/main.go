// Command missing-container-metrics exports to Prometheus the container
// metrics that cAdvisor and kube-state-metrics miss: every OOM kill in every
// container, restarts, and the last exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/missing-container-metrics/missing-container-metrics/internal/collector"
	"github.com/missing-container-metrics/missing-container-metrics/internal/containerd"
	"github.com/missing-container-metrics/missing-container-metrics/internal/crio"
	"github.com/missing-container-metrics/missing-container-metrics/internal/docker"
	"github.com/missing-container-metrics/missing-container-metrics/internal/kernel"
	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
	"github.com/missing-container-metrics/missing-container-metrics/internal/pages"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

const program = "missing-container-metrics"

// envPrefix prefixes the environment variable of every flag that has no
// older name of its own (kingpin's DefaultEnvars).
const envPrefix = "MISSING_CONTAINER_METRICS_"

type config struct {
	web         *web.FlagConfig
	metricsPath string
	docker      bool
	dockerHost  string
	retention   time.Duration
	maxTracked  int
	killsKept   int
	pprof       bool
	legacyNames bool
	maxProcs    int // GOMAXPROCS
	log         promslog.Config

	containerd           bool
	containerdAddress    string
	containerdNamespaces []string

	crio        bool
	crioAddress string
	podman      bool
	podmanHost  string

	kernel    bool
	kernelCfg kernel.Config

	events       bool   // Kubernetes Events, through the companion
	companion    string // the companion program
	eventsSocket string // or the socket of a companion that runs on its own
	node         string
	kubeconfig   string
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	logger := promslog.New(&cfg.log)
	logger.Info("starting", "program", program, "version", version.Info(), "build", version.BuildContext())
	runtime.GOMAXPROCS(cfg.maxProcs)
	logger.Debug("Go runs on", "gomaxprocs", runtime.GOMAXPROCS(0))
	if !cfg.docker && !cfg.containerd && !cfg.kernel {
		logger.Warn(noSources)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st := store.New(cfg.retention)
	st.SetLimit(cfg.maxTracked)
	st.SetKillsKept(cfg.killsKept)
	var events *pipe.Companion
	eventsDone := make(chan struct{})
	if cfg.events {
		opts := pipe.Options{Path: cfg.companion, Args: companionArgs(cfg), Env: companionEnv(), Socket: cfg.eventsSocket}
		events = pipe.New(opts, logger.With("companion", companionName))
		go func() {
			defer close(eventsDone)
			events.Run(ctx)
		}()
		if cfg.eventsSocket != "" {
			logger.Info("Kubernetes Events on, through the companion's socket", "socket", cfg.eventsSocket)
		} else {
			logger.Info("Kubernetes Events on", "companion", cfg.companion, "node", cfg.node)
		}
	} else {
		close(eventsDone)
	}
	st.OnKill(func(k store.Kill) {
		logKill(logger, k)
		if m, ok := eventKill(k); ok && events != nil {
			events.Send(m)
		}
	})
	if err := startSources(ctx, cfg, st, logger); err != nil {
		logger.Error("cannot set up a runtime's source", "err", err)
		return 1
	}
	go sweep(ctx, st, cfg.retention)

	// The kernel's own account of OOM kills: cgroup counters and the kernel log.
	site := pages.Site{Version: version.Info(), MetricsPath: cfg.metricsPath, KillsKept: cfg.killsKept,
		KernelLog: kernel.LogNone, KernelLogWhy: "--no-kernel"}
	if cfg.kernel {
		k := kernel.New(cfg.kernelCfg, st, logger)
		site.KernelLog, site.KernelLogWhy = k.LogReader()
		go k.Run(ctx)
	}

	// A runtime socket mounted on its own goes stale when its runtime makes
	// a new one: end, so that the container is started again with it.
	staleSocket := make(chan error, 1)
	go func() {
		if err := watchMountedSockets(ctx, runtimeSockets(cfg), socketCheckInterval); err != nil {
			staleSocket <- err
		}
	}()

	srv := newServer(routes(cfg, site, st, events, logger))
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, cfg.web, logger) }()
	code := 0
	select {
	case err := <-errc:
		logger.Error("HTTP server failed", "err", err)
		return 1
	case err := <-staleSocket:
		logger.Error("ending, to be started again with the runtime's new socket", "err", err)
		tellTermination("ending, to be started again with the runtime's new socket: " + err.Error())
		code = 1
		stop()
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("shutdown", "err", err)
	}
	<-eventsDone // the companion has ended, or was killed
	return code
}

// newServer is the HTTP server of h, with timeouts that bound what a client
// can hold: its request headers 10 s, the whole request 30 s, the answer
// 60 s (and /metrics 5 s without progress, collector.StallTimeout), an idle
// connection 2 minutes.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// maxScrapesInFlight bounds the scrapes served at once; maxPagesInFlight
// the requests of the landing page and the kills' pages together, which
// each read the store (the landing page walks every container under its
// lock, which the sources and the kernel reader need too).
const maxScrapesInFlight, maxPagesInFlight = 10, 10

// routes serves the metrics, /healthz, the landing page and the kills'
// pages; events is the Kubernetes Events companion, nil if off.
func routes(cfg *config, site pages.Site, st *store.Store, events *pipe.Companion, logger *slog.Logger) http.Handler {
	c := collector.New(st, collector.Options{LegacyNames: cfg.legacyNames})
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		c,
		versioncollector.NewCollector(collector.Namespace),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if events != nil {
		reg.MustRegister(eventsMetrics(events)...)
	}
	mux := http.NewServeMux()
	// The collector writes the containers' families itself, merged with
	// the registry's, and streams the answer: no http.TimeoutHandler, which
	// would hold all of it (16 MB for 10,000 containers) in memory. The
	// server's WriteTimeout ends a scrape that hangs.
	mux.Handle(cfg.metricsPath, c.Handler(reg, collector.HandlerOpts{Logger: logger, MaxRequestsInFlight: maxScrapesInFlight}))
	mux.Handle("/healthz", pages.Healthz())
	limit := pages.Limit(maxPagesInFlight)
	mux.Handle("/", limit(pages.Landing(st, site)))
	mux.Handle("/kills", limit(pages.Kills(st, site)))
	mux.Handle("/api/v1/kills", limit(pages.KillsAPI(st)))
	if cfg.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// sweep drops removed containers once their retention has passed, and
// announces every second the kills the kernel log did not describe.
func sweep(ctx context.Context, st *store.Store, retention time.Duration) {
	t := time.NewTicker(min(max(retention/10, time.Second), time.Minute))
	defer t.Stop()
	announce := time.NewTicker(time.Second)
	defer announce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st.Sweep(now)
		case now := <-announce.C:
			st.AnnounceKills(now)
		}
	}
}

// logKill logs one OOM kill at info level, once: what a search in the
// shipped logs finds (what was killed where, and why).
func logKill(log *slog.Logger, k store.Kill) {
	attrs := []any{"killed_at", k.Time, "from", k.From}
	switch k.Place() {
	case store.PlaceHost:
		attrs = append(attrs, "where", "host, in no container: the node ran out of memory", "cgroup", k.Cgroup)
	case store.PlaceCgroup:
		attrs = append(attrs, "where", "a cgroup of no container, at a limit of its own", "cgroup", k.Cgroup)
	case store.PlaceUnknown:
		attrs = append(attrs, "where", "not known: the kernel rate-limited the report")
	default:
		m := k.Container
		attrs = append(attrs, "container_id", m.ContainerID(), "name", m.Name)
		if m.Pod != "" {
			attrs = append(attrs, "namespace", m.Namespace, "pod", m.Pod, "container", m.KubeContainer)
		}
	}
	d := k.Details
	if k.Process != "" {
		attrs = append(attrs, "process", k.Process, "pid", d.PID)
	}
	if d.MainProcess != nil {
		attrs = append(attrs, "main_process", *d.MainProcess)
	}
	if k.Outcome != "" {
		attrs = append(attrs, "outcome", k.Outcome)
	}
	if d.Scope != "" {
		attrs = append(attrs, "scope", d.Scope)
	}
	if d.HasUsage {
		attrs = append(attrs, "usage_bytes", d.Usage, "limit_bytes", d.Limit)
	}
	if d.Memory != nil {
		attrs = append(attrs, "anon_rss_bytes", d.Memory.AnonRSS, "file_rss_bytes", d.Memory.FileRSS, "shmem_rss_bytes", d.Memory.ShmemRSS)
	}
	if d.Trigger != nil {
		attrs = append(attrs, "trigger", d.Trigger.Name, "trigger_pid", d.Trigger.PID)
	}
	if held := d.HeldBy(); held != "" {
		attrs = append(attrs, "held_by", held)
	}
	if b := k.Before; b != nil {
		attrs = append(attrs, "before", b.Summary(k.Time))
	}
	if d.Group != "" {
		members := make([]string, len(k.Members))
		for i, m := range k.Members {
			members[i] = fmt.Sprintf("%s (%d)", m.Name, m.PID)
		}
		attrs = append(attrs, "group", d.Group, "members", members)
	}
	log.Info("OOM kill", attrs...)
}

// checkTelemetryPath refuses a --web.telemetry-path that is no plain path,
// or one of the paths the exporter serves itself. ServeMux reads a pattern's
// braces as wildcards ("/{$}" would take the landing page's place), a space
// as the end of a method, and panics at a pattern it cannot parse; a path
// that is not clean is never asked for (the mux redirects to the clean one).
func checkTelemetryPath(p string, pprof bool) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("--web.telemetry-path must begin with /, got %q", p)
	case strings.IndexFunc(p, notPathChar) >= 0:
		return fmt.Errorf("--web.telemetry-path must be a plain path of letters, digits and -._~!$&'()*+,;=:@/, got %q", p)
	case strings.TrimSuffix(path.Clean(p), "/") != strings.TrimSuffix(p, "/"):
		return fmt.Errorf("--web.telemetry-path must be a clean path (no //, . or ..), got %q: %q", p, path.Clean(p))
	case p == "/" || p == "/healthz" || p == "/kills" || p == "/api/v1/kills":
		return fmt.Errorf("--web.telemetry-path %q is taken: the exporter serves its landing page at /, its health at /healthz and its OOM kills at /kills and /api/v1/kills", p)
	case pprof && strings.HasPrefix(p, "/debug/pprof/"):
		return fmt.Errorf("--web.telemetry-path %q is taken by --web.enable-pprof", p)
	}
	return nil
}

// notPathChar: not a character of a URL path segment (RFC 3986's pchar,
// without the % of an escape) nor a slash.
func notPathChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("-._~!$&'()*+,;=:@/", r)
}

// runtimeSource follows one runtime until its context ends.
type runtimeSource interface{ Run(context.Context) }

// startSources starts the source of every runtime the flags turn on.
func startSources(ctx context.Context, cfg *config, st *store.Store, logger *slog.Logger) error {
	for _, r := range []struct {
		on   bool
		name string
		make func() (runtimeSource, error)
	}{
		{cfg.docker, "Docker", func() (runtimeSource, error) { return docker.New(cfg.dockerHost, st, logger) }},
		// With the Docker source on, it alone reports Docker's containers
		// (containerd namespace moby).
		{cfg.containerd, "containerd", func() (runtimeSource, error) {
			return containerd.New(cfg.containerdAddress, cfg.containerdNamespaces, cfg.docker, st, logger)
		}},
		{cfg.crio, "CRI-O", func() (runtimeSource, error) { return crio.New(cfg.crioAddress, st, logger) }},
		{cfg.podman, "Podman", func() (runtimeSource, error) { return docker.NewPodman(cfg.podmanHost, st, logger) }},
	} {
		if !r.on {
			continue
		}
		src, err := r.make()
		if err != nil {
			return fmt.Errorf("the %s source: %w", r.name, err)
		}
		go src.Run(ctx)
	}
	return nil
}

func parseFlags(args []string) (*config, error) {
	app := kingpin.New(program, "Exports OOM kills, restarts and last exit codes of every container to Prometheus.").
		DefaultEnvars()
	app.Version(version.Print(program))
	app.HelpFlag.Short('h').NoEnvar()
	app.VersionFlag.NoEnvar()
	cfg := &config{}
	cfg.web = kingpinflag.AddFlags(app, ":3001")
	app.Flag("web.telemetry-path", "Path under which to expose metrics: a plain, clean path (no ServeMux patterns, spaces or escapes).").
		Default("/metrics").StringVar(&cfg.metricsPath)
	app.Flag("docker", "Follow the containers of Docker. The earlier tool's $DOCKER works where the prefixed variable is not set.").
		Default("true").BoolVar(&cfg.docker)
	app.Flag("docker.host", "Address of the Docker daemon. For tcp://, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY set up TLS as for the docker CLI.").
		Envar("DOCKER_HOST").Default("unix:///var/run/docker.sock").StringVar(&cfg.dockerHost)
	app.Flag("containerd", "Follow the containers of containerd. The earlier tool's $CONTAINERD works where the prefixed variable is not set.").
		Default("true").BoolVar(&cfg.containerd)
	app.Flag("containerd.address", "Address (socket path) of containerd.").
		Default("/run/containerd/containerd.sock").StringVar(&cfg.containerdAddress)
	app.Flag("containerd.namespaces", "containerd namespaces to follow, comma-separated or repeated (default: all, also those created later).").
		PlaceHolder("NAMESPACE").StringsVar(&cfg.containerdNamespaces)
	// Off by default: a source whose runtime a host does not run would be
	// down there for good, and MissingContainerMetricsSourceDown would fire.
	app.Flag("crio", "Follow the containers of CRI-O (Kubernetes nodes), through its CRI socket.").
		Default("false").BoolVar(&cfg.crio)
	app.Flag("crio.address", "Address (socket path) of CRI-O.").
		Default("/var/run/crio/crio.sock").StringVar(&cfg.crioAddress)
	app.Flag("podman", "Follow the containers of Podman (as root), through its Docker API (podman system service).").
		Default("false").BoolVar(&cfg.podman)
	app.Flag("podman.host", "Address of Podman's API service.").
		Default("unix:///run/podman/podman.sock").StringVar(&cfg.podmanHost)
	app.Flag("retention", "How long the series of a removed container stay exported.").
		Default("5m").DurationVar(&cfg.retention)
	app.Flag("kills.kept", "Most OOM kill records kept for /kills and /api/v1/kills (0: none).").
		Default(strconv.Itoa(store.DefaultKillsKept)).IntVar(&cfg.killsKept)
	app.Flag("max-containers", "Most containers tracked (0: no limit). At the limit a new container takes the place of the one removed longest ago; if none is removed, it is turned away and counted in missing_container_metrics_containers_turned_away_total.").
		Default("10000").IntVar(&cfg.maxTracked)
	app.Flag("web.enable-pprof", "Serve Go's profiler at /debug/pprof/ (behind the same TLS and auth as /metrics). For profiling only: it shows the process's internals.").
		Default("false").BoolVar(&cfg.pprof)
	app.Flag("runtime.gomaxprocs", "How many CPUs run the exporter's Go code at once (GOMAXPROCS). 1, as node_exporter's: the exporter's work is short steps between waits on I/O, and a second CPU costs more in waking threads than it saves (docs/performance.md).").
		Envar("GOMAXPROCS").Default("1").IntVar(&cfg.maxProcs)
	app.Flag("compat.legacy-metric-names", "Export the earlier tool's metric names (container_ooms, container_restarts) instead of container_ooms_total and container_restarts_total.").
		Default("false").BoolVar(&cfg.legacyNames)
	promslogflag.AddFlags(app, &cfg.log)

	app.Flag("kernel", "Read the kernel's OOM counters of every container's memory cgroup and the victims in the kernel log.").
		Default("true").BoolVar(&cfg.kernel)
	app.Flag("path.sysfs", "sysfs mount point (the host's /sys, e.g. /host/sys in a container); only its fs/cgroup is read.").
		Default("/sys").StringVar(&cfg.kernelCfg.SysFS)
	app.Flag("path.procfs", "procfs mount point (the host's /proc, e.g. /host/proc in a container).").
		Default("/proc").StringVar(&cfg.kernelCfg.ProcFS)
	app.Flag("path.kmsg", "The kernel log device; empty: do not read it (OOM kills are counted, their victims not named).").
		Default("/dev/kmsg").StringVar(&cfg.kernelCfg.Kmsg)
	app.Flag("kernel.log", "How to read the kernel log, which names each OOM kill's victim: auto (--path.kmsg where it opens, else syslog(2), else not at all), kmsg, syslog (syslog(2): CAP_SYSLOG, no device) or none.").
		Default(kernel.LogAuto).EnumVar(&cfg.kernelCfg.Log, kernel.LogAuto, kernel.LogKmsg, kernel.LogSyslog, kernel.LogNone)
	app.Flag("kubernetes.events", "Record a Kubernetes Event on the Pod of every OOM kill in it (reason OOMKilled, ProcessOOMKilled or OOMKill), through the companion program missing-container-metrics-events. Needs --kubernetes.node and the API access of docs/deploy.md.").
		Default("false").BoolVar(&cfg.events)
	app.Flag("kubernetes.events.companion", "The companion program of --kubernetes.events (default: missing-container-metrics-events beside this executable).").
		PlaceHolder("PATH").StringVar(&cfg.companion)
	app.Flag("kubernetes.events.socket", "The unix socket of a companion that runs on its own (the chart runs it as a container of its own, the only one with the pod's API token): connect to it instead of starting it.").
		PlaceHolder("PATH").StringVar(&cfg.eventsSocket)
	app.Flag("kubernetes.node", "This node's name, for --kubernetes.events: only its pods get Events.").
		Envar("NODE_NAME").StringVar(&cfg.node)
	app.Flag("kubernetes.kubeconfig", "A kubeconfig file for --kubernetes.events; empty: the pod's service account (in-cluster).").
		PlaceHolder("PATH").StringVar(&cfg.kubeconfig)
	app.Flag("kernel.max-watches", "The most inotify watches the kernel reader holds on the cgroup hierarchy (a directory above the containers' cgroups, and on cgroup v2 a container's memory.events), out of fs.inotify.max_user_watches shared with the kubelet and systemd. Past it, new cgroups are found by rescans every 30s. 0: no limit.").
		Default(strconv.Itoa(kernel.DefaultMaxWatches)).IntVar(&cfg.kernelCfg.MaxWatches)
	app.Flag("kernel.cgroup-parent", "A cgroup under which containers' cgroups are made, besides the runtimes' defaults (/docker, /system.slice's docker-*.scope, /kubepods, /kubepods.slice, /machine.slice, /libpod_parent): Docker's --cgroup-parent, the kubelet's --cgroup-root. Elsewhere a cgroup named like a container is none. Repeatable.").
		PlaceHolder("CGROUP").StringsVar(&cfg.kernelCfg.CgroupParents)

	// The earlier tool's BIND_ADDRESS keeps working where the new variable is not set.
	if addr := os.Getenv("BIND_ADDRESS"); addr != "" && os.Getenv(envPrefix+"WEB_LISTEN_ADDRESS") == "" {
		if f := app.GetFlag("web.listen-address"); f != nil {
			f.Default(addr)
		}
	}
	nameFlagErrors(app)
	if _, err := app.Parse(args); err != nil {
		return nil, err
	}
	if cfg.killsKept < 0 {
		return nil, fmt.Errorf("--kills.kept must not be negative, got %d", cfg.killsKept)
	}
	if cfg.kernelCfg.MaxWatches < 0 {
		return nil, fmt.Errorf("--kernel.max-watches must not be negative, got %d", cfg.kernelCfg.MaxWatches)
	}
	if cfg.maxProcs < 1 {
		return nil, fmt.Errorf("--runtime.gomaxprocs must be 1 or more, got %d", cfg.maxProcs)
	}
	if cfg.maxTracked < 0 {
		return nil, fmt.Errorf("--max-containers must not be negative, got %d", cfg.maxTracked)
	}
	if cfg.retention < 0 {
		return nil, fmt.Errorf("--retention must not be negative, got %s", cfg.retention)
	}
	if err := checkDockerHost(cfg); err != nil {
		return nil, err
	}
	if err := checkTelemetryPath(cfg.metricsPath, cfg.pprof); err != nil {
		return nil, err
	}
	if err := checkEventsFlags(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}
