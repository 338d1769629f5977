package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher follows a cgroup hierarchy with inotify: the creation and removal
// of every cgroup directory (mkdir and rmdir on cgroupfs notify like on any
// file system), and on cgroup v2 every change of a watched memory.events
// (the kernel notifies those itself).
type watcher struct {
	max    int // the most watches it holds; 0: no bound
	f      *os.File
	fdNum  int // f's descriptor, for the watch calls (f.Fd would make it blocking)
	events chan watchEvent
	errs   chan error
	done   chan struct{}

	mu     sync.Mutex
	closed bool                  // f is closed: its number may be another file's
	paths  map[int32]watchTarget // by watch descriptor
	wds    map[watchTarget]int32 // the other way round
	// kids are the watched paths in each directory, each with its number
	// of targets (a directory's and its memory.events'): forget finds what
	// is below a directory without going through every watch of the host.
	kids map[string]map[string]int
}

type watchTarget struct {
	path string // a directory, or for a file watch the cgroup directory it is in
	file bool
}

type watchEvent struct {
	path     string // the cgroup directory concerned
	created  bool   // a cgroup directory was made
	removed  bool   // a cgroup directory was removed
	modified bool   // its memory.events changed
	overflow bool   // events were lost
}

// errWatchCap: the watcher holds as many watches as it may.
var errWatchCap = errors.New("the inotify watch cap is reached")

// dirEvents: a cgroup made or removed in a directory (also renamed: v1 and v2
// allow renaming a cgroup within its parent).
const dirEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_ONLYDIR

// newWatcher watches root, and holds at most max watches (0: no bound).
func newWatcher(root string, max int) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	// Non-blocking, so the runtime's poller serves reads and Close ends one.
	w := &watcher{
		max:    max,
		f:      os.NewFile(uintptr(fd), "inotify"),
		fdNum:  fd,
		events: make(chan watchEvent, 256),
		errs:   make(chan error, 1),
		done:   make(chan struct{}),
		paths:  map[int32]watchTarget{},
		wds:    map[watchTarget]int32{},
		kids:   map[string]map[string]int{},
	}
	if err := w.watch(root, dirEvents, watchTarget{path: root}); err != nil {
		w.f.Close()
		return nil, err
	}
	go w.loop()
	return w, nil
}

// add watches a directory for cgroups made and removed in it.
func (w *watcher) add(dir string) error {
	return w.watch(dir, dirEvents, watchTarget{path: dir})
}

// addFile watches a cgroup's memory.events for changes.
func (w *watcher) addFile(dir string) error {
	return w.watch(filepath.Join(dir, "memory.events"), unix.IN_MODIFY, watchTarget{path: dir, file: true})
}

func (w *watcher) watch(path string, mask uint32, t watchTarget) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("inotify_add_watch %s: the watcher is closed", path)
	}
	if _, renew := w.wds[t]; !renew && w.max > 0 && len(w.paths) >= w.max {
		return fmt.Errorf("inotify_add_watch %s: %w (%d)", path, errWatchCap, w.max)
	}
	wd, err := unix.InotifyAddWatch(w.fdNum, path, mask)
	if err != nil {
		return fmt.Errorf("inotify_add_watch %s: %w", path, err)
	}
	if old, ok := w.wds[t]; ok && old != int32(wd) {
		// The directory was removed and made again: the old watch is of
		// the removed one.
		w.rm(old)
	}
	if _, held := w.wds[t]; !held {
		parent := filepath.Dir(t.path)
		if w.kids[parent] == nil {
			w.kids[parent] = map[string]int{}
		}
		w.kids[parent][t.path]++
	}
	w.paths[int32(wd)], w.wds[t] = t, int32(wd)
	return nil
}

// forget removes the watches of a directory and of everything in it: it
// is gone, or a container's cgroup, below which nothing is read. cgroupfs never reports that the watch of a removed cgroup is gone
// (IN_IGNORED), so the watch would be held, and charged to
// fs.inotify.max_user_watches, for as long as the reader runs.
func (w *watcher) forget(dir string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forgetTree(dir)
}

