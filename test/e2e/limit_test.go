package e2e

import (
	"fmt"
	"testing"
	"time"
)

// --max-containers bounds what the exporter tracks: at the limit, more
// containers are turned away and counted, the source stays up, and no scrape
// ever shows more containers than the limit. Once the tracked container is
// removed, a turned-away one takes its place at its next event. Not parallel:
// the harness's dockerd is shared, and another test's containers would
// compete for the one place.
func TestMaxContainers(t *testing.T) {
	e := startExporter(t, "--max-containers=1", "--no-kernel")
	ids := []string{run(t, nil, "sleep 100000"), run(t, nil, "sleep 100000"), run(t, nil, "sleep 100000")}
	var tracked string
	eventually(t, 60*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if n := len(s.Families["container_restarts_total"].GetMetric()); n > 1 {
			return errStop{fmt.Errorf("%d containers exported with --max-containers=1", n)}
		}
		_, limit, _ := s.series("missing_container_metrics_max_containers", nil)
		_, away, _ := s.series("missing_container_metrics_containers_turned_away_total", nil)
		_, up, _ := s.series("missing_container_metrics_source_up", map[string]string{"source": "docker"})
		if limit != 1 || up != 1 {
			return errStop{fmt.Errorf("max_containers %v, docker source up %v; want 1 and 1", limit, up)}
		}
		if away < 2 {
			return fmt.Errorf("%v containers turned away, want at least 2 of the 3 started", away)
		}
		tracked = ""
		for _, id := range ids {
			if _, ok := s.containerCounts(id); ok {
				tracked = id
			}
		}
		if tracked == "" {
			return fmt.Errorf("none of the three is tracked")
		}
		return nil
	})

	// Room again: the tracked one is removed, and a turned-away one has an
	// event (a rename makes the source read it again).
	docker(t, "rm", "-f", tracked)
	var next string
	for _, id := range ids {
		if id != tracked {
			next = id
			break
		}
	}
	docker(t, "rename", next, "mcm-limit-"+randomID(3))
	e.waitCounts(t, next, counts{})
}
