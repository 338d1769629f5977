package docker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"
)

// fakeDockerd is a dockerd on httptest that serves what a test scripts: the
// containers of a listing and their inspects, and an event stream that
// sends each message the test pushes, after replaying the scripted history
// newer than the stream's since, as dockerd does. It lets a unit test drive
// the Docker source without root or a runtime; what dockerd itself does is
// tested against the real one (test/e2e).
type fakeDockerd struct {
	srv    *httptest.Server
	events chan any      // events.Message, or a raw string sent as it is
	broken chan struct{} // closed to break the open event streams

	mu         sync.Mutex
	containers map[string]container.InspectResponse
	history    []events.Message // replayed to a stream opened with since
	streams    int              // event streams opened
	inspects   int              // inspects answered
	engine     string           // the version's component: Docker's "Engine", or podmanEngine
}

func newFakeDockerd(t *testing.T) *fakeDockerd {
	t.Helper()
	f := &fakeDockerd{events: make(chan any, 100), broken: make(chan struct{}), containers: map[string]container.InspectResponse{}, engine: "Engine"}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if i := strings.Index(path[1:], "/"); strings.HasPrefix(path, "/v1.") && i > 0 {
			path = path[i+1:] // the API version
		}
		switch {
		case path == "/version":
			f.mu.Lock()
			engine := f.engine
			f.mu.Unlock()
			_ = json.NewEncoder(w).Encode(system.VersionResponse{Components: []system.ComponentVersion{{Name: engine, Version: "1"}}})
		case path == "/containers/json":
			f.mu.Lock()
			var list []container.Summary
			for _, c := range f.containers {
				list = append(list, container.Summary{ID: c.ID})
			}
			f.mu.Unlock()
			_ = json.NewEncoder(w).Encode(list)
		case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
			id := strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json")
			f.mu.Lock()
			c, ok := f.containers[id]
			f.inspects++
			f.mu.Unlock()
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"message":"No such container: ` + id + `"}`))
				return
			}
			_ = json.NewEncoder(w).Encode(c)
		case path == "/events":
			f.mu.Lock()
			f.streams++
			history, broken := f.history, f.broken
			f.mu.Unlock()
			asked := wanted(r)
			w.WriteHeader(http.StatusOK)
			if since := r.URL.Query().Get("since"); since != "" {
				sec, nsec, _ := strings.Cut(since, ".")
				s, _ := strconv.ParseInt(sec, 10, 64)
				ns, _ := strconv.ParseInt(nsec, 10, 64)
				for _, m := range history {
					if m.TimeNano > s*1e9+ns && asked(m) {
						_ = json.NewEncoder(w).Encode(m)
					}
				}
			}
			w.(http.Flusher).Flush()
			for {
				select {
				case <-r.Context().Done():
					return
				case <-broken:
					return
				case ev := <-f.events:
					if raw, ok := ev.(string); ok {
						_, _ = w.Write([]byte(raw + "\n"))
					} else if m, ok := ev.(events.Message); !ok || asked(m) {
						_ = json.NewEncoder(w).Encode(ev)
					}
					w.(http.Flusher).Flush()
				}
			}
		default:
			http.NotFound(w, r)
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// wanted reads an event stream request's filters as dockerd does: an
// event passes when, for each term given, one of its values matches (type
// and event, the terms the sources use).
func wanted(r *http.Request) func(events.Message) bool {
	var filters map[string]map[string]bool
	_ = json.Unmarshal([]byte(r.URL.Query().Get("filters")), &filters)
	return func(m events.Message) bool {
		for term, field := range map[string]string{"type": string(m.Type), "event": string(m.Action)} {
			if values := filters[term]; len(values) > 0 && !values[field] {
				return false
			}
		}
		return true
	}
}

// host is the fake's address as --docker.host takes it.
func (f *fakeDockerd) host() string { return "tcp://" + strings.TrimPrefix(f.srv.URL, "http://") }

// add makes a container known to listings and inspects.
func (f *fakeDockerd) add(c container.InspectResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers[c.ID] = c
}

// send pushes an event to the stream.
func (f *fakeDockerd) send(ev any) { f.events <- ev }

// happened records events that a stream opened with an older since replays.
func (f *fakeDockerd) happened(ms ...events.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.history = append(f.history, ms...)
}

// breakStreams ends the event streams open now, as a dockerd restart does.
func (f *fakeDockerd) breakStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.broken)
	f.broken = make(chan struct{})
}

func (f *fakeDockerd) inspected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inspects
}

func (f *fakeDockerd) streamsOpened() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams
}

// event is a container event of id at unix nanoseconds ns.
func event(action events.Action, id string, ns int64, attrs map[string]string) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}, TimeNano: ns}
}
