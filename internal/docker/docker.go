// Package docker is the Docker source: it lists and inspects the containers
// of a dockerd, follows its event stream, and sends what it sees to the store
// as typed events. It only ever reads from dockerd. The same source follows
// Podman through Podman's Docker API (NewPodman).
package docker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/missing-container-metrics/missing-container-metrics/internal/source"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// requestTimeout bounds one list or inspect call, so that a hung dockerd
// cannot hang the source.
const requestTimeout = 30 * time.Second

// Source follows one dockerd, or one Podman.
type Source struct {
	cli     *client.Client
	runtime string       // store.RuntimeDocker or store.RuntimePodman
	podman  *http.Client // Podman's own API, on the same socket; nil for Docker
	store   *store.Store
	log     *slog.Logger

	// lastEvent is the dockerd time of the newest event applied; a new
	// session asks dockerd to replay from it.
	lastEvent time.Time

	mu      sync.Mutex
	pending map[string]inspectRequest // by container id
	wake    chan struct{}

	// images spares the inspect at a Docker container's creation.
	images *imageIDs
}

// New returns a source for the dockerd at host (e.g. unix:///var/run/docker.sock).
// A tcp:// host uses TLS as the docker CLI does when DOCKER_CERT_PATH is set:
// the client certificate and key from there, and with DOCKER_TLS_VERIFY the
// daemon's certificate checked against its ca.pem. It does not connect yet.
func New(host string, st *store.Store, log *slog.Logger) (*Source, error) {
	return newSource(store.RuntimeDocker, host, st, log)
}

// NewPodman returns a source for the Podman service at host (its Docker API,
// e.g. unix:///run/podman/podman.sock), whose containers are Podman's
// (podman://<id>, as the kernel reader names their cgroups libpod-<id>).
func NewPodman(host string, st *store.Store, log *slog.Logger) (*Source, error) {
	s, err := newSource(store.RuntimePodman, host, st, log)
	if err != nil {
		return nil, err
	}
	s.podman = podmanClient(s.cli)
	return s, nil
}

func newSource(runtime, host string, st *store.Store, log *slog.Logger) (*Source, error) {
	// The TLS option replaces the transport: before the host configures it.
	// The client negotiates the API version with dockerd. It wraps its
	// transport in OpenTelemetry's, which records a span and metrics of
	// every request; the exporter exports no traces, and its filter passes
	// every request straight to the transport beneath.
	cli, err := client.New(client.WithTLSClientConfigFromEnv(), client.WithHost(host),
		client.WithTraceOptions(otelhttp.WithFilter(func(*http.Request) bool { return false })))
	if err != nil {
		return nil, fmt.Errorf("%s client for %q: %w", runtime, host, err)
	}
	st.AddSource(runtime)
	return &Source{
		cli:     cli,
		runtime: runtime,
		store:   st,
		log:     log.With("runtime", runtime),
		pending: map[string]inspectRequest{},
		wake:    make(chan struct{}, 1),
		images:  &imageIDs{byRef: map[string]string{}},
	}, nil
}

// Run follows dockerd until ctx ends, reconnecting whenever it is lost.
func (s *Source) Run(ctx context.Context) {
	for range inspectors {
		go s.inspector(ctx)
	}
	source.Run(ctx, s.runtime, s.store, s.log, source.DefaultBackoff, s.session)
}

type item struct {
	msg events.Message
	at  time.Time
}

// session lists every container and follows the event stream. The stream is
// opened first (replaying from the last event seen, after a break), so that
// nothing that happens during the listing is missed; timestamps in the store
// make what both report count once.
func (s *Source) session(ctx context.Context, up func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := s.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if err := s.checkEngine(ctx); err != nil {
		return err
	}
	// Image events say when a name may mean another image (s.images). Those
	// of a break may be beyond what dockerd replays, and the creates it
	// replays may be of containers gone since: what a name meant before
	// now is forgotten, and such a container is inspected.
	s.images.changed(time.Now())
	filters := make(client.Filters).Add("type", string(events.ContainerEventType), string(events.ImageEventType))
	if s.podman == nil {
		// Podman's actions differ (init, cleanup, remove): it sends all.
		filters = filters.Add("event", dockerActions...)
	}
	opts := client.EventsListOptions{Filters: filters}
	if !s.lastEvent.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", s.lastEvent.Unix(), s.lastEvent.Nanosecond())
	}
	stream := s.cli.Events(ctx, opts)
	q := source.NewQueue[item]()
	go func() {
		for {
			select {
			case m := <-stream.Messages:
				q.Push(item{msg: m, at: eventTime(m)})
			case err := <-stream.Err:
				q.Close(fmt.Errorf("event stream: %w", err))
				return
			case <-ctx.Done():
				return
			}
		}
	}()

	var listedAt time.Time
	return source.Catchup[item]{
		Runtime: s.runtime,
		Store:   s.store,
		Events:  q,
		List: func(ctx context.Context) ([]store.Observed, error) {
			listedAt = time.Now()
			return s.list(ctx)
		},
		// Replayed events of containers already known happened before the
		// listing: applied first, the listing only adds what they miss.
		Early: func(it item) bool {
			return it.at.Before(listedAt) && s.store.Known(store.Key(s.runtime, "", it.msg.Actor.ID))
		},
		Apply: func(_ context.Context, it item) error {
			s.handle(it)
			return nil
		},
	}.Follow(ctx, up)
}

