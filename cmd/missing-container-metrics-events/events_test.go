package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/rest"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
)

// apiserver is a fake of the few requests the companion makes, as the
// chart's role grants them: a pod got by its name (a list is forbidden),
// and events created and patched. It records every request.
type apiserver struct {
	*httptest.Server
	mu       sync.Mutex
	pods     []corev1.Pod
	events   map[string]*corev1.Event // by namespace/name
	requests []string                 // "METHOD path?query"
	failures int                      // answer this many next requests 503
	rv       int
}

func newAPIServer(t *testing.T, pods ...corev1.Pod) *apiserver {
	a := &apiserver{pods: pods, events: map[string]*corev1.Event{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *apiserver) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = append(a.requests, r.Method+" "+r.URL.RequestURI())
	if a.failures > 0 {
		a.failures--
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/namespaces/"), "/")
	if !strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/") || len(parts) < 2 {
		http.NotFound(w, r)
		return
	}
	ns, resource := parts[0], parts[1]
	a.rv++
	switch {
	case resource == "pods" && r.Method == http.MethodGet && len(parts) == 3:
		for _, p := range a.pods {
			if p.Namespace == ns && p.Name == parts[2] {
				p.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
				writeJSON(w, http.StatusOK, &p)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound})
	case resource == "pods":
		// The chart's role grants get alone: a list would show every pod.
		writeJSON(w, http.StatusForbidden, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden})
	case resource == "events" && r.Method == http.MethodPost && len(parts) == 2:
		var e corev1.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil || e.Namespace != ns {
			http.Error(w, fmt.Sprintf("bad event (%v) in namespace %q", err, ns), http.StatusBadRequest)
			return
		}
		if a.events[ns+"/"+e.Name] != nil {
			writeJSON(w, http.StatusConflict, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonAlreadyExists, Code: http.StatusConflict})
			return
		}
		e.ResourceVersion = fmt.Sprint(a.rv)
		a.events[ns+"/"+e.Name] = &e
		writeJSON(w, http.StatusCreated, &e)
	case resource == "events" && r.Method == http.MethodPatch && len(parts) == 3:
		old := a.events[ns+"/"+parts[2]]
		if old == nil {
			writeJSON(w, http.StatusNotFound, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound})
			return
		}
		patch, _ := io.ReadAll(r.Body)
		orig, _ := json.Marshal(old)
		merged, err := strategicpatch.StrategicMergePatch(orig, patch, corev1.Event{})
		var e corev1.Event
		if err == nil {
			err = json.Unmarshal(merged, &e)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.ResourceVersion = fmt.Sprint(a.rv)
		a.events[ns+"/"+e.Name] = &e
		writeJSON(w, http.StatusOK, &e)
	default:
		http.Error(w, "not faked: "+r.Method+" "+r.URL.Path, http.StatusMethodNotAllowed)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// eventList returns the events stored, oldest first.
func (a *apiserver) eventList() []corev1.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []corev1.Event
	for _, e := range a.events {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *apiserver) requestLog() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

const node = "node-1"

func testPod(ns, name, uid, nodeName string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)},
		Spec: corev1.PodSpec{NodeName: nodeName,
			InitContainers: []corev1.Container{{Name: "init"}},
			Containers:     []corev1.Container{{Name: "fluentd"}, {Name: "sidecar"}}},
	}
}

