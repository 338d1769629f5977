package containerd

import (
	"os"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

const id = "bcbe8be9ab249e4064b688c0b36b351a18fdae6143fe25dfbbaa393402e252ce"

var when = time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC)

func envelope(t *testing.T, topic string, ev *anypb.Any) *types.Envelope {
	t.Helper()
	return &types.Envelope{Timestamp: timestamppb.New(when), Namespace: "k8s.io", Topic: topic, Event: ev}
}

func marshal(t *testing.T, v any) *anypb.Any {
	t.Helper()
	a, err := typeurl.MarshalAnyToProto(v)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTranslate(t *testing.T) {
	key := "containerd://k8s.io/" + id
	exitedAt := when.Add(-3 * time.Millisecond)
	for _, tc := range []struct {
		name  string
		topic string
		ev    any
		want  translation
	}{
		{"start", "/tasks/start", &apievents.TaskStart{ContainerID: id, Pid: 7},
			translation{namespace: "k8s.io", id: id, event: store.Started{Key: key, At: when, Pid: 7}}},
		{"exit of the init process, at its exit time", "/tasks/exit",
			&apievents.TaskExit{ContainerID: id, ID: id, Pid: 7, ExitStatus: 137, ExitedAt: timestamppb.New(exitedAt)},
			translation{namespace: "k8s.io", id: id, event: store.Exited{Key: key, At: exitedAt, Code: 137}}},
		{"an exec's exit never touches the exit code", "/tasks/exit",
			&apievents.TaskExit{ContainerID: id, ID: "exec-1", Pid: 8, ExitStatus: 5, ExitedAt: timestamppb.New(exitedAt)},
			translation{}},
		{"oom", "/tasks/oom", &apievents.TaskOOM{ContainerID: id},
			translation{namespace: "k8s.io", id: id, event: store.OOMKilled{Key: key, At: when}}},
		{"create", "/containers/create", &apievents.ContainerCreate{ID: id, Image: "busybox"},
			translation{namespace: "k8s.io", id: id}},
		{"update", "/containers/update", &apievents.ContainerUpdate{ID: id},
			translation{namespace: "k8s.io", id: id, refresh: true}},
		{"delete", "/containers/delete", &apievents.ContainerDelete{ID: id},
			translation{namespace: "k8s.io", id: id, event: store.Removed{Key: key, At: when}, removed: true}},
		{"a one-letter id", "/tasks/oom", &apievents.TaskOOM{ContainerID: "a"},
			translation{namespace: "k8s.io", id: "a", event: store.OOMKilled{Key: "containerd://k8s.io/a", At: when}}},
		{"other events are ignored", "/tasks/create", &apievents.TaskCreate{ContainerID: id}, translation{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := translate(envelope(t, tc.topic, marshal(t, tc.ev)))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTranslateRejectsMalformedEvents(t *testing.T) {
	noNamespace := envelope(t, "/tasks/oom", marshal(t, &apievents.TaskOOM{ContainerID: id}))
	noNamespace.Namespace = ""
	noTime := envelope(t, "/tasks/oom", marshal(t, &apievents.TaskOOM{ContainerID: id}))
	noTime.Timestamp = nil
	for name, env := range map[string]*types.Envelope{
		"no payload":     {Timestamp: timestamppb.New(when), Namespace: "k8s.io", Topic: "/tasks/oom"},
		"unknown type":   envelope(t, "/tasks/oom", &anypb.Any{TypeUrl: "example.com/Nope", Value: []byte{1}}),
		"garbage":        envelope(t, "/tasks/oom", &anypb.Any{TypeUrl: "containerd.events.TaskOOM", Value: []byte{0xff, 0xff}}),
		"no id":          envelope(t, "/tasks/oom", marshal(t, &apievents.TaskOOM{})),
		"id with slash":  envelope(t, "/containers/delete", marshal(t, &apievents.ContainerDelete{ID: "a/b"})),
		"no namespace":   noNamespace,
		"no time":        noTime,
		"exit, no time":  envelope(t, "/tasks/exit", marshal(t, &apievents.TaskExit{ContainerID: id, ID: id, ExitStatus: 1})),
		"exit, year one": envelope(t, "/tasks/exit", marshal(t, &apievents.TaskExit{ContainerID: id, ID: id, ExitedAt: timestamppb.New(time.Time{})})),
	} {
		if got, err := translate(env); err == nil {
			t.Errorf("%s: accepted as %+v", name, got)
		}
	}
}

func criContainer(t *testing.T, metadata string) *containersapi.Container {
	t.Helper()
	return &containersapi.Container{
		ID:    id,
		Image: "docker.io/library/busybox:test",
		Labels: map[string]string{
			labelKind: "container", store.LabelKubeContainer: "app", store.LabelKubePod: "web-1",
			store.LabelKubeNamespace: "shop", "io.kubernetes.pod.uid": "uid-1",
		},
		Extensions: map[string]*anypb.Any{criMetadataExtension: {
			TypeUrl: "github.com/containerd/cri/pkg/store/container/Metadata", Value: []byte(metadata),
		}},
	}
}

func TestMetaOfKubernetesContainer(t *testing.T) {
	got := meta(criContainer(t, "{}"), "k8s.io")
	want := store.Meta{Runtime: "containerd", ContainerdNamespace: "k8s.io", ID: id, Name: "app", KubeContainer: "app", Pod: "web-1",
		Namespace: "shop", PodUID: "uid-1", ImageID: "docker.io/library/busybox:test"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got.Key() != "containerd://k8s.io/"+id || got.ContainerID() != "containerd://"+id {
		t.Fatalf("key %q, container_id %q", got.Key(), got.ContainerID())
	}
}

func TestMetaOfPlainContainerIsNamedByItsID(t *testing.T) {
	got := meta(&containersapi.Container{ID: "x", Image: "docker.io/library/redis:7", Labels: map[string]string{"app": "cache"}}, "default")
	want := store.Meta{Runtime: "containerd", ContainerdNamespace: "default", ID: "x", Name: "x", ImageID: "docker.io/library/redis:7"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestSandboxes(t *testing.T) {
	if !isSandbox(map[string]string{labelKind: "sandbox"}) || isSandbox(map[string]string{labelKind: "container"}) || isSandbox(nil) {
		t.Fatal("isSandbox")
	}
}

// The kubelet's restart count, as containerd 1.6's CRI plugin stores it.
func TestRestartCountFromCRIMetadata(t *testing.T) {
	real, err := os.ReadFile("testdata/cri-container-metadata-1.6.json")
	if err != nil {
		t.Fatal(err)
	}
	withCount := func(count string, attempt string) string {
		return `{"Version":"v1","Metadata":{"Config":{"metadata":{"name":"app"` + attempt + `},"annotations":{` + count + `}}}}`
	}
	for _, tc := range []struct {
		name     string
		metadata string
		want     int
	}{
		{"containerd 1.6", string(real), 1},
		{"the annotation wins over the attempt", withCount(`"io.kubernetes.container.restartCount":"4"`, `,"attempt":9`), 4},
		{"without the annotation, the attempt", withCount(``, `,"attempt":2`), 2},
		{"first attempt", withCount(``, ``), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := restartCount(criContainer(t, tc.metadata))
			if err != nil || n != tc.want {
				t.Fatalf("got %d, %v; want %d", n, err, tc.want)
			}
		})
	}
	for name, md := range map[string]string{
		"not JSON":         "\x0a\x02hi",
		"other version":    `{"Version":"v2","Metadata":{"Config":{}}}`,
		"no config":        `{"Version":"v1","Metadata":{}}`,
		"negative count":   withCount(`"io.kubernetes.container.restartCount":"-1"`, ``),
		"count not a word": withCount(`"io.kubernetes.container.restartCount":"one"`, ``),
	} {
		if n, err := restartCount(criContainer(t, md)); err == nil || n != 0 {
			t.Errorf("%s: got %d, %v; want 0 and an error", name, n, err)
		}
	}
	plain := criContainer(t, withCount(`"io.kubernetes.container.restartCount":"4"`, ``))
	plain.Labels = nil
	if n, err := restartCount(plain); n != 0 || err != nil {
		t.Errorf("a container that is not the CRI plugin's: got %d, %v", n, err)
	}
	plain.Extensions = nil
	if n, err := restartCount(plain); n != 0 || err != nil {
		t.Errorf("a container without CRI metadata: got %d, %v", n, err)
	}
}

func TestTaskState(t *testing.T) {
	exitedAt := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	never := timestamppb.New(time.Time{})
	for _, tc := range []struct {
		name string
		p    *task.Process
		want store.State
	}{
		{"no task", nil, store.State{}},
		{"created", &task.Process{ID: id, Status: task.Status_CREATED, ExitedAt: never}, store.State{}},
		{"running", &task.Process{ID: id, Status: task.Status_RUNNING, ExitedAt: never}, store.State{Running: true}},
		{"paused", &task.Process{ID: id, Status: task.Status_PAUSED, ExitedAt: never}, store.State{Running: true}},
		{"stopped", &task.Process{ID: id, Status: task.Status_STOPPED, ExitStatus: 2, ExitedAt: timestamppb.New(exitedAt)},
			store.State{FinishedAt: exitedAt, ExitCode: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := taskState(tc.p)
			if !got.FinishedAt.Equal(tc.want.FinishedAt) {
				t.Fatalf("FinishedAt %v, want %v", got.FinishedAt, tc.want.FinishedAt)
			}
			got.FinishedAt, tc.want.FinishedAt = time.Time{}, time.Time{}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCRIState(t *testing.T) {
	// A child OOM kill: the CRI plugin says OOMKilled while the container runs on.
	running := criState(&runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		StartedAt: 1795753581874716944, Reason: "OOMKilled"})
	if !running.Running || !running.OOMKilled || !running.FinishedAt.IsZero() || !running.StartedAt.IsZero() {
		t.Fatalf("running: %+v", running)
	}
	exited := criState(&runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED,
		StartedAt: 1795753581874716944, FinishedAt: 1795753602463548807, ExitCode: 2, Reason: "Error"})
	if exited.Running || exited.OOMKilled || exited.ExitCode != 2 || !exited.FinishedAt.Equal(time.Unix(0, 1795753602463548807)) {
		t.Fatalf("exited: %+v", exited)
	}
	created := criState(&runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_CREATED})
	if created != (store.State{}) {
		t.Fatalf("created: %+v", created)
	}
}

// A pod's container restarted by the kubelet is a new container whose restart
// count comes from the kubelet; its own first start is no further restart.
func TestKubernetesRestartThroughTheStore(t *testing.T) {
	st := store.New(time.Minute)
	ct := criContainer(t, `{"Version":"v1","Metadata":{"Config":{"annotations":{"io.kubernetes.container.restartCount":"1"}}}}`)
	n, err := restartCount(ct)
	if err != nil {
		t.Fatal(err)
	}
	st.Apply(store.Observed{Meta: meta(ct, "k8s.io"), State: store.State{Restarts: n}})
	for _, env := range []*types.Envelope{
		envelope(t, "/tasks/start", marshal(t, &apievents.TaskStart{ContainerID: id})),
		envelope(t, "/tasks/start", marshal(t, &apievents.TaskStart{ContainerID: id})), // seen twice
	} {
		tr, err := translate(env)
		if err != nil {
			t.Fatal(err)
		}
		st.Apply(tr.event)
	}
	got := st.Snapshot().Containers
	if len(got) != 1 || got[0].Restarts != 1 || got[0].Exited {
		t.Fatalf("got %+v", got)
	}
}

func TestCoveredByListing(t *testing.T) {
	readAt := when
	a, b := "containerd://a", "containerd://b"
	c := &conn{listed: map[string]listed{
		a: {readAt: readAt, oomKilled: true},
		b: {readAt: readAt},
	}}
	before, after := readAt.Add(-time.Millisecond), readAt.Add(time.Millisecond)
	for _, tc := range []struct {
		name string
		key  string
		ev   store.Event
		want bool
	}{
		{"a start before the state was read", a, store.Started{Key: a, At: before}, true},
		{"a start after it", a, store.Started{Key: a, At: after}, false},
		{"a kill before it, when the state showed one", a, store.OOMKilled{Key: a, At: before}, true},
		{"a kill after it", a, store.OOMKilled{Key: a, At: after}, false},
		{"a kill before it, when the state showed none", b, store.OOMKilled{Key: b, At: before}, false},
		{"an exit: the store matches it by its time", a, store.Exited{Key: a, At: before, Code: 1}, false},
		{"a container not first seen in the listing", "containerd://c", store.Started{Key: "containerd://c", At: before}, false},
	} {
		if got := c.coveredByListing(tc.key, tc.ev); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
