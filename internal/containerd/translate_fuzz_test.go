package containerd

import (
	"strings"
	"testing"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// FuzzTranslate feeds envelopes of any shape, payload bytes included (a
// client may publish any event to containerd): translate never panics, and
// what it accepts names one container of one namespace.
func FuzzTranslate(f *testing.F) {
	for _, ev := range []any{
		&apievents.TaskStart{ContainerID: "c1", Pid: 42},
		&apievents.TaskExit{ContainerID: "c1", ID: "c1", ExitStatus: 137, ExitedAt: timestamppb.Now()},
		&apievents.TaskExit{ContainerID: "c1", ID: "exec"},
		&apievents.TaskOOM{ContainerID: "a/b"},
		&apievents.ContainerDelete{ID: "c1"},
		&apievents.ContainerUpdate{ID: "\x00"},
	} {
		a, err := typeurl.MarshalAnyToProto(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(a.GetTypeUrl(), a.GetValue(), "k8s.io", int64(1764237600), int32(0))
	}
	f.Add("containerd.events.TaskOOM", []byte{0xff, 0x01}, "", int64(0), int32(-1))
	f.Fuzz(func(t *testing.T, typeURL string, value []byte, namespace string, seconds int64, nanos int32) {
		env := &types.Envelope{
			Namespace: namespace, Topic: "/fuzz",
			Timestamp: &timestamppb.Timestamp{Seconds: seconds, Nanos: nanos},
			Event:     &anypb.Any{TypeUrl: typeURL, Value: value},
		}
		tr, err := translate(env)
		if err != nil {
			if tr != (translation{}) {
				t.Fatalf("error %v with a translation %+v", err, tr)
			}
			return
		}
		if tr == (translation{}) {
			return
		}
		if tr.id == "" || tr.namespace == "" || strings.ContainsAny(tr.id+tr.namespace, "/\x00") {
			t.Fatalf("bad container %q in namespace %q", tr.id, tr.namespace)
		}
		want := store.Key(store.RuntimeContainerd, tr.namespace, tr.id)
		var key string
		switch ev := tr.event.(type) {
		case nil:
			if !tr.refresh {
				t.Fatalf("a translation %+v without an event or a refresh", tr)
			}
			return
		case store.Started:
			key = ev.Key
		case store.Exited:
			key = ev.Key
		case store.OOMKilled:
			key = ev.Key
		case store.Removed:
			key = ev.Key
		default:
			t.Fatalf("unexpected event %T", ev)
		}
		if key != want {
			t.Fatalf("key %q for container %q in namespace %q", key, tr.id, tr.namespace)
		}
	})
}
