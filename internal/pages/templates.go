package pages

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// Site is what every page shows besides the store's state.
type Site struct {
	Version     string // the exporter's version
	MetricsPath string // --web.telemetry-path
	KillsKept   int    // --kills.kept: how many kill records the store keeps
	// KernelLog is how the kernel log is read (kernel.Log*: kmsg, syslog,
	// none), and KernelLogWhy why.
	KernelLog, KernelLogWhy string
}

// style is every page's style sheet, inline: the pages load nothing from
// anywhere, not even from the exporter.
const style = `
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg:#fff;--head:#f6f8fa;--red:#a40e26;--redbg:#ffebe9;--amber:#7d4e00;--amberbg:#fff8c5;--grey:#57606a;--greybg:#eaeef2;--link:#0550ae}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg);margin:0}
a{color:var(--link)}
header{background:#24292f;color:#fff;padding:.6em 1.5em}
header nav{display:flex;gap:1.5em;align-items:baseline;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}
header a:hover,header a:focus{text-decoration:underline}
header .brand{font-weight:600;font-size:1.1em;margin-right:auto}
main{padding:1em 1.5em 2em;max-width:90em}
h1{font-size:1.5em;margin:.3em 0 .2em}
h2{font-size:1.2em;margin:1.5em 0 .5em}
.lead{color:var(--muted);margin:0 0 1em}
form.filter{display:flex;gap:1em;align-items:flex-end;flex-wrap:wrap;background:var(--head);border:1px solid var(--line);border-radius:6px;padding:.7em 1em;margin:0 0 1em}
form.filter label{display:flex;flex-direction:column;font-size:.85em;font-weight:600;color:var(--muted)}
form.filter input{font:inherit;font-size:1.05em;padding:.25em .4em;border:1px solid var(--line);border-radius:4px;width:14em;margin-top:.15em}
form.filter button{font:inherit;font-weight:600;padding:.3em 1.1em;border:1px solid #1f883d;background:#1f883d;color:#fff;border-radius:4px;cursor:pointer}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.45em .7em;border-bottom:1px solid var(--line)}
thead th{background:var(--head);font-size:.8em;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);white-space:nowrap}
.sub{color:var(--muted);font-size:.85em}
.id{white-space:nowrap;font-size:.75em}
.mono,.path{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em;overflow-wrap:anywhere}
.path{font-size:.75em;color:var(--muted);max-width:20em}
td.killed{min-width:12em}
.usage,.pid{white-space:nowrap}
.proc{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-weight:600;white-space:nowrap}
.ns{color:var(--muted)}
.where b{font-weight:600}
.badge{display:inline-block;padding:.05em .55em;border-radius:1em;font-size:.85em;font-weight:600;white-space:nowrap}
.died{background:var(--redbg);color:var(--red)}
.lived{background:var(--amberbg);color:var(--amber)}
.unknown,.none{background:var(--greybg);color:var(--grey)}
.scope{font-weight:600}
.scope-node,.scope-pod,.scope-ancestor{color:var(--red)}
.scope-unknown{color:var(--muted);font-weight:normal}
.group{display:inline-block;margin-top:.2em;font-size:.8em;font-weight:600;color:var(--red)}
.held{margin-top:.3em;font-size:.85em}.before{margin:.3em 0;max-width:40em}
details{margin-top:.3em;font-size:.85em}summary{cursor:pointer;color:var(--link)}
table.held,table.tasks{margin:.3em 0;font-size:1em}table.held th{text-align:left;font-weight:400;color:var(--muted);padding-right:1em}
meter{display:block;width:9em;height:.7em;margin-top:.25em}
td.undescribed{color:var(--muted);font-style:italic}
caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:.85em;padding-top:.5em}
.empty{padding:1.2em;background:var(--head);border:1px solid var(--line);border-radius:6px}
.up{color:#1a7f37;font-weight:600}.down{color:var(--red);font-weight:600}
`

// styleHash is the style sheet's hash for the Content-Security-Policy,
// which allows no other style and no script at all.
var styleHash = func() string {
	h := sha256.Sum256([]byte(style))
	return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
}()

// setHTMLHeaders sets the headers of an HTML page: nothing but its own
// style may load or run, whatever a container's name smuggles in.
func setHTMLHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+styleHash+"; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

