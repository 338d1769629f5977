package pages

import (
	"fmt"
	"net/http"
	"net/url"
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

// parseFilter reads the query parameters namespace, pod, container and
// limit; a limit that is not a whole number above 0 is an error.
func parseFilter(r *http.Request) (filter, error) {
	q := r.URL.Query()
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
// container, or in one not known, matches no filter.
func (f filter) match(k *store.Kill) bool {
	if !f.filtered() {
		return true
	}
	if k.Host || k.Unplaced {
		return false
	}
	m := k.Container
	return (f.Namespace == "" || m.Namespace == f.Namespace) &&
		(f.Pod == "" || m.Pod == f.Pod) &&
		(f.Container == "" || matchContainer(m, f.Container))
}

// matchContainer reports whether v names the container: its name (Docker's,
// or the pod spec's), its id (at least the 12 characters docker ps shows),
// or its container_id.
func matchContainer(m store.Meta, v string) bool {
	return v == m.Name || v == m.KubeContainer || v == m.ContainerID() ||
		(len(v) >= 12 && strings.HasPrefix(m.ID, v))
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
