// Package containerd is the containerd source: it lists the containers of
// containerd's namespaces with the state of their tasks, follows containerd's
// event stream, and sends what it sees to the store as typed events.
// Kubernetes containers, which containerd's CRI plugin runs for the kubelet,
// get the kubelet's names and restart count, and their state from the CRI
// plugin, which keeps it after it deleted their tasks. Pod sandboxes are not
// exported. It only ever reads from containerd.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	// Registers containerd's event types, so that events can be decoded.
	_ "github.com/containerd/containerd/api/events"

	"github.com/missing-container-metrics/missing-container-metrics/internal/grpcunix"
	"github.com/missing-container-metrics/missing-container-metrics/internal/source"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// requestTimeout bounds one call to containerd, so that a hung containerd
// cannot hang the source.
const requestTimeout = 30 * time.Second

// Namespaces with a meaning of their own.
const (
	// namespaceMoby holds the containers that Docker runs: the Docker source
	// reports them.
	namespaceMoby = "moby"
	// namespaceCRI holds the containers and sandboxes of the CRI plugin.
	namespaceCRI = "k8s.io"
)

// Source follows one containerd.
type Source struct {
	address    string
	namespaces map[string]bool // the namespaces to follow; empty: all
	skipMoby   bool
	store      *store.Store
	log        *slog.Logger
}

// New returns a source for the containerd at address (a socket path, with or
// without unix://). It follows the containers of the given namespaces (each
// may be a comma-separated list), or of all namespaces, present and future,
// if there are none; skipMoby leaves out Docker's namespace "moby". It does
// not connect yet.
func New(address string, namespaces []string, skipMoby bool, st *store.Store, log *slog.Logger) (*Source, error) {
	address = strings.TrimPrefix(address, "unix://")
	if address == "" {
		return nil, errors.New("containerd address is empty")
	}
	st.AddSource(store.RuntimeContainerd)
	s := &Source{
		address:    address,
		namespaces: map[string]bool{},
		skipMoby:   skipMoby,
		store:      st,
		log:        log.With("runtime", store.RuntimeContainerd),
	}
	for _, list := range namespaces {
		for _, ns := range strings.Split(list, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				s.namespaces[ns] = true
			}
		}
	}
	if skipMoby && s.namespaces[namespaceMoby] {
		s.log.Warn("not following containerd namespace moby: the Docker source reports its containers")
	}
	return s, nil
}

// Run follows containerd until ctx ends, reconnecting whenever it is lost.
func (s *Source) Run(ctx context.Context) {
	source.Run(ctx, store.RuntimeContainerd, s.store, s.log, source.DefaultBackoff, s.session)
}

// follows reports whether the source follows the containers of namespace ns.
func (s *Source) follows(ns string) bool {
	if s.skipMoby && ns == namespaceMoby {
		return false
	}
	return len(s.namespaces) == 0 || s.namespaces[ns]
}

// ref names a container: ids are unique only within a namespace.
type ref struct{ namespace, id string }

// listed is what a session's listing showed of a container that the store
// did not know before.
type listed struct {
	readAt    time.Time // just before its state was read
	oomKilled bool      // the state said that a process was OOM-killed
}

// conn is one session's connection to containerd. It speaks containerd's
// gRPC API directly, not through containerd's client library, whose images,
// content, snapshots and transfer code the exporter needs none of and would
// carry in memory.
type conn struct {
	*Source
	containers containersapi.ContainersClient
	tasks      tasksapi.TasksClient
	nss        namespacesapi.NamespacesClient
	cri        runtimeapi.RuntimeServiceClient
	noCRI      bool // the CRI plugin does not answer: use containerd's task state only

	// sandboxes are the pod sandboxes seen, so that their events do not
	// make the source read them again.
	sandboxes map[ref]bool
	// listed are the containers first seen in this session's listing.
	listed map[string]listed
}

