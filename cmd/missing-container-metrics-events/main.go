// Command missing-container-metrics-events records a Kubernetes Event on the
// Pod of every OOM kill that missing-container-metrics writes to its
// standard input, one JSON object a line. The exporter starts it with
// --kubernetes.events; it is a program of its own so that only it links
// client-go, and the exporter stays small (docs/deploy.md, "Kubernetes
// Events"). It ends when its input does.
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

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stderr))
}

// run runs the companion on the kills read from in, logging to log; it
// returns the exit status.
func run(args []string, in io.Reader, log io.Writer) int {
	app := kingpin.New(program, "Records a Kubernetes Event on the Pod of every OOM kill that missing-container-metrics writes to its standard input (one JSON object a line); missing-container-metrics --kubernetes.events starts it. It ends when its input ends.")
	app.Version(version.Print(program))
	app.HelpFlag.Short('h')
	var node, kubeconfig string
	var logCfg promslog.Config
	app.Flag("kubernetes.node", "This node's name: only its pods get Events.").
		Envar("NODE_NAME").Required().StringVar(&node)
	app.Flag("kubernetes.kubeconfig", "A kubeconfig file; empty: the pod's service account (in-cluster).").
		StringVar(&kubeconfig)
	promslogflag.AddFlags(app, &logCfg)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintln(log, err)
		return 2
	}
	logCfg.Writer = log
	logger := promslog.New(&logCfg)
	// client-go logs through klog: into the same log.
	klog.SetSlogLogger(logger)

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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("recording a Kubernetes Event for each OOM kill", "node", node, "apiserver", cfg.Host, "version", version.Version)
	read := make(chan error, 1)
	go func() { read <- r.Run(ctx, in) }()
	select {
	case err = <-read:
	case <-ctx.Done(): // a read of the input is not ended by a signal
	}
	// The exporter kills the companion 5 s after it closed its input.
	if !r.Flush(3 * time.Second) {
		logger.Warn("ending with Events not written yet")
	}
	if err != nil {
		logger.Error("reading the kills", "err", err)
		return 1
	}
	return 0
}
