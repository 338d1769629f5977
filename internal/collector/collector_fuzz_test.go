package collector

import (
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// FuzzLabelValues: any id, name, Kubernetes labels and victim's name give
// exposition text that parses back with the same label values, made valid
// UTF-8.
func FuzzLabelValues(f *testing.F) {
	f.Add("abc", "web", "app", "pod-1", "ns", "sha256:aa", "ruby")
	f.Add("", "\xff\xfe", "\"quoted\"", "back\\slash", "new\nline", "{}=,", "\\\"\n")
	f.Add("short", "ünïcødé ✓", "\x00", "\t", "#", " ", "\r")
	f.Add("0123456789a\xe2\x9c\x93", "} 1\nx{", "\\", "\"", "\n", "a\xffb", "\xf0\x9f")
	f.Fuzz(func(t *testing.T, id, name, container, pod, namespace, image, process string) {
		s := store.New(time.Minute)
		m := store.Meta{Runtime: "docker", ID: id, Name: name, KubeContainer: container, Pod: pod, Namespace: namespace, ImageID: image}
		s.Apply(store.Observed{Meta: m, State: store.State{FinishedAt: time.Unix(1, 0), ExitCode: 1}})
		s.Apply(store.OOMVictim{Cgroup: cgroupOf(store.Meta{Runtime: "docker", ID: id}), Instance: 1, Process: process, At: t0, Seq: 1, Live: true})
		mfs := parse(t, scrape(t, New(s, Options{})))
		checkLabels(t, mfs, []store.Meta{m})
		kills := mfs["container_oom_kills_by_process_total"].GetMetric()
		if len(kills) != 1 || labelsOf(kills[0])["process"] != validUTF8(process) {
			t.Fatalf("process %q: %v", process, kills)
		}
		if n := len(mfs["container_last_exit_code"].GetMetric()); n != 1 {
			t.Fatalf("container_last_exit_code: %d series, want 1", n)
		}
	})
}