// session subscribes to containerd's events, lists every container, then
// applies the events. containerd replays nothing, so the listing is what
// catches up on what happened while the source was away; the stream is
// opened first so that nothing after the listing is missed, and the store's
// timestamps make what both report count once.
func (s *Source) session(ctx context.Context, up func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cc, err := grpcunix.Dial(ctx, s.address)
	if err != nil {
		return err
	}
	defer cc.Close()
	vctx, vcancel := context.WithTimeout(ctx, requestTimeout)
	_, err = versionapi.NewVersionClient(cc).Version(vctx, &emptypb.Empty{})
	vcancel()
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	c := &conn{
		Source:     s,
		containers: containersapi.NewContainersClient(cc),
		tasks:      tasksapi.NewTasksClient(cc),
		nss:        namespacesapi.NewNamespacesClient(cc),
		cri:        runtimeapi.NewRuntimeServiceClient(cc),
		sandboxes:  map[ref]bool{},
		listed:     map[string]listed{},
	}

	filters := make([]string, len(topics))
	for i, t := range topics {
		filters[i] = fmt.Sprintf("topic==%q", t)
		if s.skipMoby {
			// containerd drops Docker's events itself: receiving and
			// discarding them cost 1.5 ms of CPU a Docker container's
			// lifecycle (docs/performance.md). follows still decides.
			filters[i] += fmt.Sprintf(",namespace!=%q", namespaceMoby)
		}
	}
	stream, err := eventsapi.NewEventsClient(cc).Subscribe(ctx, &eventsapi.SubscribeRequest{Filters: filters})
	if err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	q := source.NewQueue[*types.Envelope]()
	go func() {
		for {
			env, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("closed")
				}
				q.Close(fmt.Errorf("event stream: %w", err))
				return
			}
			q.Push(env)
		}
	}()

	return source.Catchup[*types.Envelope]{
		Runtime: store.RuntimeContainerd,
		Store:   s.store,
		Events:  q,
		List:    c.list,
		Apply:   c.handle,
	}.Follow(ctx, up)
}

