package main

// The Recorder records a Kubernetes Event on the Pod of each OOM kill the
// exporter tells of. It builds on client-go's event recorder, so that a
// burst of kills is aggregated and rate-limited as the kubelet's own events
// are, and talks to the apiserver through a REST client whose scheme holds
// core/v1 alone (not client-go's clientset, which registers every API group).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
)

// Component is the Events' source and reporting controller.
const Component = "missing-container-metrics"

// Config configures a Recorder.
type Config struct {
	// Node is this node's name: only its pods get Events.
	Node string
	// Rest reaches the apiserver (rest.InClusterConfig, or a kubeconfig's).
	Rest *rest.Config
	// RetryInterval is the wait between two attempts to write an Event or
	// find a pod while the apiserver does not answer (0: client-go's
	// recorder's 10 s; finding a pod waits 1 s, doubling, 4 times).
	RetryInterval time.Duration
}

// Recorder records the Events.
type Recorder struct {
	node        string
	client      rest.Interface
	log         *slog.Logger
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	retry       []time.Duration // waits between attempts to find a pod
	// flushes are the Flush calls waiting for their marker, by its name.
	flushMu sync.Mutex
	flushes map[string]chan struct{}
	flushN  uint64
	// recordMu makes one Record at a time: it guards pods.
	recordMu sync.Mutex
	// pods are the pods found so far, by the kill's pod UID: a UID names
	// one pod for ever.
	pods map[string]pod
}

// pod is what an Event needs of a Pod.
type pod struct {
	namespace, name string
	uid             types.UID         // the API's: a static pod's mirror pod has one of its own
	fieldPaths      map[string]string // by container name: spec.containers{NAME}, ...
}

// maxPods bounds the pods remembered; at the bound they are forgotten.
const maxPods = 1024

// scheme holds core/v1 alone: pods and events.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// New returns a Recorder; Close stops it.
func New(cfg Config, log *slog.Logger) (*Recorder, error) {
	if cfg.Node == "" {
		return nil, errors.New("no node name")
	}
	rc := rest.CopyConfig(cfg.Rest)
	rc.GroupVersion = &corev1.SchemeGroupVersion
	rc.APIPath = "/api"
	rc.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if rc.Timeout == 0 {
		rc.Timeout = 30 * time.Second
	}
	if rc.UserAgent == "" {
		rc.UserAgent = Component + "-events"
	}
	client, err := rest.RESTClientFor(rc)
	if err != nil {
		return nil, err
	}
	r := &Recorder{node: cfg.Node, client: client, log: log, pods: map[string]pod{}, flushes: map[string]chan struct{}{},
		retry: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}}
	// client-go's own spam filter and aggregation. The recorder handles one
	// Event after the other; the spam filter's key is asked for last before
	// an Event is dropped or written, so when it is asked for a flush's
	// marker, every Event before it is done with. The key is client-go's
	// default: one bucket an object.
	opts := []record.BroadcasterOption{record.WithCorrelatorOptions(record.CorrelatorOptions{
		SpamKeyFunc: func(e *corev1.Event) string {
			o := e.InvolvedObject
			if o.Kind == flushKind {
				r.flushed(o.Name)
			}
			return strings.Join([]string{e.Source.Component, e.Source.Host, o.Kind, o.Namespace, o.Name, string(o.UID), o.APIVersion, e.Type}, "")
		},
	})}
	if cfg.RetryInterval > 0 {
		opts = append(opts, record.WithSleepDuration(cfg.RetryInterval))
		r.retry = []time.Duration{cfg.RetryInterval, cfg.RetryInterval, cfg.RetryInterval, cfg.RetryInterval}
	}
	r.broadcaster = record.NewBroadcaster(opts...)
	r.broadcaster.StartRecordingToSink(&sink{client: client})
	r.recorder = r.broadcaster.NewRecorder(scheme, corev1.EventSource{Component: Component, Host: cfg.Node})
	return r, nil
}

// flushKind marks the recorder's Events that only Flush sees: the sink
// writes none of them.
const flushKind = "missing-container-metrics-flush"

// Flush waits, at most timeout, until each Event recorded before is
// written, or dropped by the rate limit, and reports whether they are. An
// Event whose write failed is tried again later (client-go: 12 times, 10 s
// apart), and Flush waits for it.
func (r *Recorder) Flush(timeout time.Duration) bool {
	r.flushMu.Lock()
	r.flushN++
	name := strconv.FormatUint(r.flushN, 10)
	done := make(chan struct{})
	r.flushes[name] = done
	r.flushMu.Unlock()
	defer func() {
		r.flushMu.Lock()
		delete(r.flushes, name)
		r.flushMu.Unlock()
	}()
	r.recorder.Event(&corev1.ObjectReference{Kind: flushKind, Name: name}, corev1.EventTypeNormal, "Flush", "flush")
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (r *Recorder) flushed(name string) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if done := r.flushes[name]; done != nil {
		close(done)
		delete(r.flushes, name)
	}
}

// Close stops the recorder. Events it has not written yet are lost: Flush first.
func (r *Recorder) Close() { r.broadcaster.Shutdown() }

