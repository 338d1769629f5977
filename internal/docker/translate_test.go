package docker

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

const id = "4c6f2a7e9d0b1c3e5f7a9b1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f"

func msg(action events.Action, attrs map[string]string) events.Message {
	return events.Message{
		Type: events.ContainerEventType, Action: action,
		Actor:    events.Actor{ID: id, Attributes: attrs},
		TimeNano: time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC).UnixNano(),
	}
}

func TestTranslate(t *testing.T) {
	when := time.Unix(0, msg(events.ActionStart, nil).TimeNano)
	key := "docker://" + id
	checkTranslations(t, store.RuntimeDocker, []translationCase{
		{"create: its labels, from the event or an inspect", msg(events.ActionCreate, nil), translation{inspect: true, created: true}},
		{"start", msg(events.ActionStart, nil), translation{event: store.Started{Key: key, At: when}, refresh: true}},
		{"die", msg(events.ActionDie, map[string]string{"exitCode": "3"}), translation{event: store.Exited{Key: key, At: when, Code: 3}, inspect: true}},
		{"oom", msg(events.ActionOOM, nil), translation{event: store.OOMKilled{Key: key, At: when}, inspect: true}},
		{"destroy", msg(events.ActionDestroy, nil), translation{event: store.Removed{Key: key, At: when}}},
		{"rename", msg(events.ActionRename, nil), translation{refresh: true}},
		{"exec_die never touches the exit code", msg(events.ActionExecDie, map[string]string{"exitCode": "7"}), translation{}},
		{"image events are ignored", events.Message{Type: events.ImageEventType, Action: events.ActionDie, TimeNano: 1}, translation{}},
	})
}

type translationCase struct {
	name string
	m    events.Message
	want translation
}

