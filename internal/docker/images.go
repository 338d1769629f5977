package docker

import (
	"sync"
	"time"
)

// imagesKept bounds the names an imageIDs holds: a tenant can create
// containers from any number of names.
const imagesKept = 256

// imageIDs tells the id of the image a container was created from, by the
// name its create event gives (the container's Config.Image: a tag, a
// digest or an id), as the inspect of a container created from that name
// said. A name's id is taken only from a container created after the last
// image event (a tag moved, an image pulled, loaded or removed) and after
// the source's session began: what the name meant then is what it means
// now. An image event, and a new session, forget every name.
type imageIDs struct {
	mu    sync.Mutex
	since time.Time // the runtime's time of the last image event, or of the session's start
	byRef map[string]string
}

// learn records that the container created at created from the image
// named ref runs image id.
func (c *imageIDs) learn(ref, id string, created time.Time) {
	if ref == "" || id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !created.After(c.since) {
		return
	}
	if _, ok := c.byRef[ref]; !ok && len(c.byRef) >= imagesKept {
		clear(c.byRef)
	}
	c.byRef[ref] = id
}

// lookup returns the id of the image named ref.
func (c *imageIDs) lookup(ref string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.byRef[ref]
	return id, ok
}

// changed forgets every name: an image event at the runtime's time at, or
// a new session.
func (c *imageIDs) changed(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.byRef)
	if at.After(c.since) {
		c.since = at
	}
}
