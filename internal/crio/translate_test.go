package crio

import (
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

const (
	id      = "3f6c6a7b1e2d4c5b8a9f0e1d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a493"
	sandbox = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	key     = "cri-o://" + id
)

var (
	created  = time.Unix(0, time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC).UnixNano()) // as CRI times read
	started  = created.Add(40 * time.Millisecond)
	finished = started.Add(3 * time.Second)
)

// kubeletStatus is a container's status as CRI-O gives it for a container
// the kubelet made (labels and annotations as the kubelet sets them).
func kubeletStatus(state runtimeapi.ContainerState) *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id:       id,
		Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2},
		State:    state,
		ImageRef: "localhost/busybox@sha256:0123",
		Labels: map[string]string{
			"io.kubernetes.container.name": "app",
			"io.kubernetes.pod.name":       "web-1",
			"io.kubernetes.pod.namespace":  "shop",
			"io.kubernetes.pod.uid":        "0f7e9a1c-5c0f-4ee0-8def-000000000001",
		},
		Annotations: map[string]string{
			"io.kubernetes.container.restartCount": "3",
			"io.kubernetes.container.hash":         "1a2b3c4d",
		},
		CreatedAt: created.UnixNano(),
	}
	if state != runtimeapi.ContainerState_CONTAINER_CREATED {
		st.StartedAt = started.UnixNano()
	}
	if state == runtimeapi.ContainerState_CONTAINER_EXITED {
		st.FinishedAt, st.ExitCode, st.Reason = finished.UnixNano(), 137, "Error"
	}
	return st
}

func TestObserved(t *testing.T) {
	wantMeta := store.Meta{
		Runtime: store.RuntimeCRIO, ID: id, Name: "app", KubeContainer: "app", Pod: "web-1", Namespace: "shop",
		PodUID: "0f7e9a1c-5c0f-4ee0-8def-000000000001", ImageID: "localhost/busybox@sha256:0123",
	}
	oom := kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED)
	oom.Reason = reasonOOMKilled
	plain := kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING)
	plain.Labels, plain.Annotations = nil, nil
	for _, tc := range []struct {
		name string
		st   *runtimeapi.ContainerStatus
		pid  int
		want store.State
		at   time.Time // the newest of CRI-O's times in it
	}{
		{"created: neither started nor exited", kubeletStatus(runtimeapi.ContainerState_CONTAINER_CREATED), 0, store.State{}, created},
		{"running, with its pid", kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING), 42,
			store.State{Running: true, StartedAt: started, Pid: 42}, started},
		{"exited: its code and time, no pid", kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED), 42,
			store.State{StartedAt: started, FinishedAt: finished, ExitCode: 137}, finished},
		{"the main process OOM-killed", oom, 0,
			store.State{StartedAt: started, FinishedAt: finished, ExitCode: 137, OOMKilled: true}, finished},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := observed(tc.st, tc.pid)
			if err != nil {
				t.Fatal(err)
			}
			want := store.Observed{Meta: wantMeta, State: tc.want, At: tc.at}
			if !reflect.DeepEqual(o, want) {
				t.Fatalf("got  %+v\nwant %+v", o, want)
			}
		})
	}
	t.Run("not the kubelet's: named by its CRI name", func(t *testing.T) {
		o, err := observed(plain, 0)
		if err != nil {
			t.Fatal(err)
		}
		if m := o.Meta; m.Name != "app" || m.KubeContainer != "" || m.Pod != "" || m.Key() != key {
			t.Fatalf("meta %+v", m)
		}
	})
	for _, bad := range []string{"", "a/b", "a\x00b"} {
		st := kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING)
		st.Id = bad
		if _, err := observed(st, 0); !errors.Is(err, errBadID) {
			t.Errorf("id %q: %v", bad, err)
		}
	}
}

