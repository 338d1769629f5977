// Command missing-container-metrics-events records a Kubernetes Event on the
// Pod of every OOM kill that missing-container-metrics writes to it, one
// JSON object a line: to its standard input, where the exporter starts it
// (--kubernetes.events), or to the unix socket it listens on (--socket),
// where it runs in a container of its own, the only one with the pod's API
// token (the chart's sidecar). It is a program of its own, in a Go module
// of its own, so that only it links client-go, and the exporter stays small
// (docs/deploy.md, "Kubernetes Events"). It ends when its input does, or at
// SIGTERM.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

const program = "missing-container-metrics-events"

// setKlogLogger sends client-go's log, which goes through klog's global
// logger, into the companion's. The tests, whose recorders' goroutines may
// still log after they end, leave klog's logger alone.
var setKlogLogger = klog.SetSlogLogger

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the companion on the kills read from in, or from its socket,
// until they end or ctx does, logging to log; it returns the exit status.
func run(ctx context.Context, args []string, in io.Reader, log io.Writer) int {
	app := kingpin.New(program, "Records a Kubernetes Event on the Pod of every OOM kill that missing-container-metrics writes to it (one JSON object a line): to its standard input, where missing-container-metrics --kubernetes.events starts it, or to the unix socket of --socket, where it runs in a container of its own. It ends when its input ends, or at SIGTERM.")
	app.Version(version.Print(program))
	app.HelpFlag.Short('h')
	var node, kubeconfig, socket string
	var logCfg promslog.Config
	app.Flag("kubernetes.node", "This node's name: only its pods get Events.").
		Envar("NODE_NAME").Required().StringVar(&node)
	app.Flag("kubernetes.kubeconfig", "A kubeconfig file; empty: the pod's service account (in-cluster).").
		StringVar(&kubeconfig)
	app.Flag("socket", "Listen on this unix socket for the exporter (missing-container-metrics --kubernetes.events.socket), instead of reading standard input: the companion in a container of its own.").
		PlaceHolder("PATH").StringVar(&socket)
	promslogflag.AddFlags(app, &logCfg)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintln(log, err)
		return 2
	}
	logCfg.Writer = log
	logger := promslog.New(&logCfg)
	// client-go logs through klog: into the same log.
	setKlogLogger(logger)

	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		logger.Error("no access to the Kubernetes API: the pod needs its service account token (the chart's kubernetes.events.enabled mounts it), or --kubernetes.kubeconfig", "err", err)
		return 1
	}
	cfg.UserAgent = program + "/" + version.Version
	r, err := New(Config{Node: node, Rest: cfg}, logger)
	if err != nil {
		logger.Error("cannot set up the event recorder", "err", err)
		return 1
	}
	defer r.Close()
	read := make(chan error, 1)
	if socket != "" {
		l, err := listen(socket)
		if err != nil {
			logger.Error("cannot listen for the exporter", "socket", socket, "err", err)
			return 1
		}
		go func() { read <- serve(ctx, l, r, logger) }()
	} else {
		go func() { read <- r.Run(ctx, in) }()
	}
	logger.Info("recording a Kubernetes Event for each OOM kill", "node", node, "apiserver", cfg.Host, "socket", socket, "version", version.Version)
	select {
	case err = <-read:
	case <-ctx.Done(): // a read of the input is not ended by a signal
	}
	// The exporter kills the companion 5 s after it closed its input; the
	// kubelet, after the pod's grace period (30 s by default).
	if !r.Flush(3 * time.Second) {
		logger.Warn("ending with Events not written yet")
	}
	if err != nil {
		logger.Error("reading the kills", "err", err)
		return 1
	}
	return 0
}
