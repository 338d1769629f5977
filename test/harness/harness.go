// Package harness starts and stops the real runtimes that the tests run
// against: a containerd and a dockerd (Runtimes), a Podman API service
// (Podman), CRI-O (CRIO), and a single-node Kubernetes (Node: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet on a
// containerd or a CRI-O of its own, with pod networking). Everything lives in a temporary directory of its own, never
// at the system's default paths; servers listen on 127.0.0.1; every
// container's cgroup is nested in the caller's own memory cgroup.
//
// It waits for each piece with a deadline, never a fixed sleep, and stops only
// the processes it started, by PID. What it started is recorded in its
// directory, so a harness started by one process can be stopped by another
// (cmd/mcm-harness: start, stop, and each daemon stopped, killed or started
// again).
package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Harness is one harness directory and what was started in it.
type Harness struct {
	// Dir is the harness directory, /tmp/mcm-harness.XXXXXX.
	Dir string
	// Logf reports progress (default: nothing).
	Logf func(format string, args ...any)

	mu  sync.Mutex
	rec record
}

// record is what the harness made, saved in Dir/harness.json after every change.
type record struct {
	// CgroupParent is the cgroup (path in each hierarchy) that holds every
	// container and pod of this harness.
	CgroupParent string `json:"cgroupParent"`
	// Processes in the order they were first started.
	Processes []*Process `json:"processes"`
	// CreatedCgroups are the directories (host paths) the harness made
	// that did not exist: removed at the end, deepest first.
	CreatedCgroups []string `json:"createdCgroups,omitempty"`
	// HostDirs are system directories that did not exist before the
	// harness (shims and runc put things there whatever their daemon's
	// paths): removed at the end if empty.
	HostDirs []string `json:"hostDirs,omitempty"`
	// Bridges are network interfaces the harness made.
	Bridges []string `json:"bridges,omitempty"`
	// Mounts are mount points the harness made.
	Mounts []string `json:"mounts,omitempty"`
	// Runtimes, Podman, CRIO and Node are set once started.
	Runtimes *Runtimes `json:"runtimes,omitempty"`
	Podman   *Podman   `json:"podman,omitempty"`
	CRIO     []*CRIO   `json:"crio,omitempty"`
	Node     *Node     `json:"node,omitempty"`
}

const recordFile = "harness.json"

// New makes a harness directory, and a cgroup parent for its containers
// under the caller's own memory cgroup.
func New() (*Harness, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the harness needs root (cgroups, mounts, network interfaces)")
	}
	dir, err := os.MkdirTemp("", "mcm-harness.")
	if err != nil {
		return nil, err
	}
	// Other users reach what the tests give them (an exporter run as nobody).
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	h := &Harness{Dir: dir}
	self, err := selfMemoryCgroup()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	h.rec.CgroupParent = filepath.Join(self, "mcm-harness-"+randomHex(4))
	if err := h.save(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return h, nil
}

// Open takes over a harness that another process started.
func Open(dir string) (*Harness, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(filepath.Base(dir), "mcm-harness.") {
		return nil, fmt.Errorf("refusing %s: not a harness directory (mcm-harness.*)", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	h := &Harness{Dir: dir}
	if err := json.Unmarshal(b, &h.rec); err != nil {
		return nil, fmt.Errorf("%s: %w", recordFile, err)
	}
	for _, p := range h.rec.Processes {
		p.h = h
	}
	if h.rec.Runtimes != nil {
		h.rec.Runtimes.h = h
	}
	if h.rec.Podman != nil {
		h.rec.Podman.h = h
	}
	for _, c := range h.rec.CRIO {
		c.h = h
	}
	if h.rec.Node != nil {
		h.rec.Node.h = h
	}
	return h, nil
}

// CgroupParent is the cgroup (its path in the memory hierarchy) under which
// the harness's containers and pods go.
func (h *Harness) CgroupParent() string { return h.rec.CgroupParent }

// Runtimes returns the containerd and dockerd pair, once started.
func (h *Harness) Runtimes() *Runtimes { return h.rec.Runtimes }

// Podman returns the Podman API service, once started.
func (h *Harness) Podman() *Podman { return h.rec.Podman }

// Node returns the Kubernetes node, once started.
func (h *Harness) Node() *Node { return h.rec.Node }

// Process returns the daemon called name, or nil.
func (h *Harness) Process(name string) *Process {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.rec.Processes {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Processes returns every daemon, in the order they were first started.
func (h *Harness) Processes() []*Process {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Process(nil), h.rec.Processes...)
}

// newProcess registers a daemon; its command line must name the harness directory.
func (h *Harness) newProcess(name string, args ...string) *Process {
	p := &Process{h: h, Name: name, Args: args}
	h.mu.Lock()
	h.rec.Processes = append(h.rec.Processes, p)
	h.mu.Unlock()
	return p
}

func (h *Harness) path(elem ...string) string {
	return filepath.Join(append([]string{h.Dir}, elem...)...)
}

func (h *Harness) logf(format string, args ...any) {
	if h.Logf != nil {
		h.Logf(format, args...)
	}
}

func (h *Harness) save() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, err := json.MarshalIndent(&h.rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(h.Dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(h.Dir, recordFile))
}

// noteHostDirs records which of dirs do not exist yet, to remove them at the end.
func (h *Harness) noteHostDirs(dirs ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range dirs {
		if _, err := os.Lstat(d); errors.Is(err, os.ErrNotExist) && !slices.Contains(h.rec.HostDirs, d) {
			h.rec.HostDirs = append(h.rec.HostDirs, d)
		}
	}
}

// Close stops everything the harness started and removes what it made:
// the pods and containers, the daemons (SIGTERM, then SIGKILL), processes
// left in its cgroups, its mounts, cgroups, network interfaces and directory.
// It goes on after an error and returns them all.
func (h *Harness) Close() error {
	t0 := time.Now()
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if n := h.rec.Node; n != nil {
		errs = append(errs, n.removePods(ctx))
	}
	if r := h.rec.Runtimes; r != nil {
		errs = append(errs, r.removeContainers(ctx))
	}
	if pm := h.rec.Podman; pm != nil {
		errs = append(errs, pm.removeAll(ctx))
	}
	for _, c := range h.rec.CRIO {
		errs = append(errs, c.removePods(ctx))
	}
	procs := h.Processes()
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].Stop())
	}
	errs = append(errs, killShims(h.Dir))
	if h.rec.CgroupParent != "" {
		errs = append(errs, killCgroup(h.rec.CgroupParent))
	}
	errs = append(errs, h.unmountAll())
	if h.rec.CgroupParent != "" {
		errs = append(errs, removeCgroup(h.rec.CgroupParent))
	}
	errs = append(errs, removeDirsDeepestFirst(h.rec.CreatedCgroups, false))
	for _, br := range h.rec.Bridges {
		errs = append(errs, deleteLink(br))
	}
	errs = append(errs, cleanShimSockets(h.Dir))
	h.removeBlobCache()
	errs = append(errs, removeDirsDeepestFirst(h.rec.HostDirs, true))
	if err := os.RemoveAll(h.Dir); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	h.logf("stopped in %.1fs: %s", time.Since(t0).Seconds(), h.Dir)
	return err
}

// removeDirsDeepestFirst removes each directory that is empty, the deepest
// first; with quiet, one that is not empty (someone else's files) is left
// without an error.
func removeDirsDeepestFirst(dirs []string, quiet bool) error {
	sorted := append([]string(nil), dirs...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	var errs []error
	for _, d := range sorted {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) && !quiet {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
