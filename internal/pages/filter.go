package pages

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// defaultLimit is how many records /kills and /api/v1/kills show unless
// the request's limit says otherwise.
const defaultLimit = 100

// maxLimit bounds a request's limit far above any --kills.kept, so that
// limit+1 cannot overflow.
const maxLimit = 1 << 30

// filter is what a request to /kills or /api/v1/kills asks for.
type filter struct {
	Namespace, Pod, Container string
	Limit                     int
	limitSet                  bool
}

// filterParams are the query parameters /kills and /api/v1/kills know.
var filterParams = []string{"namespace", "pod", "container", "limit"}

// parseFilter reads the query parameters namespace, pod, container and
// limit. Any other parameter is an error, so that a misspelt filter is not
// taken for none; so is a limit that is not a whole number above 0.
func parseFilter(r *http.Request) (filter, error) {
	q := r.URL.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(filterParams, k) {
			return filter{}, fmt.Errorf("unknown query parameter %q: the known ones are %s", k, strings.Join(filterParams, ", "))
		}
	}
	f := filter{Namespace: q.Get("namespace"), Pod: q.Get("pod"), Container: q.Get("container"), Limit: defaultLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return f, fmt.Errorf("limit must be a whole number above 0, got %q", s)
		}
		f.Limit, f.limitSet = min(n, maxLimit), true
	}
	return f, nil
}

// filtered reports whether the filter leaves some records out.
func (f filter) filtered() bool { return f.Namespace != "" || f.Pod != "" || f.Container != "" }

// match reports whether the record is one the filter asks for. A kill in no
// container, or in one not known, matches no filter. The pod is matched by
// its name's beginning: a Deployment's or DaemonSet's pods share it.
func (f filter) match(k *store.Kill) bool {
	if !f.filtered() {
		return true
	}
	if k.Place() != store.PlaceContainer {
		return false
	}
	m := k.Container
	return (f.Namespace == "" || m.Namespace == f.Namespace) &&
		strings.HasPrefix(m.Pod, f.Pod) &&
		(f.Container == "" || matchContainer(m, f.Container))
}

// matchContainer reports whether v names the container: its name (Docker's,
// or the pod spec's), or its id — whole, or at least the 12 characters
// docker ps and the page show — with or without the runtime's prefix
// ("docker://") of its container_id.
func matchContainer(m store.Meta, v string) bool {
	if v == m.Name || v == m.KubeContainer {
		return true
	}
	if runtime, id, ok := strings.Cut(v, "://"); ok {
		if runtime != m.Runtime {
			return false
		}
		v = id
	}
	return v == m.ID || (len(v) >= 12 && strings.HasPrefix(m.ID, v))
}

// kills returns the records the filter asks for, newest first, and whether
// more matched than its limit.
func (f filter) kills(st *store.Store) ([]store.Kill, bool) {
	kills := st.Kills(f.Limit+1, f.match)
	if len(kills) > f.Limit {
		return kills[:f.Limit], true
	}
	return kills, false
}

// query is the filter as query parameters ("" for none).
func (f filter) query() string {
	q := url.Values{}
	for _, p := range [][2]string{{"namespace", f.Namespace}, {"pod", f.Pod}, {"container", f.Container}} {
		if p[1] != "" {
			q.Set(p[0], p[1])
		}
	}
	if f.limitSet {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q.Encode()
}

// allowRead answers 405 to a request that is neither GET nor HEAD, and
// reports whether the request may go on.
func allowRead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write([]byte("method not allowed: use GET\n"))
	return false
}