// list reads every container of the namespaces followed, except pod
// sandboxes, with its state.
func (c *conn) list(ctx context.Context) ([]store.Observed, error) {
	nss, err := c.followed(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Observed
	for _, ns := range nss {
		obs, err := c.listNamespace(withNamespace(ctx, ns), ns)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
		out = append(out, obs...)
	}
	return out, nil
}

// followed lists the namespaces to follow now.
func (c *conn) followed(ctx context.Context) ([]string, error) {
	var nss []string
	if len(c.namespaces) > 0 {
		for ns := range c.namespaces {
			nss = append(nss, ns)
		}
	} else {
		lctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		var err error
		res, err := c.nss.List(lctx, &namespacesapi.ListNamespacesRequest{})
		if err != nil {
			return nil, fmt.Errorf("list namespaces: %w", err)
		}
		for _, ns := range res.GetNamespaces() {
			nss = append(nss, ns.GetName())
		}
	}
	nss = slices.DeleteFunc(nss, func(ns string) bool { return !c.follows(ns) })
	slices.Sort(nss)
	return nss, nil
}

func (c *conn) listNamespace(ctx context.Context, ns string) ([]store.Observed, error) {
	lctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cs, err := c.listContainers(lctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	readAt := time.Now()
	ts, err := c.tasks.List(lctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	tasks := make(map[string]*task.Process, len(ts.GetTasks()))
	for _, t := range ts.GetTasks() {
		tasks[t.GetID()] = t
	}
	var out []store.Observed
	for _, ct := range cs {
		if isSandbox(ct.Labels) {
			c.sandboxes[ref{ns, ct.ID}] = true
			continue
		}
		o := c.observed(ct, ns)
		st, at := taskState(tasks[ct.ID]), readAt
		if ns == namespaceCRI && isCRI(ct.Labels) {
			at = time.Now()
			cst, err := c.criStatus(ctx, ct.ID)
			if err != nil {
				return nil, err
			}
			if cst != nil {
				pid := st.Pid // the CRI plugin does not say it; the task list does
				st = criState(cst)
				if st.Running {
					st.Pid = pid
				}
			}
		}
		st.Restarts = o.State.Restarts
		o.State = st
		if !c.store.Known(o.Meta.Key()) {
			c.listed[o.Meta.Key()] = listed{readAt: at, oomKilled: st.OOMKilled}
		}
		out = append(out, o)
	}
	return out, nil
}

// listContainers lists the containers of the namespace in ctx, streamed as
// containerd's own client does (no message size limit on many containers).
func (c *conn) listContainers(ctx context.Context) ([]*containersapi.Container, error) {
	stream, err := c.containers.ListStream(ctx, &containersapi.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	var out []*containersapi.Container
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m.GetContainer())
	}
}

// withNamespace makes calls of ctx in containerd namespace ns: containerd
// reads it from this gRPC header.
func withNamespace(ctx context.Context, ns string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", ns)
}

// criStatus asks the CRI plugin for a container's status. It returns nil when
// the plugin does not know the container or does not answer at all (it may
// be disabled); containerd's task state is all there is then.
func (c *conn) criStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	if c.noCRI {
		return nil, nil
	}
	sctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.cri.ContainerStatus(sctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	switch status.Code(err) {
	case codes.OK:
		return res.GetStatus(), nil
	case codes.NotFound:
		return nil, nil
	case codes.Unimplemented:
		c.log.Warn("the CRI plugin does not answer: Kubernetes containers that exited show no exit code", "err", err)
		c.noCRI = true
		return nil, nil
	}
	return nil, fmt.Errorf("CRI status of container %s: %w", id, err)
}

// observed is a container's metadata and, for a Kubernetes container, the
// kubelet's restart count; its state is left empty.
func (c *conn) observed(ct *containersapi.Container, namespace string) store.Observed {
	n, err := restartCount(ct)
	if err != nil {
		c.log.Warn("restart count unknown", "err", err)
	}
	return store.Observed{Meta: meta(ct, namespace), State: store.State{Restarts: n}}
}

// handle applies one event. A container that the store does not know yet is
// read first, so that its labels and restart count come before its events.
func (c *conn) handle(ctx context.Context, env *types.Envelope) error {
	if env == nil || !c.follows(env.Namespace) {
		return nil
	}
	t, err := translate(env)
	c.store.CountEvent(store.RuntimeContainerd, err != nil)
	if err != nil {
		c.log.Warn("skipping malformed event", "err", err)
		return nil
	}
	if t.id == "" {
		return nil
	}
	r := ref{t.namespace, t.id}
	if c.sandboxes[r] {
		if t.removed {
			delete(c.sandboxes, r)
		}
		return nil
	}
	key := store.Key(store.RuntimeContainerd, t.namespace, t.id)
	if t.refresh || (!t.removed && !c.store.Known(key)) {
		if err := c.read(ctx, r); err != nil {
			return err
		}
	}
	if t.event == nil || !c.store.Known(key) || c.coveredByListing(key, t.event) {
		return nil
	}
	c.store.Apply(t.event)
	return nil
}

// read reads a container's metadata and applies it. Nothing is applied for a
// pod sandbox, or for a container that is gone already: without its labels
// it cannot be told from a sandbox.
func (c *conn) read(ctx context.Context, r ref) error {
	gctx, cancel := context.WithTimeout(withNamespace(ctx, r.namespace), requestTimeout)
	defer cancel()
	res, err := c.containers.Get(gctx, &containersapi.GetContainerRequest{ID: r.id})
	ct := res.GetContainer()
	switch {
	case status.Code(err) == codes.NotFound:
		c.log.Debug("container gone before it could be read", "namespace", r.namespace, "id", r.id)
		return nil
	case err != nil:
		return fmt.Errorf("get container %s/%s: %w", r.namespace, r.id, err)
	case isSandbox(ct.Labels):
		c.sandboxes[r] = true
		return nil
	}
	c.store.Apply(c.observed(ct, r.namespace))
	return nil
}

// coveredByListing reports whether the listing that first showed a container
// already showed what the event reports: a start before its state was read,
// or an OOM kill before it when the state said there was one. Exits are not
// covered: the store matches them by their exit time.
func (c *conn) coveredByListing(key string, ev store.Event) bool {
	l, ok := c.listed[key]
	if !ok {
		return false
	}
	switch ev := ev.(type) {
	case store.Started:
		return ev.At.Before(l.readAt)
	case store.OOMKilled:
		return l.oomKilled && ev.At.Before(l.readAt)
	}
	return false
}