// list inspects every container, running or not, except pod sandboxes
// (Kubernetes' and Podman's infra containers).
func (s *Source) list(ctx context.Context) ([]store.Observed, error) {
	lctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := s.cli.ContainerList(lctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	pods, err := s.podmanPods(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Observed
	for _, c := range res.Items {
		if isSandbox(c.Labels) {
			continue
		}
		o, err := s.inspect(ctx, c.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed since the listing; its destroy event follows
		}
		if err != nil {
			return nil, err
		}
		if s.workload(ctx, &o, pods) {
			out = append(out, o)
		}
	}
	return out, nil
}

func (s *Source) inspect(ctx context.Context, id string) (store.Observed, error) {
	ictx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	asked := time.Now()
	res, err := s.cli.ContainerInspect(ictx, id, client.ContainerInspectOptions{})
	if err != nil {
		return store.Observed{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	o, err := observed(s.runtime, res.Container)
	o.At = asked
	if c := res.Container; err == nil && c.Config != nil {
		s.images.learn(c.Config.Image, c.Image, o.State.CreatedAt)
	}
	return o, err
}

// handle applies one event. It never calls dockerd: containers it does not
// know yet are inspected by the inspector goroutine.
func (s *Source) handle(it item) {
	m := it.msg
	if it.at.After(s.lastEvent) {
		s.lastEvent = it.at
	}
	if m.Type == events.ImageEventType {
		s.images.changed(it.at)
		s.store.CountEvent(s.runtime, false)
		return
	}
	if isSandbox(m.Actor.Attributes) {
		s.store.CountEvent(s.runtime, false)
		return
	}
	t, err := translate(s.runtime, m)
	s.log.Debug("event", "action", m.Action, "id", m.Actor.ID, "time", it.at)
	s.store.CountEvent(s.runtime, err != nil)
	if err != nil {
		s.log.Warn("skipping malformed event", "err", err)
		return
	}
	if t.event != nil {
		s.store.Apply(t.event)
	}
	if !t.refresh && t.inspect && s.store.Known(store.Key(s.runtime, "", m.Actor.ID)) {
		return
	}
	if t.created && s.podman == nil {
		// Podman's containers are inspected: whether one is its pod's
		// infra container takes Podman's own API.
		if image, ok := s.images.lookup(m.Actor.Attributes["image"]); ok {
			s.store.Apply(created(s.runtime, m, it.at, image))
			return
		}
	}
	if t.refresh || t.inspect {
		s.requestInspect(m.Actor.ID, inspectRequest{attrs: m.Actor.Attributes, refresh: t.refresh})
	}
}

// inspectRequest asks the inspector for a container's metadata.
type inspectRequest struct {
	attrs   map[string]string // of the container's last event
	refresh bool              // inspect even if the store knows the container by then
}

func (s *Source) requestInspect(id string, r inspectRequest) {
	s.mu.Lock()
	r.refresh = r.refresh || s.pending[id].refresh
	s.pending[id] = r
	s.mu.Unlock()
	s.wakeOne()
}

// inspectors is how many containers are inspected at once, so that a burst
// of new containers is tracked quickly even when dockerd is slow to answer.
const inspectors = 4

// inspector inspects the containers the event handler asked for. When a
// container is gone before it could be inspected, the attributes of its last
// event (name, labels) still give its series, so that its counts are exported.
func (s *Source) inspector(ctx context.Context) {
	for {
		id, r, ok := s.nextRequest()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		if !r.refresh && s.store.Known(store.Key(s.runtime, "", id)) {
			continue // an earlier inspect or the listing got there first
		}
		o, err := s.inspect(ctx, id)
		s.log.Debug("inspected", "id", id, "err", err, "asked", o.At, "running", o.State.Running,
			"started_at", o.State.StartedAt, "finished_at", o.State.FinishedAt, "restarts", o.State.Restarts)
		switch {
		case err == nil:
			if s.workload(ctx, &o, nil) {
				s.store.Apply(o)
			}
		case cerrdefs.IsNotFound(err):
			s.store.Apply(store.Observed{Meta: meta(s.runtime, id, r.attrs["name"], "", r.attrs), Gone: true})
		default:
			// dockerd is away: the next session lists this container again.
		}
	}
}

func (s *Source) nextRequest() (string, inspectRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.pending {
		delete(s.pending, id)
		if len(s.pending) > 0 {
			s.wakeOne() // a burst: let another inspector help
		}
		return id, r, true
	}
	return "", inspectRequest{}, false
}

func (s *Source) wakeOne() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
