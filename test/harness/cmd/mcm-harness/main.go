// Command mcm-harness starts the test harness's runtimes and Kubernetes node
// for a shell, and stops them again (package test/harness does the work).
//
//	eval "$(go run ./test/harness/cmd/mcm-harness start)"                    # containerd, dockerd and Podman
//	eval "$(go run ./test/harness/cmd/mcm-harness start -crio -crio-bin-dir DIR)" # and a CRI-O
//	eval "$(go run ./test/harness/cmd/mcm-harness start -node -bin-dir DIR)" # and a Kubernetes node
//	... start -node -bin-dir DIR -node-crio -crio-bin-dir DIR2                 # its kubelet on CRI-O
//	go run ./test/harness/cmd/mcm-harness stop [DIR]
//	go run ./test/harness/cmd/mcm-harness {stop|kill|start|restart} NAME [DIR]
//	go run ./test/harness/cmd/mcm-harness status [DIR]
//
// start prints `export NAME=VALUE` lines on stdout, everything else goes to
// stderr. DIR defaults to $MCM_TEST_HARNESS_DIR; stop of a DIR that is gone
// succeeds. MCM_HARNESS_TIMEOUT: the seconds a daemon gets to answer
// (default 90). NAME is a daemon: containerd,
// dockerd, podman, crio, node-containerd, etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet. The node's binaries:
// test/kubernetes/prepare.sh; CRI-O's: test/crio/prepare.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/test/harness"
)

func main() {
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "harness: "+format+"\n", args...) }
	if err := run(os.Args[1:], log); err != nil {
		log("error: %v", err)
		os.Exit(1)
	}
}

func run(args []string, log func(string, ...any)) error {
	if len(args) == 0 {
		return errors.New("usage: mcm-harness {start|stop|status|stop NAME|kill NAME|start NAME|restart NAME} ... (see go doc)")
	}
	if s := os.Getenv("MCM_HARNESS_TIMEOUT"); s != "" {
		secs, err := strconv.Atoi(s)
		if err != nil || secs <= 0 {
			return fmt.Errorf("MCM_HARNESS_TIMEOUT=%q: want a number of seconds", s)
		}
		harness.StartTimeout = time.Duration(secs) * time.Second
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	cmd, args := args[0], args[1:]
	switch {
	case cmd == "start" && (len(args) == 0 || strings.HasPrefix(args[0], "-")):
		return start(ctx, args, log)
	case cmd == "stop" && len(args) <= 1 && (len(args) == 0 || strings.Contains(args[0], "/")):
		if len(args) == 1 {
			if _, err := os.Stat(args[0]); errors.Is(err, os.ErrNotExist) {
				log("nothing at %s (already stopped?)", args[0])
				return nil
			}
		}
		h, err := open(args, log)
		if err != nil {
			return err
		}
		return h.Close()
	case cmd == "status":
		h, err := open(args, log)
		if err != nil {
			return err
		}
		for _, p := range h.Processes() {
			state := "not running"
			if p.Running() {
				state = fmt.Sprintf("running (pid %d), answers", p.PID)
				if err := p.Answers(ctx); err != nil {
					state = fmt.Sprintf("running (pid %d), not answering: %v", p.PID, err)
				}
			}
			fmt.Printf("%s: %s\n", p.Name, state)
		}
		return nil
	case cmd == "stop" || cmd == "kill" || cmd == "start" || cmd == "restart":
		if len(args) == 0 {
			return fmt.Errorf("%s: which daemon?", cmd)
		}
		h, err := open(args[1:], log)
		if err != nil {
			return err
		}
		p := h.Process(args[0])
		if p == nil {
			return fmt.Errorf("no daemon %q in %s", args[0], h.Dir)
		}
		switch cmd {
		case "stop":
			return p.Stop()
		case "kill":
			return p.Kill()
		case "start":
			// The runtimes' daemons as scripts/harness.sh start-NAME
			// always did: dockerd's stale pidfile removed, dockerd
			// reconnected to a started containerd.
			if r := h.Runtimes(); r != nil && p == r.Containerd() {
				return r.StartContainerd(ctx)
			} else if r != nil && p == r.Dockerd() {
				return r.StartDockerd(ctx)
			}
			return p.Start(ctx)
		}
		return p.Restart(ctx)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func open(args []string, log func(string, ...any)) (*harness.Harness, error) {
	dir := os.Getenv("MCM_TEST_HARNESS_DIR")
	if len(args) > 0 {
		dir = args[0]
	}
	if dir == "" {
		return nil, errors.New("no harness directory: give DIR or set MCM_TEST_HARNESS_DIR")
	}
	h, err := harness.Open(dir)
	if err != nil {
		return nil, err
	}
	h.Logf = log
	return h, nil
}

func start(ctx context.Context, args []string, log func(string, ...any)) (err error) {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	runtimes := fs.Bool("runtimes", true, "start containerd and dockerd")
	podman := fs.Bool("podman", true, "start a Podman API service")
	crio := fs.Bool("crio", false, "start a CRI-O (with its container events)")
	crioBinDir := fs.String("crio-bin-dir", os.Getenv("MCM_CRIO_BIN_DIR"), "CRI-O's binaries (test/crio/prepare.sh)")
	node := fs.Bool("node", false, "start a Kubernetes node")
	binDir := fs.String("bin-dir", os.Getenv("MCM_KUBERNETES_BIN_DIR"), "the node's binaries (test/kubernetes/prepare.sh)")
	nodeCRIO := fs.Bool("node-crio", false, "the node's kubelet on a CRI-O (from -crio-bin-dir) instead of a containerd")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, err := harness.New()
	if err != nil {
		return err
	}
	h.Logf = log
	defer func() {
		if err != nil {
			log("start failed; cleaning up %s", h.Dir)
			_ = h.Close()
		}
	}()
	var env []string
	if *runtimes {
		r, err := h.StartRuntimes(ctx)
		if err != nil {
			return err
		}
		env = append(env, r.Env()...)
	} else {
		env = append(env, "MCM_TEST_HARNESS_DIR="+h.Dir)
	}
	if *podman {
		pm, err := h.StartPodman(ctx)
		if err != nil {
			return err
		}
		env = append(env, pm.Env()...)
	}
	if *crio {
		c, err := h.StartCRIO(ctx, harness.CRIOOptions{BinDir: *crioBinDir, Events: true})
		if err != nil {
			return err
		}
		env = append(env, c.Env()...)
	}
	if *node {
		opts := harness.NodeOptions{BinDir: *binDir}
		if *nodeCRIO {
			opts.CRIOBinDir = *crioBinDir
		}
		n, err := h.StartNode(ctx, opts)
		if err != nil {
			return err
		}
		env = append(env, n.Env()...)
	}
	for _, e := range env {
		name, value, _ := strings.Cut(e, "=")
		fmt.Printf("export %s=%q\n", name, value)
	}
	return nil
}
