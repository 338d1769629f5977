// Package pipe is the pipe between the exporter and its Kubernetes Events
// companion (cmd/missing-container-metrics-events): the message of one OOM
// kill, written as one JSON object a line to the companion's standard
// input, and the exporter's end, which runs the companion and keeps it
// running.
//
// The companion is a program of its own because it links client-go, which
// would add some 5 MB of resident memory to every exporter (docs/deploy.md,
// "Kubernetes Events"); this package must never import client-go.
package pipe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Kill is one OOM kill in a Kubernetes pod's container, as the exporter
// tells the companion. A nil pointer or an empty string is not known.
type Kill struct {
	Time        time.Time `json:"time"` // the kernel's time of the kill, else when the exporter learned of it
	Namespace   string    `json:"namespace"`
	Pod         string    `json:"pod"`
	PodUID      string    `json:"pod_uid"`
	Container   string    `json:"container"`
	ContainerID string    `json:"container_id"` // <runtime>://<id>, as the kubelet writes it
	Process     string    `json:"process,omitempty"`
	PID         int       `json:"pid,omitempty"`
	// MainProcess: the victim was the container's main process; false:
	// another process.
	MainProcess *bool `json:"main_process,omitempty"`
	// Outcome is what became of the container: "ended" (the kill ended
	// it), "lived_on", or empty where it is not known (store.Outcome*).
	Outcome string `json:"outcome,omitempty"`
	// Members are the names of the processes a memory.oom.group kill took
	// in the container, the victim first; empty for the kill of one.
	Members []string `json:"members,omitempty"`
	// Scope is whose limit was hit: container, pod, ancestor or node
	// (store.Scope*); LimitCgroup that cgroup.
	Scope       string  `json:"scope,omitempty"`
	LimitCgroup string  `json:"limit_cgroup,omitempty"`
	Usage       *uint64 `json:"usage_bytes,omitempty"` // of the cgroup whose limit was hit
	Limit       *uint64 `json:"limit_bytes,omitempty"`
	// Trigger is the process whose allocation invoked the OOM killer.
	Trigger    string `json:"trigger,omitempty"`
	TriggerPID int    `json:"trigger_pid,omitempty"`
	// Group is the cgroup of a memory.oom.group kill: all of its processes
	// were killed.
	Group string `json:"group,omitempty"`
	// HeldBy says in one sentence what held most of the memory.
	HeldBy string `json:"held_by,omitempty"`
	// Before says in one sentence what the container's cgroup counted of
	// memory pressure in the minute before the kill.
	Before string `json:"before,omitempty"`
	// From says what told of the kill: "kernel log", "cgroup counter" or
	// "runtime" (store.From*).
	From string `json:"from"`
}

// MaxLine bounds a line on the pipe; a kill takes well under 2 KiB.
const MaxLine = 64 << 10

// Encode writes k as one line.
func Encode(w io.Writer, k Kill) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ErrLineTooLong is a line longer than MaxLine; it is skipped.
var ErrLineTooLong = errors.New("line longer than 64 KiB")

// Read calls f for each kill read from r until r ends (nil) or fails. A
// line that is no kill is passed to bad, with why, and skipped.
func Read(r io.Reader, f func(Kill), bad func(line []byte, err error)) error {
	return lines(r, func(line []byte, tooLong bool) {
		if tooLong {
			bad(line[:200], ErrLineTooLong)
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return
		}
		var k Kill
		if err := json.Unmarshal(line, &k); err != nil {
			bad(line, err)
		} else if err := k.check(); err != nil {
			bad(line, err)
		} else {
			f(k)
		}
	})
}

// lines calls f with each line of r, without its newline, until r ends
// (nil) or fails. A line longer than MaxLine is passed cut, with tooLong,
// and the rest of it skipped. line is valid only during the call.
func lines(r io.Reader, f func(line []byte, tooLong bool)) error {
	br := bufio.NewReaderSize(r, MaxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			f(line, true)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		} else if len(line) > 0 {
			f(bytes.TrimSuffix(line, []byte("\n")), false)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// check refuses a kill that names no pod: the companion has nothing to
// record it on.
func (k Kill) check() error {
	if k.Namespace == "" || k.Pod == "" || k.PodUID == "" {
		return fmt.Errorf("no namespace, pod or pod UID")
	}
	return nil
}