func newRecorder(t *testing.T, a *apiserver, logs io.Writer) *Recorder {
	t.Helper()
	r, err := New(Config{Node: node, Rest: &rest.Config{Host: a.URL, QPS: 1000, Burst: 1000}, RetryInterval: 10 * time.Millisecond},
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func workerKill(ns, pod, uid string, pid int) pipe.Kill {
	return pipe.Kill{Time: time.Now(), Namespace: ns, Pod: pod, PodUID: uid, Container: "fluentd", ContainerID: "containerd://abc",
		Process: "ruby", PID: pid, MainProcess: ptr(false), Outcome: "lived_on", Scope: "container", Usage: ptr(uint64(32 << 20)), Limit: ptr(uint64(32 << 20)),
		From: "kernel log"}
}

// waitEvents waits until the apiserver holds events that cond accepts.
func waitEvents(t *testing.T, a *apiserver, what string, cond func([]corev1.Event) bool) []corev1.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs := a.eventList()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s; events %+v\nrequests %v", what, evs, a.requestLog())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A worker's kill: one Warning Event on its Pod, naming the container's
// field, with the reason and message of the kill, from this component on
// this node. The pod was looked up by name and node.
func TestEventOnThePod(t *testing.T) {
	a := newAPIServer(t, testPod("logging", "fluentd-0", "uid-1", node))
	r := newRecorder(t, a, io.Discard)
	k := workerKill("logging", "fluentd-0", "uid-1", 4242)
	r.Record(context.Background(), k)
	if !r.Flush(20 * time.Second) {
		t.Fatal("not flushed")
	}
	evs := a.eventList()
	if len(evs) != 1 {
		t.Fatalf("%d events after Flush, want 1", len(evs))
	}
	e := evs[0]
	want := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "logging", Name: "fluentd-0", UID: "uid-1",
		FieldPath: "spec.containers{fluentd}"}
	if e.InvolvedObject != want {
		t.Errorf("involvedObject %+v, want %+v", e.InvolvedObject, want)
	}
	if e.Namespace != "logging" || e.Type != corev1.EventTypeWarning || e.Reason != "ProcessOOMKilled" || e.Message != Message(k) || e.Count != 1 {
		t.Errorf("event %s/%s %s %s %q count %d", e.Namespace, e.Name, e.Type, e.Reason, e.Message, e.Count)
	}
	if e.Source != (corev1.EventSource{Component: Component, Host: node}) || e.ReportingController != Component || e.ReportingInstance != node {
		t.Errorf("source %+v, reporting %s %s", e.Source, e.ReportingController, e.ReportingInstance)
	}
	reqs := a.requestLog()
	if len(reqs) != 2 || !strings.HasPrefix(reqs[0], "GET /api/v1/namespaces/logging/pods/fluentd-0?") ||
		!strings.HasPrefix(reqs[1], "POST /api/v1/namespaces/logging/events") {
		t.Errorf("requests %v: want one get of the pod, one event", reqs)
	}
}

// No Event where the pod is not the kill's: another pod made under its
// name (another UID), a pod of another node (the role lets the companion
// get any pod: it checks the node itself), or none. An init container's
// kill names its field; a static pod's kill goes to its mirror pod.
func TestEventOnlyOnTheKillsPod(t *testing.T) {
	mirror := testPod("kube-system", "etcd-node-1", "uid-mirror", node)
	mirror.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "uid-static"}
	a := newAPIServer(t, testPod("ns", "recreated", "uid-new", node), testPod("ns", "elsewhere", "uid-e", "node-2"),
		testPod("ns", "init", "uid-i", node), mirror)
	var logs bytes.Buffer
	r := newRecorder(t, a, &logs)
	ctx := context.Background()
	r.Record(ctx, workerKill("ns", "recreated", "uid-old", 1))
	r.Record(ctx, workerKill("ns", "elsewhere", "uid-e", 2))
	r.Record(ctx, workerKill("ns", "gone", "uid-g", 3))
	ki := workerKill("ns", "init", "uid-i", 4)
	ki.Container = "init"
	r.Record(ctx, ki)
	r.Record(ctx, workerKill("kube-system", "etcd-node-1", "uid-static", 5))
	r.Record(ctx, pipe.Kill{Namespace: "NS!", Pod: "p", PodUID: "u"})
	evs := waitEvents(t, a, "two events", func(evs []corev1.Event) bool { return len(evs) == 2 })
	got := map[string]corev1.ObjectReference{}
	for _, e := range evs {
		got[e.InvolvedObject.Name] = e.InvolvedObject
	}
	if ref := got["init"]; ref.UID != "uid-i" || ref.FieldPath != "spec.initContainers{init}" {
		t.Errorf("the init container's event: %+v", ref)
	}
	if ref := got["etcd-node-1"]; ref.UID != "uid-mirror" || ref.Namespace != "kube-system" {
		t.Errorf("the static pod's event: %+v", ref)
	}
	if n := strings.Count(logs.String(), "its pod is not on this node any more"); n != 3 {
		t.Errorf("%d kills logged as without a pod, want 3:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `namespace \"NS!\"`) {
		t.Errorf("a namespace that is no name is not refused in the log:\n%s", logs.String())
	}
}

// A burst of kills in one pod is aggregated and rate-limited as the
// kubelet's events are (client-go's recorder): the first nine as they
// are, then one event "combined from similar events" whose count rises,
// and no more than the spam filter's burst of 25 in all. The pod is
// looked up once.
func TestBurstIsAggregated(t *testing.T) {
	a := newAPIServer(t, testPod("ns", "burst", "uid-b", node))
	r := newRecorder(t, a, io.Discard)
	const kills = 40
	for i := range kills {
		r.Record(context.Background(), workerKill("ns", "burst", "uid-b", 1000+i))
	}
	count := func(evs []corev1.Event) int32 {
		var n int32
		for _, e := range evs {
			n += e.Count
		}
		return n
	}
	evs := waitEvents(t, a, "25 kills counted", func(evs []corev1.Event) bool { return count(evs) >= 25 })
	if count(evs) != 25 || len(evs) != 10 {
		t.Errorf("%d events counting %d kills, want 10 counting 25", len(evs), count(evs))
	}
	var combined []corev1.Event
	for _, e := range evs {
		if strings.HasPrefix(e.Message, "(combined from similar events): ") {
			combined = append(combined, e)
		} else if e.Count != 1 || !strings.Contains(e.Message, `Process "ruby" (pid 10`) {
			t.Errorf("event %q count %d", e.Message, e.Count)
		}
	}
	if len(combined) != 1 || combined[0].Count != 16 || combined[0].Reason != "ProcessOOMKilled" {
		t.Errorf("combined events: %+v", combined)
	}
	lists := 0
	for _, req := range a.requestLog() {
		if strings.Contains(req, "/pods") {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("the pod was looked up %d times, want once", lists)
	}
}

// While the apiserver does not answer, the lookup and the event's write
// are tried again; the event arrives once it answers.
func TestAPIServerAway(t *testing.T) {
	a := newAPIServer(t, testPod("ns", "p", "uid-p", node))
	a.failures = 3 // two lookups, then the first write
	r := newRecorder(t, a, io.Discard)
	r.Record(context.Background(), workerKill("ns", "p", "uid-p", 1))
	waitEvents(t, a, "the event", func(evs []corev1.Event) bool { return len(evs) == 1 })
	if n := len(a.requestLog()); n < 5 {
		t.Errorf("%d requests, want the 3 that failed and 2 more", n)
	}
}

// Run records an event for each kill line, skips lines that are none, and
// ends with its input.
func TestRunReadsKills(t *testing.T) {
	a := newAPIServer(t, testPod("ns", "p", "uid-p", node))
	var logs bytes.Buffer
	r := newRecorder(t, a, &logs)
	var in bytes.Buffer
	_ = pipe.Encode(&in, workerKill("ns", "p", "uid-p", 1))
	in.WriteString("garbage\n")
	k := workerKill("ns", "p", "uid-p", 2)
	k.MainProcess, k.Outcome = ptr(true), "ended"
	_ = pipe.Encode(&in, k)
	if err := r.Run(context.Background(), &in); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, a, "two events", func(evs []corev1.Event) bool { return len(evs) == 2 })
	reasons := []string{evs[0].Reason, evs[1].Reason}
	sort.Strings(reasons)
	if reasons[0] != "OOMKilled" || reasons[1] != "ProcessOOMKilled" {
		t.Errorf("reasons %v", reasons)
	}
	if !strings.Contains(logs.String(), `msg="not a kill"`) {
		t.Errorf("the bad line is not logged:\n%s", logs.String())
	}
}
