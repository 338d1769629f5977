package crio

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// annotationRestartCount is the kubelet's restart count of the pod's
// container; CRI-O keeps the container config's annotations.
const annotationRestartCount = "io.kubernetes.container.restartCount"

// reasonOOMKilled is CRI-O's reason for a container whose main process the
// OOM killer ended (conmon saw the cgroup's OOM). CRI-O says nothing of a
// worker's kill: only the kernel reader counts those.
const reasonOOMKilled = "OOMKilled"

// errBadID says that an id cannot be a container's: it names a series and a
// store key, where "/" and NUL have a meaning.
var errBadID = errors.New("bad container id")

func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("%w %q", errBadID, id)
	}
	return nil
}

// meta builds a container's labels from its CRI status. A Kubernetes
// container is named by its pod-spec name (the kubelet's labels), any other
// by its CRI name.
func meta(st *runtimeapi.ContainerStatus) store.Meta {
	m := store.Meta{
		Runtime: store.RuntimeCRIO,
		ID:      st.GetId(),
		Name:    st.GetMetadata().GetName(),
		ImageID: st.GetImageRef(),
	}
	m.SetKubeletLabels(st.GetLabels())
	return m
}

// restartCount is the kubelet's restart count of a container: its
// restartCount annotation, else the CRI attempt (which CRI clients other
// than the kubelet set alone). An error says the annotation is not a count;
// the count is then 0.
func restartCount(st *runtimeapi.ContainerStatus) (int, error) {
	if s, ok := st.GetAnnotations()[annotationRestartCount]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("container %s: bad %s annotation %q", st.GetId(), annotationRestartCount, s)
		}
		return n, nil
	}
	return int(st.GetMetadata().GetAttempt()), nil
}

// state is a container's state as its CRI status says, with the main
// process's pid (0 if not known). A Kubernetes container runs once: the
// kubelet restarts one by making a new container.
func state(st *runtimeapi.ContainerStatus, pid int) store.State {
	s := store.State{StartedAt: nanoTime(st.GetStartedAt())}
	switch st.GetState() {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		s.Running, s.Pid = true, pid
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		s.FinishedAt = nanoTime(st.GetFinishedAt())
		s.ExitCode = int(st.GetExitCode())
		s.OOMKilled = st.GetReason() == reasonOOMKilled
	}
	return s
}

// observed is what a status says of a container. Its time (Observed.At:
// the events it reflects) is the newest of CRI-O's own times in it, not
// when it was asked for: CRI-O's state lags its containers' exits (it says
// running until it has read conmon's record of an exit, which then dates
// the exit before the question), so an exit dated after the start a status
// shows is never taken for one that status reflects.
func observed(st *runtimeapi.ContainerStatus, pid int) (store.Observed, error) {
	if err := checkID(st.GetId()); err != nil {
		return store.Observed{}, err
	}
	at := nanoTime(st.GetCreatedAt())
	for _, t := range []int64{st.GetStartedAt(), st.GetFinishedAt()} {
		if nt := nanoTime(t); nt.After(at) {
			at = nt
		}
	}
	return store.Observed{Meta: meta(st), State: state(st, pid), At: at}, nil
}

// statusEvents are the start, exit and OOM kill a container's status tells
// of, each at CRI-O's own time of it, so that the same status seen again
// (in the next event, the next poll) counts nothing twice.
func statusEvents(st *runtimeapi.ContainerStatus, pid int) []store.Event {
	key := store.Key(store.RuntimeCRIO, "", st.GetId())
	var out []store.Event
	if started := nanoTime(st.GetStartedAt()); !started.IsZero() {
		ev := store.Started{Key: key, At: started}
		if st.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			ev.Pid = pid
		}
		out = append(out, ev)
	}
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
		return out
	}
	finished := nanoTime(st.GetFinishedAt())
	if finished.IsZero() {
		return out
	}
	out = append(out, store.Exited{Key: key, At: finished, Code: int(st.GetExitCode())})
	if st.GetReason() == reasonOOMKilled {
		out = append(out, store.OOMKilled{Key: key, At: finished})
	}
	return out
}

// change is what one CRI container event says: the container's status as of
// the event, or that it was removed.
type change struct {
	id      string // empty: the event is about no container (a pod sandbox's)
	status  *runtimeapi.ContainerStatus
	at      time.Time // when CRI-O sent the event
	removed bool
}

// translate reads one event of CRI-O's container event stream. A pod
// sandbox's events (those of its infra container, whose id is the
// sandbox's) translate to nothing: a sandbox is no workload. A malformed
// event gives an error and nothing else.
func translate(ev *runtimeapi.ContainerEventResponse) (change, error) {
	id := ev.GetContainerId()
	if err := checkID(id); err != nil {
		return change{}, fmt.Errorf("container event %s: %w", ev.GetContainerEventType(), err)
	}
	at := nanoTime(ev.GetCreatedAt())
	if at.IsZero() {
		return change{}, fmt.Errorf("container event %s for %s without a time", ev.GetContainerEventType(), id)
	}
	if id == ev.GetPodSandboxStatus().GetId() {
		return change{}, nil
	}
	switch ev.GetContainerEventType() {
	case runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT:
		return change{id: id, at: at, removed: true}, nil
	case runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT:
	default:
		return change{}, fmt.Errorf("container event of unknown type %d for %s", ev.GetContainerEventType(), id)
	}
	for _, st := range ev.GetContainersStatuses() {
		if st.GetId() == id {
			return change{id: id, status: st, at: at}, nil
		}
	}
	// Removed while CRI-O gathered the pod's statuses: its deletion follows.
	return change{}, nil
}

// seenState is the state to remember of a container whose status is st:
// its state, or CONTAINER_UNKNOWN while the status is not complete, so that
// the next listing reads it again. CRI-O says a container exited a moment
// before it has read conmon's record of the exit: no exit time, no code.
func seenState(st *runtimeapi.ContainerStatus) runtimeapi.ContainerState {
	switch s := st.GetState(); {
	case s == runtimeapi.ContainerState_CONTAINER_EXITED && st.GetFinishedAt() <= 0,
		s == runtimeapi.ContainerState_CONTAINER_RUNNING && st.GetStartedAt() <= 0:
		return runtimeapi.ContainerState_CONTAINER_UNKNOWN
	default:
		return s
	}
}

// diff compares a listing with the states seen at the last look: the
// containers that are new or whose state changed, whose status is to be
// read, and those the listing no longer has.
func diff(seen map[string]runtimeapi.ContainerState, listed []*runtimeapi.Container) (changed []*runtimeapi.Container, gone []string) {
	present := make(map[string]bool, len(listed))
	for _, c := range listed {
		present[c.GetId()] = true
		if st, ok := seen[c.GetId()]; !ok || st != c.GetState() {
			changed = append(changed, c)
		}
	}
	for id := range seen {
		if !present[id] {
			gone = append(gone, id)
		}
	}
	return changed, gone
}

// infoPid reads the main process's pid from a verbose status's info (CRI-O:
// {"pid": N, "sandboxID": ..., "runtimeSpec": ...}); 0 if it has none.
func infoPid(info map[string]string) (int, error) {
	s, ok := info["info"]
	if !ok {
		return 0, nil
	}
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return 0, fmt.Errorf("verbose status info: %w", err)
	}
	if v.Pid < 0 {
		return 0, fmt.Errorf("verbose status info: pid %d", v.Pid)
	}
	return v.Pid, nil
}

// nanoTime is a CRI time (Unix nanoseconds); 0 or less: none.
func nanoTime(ns int64) time.Time {
	if ns <= 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
