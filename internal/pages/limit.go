package pages

import (
	"fmt"
	"net/http"
	"time"
)

// pageWriteTimeout bounds the answer of one page: a client that does not
// read gives up its place after it, not after the server's write timeout.
const pageWriteTimeout = 10 * time.Second

// Limit returns a wrapper that serves at most n requests at once among all
// the handlers it wraps; a request beyond them is answered 503 at once.
// Each page reads the store (the landing page walks every container under
// its lock, which the sources and the kernel reader also need): without a
// bound, any client that reaches the port could hold it without pause.
func Limit(n int) func(http.Handler) http.Handler {
	inFlight := make(chan struct{}, n)
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case inFlight <- struct{}{}:
				defer func() { <-inFlight }()
			default:
				http.Error(w, fmt.Sprintf("Limit of concurrent requests of the pages reached (%d), try again later.", n), http.StatusServiceUnavailable)
				return
			}
			// Not supported by test recorders: no deadline then.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(pageWriteTimeout))
			h.ServeHTTP(w, r)
		})
	}
}
