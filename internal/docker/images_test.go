package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

func TestImageIDs(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := &imageIDs{byRef: map[string]string{}}
	c.changed(t0) // the session began
	c.learn("busybox:latest", "sha256:old", t0.Add(-time.Second))
	if _, ok := c.lookup("busybox:latest"); ok {
		t.Error("learned from a container created before the session began: the tag may have moved since")
	}
	c.learn("busybox:latest", "sha256:a", t0.Add(time.Second))
	if id, ok := c.lookup("busybox:latest"); !ok || id != "sha256:a" {
		t.Errorf("lookup: %q %v, want sha256:a", id, ok)
	}
	c.changed(t0.Add(2 * time.Second)) // the tag moved
	if _, ok := c.lookup("busybox:latest"); ok {
		t.Error("an image event left a name's id in place")
	}
	c.learn("busybox:latest", "sha256:a", t0.Add(time.Second)) // an inspect of a container made before the move
	if _, ok := c.lookup("busybox:latest"); ok {
		t.Error("learned from a container created before the last image event")
	}
	c.learn("busybox:latest", "sha256:b", t0.Add(3*time.Second))
	if id, _ := c.lookup("busybox:latest"); id != "sha256:b" {
		t.Errorf("after the move: %q, want sha256:b", id)
	}
	for i := range imagesKept + 10 {
		c.learn(fmt.Sprintf("image-%d", i), "sha256:x", t0.Add(4*time.Second))
	}
	if n := len(c.byRef); n > imagesKept {
		t.Errorf("%d names held, want at most %d", n, imagesKept)
	}
}

// A container created from an image whose id an earlier inspect told is
// tracked from its create event alone, with the labels and image id an
// inspect would give; after an image event (the tag may have moved), the
// next one is inspected again, and so after a new session.
func TestCreateOfAKnownImageIsNotInspected(t *testing.T) {
	f := newFakeDockerd(t)
	st := store.New(time.Minute)
	s, err := New(f.host(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Run(ctx)
	labels := map[string]string{store.LabelKubePod: "web-0", store.LabelKubeNamespace: "shop", store.LabelKubeContainer: "app"}
	createdNow := func(id string) container.InspectResponse {
		c := container.InspectResponse{ID: id, Name: "/k8s_app_web-0", Image: "sha256:beef", Created: time.Now().UTC().Format(time.RFC3339Nano),
			Config: &container.Config{Image: "shop/app:1", Labels: labels},
			State:  &container.State{Status: "created", StartedAt: "0001-01-01T00:00:00Z", FinishedAt: "0001-01-01T00:00:00Z"}}
		f.add(c)
		return c
	}
	create := func(id string) {
		attrs := map[string]string{"image": "shop/app:1", "name": "k8s_app_web-0"}
		for k, v := range labels {
			attrs[k] = v
		}
		f.send(event(events.ActionCreate, id, time.Now().UnixNano(), attrs))
	}
	exported := func(id string) store.Container {
		return waitFor(t, st, id, id+" exported", func(_ store.SourceStatus, c store.Container) bool { return c.Meta.ID == id })
	}
	waitFor(t, st, "", "the source up", func(src store.SourceStatus, _ store.Container) bool { return src.Up })

	createdNow("first")
	create("first") // the image's id is not known yet
	exported("first")
	if n := f.inspected(); n != 1 {
		t.Fatalf("%d inspects for the first container, want 1", n)
	}

	createdNow("second")
	create("second")
	c := exported("second")
	if n := f.inspected(); n != 1 {
		t.Errorf("%d inspects after the second create, want still 1: its image's id was known", n)
	}
	if m := c.Meta; m.ImageID != "sha256:beef" || m.Pod != "web-0" || m.Namespace != "shop" || m.Name != "app" || m.KubeContainer != "app" {
		t.Errorf("the second container from its create event: %+v", m)
	}

	f.send(events.Message{Type: events.ImageEventType, Action: events.ActionTag, Actor: events.Actor{ID: "sha256:cafe", Attributes: map[string]string{"name": "shop/app:1"}}, TimeNano: time.Now().UnixNano()})
	createdNow("third")
	create("third")
	exported("third")
	if n := f.inspected(); n != 2 {
		t.Errorf("%d inspects after an image event and the third create, want 2: the tag may have moved", n)
	}

	// dockerd goes away and comes back: image events of the break may be
	// beyond its replay, so the next create is inspected again.
	f.breakStreams()
	waitFor(t, st, "", "the second session", func(src store.SourceStatus, _ store.Container) bool { return src.Up && src.Reconnects == 1 })
	before := f.inspected() // the second session's listing inspects the three
	createdNow("fourth")
	create("fourth")
	exported("fourth")
	if n := f.inspected(); n != before+1 {
		t.Errorf("%d inspects after a reconnect and the fourth create, want %d: names are forgotten at a new session", n, before+1)
	}
}
