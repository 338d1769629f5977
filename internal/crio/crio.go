// Package crio is the CRI-O source: it lists CRI-O's containers through the
// Kubernetes CRI API, follows its container events (the stream the
// kubelet's evented PLEG reads) where CRI-O serves them, polls where it does
// not, and sends what it sees to the store as typed events. Pod sandboxes
// are not exported. It only ever reads from CRI-O.
package crio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/missing-container-metrics/missing-container-metrics/internal/grpcunix"
	"github.com/missing-container-metrics/missing-container-metrics/internal/source"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// requestTimeout bounds one call to CRI-O, so that a hung CRI-O cannot hang
// the source.
const requestTimeout = 30 * time.Second

// runtimeName is what CRI-O calls itself in the CRI's Version.
const runtimeName = "cri-o"

// The intervals between two listings. CRI-O serves its container events
// only with enable_pod_events (off by default); without them the source
// lists every PollInterval, as the kubelet's generic PLEG relists every
// second. With them it lists every RelistInterval all the same, as the
// kubelet's evented PLEG does: CRI-O drops events when its buffer is full.
const (
	PollInterval   = time.Second
	RelistInterval = 5 * time.Minute
)

// Source follows one CRI-O.
type Source struct {
	address string
	store   *store.Store
	log     *slog.Logger
	poll    time.Duration
	relist  time.Duration
}

// New returns a source for the CRI-O at address (a socket path, with or
// without unix://). It does not connect yet.
func New(address string, st *store.Store, log *slog.Logger) (*Source, error) {
	address = strings.TrimPrefix(address, "unix://")
	if address == "" {
		return nil, errors.New("CRI-O address is empty")
	}
	st.AddSource(store.RuntimeCRIO)
	return &Source{
		address: address,
		store:   st,
		log:     log.With("runtime", store.RuntimeCRIO),
		poll:    PollInterval,
		relist:  RelistInterval,
	}, nil
}

// Run follows CRI-O until ctx ends, reconnecting whenever it is lost.
func (s *Source) Run(ctx context.Context) {
	source.Run(ctx, store.RuntimeCRIO, s.store, s.log, source.DefaultBackoff, s.session)
}

// item is one thing for a session to apply: a container event, or, if
// event is nil, a listing that is due.
type item struct {
	event *runtimeapi.ContainerEventResponse
}

// conn is one session's connection to CRI-O.
type conn struct {
	*Source
	cri runtimeapi.RuntimeServiceClient
	// seen is each container's state at the last look (listing or event):
	// a listing reads the status of only those whose state changed since.
	seen map[string]runtimeapi.ContainerState
}

// session subscribes to CRI-O's container events, lists every container,
// then applies the events and the listings that follow. CRI-O replays
// nothing, so the listing is what catches up on what happened while the
// source was away; the stream is opened first so that nothing after the
// listing is missed, and CRI-O's own times make what both report count once.
func (s *Source) session(ctx context.Context, up func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cc, err := grpcunix.Dial(ctx, s.address)
	if err != nil {
		return err
	}
	defer cc.Close()
	c := &conn{Source: s, cri: runtimeapi.NewRuntimeServiceClient(cc), seen: map[string]runtimeapi.ContainerState{}}
	vctx, vcancel := context.WithTimeout(ctx, requestTimeout)
	v, err := c.cri.Version(vctx, &runtimeapi.VersionRequest{})
	vcancel()
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if v.GetRuntimeName() != runtimeName {
		return fmt.Errorf("the CRI runtime at %s is %q, not CRI-O (containerd has a source of its own: --containerd)", s.address, v.GetRuntimeName())
	}

	stream, err := c.cri.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return fmt.Errorf("container events: %w", err)
	}
	q := source.NewQueue[*item]()
	ticker := time.NewTicker(s.relist)
	defer ticker.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				q.Push(&item{})
			}
		}
	}()
	go s.readEvents(stream, q, ticker)

	return source.Catchup[*item]{
		Runtime: store.RuntimeCRIO,
		Store:   s.store,
		Events:  q,
		List:    c.list,
		Apply:   c.apply,
	}.Follow(ctx, up)
}

// readEvents queues the container events of the stream. A stream that ends
// before its first event, with no error or as not implemented, is CRI-O
// saying that it serves none (enable_pod_events is off; CRI-O before 1.26):
// the ticker then asks for a listing every poll interval instead.
func (s *Source) readEvents(stream grpc.ServerStreamingClient[runtimeapi.ContainerEventResponse], q *source.Queue[*item], ticker *time.Ticker) {
	first := true
	for {
		ev, err := stream.Recv()
		if err == nil {
			if first {
				s.log.Info("following CRI-O's container events", "relist_every", s.relist)
			}
			first = false
			q.Push(&item{event: ev})
			continue
		}
		if first && (errors.Is(err, io.EOF) || status.Code(err) == codes.Unimplemented) {
			s.log.Info("CRI-O serves no container events (enable_pod_events is off): polling", "every", s.poll)
			ticker.Reset(s.poll)
			return
		}
		if errors.Is(err, io.EOF) {
			err = errors.New("closed")
		}
		q.Close(fmt.Errorf("container events: %w", err))
		return
	}
}

