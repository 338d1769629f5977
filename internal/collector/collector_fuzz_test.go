package collector

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// FuzzLabelValues: any id, name and Kubernetes labels give exposition text
// that parses back with the same series.
func FuzzLabelValues(f *testing.F) {
	f.Add("abc", "web", "app", "pod-1", "ns", "sha256:aa")
	f.Add("", "\xff\xfe", "\"quoted\"", "back\\slash", "new\nline", "{}=,")
	f.Add("short", "ünïcødé ✓", "\x00", "\t", "#", " ")
	f.Fuzz(func(t *testing.T, id, name, container, pod, namespace, image string) {
		s := store.New(time.Minute)
		s.Apply(store.Observed{
			Meta:  store.Meta{Runtime: "docker", ID: id, Name: name, Container: container, Pod: pod, Namespace: namespace, ImageID: image},
			State: store.State{FinishedAt: time.Unix(1, 0), ExitCode: 1},
		})
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(New(s, Options{}))
		text := gather(t, reg)
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("exposition does not parse: %v\n%s", err, text)
		}
		for _, name := range []string{"container_ooms_total", "container_restarts_total", "container_last_exit_code"} {
			if n := len(mfs[name].GetMetric()); n != 1 {
				t.Fatalf("%s: %d series, want 1", name, n)
			}
		}
	})
}
