package docker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// labelK8sType is the label dockershim and cri-dockerd set to tell a pod's
// sandbox from its containers (the kubelet's other labels: store.LabelKube*).
const labelK8sType = "io.kubernetes.docker.type"

// isSandbox reports whether the labels are those of a Kubernetes pod sandbox
// ("pause") container: no workload, not exported.
func isSandbox(labels map[string]string) bool {
	return labels[labelK8sType] == "podsandbox"
}

// meta builds a container's labels from what Docker (or Podman, runtime
// store.RuntimePodman) says of it.
func meta(runtime, id, name, imageID string, labels map[string]string) store.Meta {
	m := store.Meta{
		Runtime: runtime,
		ID:      id,
		Name:    strings.TrimPrefix(name, "/"),
		ImageID: imageID,
	}
	m.SetKubeletLabels(labels)
	return m
}

// observed turns an inspect result into the store's view of the container.
func observed(runtime string, c container.InspectResponse) (store.Observed, error) {
	if c.ID == "" || c.State == nil {
		return store.Observed{}, fmt.Errorf("inspect result without id or state")
	}
	var labels map[string]string
	if c.Config != nil {
		labels = c.Config.Labels
	}
	started, err := parseTime(c.State.StartedAt)
	if err != nil {
		return store.Observed{}, fmt.Errorf("container %s: StartedAt: %w", c.ID, err)
	}
	finished, err := parseTime(c.State.FinishedAt)
	if err != nil {
		return store.Observed{}, fmt.Errorf("container %s: FinishedAt: %w", c.ID, err)
	}
	created, err := parseTime(c.Created)
	if err != nil {
		return store.Observed{}, fmt.Errorf("container %s: Created: %w", c.ID, err)
	}
	if runtime == store.RuntimePodman && !c.State.Running && !finished.IsZero() && finished.Before(started) {
		// Podman stamps the exit of a run that ended at once a few
		// milliseconds before its start (seen: started 43.886, finished
		// 43.880): the run ended when it began.
		finished = started
	}
	return store.Observed{
		Meta: meta(runtime, c.ID, c.Name, c.Image, labels),
		State: store.State{
			Running:    c.State.Running,
			StartedAt:  started,
			FinishedAt: finished,
			ExitCode:   c.State.ExitCode,
			OOMKilled:  c.State.OOMKilled,
			Restarts:   c.RestartCount,
			Pid:        c.State.Pid,
			CreatedAt:  created,
		},
	}, nil
}

// parseTime parses Docker's RFC 3339 times; Docker's "never" is year 1, the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}, err
	}
	return t, nil
}

// eventTime is the runtime's time of an event.
func eventTime(m events.Message) time.Time {
	switch {
	case m.TimeNano != 0:
		return time.Unix(0, m.TimeNano)
	case m.Time != 0:
		return time.Unix(m.Time, 0)
	}
	return time.Time{}
}

// translation is what one Docker event means for the store.
type translation struct {
	event   store.Event // nil: nothing to count
	inspect bool        // inspect the container if the store does not know it yet
	refresh bool        // inspect it anyway: its metadata changed
	created bool        // its creation: the event names it, its image and its labels
}

// created is what the create event m, at the runtime's time at, says of the
// container: what its inspect would, given the id of the image its
// attribute "image" names (dockerd copies the container's labels into the
// attributes, then sets "image" and "name" itself). Created, not started:
// the inspect at its start tells the rest.
func created(runtime string, m events.Message, at time.Time, imageID string) store.Observed {
	a := m.Actor.Attributes
	return store.Observed{Meta: meta(runtime, m.Actor.ID, a["name"], imageID, a), State: store.State{CreatedAt: at}, At: at}
}

// actionRemove is Podman's removal of a container, Docker's destroy.
const actionRemove events.Action = "remove"