func checkTranslations(t *testing.T, runtime string, cases []translationCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := translate(runtime, tc.m)
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
	noID := msg(events.ActionDie, map[string]string{"exitCode": "1"})
	noID.Actor.ID = ""
	noTime := msg(events.ActionOOM, nil)
	noTime.TimeNano = 0
	for name, m := range map[string]events.Message{
		"die without exit code":   msg(events.ActionDie, nil),
		"die with text exit code": msg(events.ActionDie, map[string]string{"exitCode": "boom"}),
		"no id":                   noID,
		"no time":                 noTime,
	} {
		if _, err := translate(store.RuntimeDocker, m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestObservedFromInspect(t *testing.T) {
	c := container.InspectResponse{
		ID: id, Name: "/k8s_app_web-1_shop_uid_0", Image: "sha256:bb", RestartCount: 2,
		State: &container.State{Running: true, OOMKilled: true, ExitCode: 137, Pid: 4242,
			StartedAt: "2026-01-01T00:00:02.5Z", FinishedAt: "2026-01-01T00:00:01Z"},
		Config: &container.Config{Labels: map[string]string{
			store.LabelKubeContainer: "app", store.LabelKubePod: "web-1", store.LabelKubeNamespace: "shop"}},
	}
	o, err := observed(store.RuntimeDocker, c)
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := store.Meta{Runtime: "docker", ID: id, Name: "app", KubeContainer: "app", Pod: "web-1", Namespace: "shop", ImageID: "sha256:bb"}
	if o.Meta != wantMeta {
		t.Fatalf("meta %+v, want %+v", o.Meta, wantMeta)
	}
	if !o.State.OOMKilled || o.State.Restarts != 2 || o.State.ExitCode != 137 || o.State.Pid != 4242 ||
		!o.State.StartedAt.Equal(time.Date(2026, 1, 1, 0, 0, 2, 5e8, time.UTC)) {
		t.Fatalf("state %+v", o.State)
	}

	never := container.InspectResponse{ID: id, Name: "/plain", State: &container.State{
		StartedAt: "0001-01-01T00:00:00Z", FinishedAt: "0001-01-01T00:00:00Z"}}
	o, err = observed(store.RuntimeDocker, never)
	if err != nil {
		t.Fatal(err)
	}
	if o.Meta.Name != "plain" || !o.State.StartedAt.IsZero() || !o.State.FinishedAt.IsZero() {
		t.Fatalf("never started: %+v", o)
	}
	if _, err := observed(store.RuntimeDocker, container.InspectResponse{ID: id, State: &container.State{StartedAt: "yesterday"}}); err == nil {
		t.Fatal("bad time accepted")
	}
}

// Podman's Docker API: its containers are podman://, its removal is
// "remove", and the events around its starts and exits (init, cleanup,
// restart, exec_died) count nothing.
func TestTranslatePodman(t *testing.T) {
	when := time.Unix(0, msg(events.ActionStart, nil).TimeNano)
	key := "podman://" + id
	checkTranslations(t, store.RuntimePodman, []translationCase{
		{"start", msg(events.ActionStart, nil), translation{event: store.Started{Key: key, At: when}, refresh: true}},
		{"die, with Podman's attributes", msg(events.ActionDie, map[string]string{"exitCode": "137", "containerExitCode": "137", "podId": ""}),
			translation{event: store.Exited{Key: key, At: when, Code: 137}, inspect: true}},
		{"remove", msg("remove", nil), translation{event: store.Removed{Key: key, At: when}}},
		{"exec_died never touches the exit code", msg("exec_died", map[string]string{"containerExitCode": "5"}), translation{}},
		{"restart: its start follows", msg(events.ActionRestart, nil), translation{}},
		{"init", msg("init", nil), translation{}},
		{"cleanup", msg("cleanup", nil), translation{}},
	})
}

func TestPodmanPods(t *testing.T) {
	// As Podman 4.3 answers GET /libpod/containers/json?all=true&pod=true (cut).
	pods, err := parsePodmanContainers([]byte(`[
		{"AutoRemove":false,"Command":["sh","-c","sleep 1000"],"Id":"` + id + `","IsInfra":false,"Names":["app"],"Pod":"65dc","PodName":"web-1","State":"running"},
		{"Id":"87c9","IsInfra":true,"Names":["65dc-infra"],"Pod":"65dc","PodName":"web-1"},
		{"Id":"5bf9","IsInfra":false,"Names":["alone"],"Pod":"","PodName":""}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 3 || !pods["87c9"].IsInfra || pods[id].IsInfra || pods[id].PodName != "web-1" {
		t.Fatalf("pods %+v", pods)
	}
	m := withPodmanPod(meta(store.RuntimePodman, id, "/app", "", nil), pods[id])
	if want := (store.Meta{Runtime: store.RuntimePodman, ID: id, Name: "app", Pod: "web-1"}); m != want {
		t.Fatalf("meta %+v, want %+v", m, want)
	}
	if m := withPodmanPod(meta(store.RuntimePodman, "5bf9", "/alone", "", nil), pods["5bf9"]); m.Pod != "" {
		t.Fatalf("a container in no pod: %+v", m)
	}
	kube := meta(store.RuntimePodman, id, "/app", "", map[string]string{store.LabelKubePod: "kube-pod"})
	if m := withPodmanPod(kube, pods[id]); m.Pod != "kube-pod" {
		t.Fatalf("the kubelet's label lost: %+v", m)
	}
	for _, bad := range []string{"", "{}", `[{"Id":1}]`} {
		if _, err := parsePodmanContainers([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEngine(t *testing.T) {
	if got := engine([]system.ComponentVersion{{Name: "Engine"}, {Name: "containerd"}, {Name: "runc"}}); got != store.RuntimeDocker {
		t.Errorf("dockerd 20.10: %q", got)
	}
	if got := engine([]system.ComponentVersion{{Name: "Podman Engine"}, {Name: "Conmon"}, {Name: "OCI Runtime (runc)"}}); got != store.RuntimePodman {
		t.Errorf("Podman 4.3: %q", got)
	}
}

// Podman stamps the exit of a run that ended at once a moment before its
// start: the run ended when it began. Docker's times are taken as they are.
func TestPodmansExitBeforeItsStart(t *testing.T) {
	c := container.InspectResponse{ID: id, State: &container.State{StartedAt: "2026-12-07T02:34:43.886Z", FinishedAt: "2026-12-07T02:34:43.880Z", ExitCode: 1}}
	o, err := observed(store.RuntimePodman, c)
	if err != nil {
		t.Fatal(err)
	}
	if !o.State.FinishedAt.Equal(o.State.StartedAt) {
		t.Errorf("Podman: finished %v, started %v; want the exit at the start", o.State.FinishedAt, o.State.StartedAt)
	}
	if o, _ := observed(store.RuntimeDocker, c); o.State.FinishedAt.Equal(o.State.StartedAt) {
		t.Errorf("Docker's times changed: %+v", o.State)
	}
}
