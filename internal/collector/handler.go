package collector

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

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
	// once. The next one waits for a free slot for as long as its scrape
	// timeout allows (X-Prometheus-Scrape-Timeout-Seconds, else
	// DefaultSlotWait), then is answered 503. Every scrape also waits so,
	// at start, until every source has settled (store.WaitSettled).
	MaxRequestsInFlight int
}

// StallTimeout is how long one write of a scrape may wait for the client to
// read: a client that stops reading gives up its slot after it, not after
// the server's whole write timeout. Prometheus reads at once.
const StallTimeout = 5 * time.Second

// DefaultSlotWait is how long a scrape that says no timeout of its own waits
// for a slot: Prometheus' default scrape timeout.
const DefaultSlotWait = 10 * time.Second

// slotWait is how long a scrape waits for a slot: its scrape timeout less
// a margin to answer in, if it gives one.
func slotWait(r *http.Request) time.Duration {
	if v, err := strconv.ParseFloat(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64); err == nil && v > 0 {
		return max(time.Duration(v*float64(time.Second))-500*time.Millisecond, 0)
	}
	return DefaultSlotWait
}

// stallWriter ends a write that the client does not take within StallTimeout.
type stallWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s stallWriter) Write(p []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(StallTimeout)) // not supported by test recorders: no deadline then
	return s.w.Write(p)
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
		ctx, cancel := context.WithTimeout(r.Context(), slotWait(r))
		defer cancel()
		// At start, a container's counts are not served before what the
		// runtimes and the kernel have counted is read: a lower count
		// would look to Prometheus like a counter reset.
		if !c.store.WaitSettled(ctx, false) {
			if r.Context().Err() == nil {
				http.Error(w, "Starting: not every source has told what it found yet, and counts served now could be lower than those already counted. Try again later.",
					http.StatusServiceUnavailable)
			}
			return
		}
		if inFlight != nil {
			select {
			case inFlight <- struct{}{}:
				defer func() { <-inFlight }()
			case <-ctx.Done():
				if r.Context().Err() == nil {
					http.Error(w, fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", opts.MaxRequestsInFlight),
						http.StatusServiceUnavailable)
				}
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
		var out io.Writer = stallWriter{w, http.NewResponseController(w)}
		var gz *gzip.Writer
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			gz = gzipWriters.Get().(*gzip.Writer)
			gz.Reset(out)
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