// list reads every container with its status. CRI-O's listing has no pod
// sandboxes.
func (c *conn) list(ctx context.Context) ([]store.Observed, error) {
	lctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.cri.ListContainers(lctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []store.Observed
	for _, ct := range res.GetContainers() {
		st, pid, err := c.status(ctx, ct.GetId())
		if status.Code(err) == codes.NotFound {
			continue // removed since the listing
		}
		c.seen[ct.GetId()] = ct.GetState()
		if err == nil {
			c.seen[ct.GetId()] = seenState(st)
		}
		var o store.Observed
		if err == nil {
			o, err = observed(st, pid)
		}
		if c.malformed(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c.restartCount(&o, st)
		out = append(out, o)
	}
	return out, nil
}

// errMalformed says that CRI-O answered what cannot be: the container is
// skipped, and counted as a malformed event.
var errMalformed = errors.New("malformed answer")

// status reads a container's status, and the pid of its main process while
// it runs (a verbose status: CRI-O's plain one has none).
func (c *conn) status(ctx context.Context, id string) (*runtimeapi.ContainerStatus, int, error) {
	sctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.cri.ContainerStatus(sctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return nil, 0, fmt.Errorf("status of container %s: %w", id, err)
	}
	st := res.GetStatus()
	c.log.Debug("status", "id", id, "state", st.GetState(), "started", nanoTime(st.GetStartedAt()),
		"finished", nanoTime(st.GetFinishedAt()), "exit_code", st.GetExitCode(), "reason", st.GetReason())
	if st.GetId() != id {
		return nil, 0, fmt.Errorf("status of container %s: %w: it is of %q", id, errMalformed, st.GetId())
	}
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return st, 0, nil
	}
	pid, err := infoPid(res.GetInfo())
	if err != nil {
		c.log.Warn("main process unknown", "id", id, "err", err)
	}
	return st, pid, nil
}

// malformed counts and logs a container that CRI-O described in a way that
// cannot be, if err says so; the source goes on without it.
func (c *conn) malformed(err error) bool {
	if err == nil || (!errors.Is(err, errMalformed) && !errors.Is(err, errBadID)) {
		return false
	}
	c.store.CountEvent(store.RuntimeCRIO, true)
	c.log.Warn("skipping malformed container", "err", err)
	return true
}

// restartCount sets the kubelet's restart count of the container.
func (c *conn) restartCount(o *store.Observed, st *runtimeapi.ContainerStatus) {
	n, err := restartCount(st)
	if err != nil {
		c.log.Warn("restart count unknown", "err", err)
	}
	o.State.Restarts = n
}

// apply applies one container event, or lists when a listing is due.
func (c *conn) apply(ctx context.Context, it *item) error {
	if it.event == nil {
		return c.relist(ctx)
	}
	ch, err := translate(it.event)
	c.store.CountEvent(store.RuntimeCRIO, err != nil)
	if err != nil {
		c.log.Warn("skipping malformed event", "err", err)
		return nil
	}
	if ch.id == "" {
		return nil
	}
	if ch.removed {
		c.remove(ch.id, ch.at)
		return nil
	}
	c.seen[ch.id] = seenState(ch.status)
	pid := 0
	if ch.status.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
		// Events carry no pid: a verbose status has it.
		st, p, err := c.status(ctx, ch.id)
		switch {
		case status.Code(err) == codes.NotFound:
			return nil // gone already: its deletion follows
		case err != nil:
			return err
		case st.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING:
			pid = p
		}
	}
	c.update(ch.status, pid)
	return nil
}

// update applies what a container's status says: all of it at first sight,
// else the start, exit and kill it tells of.
func (c *conn) update(st *runtimeapi.ContainerStatus, pid int) {
	if !c.store.Known(store.Key(store.RuntimeCRIO, "", st.GetId())) {
		o, err := observed(st, pid)
		if c.malformed(err) {
			return
		}
		c.restartCount(&o, st)
		c.store.Apply(o)
		return
	}
	for _, ev := range statusEvents(st, pid) {
		c.store.Apply(ev)
	}
}

// remove applies a container's removal.
func (c *conn) remove(id string, at time.Time) {
	delete(c.seen, id)
	if key := store.Key(store.RuntimeCRIO, "", id); c.store.Known(key) {
		c.store.Apply(store.Removed{Key: key, At: at})
	}
}

// relist lists the containers and reads the status of those that are new or
// changed since the last look; those no longer listed are removed.
func (c *conn) relist(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	at := time.Now()
	res, err := c.cri.ListContainers(lctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	changed, gone := diff(c.seen, res.GetContainers())
	for _, id := range gone {
		c.remove(id, at)
	}
	for _, ct := range changed {
		id, asked := ct.GetId(), time.Now()
		st, pid, err := c.status(ctx, id)
		if status.Code(err) == codes.NotFound {
			c.remove(id, asked)
			continue
		}
		if c.malformed(err) {
			c.seen[id] = ct.GetState() // read again once its state changes
			continue
		}
		if err != nil {
			return err
		}
		c.seen[id] = seenState(st)
		c.update(st, pid)
	}
	return nil
}
