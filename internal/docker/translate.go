package docker

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

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

// meta builds a container's labels from what Docker says of it.
func meta(id, name, imageID string, labels map[string]string) store.Meta {
	m := store.Meta{
		Runtime: store.RuntimeDocker,
		ID:      id,
		Name:    strings.TrimPrefix(name, "/"),
		ImageID: imageID,
	}
	m.SetKubeletLabels(labels)
	return m
}

// observed turns an inspect result into the store's view of the container.
func observed(c container.InspectResponse) (store.Observed, error) {
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
	return store.Observed{
		Meta: meta(c.ID, c.Name, c.Image, labels),
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
}

// translate turns one container event into a store event. Events the exporter
// does not count (exec_die among them: an exec never changes the exit code)
// translate to nothing. A malformed event gives an error and nothing else.
func translate(m events.Message) (translation, error) {
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
	key := store.Key(store.RuntimeDocker, "", id)
	switch m.Action {
	case events.ActionCreate:
		// Its labels (pod, namespace) before it runs: a crash loop's kill
		// at start is read before the start's inspect answers.
		return translation{inspect: true}, nil
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
	case events.ActionDestroy:
		return translation{event: store.Removed{Key: key, At: at}}, nil
	}
	return translation{}, nil
}
