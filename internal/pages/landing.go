// Package pages serves the exporter's HTTP endpoints other than /metrics: a
// short landing page and a health check.
package pages

import (
	"html/template"
	"net/http"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

var landing = template.Must(template.New("landing").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>missing-container-metrics</title>
<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}td,th{padding:.2em 1em;text-align:left}.up{color:#070}.down{color:#b00}</style>
</head>
<body>
<h1>missing-container-metrics</h1>
<p>OOM kills, restarts and last exit codes of every container, for Prometheus.</p>
<p>Version {{.Version}}</p>
<ul>
<li><a href="{{.MetricsPath}}">Metrics</a></li>
<li><a href="/healthz">Health</a></li>
</ul>
<h2>Sources</h2>
{{if .Sources}}<table>
<tr><th>Source</th><th>State</th><th>Containers</th><th>Events</th><th>Reconnects</th><th>Last error</th></tr>
{{range .Sources}}<tr><td>{{.Name}}</td>{{if .Up}}<td class="up">up</td>{{else}}<td class="down">down</td>{{end}}<td>{{.Containers}}</td><td>{{.Events}}</td><td>{{.Reconnects}}</td><td>{{.LastError}}</td></tr>
{{end}}</table>{{else}}<p>No source is enabled.</p>{{end}}
</body>
</html>
`))

// Landing returns the handler of the landing page: links, version, and each
// source with its state, read from st at every request.
func Landing(st *store.Store, version, metricsPath string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = landing.Execute(w, struct {
			Version, MetricsPath string
			Sources              []store.SourceStatus
		}{version, metricsPath, st.Sources()})
	})
}

// Healthz answers 200 while the process serves.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
}
