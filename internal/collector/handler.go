package collector

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ContentType is what Handler answers every scrape with, whatever format
// the scraper asks for: the text format 0.0.4, as promhttp answers a
// scraper that asks for nothing in particular.
var ContentType = string(expfmt.NewFormat(expfmt.TypeTextPlain).WithEscapingScheme(model.UnderscoreEscaping))

// HandlerOpts configure Handler.
type HandlerOpts struct {
	// Logger logs scrapes that failed, or were only partly written; nil: none.
	Logger *slog.Logger
	// MaxRequestsInFlight, if above 0, is how many scrapes may run at
	// once: the next one is answered 503.
	MaxRequestsInFlight int
}

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // the level is valid
	return w
}}

// Handler serves scrapes: WriteText of c and g, gzip-compressed when the
// scraper accepts gzip. Like promhttp's, it takes name[] parameters to select
// families.
func (c *Collector) Handler(g prometheus.Gatherer, opts HandlerOpts) http.Handler {
	var inFlight chan struct{}
	if opts.MaxRequestsInFlight > 0 {
		inFlight = make(chan struct{}, opts.MaxRequestsInFlight)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inFlight != nil {
			select {
			case inFlight <- struct{}{}:
				defer func() { <-inFlight }()
			default:
				http.Error(w, fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", opts.MaxRequestsInFlight),
					http.StatusServiceUnavailable)
				return
			}
		}
		var only map[string]bool
		if names := r.URL.Query()["name[]"]; len(names) > 0 {
			only = make(map[string]bool, len(names))
			for _, n := range names {
				only[n] = true
			}
		}
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Add("Vary", "Accept-Encoding")
		var out io.Writer = w
		var gz *gzip.Writer
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			gz = gzipWriters.Get().(*gzip.Writer)
			gz.Reset(w)
			out = gz
		}
		err := c.WriteText(out, g, only)
		if gz != nil {
			err = errors.Join(err, gz.Close())
			gzipWriters.Put(gz)
		}
		if err != nil && opts.Logger != nil {
			opts.Logger.Error("scrape", "err", err)
		}
	})
}

// acceptsGzip reports whether Accept-Encoding values name gzip with a
// weight above 0.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
			if !ok {
				return true
			}
			w, err := strconv.ParseFloat(q, 64)
			return err == nil && w > 0
		}
	}
	return false
}