var pageTemplates = template.Must(template.New("pages").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · missing-container-metrics</title>
<link rel="icon" href="data:,">
<style>{{.Style}}</style>
</head>
<body>
<header><nav aria-label="Pages"><a class="brand" href="/">missing-container-metrics</a><a href="/kills">OOM kills</a><a href="{{.Site.MetricsPath}}">Metrics</a><a href="/api/v1/kills">JSON</a></nav></header>
<main>
{{end}}

{{define "foot"}}</main>
</body>
</html>
{{end}}

{{define "where"}}{{if eq .Kind "host"}}<b>host</b><div class="sub">in no container{{with .Cgroup}}: <span class="mono">{{.}}</span>{{end}}</div>
{{- else if eq .Kind "cgroup"}}<b class="mono">{{.Cgroup}}</b><div class="sub">a cgroup of no container</div>
{{- else if eq .Kind "unplaced"}}<b>not known</b><div class="sub">the kernel log did not give its cgroup</div>
{{- else}}<div class="where">{{if .Namespace}}<span class="ns">{{.Namespace}} /</span> {{end}}{{if .Pod}}<b>{{.Pod}}</b> / {{end}}{{if .Name}}<b>{{.Name}}</b>{{else}}<b class="mono">{{.ID}}</b>{{end}}</div><div class="sub mono id" title="{{.IDTitle}}">{{.ID}}</div>{{end}}{{end}}

{{define "kills"}}<table>
{{if .Caption}}<caption>{{.Caption}}</caption>{{end}}
<thead><tr><th scope="col">Time (UTC)</th><th scope="col">Where</th><th scope="col">Killed</th><th scope="col">Limit hit</th><th scope="col">Usage at the kill</th><th scope="col">Trigger</th><th scope="col">Container</th></tr></thead>
<tbody>
{{range .Rows}}<tr>
<td><time datetime="{{.ISO}}">{{.Date}} <b>{{.Clock}}</b></time><div class="sub">{{.Ago}}</div></td>
<td>{{template "where" .Where}}</td>
{{if .Described}}<td class="killed">{{range .Victims}}<div><span class="proc victim">{{.Name}}</span>{{if .PID}} <span class="sub pid">pid {{.PID}}</span>{{end}}</div>{{if .RSS}}<div class="sub" title="{{.RSSDetail}}">RSS {{.RSS}}{{if .Anon}} ({{.Anon}} anon){{end}}</div>{{end}}{{end}}{{if .Group}}<span class="group">group kill: all of</span><div class="path">{{.Group}}</div>{{end}}{{if .HeldBy}}<div class="held">Held by: {{.HeldBy}}</div>{{end}}{{if or .Held .Tasks .Before}}<details><summary>What held the memory</summary>{{with .Before}}<div class="before">{{.}}</div>{{end}}{{if .Held}}<table class="held"><tbody>{{range .Held}}<tr><th scope="row">{{.Name}}</th><td>{{.Bytes}}</td></tr>{{end}}</tbody></table>{{end}}{{if .Tasks}}<table class="tasks"><thead><tr><th scope="col">pid</th><th scope="col">name</th><th scope="col">uid</th><th scope="col">RSS</th><th scope="col">swap</th><th scope="col">oom_score_adj</th></tr></thead><tbody>{{range .Tasks}}<tr><td>{{.PID}}</td><td class="proc">{{.Name}}</td><td>{{.UID}}</td><td{{with .Detail}} title="{{.}}"{{end}}>{{.RSS}}</td><td>{{.Swap}}</td><td>{{.OOMScoreAdj}}</td></tr>{{end}}</tbody></table>{{if gt .TasksMore 0}}<div class="sub">and {{.TasksMore}} more</div>{{end}}{{end}}</details>{{end}}</td>
<td><span class="scope scope-{{.ScopeKey}}">{{.Scope}}</span>{{if .LimitCgroup}}<div class="path">{{.LimitCgroup}}</div>{{end}}</td>
<td>{{if .Usage}}<span class="usage" title="{{.UsageTitle}}">{{.Usage}}</span><meter min="0" max="{{.LimitValue}}" low="{{.Low}}" high="{{.High}}" optimum="0" value="{{.UsageValue}}" aria-hidden="true"></meter>{{else if .NoLimit}}<span class="sub">no limit: the node ran out</span>{{else}}<span class="sub">not known</span>{{end}}</td>
<td>{{with .Trigger}}<span class="proc">{{.Name}}</span>{{if .PID}} <span class="sub pid">pid {{.PID}}</span>{{end}}{{if .Self}}<div class="sub">the victim itself</div>{{end}}{{else}}<span class="sub">not known</span>{{end}}</td>
<td><span class="badge {{.OutcomeKey}}">{{.Outcome}}</span></td>
{{else}}<td colspan="4" class="undescribed">The kernel log did not describe this kill; {{.FromText}} counted it. Who was killed and which limit was hit are not known.{{with .Before}} {{.}}{{end}}</td>
<td><span class="badge {{.OutcomeKey}}">{{.Outcome}}</span></td>
{{end}}</tr>
{{end}}</tbody>
</table>{{end}}

{{define "killspage"}}{{template "head" .}}
<h1>OOM kills</h1>
<p class="lead">Every OOM kill the exporter saw, newest first, as the kernel log describes it: who was killed, whose memory limit was hit, and whether the container lived on.</p>
<form class="filter" method="get" action="/kills" role="search">
<label for="f-namespace">Namespace<input id="f-namespace" name="namespace" value="{{.Filter.Namespace}}"></label>
<label for="f-pod">Pod<input id="f-pod" name="pod" value="{{.Filter.Pod}}" placeholder="name or its start"></label>
<label for="f-container">Container<input id="f-container" name="container" value="{{.Filter.Container}}" placeholder="name or id"></label>
{{if .LimitSet}}<input type="hidden" name="limit" value="{{.Filter.Limit}}">{{end}}
<button type="submit">Filter</button>{{if .Filtered}} <a href="/kills">Show all</a>{{end}}
</form>
{{if .Rows}}{{template "kills" .}}
{{else if eq .Site.KillsKept 0}}<p class="empty">No kill records are kept: <code>--kills.kept=0</code>.</p>
{{else if .Filtered}}<p class="empty">No OOM kill recorded matches this filter.</p>
{{else}}<p class="empty">No OOM kill recorded since the exporter started.</p>{{end}}
<p class="sub">The same as JSON: <a href="{{.APIURL}}">{{.APIURL}}</a>. How to read a kill: docs/kills.md in the exporter's repository.</p>
{{template "foot"}}{{end}}

{{define "landing"}}{{template "head" .}}
<h1>missing-container-metrics</h1>
<p class="lead">OOM kills, restarts and last exit codes of every container, for Prometheus. Version {{.Site.Version}}.</p>
<ul>
<li><a href="{{.Site.MetricsPath}}">Metrics</a></li>
<li><a href="/kills">OOM kills</a>, and as JSON: <a href="/api/v1/kills">/api/v1/kills</a></li>
<li><a href="/healthz">Health</a></li>
</ul>
<h2>Latest OOM kills</h2>
{{if .Rows}}{{template "kills" .}}
<p><a href="/kills">All OOM kills, with a filter</a></p>
{{else if eq .Site.KillsKept 0}}<p class="empty">No kill records are kept: <code>--kills.kept=0</code>.</p>
{{else}}<p class="empty">No OOM kill recorded since the exporter started.</p>{{end}}
<h2>Sources</h2>
<p>The kernel log, which names each victim and why it was killed: {{if eq .Site.KernelLog "kmsg"}}read from the device <code>/dev/kmsg</code>{{else if eq .Site.KernelLog "syslog"}}read through <code>syslog(2)</code>, with <code>CAP_SYSLOG</code>{{else}}<b>not read</b>: OOM kills are counted, their victims are not named{{end}}{{with .Site.KernelLogWhy}} ({{.}}){{end}}.</p>
{{if .Sources}}<table>
<thead><tr><th scope="col">Source</th><th scope="col">State</th><th scope="col">Containers</th><th scope="col">Events</th><th scope="col">Reconnects</th><th scope="col">Last error</th></tr></thead>
<tbody>
{{range .Sources}}<tr><td>{{.Name}}</td>{{if .Up}}<td class="up">up</td>{{else}}<td class="down">down</td>{{end}}<td>{{.Containers}}</td><td>{{.Events}}</td><td>{{.Reconnects}}</td><td>{{.LastError}}</td></tr>
{{end}}</tbody></table>{{else}}<p>No source is enabled.</p>{{end}}
{{template "foot"}}{{end}}
`))

// page is what the templates get.
type page struct {
	Title   string
	Style   template.CSS
	Site    Site
	Rows    []killRow
	Caption string
	// The kills page's.
	Filter   filter
	LimitSet bool
	Filtered bool
	APIURL   string
	// The landing page's.
	Sources []store.SourceStatus
}
