package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
)

// A runtime's socket file mounted on its own into the exporter's container
// (the chart mounts the socket, not its directory, which holds more: the
// containers' bundles, the shims' sockets) goes stale when the runtime
// makes a new socket at its path, as containerd and dockerd do when they
// start: the mount keeps the old one, whose listener is gone for good (a
// socket file is bound once), and the exporter would never reach the
// runtime again. It ends instead, so that the kubelet starts its container
// again with the new socket.

// terminationLog is where Kubernetes reads why a container ended
// (terminationMessagePath's default): kubectl describe pod shows it. The
// container's log is no sure place for it, as the runtime that restarted
// may not have taken up the container's output again yet.
var terminationLog = "/dev/termination-log"

// tellTermination writes why the exporter ends to terminationLog, where
// that file is there (in a Kubernetes container); elsewhere it writes
// nothing, and makes no file.
func tellTermination(why string) {
	f, err := os.OpenFile(terminationLog, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return
	}
	_, _ = f.WriteString(why + "\n")
	_ = f.Close()
}

// socketCheckInterval is how often a mounted socket is tried.
const socketCheckInterval = 10 * time.Second

// runtimeSockets are the unix sockets of the runtime sources that are on.
func runtimeSockets(cfg *config) []string {
	var paths []string
	if cfg.docker {
		if p, ok := strings.CutPrefix(cfg.dockerHost, "unix://"); ok {
			paths = append(paths, p)
		}
	}
	if cfg.containerd {
		paths = append(paths, strings.TrimPrefix(cfg.containerdAddress, "unix://"))
	}
	if cfg.crio {
		paths = append(paths, strings.TrimPrefix(cfg.crioAddress, "unix://"))
	}
	if cfg.podman {
		if p, ok := strings.CutPrefix(cfg.podmanHost, "unix://"); ok {
			paths = append(paths, p)
		}
	}
	return paths
}

// watchMountedSockets returns, with why, once one of paths that is a mount
// point of its own refuses a connection: its runtime made a new socket, or
// ended, and the mount will never reach a listener again. It tries each
// every interval, and returns nil when ctx ends. A path that is no mount
// point of its own (a socket in a mounted directory, the exporter on the
// host) is left to the source, which connects again when its runtime is
// back.
func watchMountedSockets(ctx context.Context, paths []string, interval time.Duration) error {
	var mounted []string
	for _, p := range paths {
		if m, err := mountinfo.Mounted(p); err == nil && m {
			mounted = append(mounted, p)
		}
	}
	if len(mounted) == 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, p := range mounted {
			if err := stale(ctx, p); err != nil {
				return err
			}
		}
	}
}

// stale returns why the socket at path, a mount of its own, is stale, or
// nil if a listener took the connection (or it could not be told).
func stale(ctx context.Context, path string) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "unix", path)
	if err == nil {
		_ = conn.Close()
		return nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("the runtime socket %s, a mount of its own, refuses connections: its runtime made a new socket there, or ended, and this mount keeps the old one (%w)", path, err)
	}
	return nil
}
