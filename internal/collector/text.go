package collector

import (
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// WriteText writes one scrape in the text exposition format (version 0.0.4):
// the families gathered from g and those the collector writes itself from
// one snapshot of the store, each once, all in name order. only, if not nil,
// selects families by name. An error of g does not stop the scrape: what g
// gathered is written, and the error returned with w's.
func (c *Collector) WriteText(w io.Writer, g prometheus.Gatherer, only map[string]bool) error {
	snap := c.store.Snapshot()
	rows := c.labels.rows(snap.Containers)
	mfs, gatherErr := g.Gather()
	var encodeErr error
	t := &textWriter{w: w, buf: make([]byte, 0, flushSize)}
	// Both lists are sorted by name: merge them.
	for i, j := 0, 0; (i < len(mfs) || j < len(c.text)) && t.err == nil; {
		if j < len(c.text) && (i == len(mfs) || c.text[j].name < mfs[i].GetName()) {
			if only == nil || only[c.text[j].name] {
				c.text[j].write(t, rows, snap)
			}
			j++
			continue
		}
		if only == nil || only[mfs[i].GetName()] {
			if _, err := expfmt.MetricFamilyToText(t, mfs[i]); err != nil && t.err == nil && encodeErr == nil {
				encodeErr = err
			}
		}
		i++
	}
	t.flush()
	return errors.Join(gatherErr, encodeErr, t.err)
}

// textFamily is a family WriteText writes itself: a family of containers'
// series (f), or counts of kills in no container by one label (kills).
type textFamily struct {
	name   string
	header string  // its # HELP and # TYPE lines
	f      *family // nil for the kills in no container
	label  string
	kills  func(store.Snapshot) map[string]uint64
}

func newTextFamily(name, help, typ string, f *family) textFamily {
	help = strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help)
	return textFamily{name: name, header: "# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n", f: f}
}

// newKillsFamily is a counter of kills in no container by label.
func newKillsFamily(name, help, label string, kills func(store.Snapshot) map[string]uint64) textFamily {
	tf := newTextFamily(name, help, "counter", nil)
	tf.label, tf.kills = label, kills
	return tf
}

// write writes the family's samples, after its header if it has any: like
// client_golang, a family without samples is left out.
func (tf *textFamily) write(t *textWriter, rows []row, snap store.Snapshot) {
	t.header = tf.header
	defer func() { t.header = "" }()
	if tf.f == nil {
		for _, k := range validCounts(tf.kills(snap)) {
			t.sample(tf.name, "", tf.label, k.name, float64(k.n))
		}
		return
	}
	for _, r := range rows {
		if t.err != nil {
			return
		}
		if tf.f.each != nil {
			for _, k := range validCounts(tf.f.each(r.c)) {
				t.sample(tf.name, r.l.text, tf.f.extra, k.name, float64(k.n))
			}
		} else if v, ok := tf.f.value(r.c); ok {
			if tf.f.label != nil {
				if l := tf.f.label(r.c); l != "" {
					t.sample(tf.name, r.l.text, tf.f.extra, validUTF8(l), v)
					continue
				}
			}
			t.sample(tf.name, r.l.text, "", "", v)
		}
	}
}

// count is one series of a family keyed by a name (the process).
type count struct {
	name string
	n    uint64
}

// validCounts returns m's counts by name made valid UTF-8, sorted by name.
// Names that became the same are added up: they are one series.
func validCounts(m map[string]uint64) []count {
	if len(m) == 0 {
		return nil
	}
	out := make([]count, 0, len(m))
	for k, n := range m {
		out = append(out, count{validUTF8(k), n})
	}
	slices.SortFunc(out, func(a, b count) int { return strings.Compare(a.name, b.name) })
	merged := out[:1]
	for _, k := range out[1:] {
		if last := &merged[len(merged)-1]; last.name == k.name {
			last.n += k.n
		} else {
			merged = append(merged, k)
		}
	}
	return merged
}

// flushSize is how much textWriter gathers before it hands it on.
const flushSize = 32 << 10

// textWriter writes the text format into a buffer that it hands to w each
// time flushSize bytes are in it. After w's first error it writes nothing.
type textWriter struct {
	w      io.Writer
	buf    []byte
	header string // written before the next sample
	err    error
}

// sample writes name{labels,extra="value"} v: labels are escaped text
// already; extra is left out when empty.
func (t *textWriter) sample(name, labels, extra, value string, v float64) {
	b := append(t.buf, t.header...)
	t.header = ""
	b = append(b, name...)
	b = append(b, '{')
	b = append(b, labels...)
	if extra != "" {
		if labels != "" {
			b = append(b, ',')
		}
		b = appendLabel(b, extra, value)
	}
	b = append(b, '}', ' ')
	b = appendValue(b, v)
	t.buf = append(b, '\n')
	if len(t.buf) >= flushSize {
		t.flush()
	}
}

