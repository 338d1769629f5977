package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
)

// The companion as a container of its own (the chart's sidecar): it alone
// holds the pod's API token, and listens on a unix socket in a directory
// that only the pod's two containers mount, where the exporter connects to
// write it the kills.

// listen listens on the unix socket path. A socket left there by an
// earlier run (the companion's container started again: the pod's
// directory keeps it) is removed first. Every user may connect: the
// exporter's container runs as another user than this one (nobody, or root
// without capabilities), and no one else mounts the directory.
func listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// serve records the kills read from each connection made to l, until ctx
// ends. The exporter holds one connection at a time; one it gave up is
// read to its end all the same, so that nothing it wrote is lost.
func serve(ctx context.Context, l net.Listener, r *Recorder, log *slog.Logger) error {
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	stop := context.AfterFunc(ctx, func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for conn := range conns {
			_ = conn.Close()
		}
	})
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[conn] = true
		mu.Unlock()
		log.Info("the exporter connected")
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.Run(ctx, conn)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
			_ = conn.Close()
			if err != nil && !errors.Is(err, net.ErrClosed) {
				log.Warn("reading the kills", "err", err)
			}
		}()
	}
}