func TestRestartCount(t *testing.T) {
	st := kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING)
	if n, err := restartCount(st); n != 3 || err != nil {
		t.Errorf("the kubelet's annotation: %d, %v", n, err)
	}
	delete(st.Annotations, annotationRestartCount)
	if n, err := restartCount(st); n != 2 || err != nil {
		t.Errorf("the attempt, without the annotation: %d, %v", n, err)
	}
	for _, bad := range []string{"-1", "x", "", "99999999999999999999"} {
		st.Annotations[annotationRestartCount] = bad
		if n, err := restartCount(st); n != 0 || err == nil {
			t.Errorf("annotation %q: %d, %v", bad, n, err)
		}
	}
}

func TestStatusEvents(t *testing.T) {
	oom := kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED)
	oom.Reason = reasonOOMKilled
	noFinish := kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED)
	noFinish.FinishedAt = 0
	for _, tc := range []struct {
		name string
		st   *runtimeapi.ContainerStatus
		want []store.Event
	}{
		{"created", kubeletStatus(runtimeapi.ContainerState_CONTAINER_CREATED), nil},
		{"running: its start, with the pid", kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING),
			[]store.Event{store.Started{Key: key, At: started, Pid: 42}}},
		{"exited: its start and its exit, each at CRI-O's time", kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED),
			[]store.Event{store.Started{Key: key, At: started}, store.Exited{Key: key, At: finished, Code: 137}}},
		{"OOM-killed: the kill at the exit", oom, []store.Event{
			store.Started{Key: key, At: started}, store.Exited{Key: key, At: finished, Code: 137}, store.OOMKilled{Key: key, At: finished}}},
		{"an exit without a time is none", noFinish, []store.Event{store.Started{Key: key, At: started}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusEvents(tc.st, 42); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	at := finished.Add(time.Millisecond)
	event := func(typ runtimeapi.ContainerEventType, cid string, statuses ...*runtimeapi.ContainerStatus) *runtimeapi.ContainerEventResponse {
		return &runtimeapi.ContainerEventResponse{
			ContainerId: cid, ContainerEventType: typ, CreatedAt: at.UnixNano(),
			PodSandboxStatus:   &runtimeapi.PodSandboxStatus{Id: sandbox},
			ContainersStatuses: statuses,
		}
	}
	running := kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING)
	exited := kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED)
	sibling := kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING)
	sibling.Id = "0000000000000000000000000000000000000000000000000000000000000001"
	for _, tc := range []struct {
		name string
		ev   *runtimeapi.ContainerEventResponse
		want change
	}{
		{"started: the container's own status among the pod's",
			event(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, id, sibling, running),
			change{id: id, status: running, at: at}},
		{"stopped", event(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, id, exited),
			change{id: id, status: exited, at: at}},
		{"created", event(runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, id, running),
			change{id: id, status: running, at: at}},
		{"deleted: no status left", event(runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, id),
			change{id: id, at: at, removed: true}},
		{"the pod sandbox's own events are none", event(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, sandbox, running), change{}},
		{"the sandbox's deletion is none", event(runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, sandbox), change{}},
		{"removed while the statuses were read", event(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, id, sibling), change{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := translate(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	for name, ev := range map[string]*runtimeapi.ContainerEventResponse{
		"no id":        event(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, "", running),
		"a slash":      event(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, "../x", running),
		"no time":      {ContainerId: id, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
		"unknown type": event(runtimeapi.ContainerEventType(9), id, running),
		"nothing":      nil,
	} {
		if got, err := translate(ev); err == nil || got != (change{}) {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
}

func TestDiff(t *testing.T) {
	seen := map[string]runtimeapi.ContainerState{
		"same":    runtimeapi.ContainerState_CONTAINER_RUNNING,
		"exited":  runtimeapi.ContainerState_CONTAINER_RUNNING,
		"removed": runtimeapi.ContainerState_CONTAINER_EXITED,
	}
	listed := []*runtimeapi.Container{
		{Id: "same", State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		{Id: "exited", State: runtimeapi.ContainerState_CONTAINER_EXITED},
		{Id: "new", State: runtimeapi.ContainerState_CONTAINER_CREATED},
	}
	changed, gone := diff(seen, listed)
	var ids []string
	for _, c := range changed {
		ids = append(ids, c.GetId())
	}
	if !slices.Equal(ids, []string{"exited", "new"}) || !slices.Equal(gone, []string{"removed"}) {
		t.Fatalf("changed %v, gone %v", ids, gone)
	}
}

// A status that says exited without the exit's time (CRI-O has not read
// conmon's record yet), or running without a start, is read again.
func TestSeenState(t *testing.T) {
	exiting := kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED)
	exiting.FinishedAt, exiting.ExitCode = 0, -1
	starting := kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING)
	starting.StartedAt = 0
	for st, want := range map[*runtimeapi.ContainerStatus]runtimeapi.ContainerState{
		kubeletStatus(runtimeapi.ContainerState_CONTAINER_CREATED): runtimeapi.ContainerState_CONTAINER_CREATED,
		kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING): runtimeapi.ContainerState_CONTAINER_RUNNING,
		kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED):  runtimeapi.ContainerState_CONTAINER_EXITED,
		exiting:  runtimeapi.ContainerState_CONTAINER_UNKNOWN,
		starting: runtimeapi.ContainerState_CONTAINER_UNKNOWN,
	} {
		if got := seenState(st); got != want {
			t.Errorf("%s started %d finished %d: %s, want %s", st.State, st.StartedAt, st.FinishedAt, got, want)
		}
	}
}

func TestInfoPid(t *testing.T) {
	for _, tc := range []struct {
		info map[string]string
		pid  int
		bad  bool
	}{
		{map[string]string{"info": `{"sandboxID":"x","pid":4242,"runtimeSpec":{"ociVersion":"1.2.1"},"privileged":false}`}, 4242, false},
		{map[string]string{"info": `{"sandboxID":"x"}`}, 0, false},
		{nil, 0, false},
		{map[string]string{"info": `{"pid":-1}`}, 0, true},
		{map[string]string{"info": `{"pid":"1"}`}, 0, true},
		{map[string]string{"info": `not json`}, 0, true},
	} {
		pid, err := infoPid(tc.info)
		if pid != tc.pid || (err != nil) != tc.bad {
			t.Errorf("%v: pid %d, err %v", tc.info, pid, err)
		}
	}
}

func TestNewAddress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New("unix:///var/run/crio/crio.sock", store.New(time.Minute), log)
	if err != nil || s.address != "/var/run/crio/crio.sock" {
		t.Fatalf("address %q, %v", s.address, err)
	}
	if _, err := New("", store.New(time.Minute), log); err == nil {
		t.Fatal("empty address accepted")
	}
}

// CRI-O says running until it has read conmon's record of the exit, which
// then dates the exit before the question: the exit a later status tells
// of still counts (seen in the polling e2e test under load).
func TestExitDatedBeforeALaggingStatusCounts(t *testing.T) {
	st := store.New(time.Minute)
	running := kubeletStatus(runtimeapi.ContainerState_CONTAINER_RUNNING)
	o, err := observed(running, 42) // asked after the exit, which CRI-O did not know yet
	if err != nil {
		t.Fatal(err)
	}
	st.Apply(o)
	for _, ev := range statusEvents(kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED), 0) {
		st.Apply(ev)
	}
	snap := st.Snapshot()
	if len(snap.Containers) != 1 {
		t.Fatalf("containers %+v", snap.Containers)
	}
	if c := snap.Containers[0]; !c.Exited || c.ExitCode != 137 || c.Restarts != 0 {
		t.Fatalf("exited %v code %d restarts %d, want the exit 137 and no restart", c.Exited, c.ExitCode, c.Restarts)
	}
}
