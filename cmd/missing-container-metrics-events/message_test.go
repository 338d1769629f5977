package main

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
)

func ptr[T any](v T) *T { return &v }

func TestReasonAndMessage(t *testing.T) {
	base := pipe.Kill{Namespace: "logging", Pod: "fluentd-0", PodUID: "u", Container: "fluentd", ContainerID: "containerd://abc"}
	for _, tc := range []struct {
		name    string
		kill    func(k *pipe.Kill)
		reason  string
		message string
	}{
		{
			name: "a worker, the container's limit",
			kill: func(k *pipe.Kill) {
				k.Process, k.PID, k.MainProcess, k.From, k.Outcome = "ruby", 4242, ptr(false), "kernel log", "lived_on"
				k.Scope, k.Usage, k.Limit = "container", ptr(uint64(32<<20)), ptr(uint64(32<<20))
				k.Trigger, k.TriggerPID = "ruby", 4242
			},
			reason:  "ProcessOOMKilled",
			message: `Process "ruby" (pid 4242 on the node) in container fluentd was OOM-killed: the container lived on. Limit hit: the container's memory limit, usage 32 MiB of 32 MiB. Triggered by "ruby" (pid 4242).`,
		},
		{
			name: "a worker, and what came before it",
			kill: func(k *pipe.Kill) {
				k.Process, k.PID, k.MainProcess, k.From, k.Outcome = "ruby", 4242, ptr(false), "kernel log", "lived_on"
				k.Trigger, k.TriggerPID = "ruby", 4242
				k.Before = "In the 72 s before the kill the container hit its limit 1204 times and waited for memory 3.1 s, 2.0 s of it with every process stalled."
			},
			reason:  "ProcessOOMKilled",
			message: `Process "ruby" (pid 4242 on the node) in container fluentd was OOM-killed: the container lived on. Triggered by "ruby" (pid 4242). In the 72 s before the kill the container hit its limit 1204 times and waited for memory 3.1 s, 2.0 s of it with every process stalled.`,
		},
		{
			name: "the main process, the pod's limit",
			kill: func(k *pipe.Kill) {
				k.Process, k.PID, k.MainProcess, k.From, k.Outcome = "java", 77, ptr(true), "kernel log", "ended"
				k.Scope, k.Usage, k.Limit = "pod", ptr(uint64(1536<<20)), ptr(uint64(1536<<20)+4096)
			},
			reason:  "OOMKilled",
			message: `Process "java" (pid 77 on the node) in container fluentd was OOM-killed: it was the container's main process, and the container died of it. Limit hit: the pod's memory limit, usage 1.5 GiB of 1.5 GiB.`,
		},
		{
			name: "node memory, a group kill under tini",
			kill: func(k *pipe.Kill) {
				k.Process, k.PID, k.MainProcess, k.From, k.Scope, k.Outcome = "worker", 9, ptr(false), "kernel log", "node", "ended"
				k.Group, k.Members = "/kubepods/pod-u/abc", []string{"worker", "tini"}
			},
			reason:  "OOMKilled",
			message: `Process "worker" (pid 9 on the node) in container fluentd was OOM-killed: a memory.oom.group kill of cgroup "/kubepods/pod-u/abc" took every process in the container (2: "worker", "tini"), and the container died of it. Limit hit: node memory (no limit: the node ran out).`,
		},
		{
			name: "a wrapper's child",
			kill: func(k *pipe.Kill) {
				k.Process, k.PID, k.MainProcess, k.From, k.Outcome = "java", 9, ptr(false), "kernel log", "ended"
			},
			reason:  "OOMKilled",
			message: `Process "java" (pid 9 on the node) in container fluentd was OOM-killed: the container's main process exited by SIGKILL right after it (a wrapper whose child was killed), and the container died of it.`,
		},
		{
			name: "another cgroup's limit",
			kill: func(k *pipe.Kill) {
				k.Process, k.PID, k.MainProcess, k.From, k.Outcome = "dd", 5, ptr(false), "kernel log", "lived_on"
				k.Scope, k.LimitCgroup, k.Usage, k.Limit = "ancestor", "/kubepods/burstable", ptr(uint64(1000)), ptr(uint64(2048))
			},
			reason:  "ProcessOOMKilled",
			message: `Process "dd" (pid 5 on the node) in container fluentd was OOM-killed: the container lived on. Limit hit: the memory limit of cgroup "/kubepods/burstable", above the pod's, usage 1000 B of 2 KiB.`,
		},
		{
			name:    "only the counter",
			kill:    func(k *pipe.Kill) { k.From = "cgroup counter" },
			reason:  "OOMKill",
			message: `A process in container fluentd was OOM-killed; which one, and whether the container lived on, is not known: only the container's cgroup OOM counter told of it, not the kernel log.`,
		},
		{
			name:    "only the runtime",
			kill:    func(k *pipe.Kill) { k.From = "runtime" },
			reason:  "OOMKill",
			message: `A process in container fluentd was OOM-killed; which one, and whether the container lived on, is not known: only the container runtime told of it, not the kernel log.`,
		},
		{
			name:    "named, main process not known",
			kill:    func(k *pipe.Kill) { k.Process, k.PID, k.From = "sh", 3, "kernel log" },
			reason:  "OOMKill",
			message: `Process "sh" (pid 3 on the node) in container fluentd was OOM-killed; whether the container lived on is not known.`,
		},
		{
			name: "a process name made to mislead",
			kill: func(k *pipe.Kill) {
				k.Process, k.PID, k.MainProcess, k.From, k.Outcome = "x\nWarning OK\x1b[", 6, ptr(false), "kernel log", "lived_on"
			},
			reason:  "ProcessOOMKilled",
			message: `Process "x\nWarning OK\x1b[" (pid 6 on the node) in container fluentd was OOM-killed: the container lived on.`,
		},
		{
			// A tenant names the cgroups inside its container (a systemd or a
			// Docker in it); the kill's limit and group may be one of them.
			name: "cgroup names made to mislead",
			kill: func(k *pipe.Kill) {
				k.Process, k.PID, k.MainProcess, k.From, k.Outcome = "w", 7, ptr(false), "kernel log", "ended"
				k.Scope, k.LimitCgroup, k.Usage, k.Limit = "ancestor", "/kubepods/x. Fine.\nWarning", ptr(uint64(1)), ptr(uint64(1))
				k.Group = "/kubepods/pod-u/abc/y was killed. OK"
			},
			reason:  "OOMKilled",
			message: `Process "w" (pid 7 on the node) in container fluentd was OOM-killed: a memory.oom.group kill of cgroup "/kubepods/pod-u/abc/y was killed. OK" took every process in the container, and the container died of it. Limit hit: the memory limit of cgroup "/kubepods/x. Fine.\nWarning", above the pod's, usage 1 B of 1 B.`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := base
			tc.kill(&k)
			if got := Reason(k); got != tc.reason {
				t.Errorf("reason %s, want %s", got, tc.reason)
			}
			if got := Message(k); got != tc.message {
				t.Errorf("message\n%s\nwant\n%s", got, tc.message)
			}
		})
	}
}

// A message is at most maxMessage bytes, cut with "...", and still UTF-8:
// never half a character. Names of 2, 3 and 4 bytes a character, at every
// offset, put a character across the cut.
func TestMessageIsBounded(t *testing.T) {
	for _, r := range []string{"a", "é", "€", "𝄞"} {
		for pad := range 4 {
			k := pipe.Kill{Container: "c", Process: "p", MainProcess: ptr(false), Scope: "ancestor",
				LimitCgroup: "/" + strings.Repeat("a", pad) + strings.Repeat(r, 5000)}
			m := Message(k)
			if len(m) > maxMessage || len(m) < maxMessage-3 || !strings.HasSuffix(m, "...") || !utf8.ValidString(m) {
				t.Errorf("%q, %d: a message of %d bytes, valid UTF-8 %v, ending %q", r, pad, len(m), utf8.ValidString(m), m[len(m)-8:])
			}
		}
	}
}

func TestBytesIEC(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 32 << 20: "32 MiB",
		33550000: "32 MiB", 3 << 30: "3 GiB", 5 << 40: "5 TiB", 1<<64 - 1: "16 EiB"} {
		if got := bytesIEC(n); got != want {
			t.Errorf("%d: %s, want %s", n, got, want)
		}
	}
}
