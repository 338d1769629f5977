package pages

import (
	"fmt"
	"net/http"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// landingKills is how many of the latest kills the landing page shows.
const landingKills = 5

// Kills serves /kills: an HTML page of the kill records of st, newest
// first, filtered by the query parameters namespace, pod and container
// (and limit).
func Kills(st *store.Store, site Site) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHTMLHeaders(w)
		if !allowRead(w, r) {
			return
		}
		f, err := parseFilter(r)
		if err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = fmt.Fprintln(w, err)
			return
		}
		kills, more := f.kills(st)
		p := page{Title: "OOM kills", Style: style, Site: site, Rows: rows(kills, time.Now()),
			Filter: f, LimitSet: f.limitSet, Filtered: f.filtered(), APIURL: "/api/v1/kills"}
		if q := f.query(); q != "" {
			p.APIURL += "?" + q
		}
		p.Caption = caption(len(kills), more, f.Limit, site.KillsKept)
		_ = pageTemplates.ExecuteTemplate(w, "killspage", p)
	})
}

// caption says how many records the page shows, and how to see more.
func caption(n int, more bool, limit, kept int) string {
	s := fmt.Sprintf("%d kill records, newest first; the exporter keeps the last %d (--kills.kept).", n, kept)
	if n == 1 {
		s = fmt.Sprintf("1 kill record; the exporter keeps the last %d (--kills.kept).", kept)
	}
	if more {
		s += fmt.Sprintf(" More match: add limit=%d to the address to see more.", limit*10)
	}
	return s
}