// Run records an Event for each kill read from in, until in ends; once
// ctx has ended it records no more.
func (r *Recorder) Run(ctx context.Context, in io.Reader) error {
	return pipe.Read(in, func(k pipe.Kill) {
		if ctx.Err() == nil {
			r.Record(ctx, k)
		}
	}, func(line []byte, err error) {
		r.log.Error("not a kill", "err", err, "line", string(line))
	})
}

// Record records the Event of one kill on its Pod: got by namespace and
// name, and only if it is on this node and the pod the kill was in (its
// UID; a pod made again under the same name is another pod).
func (r *Recorder) Record(ctx context.Context, k pipe.Kill) {
	r.recordMu.Lock()
	defer r.recordMu.Unlock()
	log := r.log.With("namespace", k.Namespace, "pod", k.Pod, "container", k.Container, "container_id", k.ContainerID)
	if err := checkNames(k); err != nil {
		log.Warn("no Event for the kill", "err", err)
		return
	}
	p, err := r.findPod(ctx, k)
	if err != nil {
		log.Error("no Event for the kill: cannot look up its pod", "err", err)
		return
	}
	if p == nil {
		log.Info("no Event for the kill: its pod is not on this node any more", "pod_uid", k.PodUID, "node", r.node)
		return
	}
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.namespace, Name: p.name, UID: p.uid,
		FieldPath: p.fieldPaths[k.Container]}
	reason := Reason(k)
	r.recorder.Event(ref, corev1.EventTypeWarning, reason, Message(k))
	log.Debug("Event recorded", "reason", reason, "process", k.Process, "pid", k.PID)
}

// checkNames refuses names that are no Kubernetes names.
func checkNames(k pipe.Kill) error {
	if errs := validation.IsDNS1123Label(k.Namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", k.Namespace, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(k.Pod); len(errs) > 0 {
		return fmt.Errorf("pod %q: %s", k.Pod, errs[0])
	}
	return nil
}

// findPod finds the kill's pod, or returns nil if it is not there (gone,
// on another node, or another pod by its name). It gets the pod by its
// name: the chart's role grants get, not list, which would show every pod
// of the cluster; a get of any pod is granted, so the node is checked here.
// It tries again while the apiserver does not answer.
func (r *Recorder) findPod(ctx context.Context, k pipe.Kill) (*pod, error) {
	if p, ok := r.pods[k.PodUID]; ok && p.namespace == k.Namespace && p.name == k.Pod {
		return &p, nil
	}
	var item corev1.Pod
	var err error
	for attempt := 0; ; attempt++ {
		err = r.client.Get().Namespace(k.Namespace).Resource("pods").Name(k.Pod).Do(ctx).Into(&item)
		if err == nil || !retriable(err) || attempt == len(r.retry) {
			break
		}
		r.log.Debug("looking up a pod failed; trying again", "err", err, "in", r.retry[attempt])
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(r.retry[attempt]):
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// A static pod's containers carry its own UID; the apiserver shows
	// its mirror pod, whose annotation holds that UID.
	if item.Namespace != k.Namespace || item.Name != k.Pod || item.Spec.NodeName != r.node ||
		(string(item.UID) != k.PodUID && item.Annotations[corev1.MirrorPodAnnotationKey] != k.PodUID) {
		return nil, nil
	}
	p := pod{namespace: item.Namespace, name: item.Name, uid: item.UID, fieldPaths: map[string]string{}}
	for _, c := range item.Spec.Containers {
		p.fieldPaths[c.Name] = "spec.containers{" + c.Name + "}"
	}
	for _, c := range item.Spec.InitContainers {
		p.fieldPaths[c.Name] = "spec.initContainers{" + c.Name + "}"
	}
	for _, c := range item.Spec.EphemeralContainers {
		p.fieldPaths[c.Name] = "spec.ephemeralContainers{" + c.Name + "}"
	}
	if len(r.pods) >= maxPods {
		clear(r.pods)
	}
	r.pods[k.PodUID] = p
	return &p, nil
}

// retriable: the apiserver did not answer, or asked to be asked again.
func retriable(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true
	}
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
}

// sink writes the recorder's Events through the core/v1 REST client, as
// client-go's typed EventSinkImpl does; not Flush's markers.
type sink struct{ client rest.Interface }

func (s *sink) Create(e *corev1.Event) (*corev1.Event, error) {
	if e.InvolvedObject.Kind == flushKind {
		return e, nil
	}
	out := &corev1.Event{}
	err := s.client.Post().Namespace(e.Namespace).Resource("events").Body(e).Do(context.Background()).Into(out)
	return out, err
}

func (s *sink) Update(e *corev1.Event) (*corev1.Event, error) {
	if e.InvolvedObject.Kind == flushKind {
		return e, nil
	}
	out := &corev1.Event{}
	err := s.client.Put().Namespace(e.Namespace).Resource("events").Name(e.Name).Body(e).Do(context.Background()).Into(out)
	return out, err
}

func (s *sink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	if e.InvolvedObject.Kind == flushKind {
		return e, nil
	}
	out := &corev1.Event{}
	err := s.client.Patch(types.StrategicMergePatchType).Namespace(e.Namespace).Resource("events").Name(e.Name).
		Body(data).Do(context.Background()).Into(out)
	return out, err
}