// dockerActions are the events the Docker source asks dockerd for: those of
// a container that translate counts or inspects for, and every image event
// that can change what an image's name means (images.go). The others change
// no count: exec_create, exec_start and exec_die for each exec (a health
// check is one, every 30 s by default), health_status, attach, kill, stop,
// update and more.
var dockerActions = []string{
	string(events.ActionCreate), string(events.ActionStart), string(events.ActionDie),
	string(events.ActionOOM), string(events.ActionDestroy), string(events.ActionRename),
	string(events.ActionPull), string(events.ActionTag), string(events.ActionUnTag),
	string(events.ActionDelete), string(events.ActionImport), string(events.ActionLoad),
	string(events.ActionPrune),
}

// translate turns one container event of runtime into a store event. Events
// the exporter does not count (exec_die, Podman's exec_died: an exec never
// changes the exit code; Podman's restart, which its start follows) translate
// to nothing. A malformed event gives an error and nothing else.
//
// Podman's Docker API (4.3) differs from Docker's: it sends no oom event (a
// kill is counted from the kernel alone), "remove" for destroy, and init,
// cleanup and restart around every start and exit.
func translate(runtime string, m events.Message) (translation, error) {
	id := m.Actor.ID
	if m.Type != events.ContainerEventType {
		return translation{}, nil
	}
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return translation{}, fmt.Errorf("container event %q with a bad id %q", m.Action, id)
	}
	at := eventTime(m)
	if at.IsZero() {
		return translation{}, fmt.Errorf("container event %q for %s without a time", m.Action, id)
	}
	key := store.Key(runtime, "", id)
	switch m.Action {
	case events.ActionCreate:
		// Its labels (pod, namespace) before it runs: a crash loop's kill
		// at start is read before the start's inspect answers. The event
		// carries them; an inspect, unless its image's id is known.
		return translation{inspect: true, created: true}, nil
	case events.ActionRename:
		return translation{refresh: true}, nil
	case events.ActionStart:
		// Inspected at every start, not at its creation: its main
		// process's pid, which the event does not carry, tells whether an
		// OOM kill took the main process (and the container with it).
		return translation{event: store.Started{Key: key, At: at}, refresh: true}, nil
	case events.ActionDie:
		code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
		if err != nil {
			return translation{}, fmt.Errorf("die event for %s with a bad exitCode %q", id, m.Actor.Attributes["exitCode"])
		}
		return translation{event: store.Exited{Key: key, At: at, Code: code}, inspect: true}, nil
	case events.ActionOOM:
		return translation{event: store.OOMKilled{Key: key, At: at}, inspect: true}, nil
	case events.ActionDestroy, actionRemove:
		return translation{event: store.Removed{Key: key, At: at}}, nil
	}
	return translation{}, nil
}

// podmanContainer is what Podman's own API says of a container and its
// Docker API does not: its pod, and whether it is the pod's infra container.
type podmanContainer struct {
	ID      string `json:"Id"`
	IsInfra bool
	PodName string
}

// parsePodmanContainers reads Podman's container list
// (GET /libpod/containers/json?pod=true), by container id.
func parsePodmanContainers(b []byte) (map[string]podmanContainer, error) {
	var list []podmanContainer
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("podman container list: %w", err)
	}
	out := make(map[string]podmanContainer, len(list))
	for _, c := range list {
		out[c.ID] = c
	}
	return out, nil
}

// withPodmanPod labels a Podman container with its Podman pod's name: like a
// Kubernetes pod, the containers that share its namespaces. The other
// Kubernetes labels mean nothing there and stay empty; the kubelet's labels,
// if a container has them, win.
func withPodmanPod(m store.Meta, p podmanContainer) store.Meta {
	if m.Pod == "" {
		m.Pod = p.PodName
	}
	return m
}

// podmanEngine is the name of Podman's component in the Docker API's version.
const podmanEngine = "Podman Engine"

// engine tells from the version's components whose Docker API answers:
// store.RuntimePodman or store.RuntimeDocker.
func engine(components []system.ComponentVersion) string {
	for _, c := range components {
		if c.Name == podmanEngine {
			return store.RuntimePodman
		}
	}
	return store.RuntimeDocker
}
