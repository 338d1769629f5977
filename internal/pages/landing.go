// Package pages serves the exporter's HTTP endpoints other than /metrics: a
// short landing page, the pages of OOM kills (/kills, /api/v1/kills) and a
// health check.
package pages

import (
	"net/http"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// Landing returns the handler of the landing page: links, version, the
// latest kills, and each source with its state, read from st at every
// request.
func Landing(st *store.Store, site Site) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		setHTMLHeaders(w)
		// More records than rows: the members of a group kill are one row.
		rs := rows(st.Kills(4*landingKills, nil), time.Now())
		p := page{Title: "Home", Style: style, Site: site, Rows: rs[:min(len(rs), landingKills)], Sources: st.RecentSources(landingCountAge)}
		_ = pageTemplates.ExecuteTemplate(w, "landing", p)
	})
}

// landingCountAge is how old the landing page's counts of containers may
// be: counting walks every container under the store's lock.
const landingCountAge = time.Second

// Healthz answers 200 while the process serves.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
}
