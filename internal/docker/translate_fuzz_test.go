package docker

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/events"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// FuzzTranslate feeds events of any shape: translate never panics, and what
// it accepts is well formed.
func FuzzTranslate(f *testing.F) {
	f.Add("container", "die", id, "137", "x", int64(1764237600000000000), false)
	f.Add("container", "oom", "a", "", "", int64(1), false)
	f.Add("container", "exec_die", id, "-1", "k8s_POD", int64(0), false)
	f.Add("image", "start", "", "9999999999999999999999", "\x00", int64(-5), false)
	f.Add("container", "remove", id, "", "", int64(1), true)
	f.Fuzz(func(t *testing.T, typ, action, actorID, exitCode, name string, nanos int64, podman bool) {
		runtime := store.RuntimeDocker
		if podman {
			runtime = store.RuntimePodman
		}
		m := events.Message{
			Type: events.Type(typ), Action: events.Action(action),
			Actor:    events.Actor{ID: actorID, Attributes: map[string]string{"exitCode": exitCode, "name": name}},
			TimeNano: nanos,
		}
		tr, err := translate(runtime, m)
		if err != nil {
			if tr != (translation{}) {
				t.Fatalf("error %v with a translation %+v", err, tr)
			}
			return
		}
		var key string
		switch ev := tr.event.(type) {
		case nil:
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
		if !strings.HasPrefix(key, runtime+"://") || key == runtime+"://" {
			t.Fatalf("bad key %q", key)
		}
	})
}
