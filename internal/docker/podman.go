package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/moby/moby/client"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// podmanContainersPath is Podman's own container list (its libpod API, which
// Podman 4.0 and later serve beside the Docker API on the same socket): the
// Docker API tells neither a container's pod nor its pod's infra container.
const podmanContainersPath = "/v4.0.0/libpod/containers/json"

// podmanClient speaks HTTP to Podman through the Docker client's own dialer
// (its socket, or TCP with its TLS).
func podmanClient(cli *client.Client) *http.Client {
	dial := cli.Dialer()
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
	}}
}

// checkEngine refuses a Docker API that is not the runtime's: Podman's
// behind --docker.host (podman-docker links /var/run/docker.sock to it)
// would label its containers docker://, which their cgroups (libpod-<id>)
// and Podman's own tools do not.
func (s *Source) checkEngine(ctx context.Context) error {
	vctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	v, err := s.cli.ServerVersion(vctx, client.ServerVersionOptions{})
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	switch got := engine(v.Components); {
	case got == s.runtime:
		return nil
	case got == store.RuntimePodman:
		return fmt.Errorf("the Docker API at %s is Podman's: follow it with --podman --podman.host=%s", s.cli.DaemonHost(), s.cli.DaemonHost())
	default:
		return fmt.Errorf("the Docker API at %s is not Podman's (no %q in its version)", s.cli.DaemonHost(), podmanEngine)
	}
}

// podmanContainers asks Podman for its containers' pods: all of them, or
// the one with id.
func (s *Source) podmanContainers(ctx context.Context, id string) (map[string]podmanContainer, error) {
	q := url.Values{"all": {"true"}, "pod": {"true"}}
	if id != "" {
		f, err := json.Marshal(map[string][]string{"id": {id}})
		if err != nil {
			return nil, err
		}
		q.Set("filters", string(f))
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman"+podmanContainersPath+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.podman.Do(req)
	if err != nil {
		return nil, fmt.Errorf("podman container list: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("podman container list: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("podman container list: %s: %.200s", resp.Status, b)
	}
	return parsePodmanContainers(b)
}

// podmanPods is Podman's word on every container's pod, for a listing; nil
// for Docker.
func (s *Source) podmanPods(ctx context.Context) (map[string]podmanContainer, error) {
	if s.podman == nil {
		return nil, nil
	}
	return s.podmanContainers(ctx, "")
}

// workload labels a Podman container with its pod, from pods (nil: Podman
// is asked for this one), and reports false for a pod's infra container,
// which is no workload, as a Kubernetes pod's sandbox is none. Docker's
// containers are left as they are.
func (s *Source) workload(ctx context.Context, o *store.Observed, pods map[string]podmanContainer) bool {
	if s.podman == nil {
		return true
	}
	if pods == nil {
		var err error
		if pods, err = s.podmanContainers(ctx, o.Meta.ID); err != nil {
			s.log.Warn("pod of the container unknown", "id", o.Meta.ID, "err", err)
			return true
		}
	}
	p, ok := pods[o.Meta.ID]
	if p.IsInfra {
		return false
	}
	if ok {
		o.Meta = withPodmanPod(o.Meta, p)
	}
	return true
}
