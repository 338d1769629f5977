package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// What held the memory (issue 24), from real kills on this host's kernel:
// the record of each kill says, in one sentence, what held most of the
// container's 32 MiB, from the kernel's own report (its "Memory cgroup
// stats" and its task dump).
func TestWhatHeldTheMemory(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t, "--no-containerd")
	const wait = "while [ ! -e /tmp/go ]; do sleep 0.05; done; "
	for _, tc := range []struct {
		name, script string
		flags        []string
		held         string // what the sentence begins with, or holds
		tasks        int    // at least this many tasks in the dump
	}{
		{
			name:   "a process's own memory",
			script: wait + "dd if=/dev/zero of=/dev/null bs=64M count=1; echo done; sleep 100000",
			held:   `anonymous memory of "dd" (pid `,
			tasks:  2,
		},
		{
			// /dev/shm is a tmpfs: what is written there is charged to the
			// container as shmem, and no process's own.
			name:   "a tmpfs filled",
			flags:  []string{"--shm-size", "128m"},
			script: wait + "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64; rm -f /dev/shm/fill; echo done; sleep 100000",
			held:   "shmem ",
			tasks:  2,
		},
		{
			// 30 shells of about 1.2 MiB each: none holds a tenth.
			name: "many small processes",
			script: wait + `for i in $(seq 30); do sh -c 'v=$(head -c 1200000 /dev/zero | tr "\000" a); sleep 100000' & done; ` +
				`sleep 3; echo done; sleep 100000`,
			held:  " processes, the largest ",
			tasks: 20,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := run(t, tc.flags, tc.script)
			e.waitCounts(t, id, counts{})
			docker(t, "exec", id, "touch", "/tmp/go")
			waitLog(t, id, "done")
			var k apiKill
			eventually(t, 30*time.Second, func() error {
				ks, err := e.kills("container=" + id)
				if err != nil {
					return err
				}
				for _, x := range ks {
					if x.From == "kernel_log" {
						k = x
						return nil
					}
				}
				return fmt.Errorf("no record from the kernel log of %.12s yet: %+v", id, ks)
			})
			if k.Scope == "" {
				// The host's other kills used up the kernel's 10 reports in
				// 5 s: this one was printed without its report.
				t.Logf("the kernel printed the kill without its report: what held the memory is not known (held_by %q)", k.HeldBy)
				if k.HeldBy != "" || len(k.Tasks) != 0 {
					t.Errorf("a kill without a report says held_by %q, %d tasks", k.HeldBy, len(k.Tasks))
				}
				return
			}
			t.Logf("held by: %s; %d tasks of %d listed", k.HeldBy, len(k.Tasks), k.TasksTotal)
			if !strings.Contains(k.HeldBy, tc.held) || (tc.held != " processes, the largest " && !strings.HasPrefix(k.HeldBy, tc.held)) {
				t.Errorf("held_by %q, want %q", k.HeldBy, tc.held)
			}
			if k.TasksTotal < tc.tasks || len(k.Tasks) == 0 || len(k.Tasks) > 10 {
				t.Errorf("%d tasks listed of %d, want at least %d in the dump and at most 10 listed", len(k.Tasks), k.TasksTotal, tc.tasks)
			}
			if k.Held == nil {
				t.Fatalf("no breakdown of the cgroup's memory")
			}
			switch tc.held {
			case "shmem ":
				if k.Held.ShmemBytes < 16<<20 {
					t.Errorf("shmem %d bytes, want most of the 32 MiB", k.Held.ShmemBytes)
				}
			default:
				if k.Held.AnonBytes < 16<<20 {
					t.Errorf("anon %d bytes, want most of the 32 MiB", k.Held.AnonBytes)
				}
			}
		})
	}
}
