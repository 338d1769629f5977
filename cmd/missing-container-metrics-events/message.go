package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
)

// Reasons of the Events, one a kill.
const (
	// ReasonOOMKilled: the kill ended the container: its main process was
	// killed, a memory.oom.group kill took every process, or a wrapper
	// exited as its child was killed (the kubelet shows OOMKilled as its
	// last state).
	ReasonOOMKilled = "OOMKilled"
	// ReasonProcessOOMKilled: the container lived on (the kubelet shows
	// nothing).
	ReasonProcessOOMKilled = "ProcessOOMKilled"
	// ReasonOOMKill: which of the two is not known (neither the kernel log
	// nor the runtime told).
	ReasonOOMKill = "OOMKill"
)

// maxMessage bounds an Event's message: what the events.k8s.io API takes
// for a note.
const maxMessage = 1024

// Reason is the Event's reason for k.
func Reason(k pipe.Kill) string {
	switch k.Outcome {
	case "ended":
		return ReasonOOMKilled
	case "lived_on":
		return ReasonProcessOOMKilled
	}
	return ReasonOOMKill
}

// Message is the Event's message for k: which process was killed in which
// container, whether the container lived on, whose memory limit was hit,
// with its usage and limit, and what triggered the kill. Process and cgroup
// names are quoted: anyone who runs a process chooses its name, and a
// container's own cgroups (a systemd or a Docker in it) are named by its
// tenant.
func Message(k pipe.Kill) string {
	var b strings.Builder
	if k.Process != "" {
		fmt.Fprintf(&b, "Process %s (pid %d on the node) in container %s was OOM-killed", strconv.Quote(k.Process), k.PID, k.Container)
	} else {
		fmt.Fprintf(&b, "A process in container %s was OOM-killed", k.Container)
	}
	main := k.MainProcess != nil && *k.MainProcess
	switch {
	case k.Outcome == "" && k.Process == "":
		fmt.Fprintf(&b, "; which one, and whether the container lived on, is not known: only %s told of it, not the kernel log", from(k.From))
	case k.Outcome == "":
		b.WriteString("; whether the container lived on is not known")
	case k.Outcome == "lived_on":
		b.WriteString(": the container lived on")
	case k.Group != "":
		fmt.Fprintf(&b, ": a memory.oom.group kill of cgroup %s took every process in the container", strconv.Quote(k.Group))
		if len(k.Members) > 0 {
			quoted := make([]string, len(k.Members))
			for i, m := range k.Members {
				quoted[i] = strconv.Quote(m)
			}
			fmt.Fprintf(&b, " (%d: %s)", len(k.Members), strings.Join(quoted, ", "))
		}
		b.WriteString(", and the container died of it")
	case main:
		b.WriteString(": it was the container's main process, and the container died of it")
	case k.Process != "":
		b.WriteString(": the container's main process exited by SIGKILL right after it (a wrapper whose child was killed), and the container died of it")
	default:
		b.WriteString(": the container died of it")
	}
	b.WriteString(".")
	if limit := scope(k); limit != "" {
		fmt.Fprintf(&b, " Limit hit: %s", limit)
		if k.Usage != nil && k.Limit != nil {
			fmt.Fprintf(&b, ", usage %s of %s", bytesIEC(*k.Usage), bytesIEC(*k.Limit))
		}
		b.WriteString(".")
	}
	if k.HeldBy != "" {
		fmt.Fprintf(&b, " Held by: %s.", k.HeldBy)
	}
	if k.Trigger != "" {
		fmt.Fprintf(&b, " Triggered by %s (pid %d).", strconv.Quote(k.Trigger), k.TriggerPID)
	}
	if k.Before != "" {
		b.WriteString(" " + k.Before)
	}
	m := b.String()
	if len(m) > maxMessage {
		// Cut before a character, not inside one: half a character
		// is no text (JSON makes it U+FFFD).
		n := maxMessage - 3
		for n > 0 && !utf8.RuneStart(m[n]) {
			n--
		}
		m = m[:n] + "..."
	}
	return m
}

// scope says whose memory limit was hit.
func scope(k pipe.Kill) string {
	switch k.Scope {
	case "container":
		return "the container's memory limit"
	case "pod":
		return "the pod's memory limit"
	case "ancestor":
		if k.LimitCgroup != "" {
			return "the memory limit of cgroup " + strconv.Quote(k.LimitCgroup) + ", above the pod's"
		}
		return "a memory limit above the pod's"
	case "node":
		return "node memory (no limit: the node ran out)"
	}
	return ""
}

// from names what told of a kill the kernel log did not describe.
func from(f string) string {
	switch f {
	case "cgroup counter":
		return "the container's cgroup OOM counter"
	case "runtime":
		return "the container runtime"
	}
	return strconv.Quote(f)
}

// bytesIEC writes n in binary units, as kubectl shows memory: 32 MiB, 1.5 GiB.
func bytesIEC(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + units[i:i+1] + "iB"
}