// forgetTree removes the watches of dir and below it, with w.mu held.
func (w *watcher) forgetTree(dir string) {
	for kid := range w.kids[dir] {
		w.forgetTree(kid)
	}
	for _, file := range []bool{false, true} {
		if wd, ok := w.wds[watchTarget{path: dir, file: file}]; ok {
			w.rm(wd)
		}
	}
}

// rm removes a watch, with w.mu held. The kernel may have dropped it
// already (EINVAL): either way it is gone.
func (w *watcher) rm(wd int32) {
	if !w.closed {
		_, _ = unix.InotifyRmWatch(w.fdNum, uint32(wd))
	}
	w.drop(wd)
}

// drop forgets a watch descriptor, with w.mu held.
func (w *watcher) drop(wd int32) {
	if t, ok := w.paths[wd]; ok {
		delete(w.paths, wd)
		if w.wds[t] == wd {
			delete(w.wds, t)
			parent := filepath.Dir(t.path)
			if w.kids[parent][t.path]--; w.kids[parent][t.path] <= 0 {
				delete(w.kids[parent], t.path)
				if len(w.kids[parent]) == 0 {
					delete(w.kids, parent)
				}
			}
		}
	}
}

// prune forgets the watches of directories that are gone and were not
// walked: their removal was lost (an inotify overflow) or came before
// their watch was set.
func (w *watcher) prune(walked map[string]bool) {
	w.mu.Lock()
	var gone []string
	for t := range w.wds {
		if !walked[t.path] {
			if _, err := os.Stat(t.path); errors.Is(err, fs.ErrNotExist) {
				gone = append(gone, t.path)
			}
		}
	}
	w.mu.Unlock()
	for _, p := range gone {
		w.forget(p)
	}
}

// count is how many watches the reader holds.
func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.paths)
}

func (w *watcher) close() {
	close(w.done)
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.f.Close()
}

func (w *watcher) send(ev watchEvent) {
	select {
	case w.events <- ev:
	case <-w.done:
	}
}

func (w *watcher) loop() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.errs <- err // buffered: the only send
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			end := off + unix.SizeofInotifyEvent + int(raw.Len)
			if end > n {
				break
			}
			name := string(trimNUL(buf[off+unix.SizeofInotifyEvent : end]))
			off = end
			w.dispatch(raw.Wd, raw.Mask, name)
		}
	}
}

func (w *watcher) dispatch(wd int32, mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.send(watchEvent{overflow: true})
		return
	}
	w.mu.Lock()
	t, ok := w.paths[wd]
	if mask&unix.IN_IGNORED != 0 {
		w.drop(wd) // the watched directory or file is gone (not on cgroupfs)
	}
	w.mu.Unlock()
	if !ok {
		return
	}
	switch {
	case t.file && mask&unix.IN_MODIFY != 0:
		w.send(watchEvent{path: t.path, modified: true})
	case !t.file && mask&unix.IN_ISDIR != 0 && mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		w.send(watchEvent{path: filepath.Join(t.path, name), created: true})
	case !t.file && mask&unix.IN_ISDIR != 0 && mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
		removed := filepath.Join(t.path, name)
		w.forget(removed)
		w.send(watchEvent{path: removed, removed: true})
	}
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// fd is the inotify descriptor: its watches show in /proc/self/fdinfo.
func (w *watcher) fd() uintptr { return uintptr(w.fdNum) }

// watched returns the path of every watch held, for a file watch the
// directory it is in.
func (w *watcher) watched() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for _, t := range w.paths {
		seen[t.path] = true
	}
	// And what the index of each directory's watches holds: a path left
	// there is a leak too.
	for _, kids := range w.kids {
		for p := range kids {
			seen[p] = true
		}
	}
	return slices.Collect(maps.Keys(seen))
}
