package e2e

import (
	"fmt"
	"testing"
	"time"
)

// --max-containers bounds what the exporter tracks: at the limit, more
// containers are turned away and counted, the source stays up, and no scrape
// ever shows more containers than the limit. (The harness's dockerd is
// shared with the tests running alongside, so which container is tracked is
// not this test's to choose; the store's unit test checks who is.)
func TestMaxContainers(t *testing.T) {
	t.Parallel()
	e := startExporter(t, "--max-containers=1", "--no-kernel")
	for range 3 {
		run(t, nil, "sleep 100000")
	}
	eventually(t, 60*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if n := len(s.families["container_restarts_total"].GetMetric()); n > 1 {
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
		return nil
	})
}