// appendValue appends v as client_golang writes it: the shortest 'g' form
// (1e+06, 1.795773602e+09, +Inf, NaN), 0 for -0. Most values are counts and
// exit codes, written in full below 1e6: those take the quicker way.
func appendValue(b []byte, v float64) []byte {
	if v > -1e6 && v < 1e6 && v == math.Trunc(v) {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// Write takes text written by expfmt, for the gathered families.
func (t *textWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) >= flushSize {
		t.flush()
	}
	return len(p), t.err
}

func (t *textWriter) flush() {
	if t.err == nil && len(t.buf) > 0 {
		_, t.err = t.w.Write(t.buf)
	}
	t.buf = t.buf[:0]
}

// appendLabel appends name="value" with the value escaped as the text format
// requires: backslash, double quote and newline. value must be valid UTF-8.
func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// validUTF8 replaces invalid UTF-8 so that the exposition stays valid: label
// values come from container names and labels that anyone can set.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// sortedLabels are ContainerLabels and LegacyLabels sorted: the order in
// which the text format writes them and in which client_golang sorts series.
var sortedLabels = [...]string{
	"container", "container_id", "container_short_id", "containerd_namespace", "docker_container_id",
	"image_id", "name", "namespace", "pod", "uid",
}

// legacyOnly marks the sortedLabels written only with the earlier tool's
// names and labels (Options.LegacyNames).
var legacyOnly = [len(sortedLabels)]bool{2: true, 4: true, 5: true}

// labelSet is a container's labels, escaped for the text format once and
// kept from scrape to scrape while the container's metadata stays the same.
type labelSet struct {
	values [len(sortedLabels)]string // valid UTF-8, in the order of sortedLabels
	text   string                    // container="…",container_id="…",…,pod="…"
	scrape uint64                    // the last scrape that had it
	place  int                       // its place in that scrape's order; -1: none
}

func newLabelSet(m store.Meta, legacy bool) *labelSet {
	short := m.ID
	if len(short) > 12 {
		short = short[:12]
	}
	dockerID := "" // the earlier tool's label, for Docker's containers only
	if m.Runtime == store.RuntimeDocker {
		dockerID = m.ID
	}
	l := &labelSet{values: [...]string{m.KubeContainer, m.ContainerID(), short, m.ContainerdNamespace, dockerID, m.ImageID, m.Name, m.Namespace, m.Pod, m.PodUID}, place: -1}
	size := 0
	for i, name := range sortedLabels {
		l.values[i] = validUTF8(l.values[i])
		size += len(name) + len(`="",`) + len(l.values[i])
	}
	b := make([]byte, 0, size) // more only for escapes
	for i, name := range sortedLabels {
		if l.values[i] == "" || (legacyOnly[i] && !legacy) {
			continue // to Prometheus an empty label is no label: not written, to save the bytes
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = appendLabel(b, name, l.values[i])
	}
	l.text = string(b)
	return l
}

// row is one container of a snapshot with its labels.
type row struct {
	c *store.Container
	l *labelSet
}

// compareRows orders series as client_golang does: by label values, in the
// order of the label names.
func compareRows(a, b row) int {
	if n := slices.Compare(a.l.values[:], b.l.values[:]); n != 0 {
		return n
	}
	// Tied only where invalid UTF-8 made two ids the same: the same one
	// comes first at every scrape.
	if n := strings.Compare(a.c.Meta.Runtime, b.c.Meta.Runtime); n != 0 {
		return n
	}
	return strings.Compare(a.c.Meta.ID, b.c.Meta.ID)
}

// labelCache keeps the label sets of the last scrape's containers, and the
// order of their series. Concurrent scrapes share it. A set is found by the
// container's runtime, namespace and id (a key of 48 bytes, not the whole
// metadata's 144: 69 bytes less a container, docs/performance.md), and kept
// while the rest of the metadata still gives the same labels (sameLabels).
type labelCache struct {
	legacy bool // the earlier tool's labels too
	mu     sync.Mutex
	scrape uint64
	sets   map[labelKey]*labelSet
	last   int // series in the last scrape
}

// labelKey is what, of a container's metadata, finds its label set.
type labelKey struct{ runtime, namespace, id string }

// sameLabels reports whether newLabelSet(m) would give l's labels, without
// making them: the labels that m's runtime, namespace and id decide are l's
// (its key), and each other label's value is the same.
func sameLabels(l *labelSet, m *store.Meta) bool {
	for _, f := range [...]struct {
		at int // in sortedLabels
		v  string
	}{{0, m.KubeContainer}, {5, m.ImageID}, {6, m.Name}, {7, m.Namespace}, {8, m.Pod}, {9, m.PodUID}} {
		if f.v != l.values[f.at] && (utf8.ValidString(f.v) || validUTF8(f.v) != l.values[f.at]) {
			return false
		}
	}
	return true
}

// rows returns the containers with their labels, in the order of
// compareRows. Sorting 10,000 containers at every scrape would cost more
// than writing them: the containers of the last scrape keep their order,
// and only those new since are sorted, and merged in.
func (lc *labelCache) rows(cs []store.Container) []row {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.sets == nil {
		lc.sets = map[labelKey]*labelSet{}
	}
	lc.scrape++
	known := make([]row, lc.last) // by place, with gaps for the containers gone
	var added []row
	for i := range cs {
		m := &cs[i].Meta
		k := labelKey{m.Runtime, m.ContainerdNamespace, m.ID}
		l := lc.sets[k]
		if l == nil || !sameLabels(l, m) {
			l = newLabelSet(*m, lc.legacy)
			lc.sets[k] = l
		}
		l.scrape = lc.scrape
		if l.place >= 0 {
			known[l.place] = row{&cs[i], l}
		} else {
			added = append(added, row{&cs[i], l})
		}
	}
	known = slices.DeleteFunc(known, func(r row) bool { return r.l == nil })
	slices.SortFunc(added, compareRows)
	rows := mergeRows(known, added)
	// Two series with the same labels would make the scrape invalid.
	out := rows[:0]
	for _, r := range rows {
		if len(out) > 0 && out[len(out)-1].l.text == r.l.text {
			r.l.place = -1
			continue
		}
		r.l.place = len(out)
		out = append(out, r)
	}
	lc.last = len(out)
	if len(lc.sets) > len(cs) {
		for m, l := range lc.sets {
			if l.scrape != lc.scrape {
				delete(lc.sets, m)
			}
		}
	}
	return out
}

// mergeRows merges two lists in the order of compareRows.
func mergeRows(a, b []row) []row {
	if len(b) == 0 {
		return a
	}
	out := make([]row, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if compareRows(b[0], a[0]) < 0 {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}
