package containerd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/timestamppb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// labelKind is the CRI plugin's own label on the containers it creates:
// "sandbox" or "container". It also copies the kubelet's labels
// (store.LabelKube*) from the container config.
const labelKind = "io.cri-containerd.kind"

// criMetadataExtension is the container extension in which the CRI plugin
// keeps the CRI container config, annotations included (containerd 1.6 to 2.x).
const criMetadataExtension = "io.cri-containerd.container.metadata"

// annotationRestartCount is the kubelet's restart count of the pod's container.
const annotationRestartCount = "io.kubernetes.container.restartCount"

// reasonOOMKilled is the CRI plugin's reason for a container in which a
// process was OOM-killed; it stays set, also while the container runs on.
const reasonOOMKilled = "OOMKilled"

// Topics are the event topics the source follows.
var topics = []string{
	"/tasks/start", "/tasks/exit", "/tasks/oom",
	"/containers/create", "/containers/update", "/containers/delete",
}

// isSandbox reports whether the labels are those of a Kubernetes pod sandbox
// ("pause") container: no workload, not exported.
func isSandbox(labels map[string]string) bool {
	return labels[labelKind] == "sandbox"
}

// isCRI reports whether the CRI plugin runs the container for the kubelet.
func isCRI(labels map[string]string) bool {
	return labels[labelKind] == "container"
}

// meta builds a container's labels from what containerd says of it, in its
// namespace. A Kubernetes container is named by its pod-spec name, any other
// by its id.
func meta(c *containersapi.Container, namespace string) store.Meta {
	m := store.Meta{
		Runtime:             store.RuntimeContainerd,
		ContainerdNamespace: namespace,
		ID:                  c.ID,
		Name:                c.ID,
		ImageID:             c.Image,
	}
	m.SetKubeletLabels(c.Labels)
	return m
}

// restartCount is the kubelet's restart count of a CRI container: the
// restartCount annotation, else the CRI attempt (which CRI clients other than
// the kubelet set alone). It is 0 for other containers. An error says that
// the CRI metadata could not be read; the count is then 0.
func restartCount(c *containersapi.Container) (int, error) {
	ext, ok := c.Extensions[criMetadataExtension]
	if !ok || !isCRI(c.Labels) {
		return 0, nil
	}
	var md struct {
		Version  string
		Metadata struct {
			Config *struct {
				Metadata *struct {
					Attempt uint32 `json:"attempt"`
				} `json:"metadata"`
				Annotations map[string]string `json:"annotations"`
			}
		}
	}
	if err := json.Unmarshal(ext.GetValue(), &md); err != nil {
		return 0, fmt.Errorf("CRI metadata of %s: %w", c.ID, err)
	}
	if md.Version != "v1" || md.Metadata.Config == nil {
		return 0, fmt.Errorf("CRI metadata of %s: version %q without a config", c.ID, md.Version)
	}
	cfg := md.Metadata.Config
	if s, ok := cfg.Annotations[annotationRestartCount]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("container %s: bad %s annotation %q", c.ID, annotationRestartCount, s)
		}
		return n, nil
	}
	if cfg.Metadata != nil {
		return int(cfg.Metadata.Attempt), nil
	}
	return 0, nil
}

// taskState is a container's state from containerd's task of it: nil when
// the container has no task (never started, or its task was deleted).
// containerd keeps no start time.
func taskState(p *task.Process) store.State {
	if p == nil {
		return store.State{}
	}
	st := store.State{Running: p.Status == task.Status_RUNNING || p.Status == task.Status_PAUSED || p.Status == task.Status_PAUSING}
	if st.Running {
		st.Pid = int(p.Pid)
	}
	if p.Status == task.Status_STOPPED {
		st.FinishedAt = pbTime(p.ExitedAt)
		st.ExitCode = int(p.ExitStatus)
	}
	return st
}

// criState is a Kubernetes container's state as the CRI plugin keeps it, also
// after the plugin deleted the container's task at its exit. FinishedAt is
// the exit time of containerd's /tasks/exit event. The start time is left
// out: the plugin takes its own a moment after containerd's /tasks/start
// event, and since a Kubernetes container never starts twice, it could only
// make that event look like a restart.
func criState(s *runtimeapi.ContainerStatus) store.State {
	return store.State{
		Running:    s.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING,
		FinishedAt: nanoTime(s.GetFinishedAt()),
		ExitCode:   int(s.GetExitCode()),
		OOMKilled:  s.GetReason() == reasonOOMKilled,
	}
}

func nanoTime(ns int64) time.Time {
	if ns <= 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// pbTime converts a protobuf time; unset, the epoch or Go's zero time are zero.
func pbTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return time.Time{}
	}
	t := ts.AsTime()
	if t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// translation is what one containerd event means for the store.
type translation struct {
	namespace, id string      // the container's; empty: not about a container
	event         store.Event // nil: nothing to count
	refresh       bool        // read the container's metadata again: its labels changed
	removed       bool        // the container is gone
}

// translate turns one containerd event into a store event. Exits of
// processes other than a container's init (execs, probes) translate to
// nothing: they never change the container's exit code. A malformed event
// gives an error and nothing else.
func translate(env *types.Envelope) (translation, error) {
	if env == nil || env.Event == nil {
		return translation{}, fmt.Errorf("event without a payload")
	}
	v, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		return translation{}, fmt.Errorf("event %s: %w", env.Topic, err)
	}
	var id string
	switch e := v.(type) {
	case *apievents.TaskStart:
		id = e.ContainerID
	case *apievents.TaskExit:
		if e.ID != e.ContainerID {
			return translation{}, nil // an exec's exit
		}
		id = e.ContainerID
	case *apievents.TaskOOM:
		id = e.ContainerID
	case *apievents.ContainerCreate:
		id = e.ID
	case *apievents.ContainerUpdate:
		id = e.ID
	case *apievents.ContainerDelete:
		id = e.ID
	default:
		return translation{}, nil
	}
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return translation{}, fmt.Errorf("event %s with a bad container id %q", env.Topic, id)
	}
	if env.Namespace == "" || strings.ContainsAny(env.Namespace, "/\x00") {
		return translation{}, fmt.Errorf("event %s for %s with a bad namespace %q", env.Topic, id, env.Namespace)
	}
	at, key := pbTime(env.Timestamp), store.Key(store.RuntimeContainerd, env.Namespace, id)
	t := translation{namespace: env.Namespace, id: id}
	switch e := v.(type) {
	case *apievents.TaskStart:
		t.event = store.Started{Key: key, At: at, Pid: int(e.Pid)}
	case *apievents.TaskExit:
		// The exit time that containerd and the CRI plugin keep as the
		// task's and the container's, so that a listing of the same exit
		// matches the event.
		at = pbTime(e.ExitedAt)
		t.event = store.Exited{Key: key, At: at, Code: int(e.ExitStatus)}
	case *apievents.TaskOOM:
		t.event = store.OOMKilled{Key: key, At: at}
	case *apievents.ContainerUpdate:
		t.refresh = true
	case *apievents.ContainerDelete:
		t.event = store.Removed{Key: key, At: at}
		t.removed = true
	}
	if at.IsZero() {
		return translation{}, fmt.Errorf("event %s for %s without a time", env.Topic, id)
	}
	return t, nil
}
