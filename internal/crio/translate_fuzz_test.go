package crio

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// FuzzTranslate feeds container events of any shape (the bytes of the wire
// message): translate, observed and statusEvents never panic, and what they
// accept names the one container the event is about, at a time.
func FuzzTranslate(f *testing.F) {
	for _, ev := range []*runtimeapi.ContainerEventResponse{
		{ContainerId: id, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, CreatedAt: finished.UnixNano(),
			PodSandboxStatus:   &runtimeapi.PodSandboxStatus{Id: sandbox},
			ContainersStatuses: []*runtimeapi.ContainerStatus{kubeletStatus(runtimeapi.ContainerState_CONTAINER_EXITED)}},
		{ContainerId: id, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, CreatedAt: 1},
		{ContainerId: sandbox, CreatedAt: 1, PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: sandbox}},
		{ContainerId: "a/b", CreatedAt: -1},
	} {
		b, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev := &runtimeapi.ContainerEventResponse{}
		if proto.Unmarshal(b, ev) != nil {
			return
		}
		ch, err := translate(ev)
		if err != nil {
			if ch != (change{}) {
				t.Fatalf("error %v with a change %+v", err, ch)
			}
			return
		}
		if ch.id == "" {
			if ch != (change{}) {
				t.Fatalf("a change %+v of no container", ch)
			}
			return
		}
		if ch.id != ev.GetContainerId() || strings.ContainsAny(ch.id, "/\x00") || ch.at.IsZero() {
			t.Fatalf("change %+v of event for %q", ch, ev.GetContainerId())
		}
		if ch.removed {
			return
		}
		if ch.status.GetId() != ch.id {
			t.Fatalf("the status of %q for the event of %q", ch.status.GetId(), ch.id)
		}
		o, err := observed(ch.status, 1)
		if err != nil || o.Meta.Key() != store.Key(store.RuntimeCRIO, "", ch.id) {
			t.Fatalf("observed %+v, %v", o, err)
		}
		for _, e := range statusEvents(ch.status, 1) {
			var k string
			switch e := e.(type) {
			case store.Started:
				k = e.Key
				if e.At.IsZero() {
					t.Fatal("a start without a time")
				}
			case store.Exited:
				k = e.Key
				if e.At.IsZero() {
					t.Fatal("an exit without a time")
				}
			case store.OOMKilled:
				k = e.Key
			default:
				t.Fatalf("unexpected event %T", e)
			}
			if k != o.Meta.Key() {
				t.Fatalf("event %+v for %s", e, o.Meta.Key())
			}
		}
	})
}
