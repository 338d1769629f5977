package kernel

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readKmsgFile reads a testdata file of /dev/kmsg records: one record a
// line, continuation lines (" KEY=VALUE") indented, # comments.
func readKmsgFile(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, " ") && len(recs) > 0:
			recs[len(recs)-1] = append(recs[len(recs)-1], []byte(line+"\n")...)
		default:
			recs = append(recs, []byte(line+"\n"))
		}
	}
	return recs
}

// goldenParents are the cgroup parents the captures' containers ran in, as
// --kernel.cgroup-parent would give them: the test harness's, under
// /process_api on the machines the captures come from.
var goldenParents = []string{"/process_api"}

// victimsOf runs a file's records through the OOM log reader and describes
// what it finds, one line a victim or event.
func victimsOf(t testing.TB, path string) string {
	var out strings.Builder
	var log oomLog
	for _, raw := range readKmsgFile(t, path) {
		r, err := ParseRecord(raw)
		if err != nil {
			fmt.Fprintf(&out, "malformed: %v\n", err)
			continue
		}
		v, ended, lost := log.add(r)
		if lost > 0 {
			fmt.Fprintf(&out, "lost %d records before seq %d\n", lost, r.Seq)
		}
		if ended != 0 {
			fmt.Fprintf(&out, "report %d ended\n", ended)
		}
		if v == nil {
			continue
		}
		where := "host"
		if c, ok := ParseContainerPath(v.CgroupPath, goldenParents); ok {
			where = fmt.Sprintf("%s://%.12s", c.Runtime, c.ID)
		} else if v.CgroupPath == "" {
			where = "unknown"
		}
		fmt.Fprintf(&out, "seq=%d t=%s pid=%d process=%q cgroup=%q guessed=%v member=%v -> %s in report %d\n",
			v.Seq, v.Time, v.PID, v.Process, v.CgroupPath, v.Guessed, v.Member, where, v.ReportSeq)
		if m := v.Memory; m.Known {
			fmt.Fprintf(&out, "    rss anon=%d file=%d shmem=%d uid=%d oom_score_adj=%d (known %v)\n", m.AnonRSS, m.FileRSS, m.ShmemRSS, m.UID, m.OOMScoreAdj, m.HasOOMScoreAdj)
		}
		if v.Group != "" {
			fmt.Fprintf(&out, "    group %q\n", v.Group)
		}
		if r := v.Report; r != nil {
			fmt.Fprintf(&out, "    report %d: trigger pid=%d process=%q constraint=%s limit_cgroup=%q global=%v", r.Seq, r.TriggerPID, r.TriggerProcess, r.Constraint, r.LimitCgroup, r.Global)
			if r.HasUsage {
				fmt.Fprintf(&out, " usage=%d limit=%d", r.Usage, r.Limit)
			}
			fmt.Fprintln(&out)
			if b := r.Breakdown; b != nil {
				fmt.Fprintf(&out, "    held: anon=%d file=%d shmem=%d kernel=%d sock=%d pagetables=%d slab=%d file_mapped=%d file_dirty=%d swap=%d v2=%v\n",
					b.Anon, b.File, b.Shmem, b.Kernel, b.Sock, b.PageTables, b.Slab, b.FileMapped, b.FileDirty, b.Swap, b.V2)
			}
			if r.DumpTasks > 0 {
				fmt.Fprintf(&out, "    dump of %d tasks:", r.DumpTasks)
				for _, t := range r.Tasks {
					fmt.Fprintf(&out, " %d/%d %q uid=%d rss=%d", t.PID, t.TGID, t.Name, t.UID, t.RSS)
					if t.HasParts {
						fmt.Fprintf(&out, " (anon=%d file=%d shmem=%d)", t.Anon, t.File, t.Shmem)
					}
					fmt.Fprintf(&out, " swap=%d adj=%d;", t.Swap, t.OOMScoreAdj)
				}
				fmt.Fprintln(&out)
			}
		} else {
			fmt.Fprintln(&out, "    no report")
		}
	}
	if ended := log.idle(); ended != 0 {
		fmt.Fprintf(&out, "report %d ended (idle)\n", ended)
	}
	return out.String()
}

// The victims found in real records of several kernels (and reconstructed
// ones of older kernels) are written in testdata/*.victims; run with
// UPDATE_GOLDEN=1 to write them again, and read the diff.
func TestKernelLogsOfSeveralVersions(t *testing.T) {
	files, err := filepath.Glob("testdata/*.kmsg")
	if err != nil || len(files) < 6 {
		t.Fatalf("testdata: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			got := victimsOf(t, f)
			golden := strings.TrimSuffix(f, ".kmsg") + ".victims"
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (UPDATE_GOLDEN=1 writes it)", err)
			}
			if got != string(want) {
				t.Errorf("victims differ from %s:\n%s", golden, got)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	r, err := ParseRecord([]byte("3,4409,1252194416,-,caller=T123;Killed process 1 (a\\x5cb\\xff)\n SUBSYSTEM=memory\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 4409 || r.Time != 1252194416*time.Microsecond || r.Text != "Killed process 1 (a\\b\xff)" {
		t.Fatalf("%+v", r)
	}
	for _, bad := range []string{"", ";", "1,2;x", "x,1,2,-;m", "1,x,2,-;m", "1,2,x,-;m", "1,2,-5,-;m", "1,2,99999999999999999999,-;m"} {
		if _, err := ParseRecord([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseKilled(t *testing.T) {
	for line, want := range map[string]string{
		"Memory cgroup out of memory: Killed process 7 (dd) total-vm:1kB, anon-rss:1kB":  "7 dd",
		"Killed process 7 (a) b) total-vm:1kB":                                           "7 a) b",
		"Killed process 7 (node), UID 1000, total-vm:606096kB":                           "7 node",
		"Out of memory (oom_kill_allocating_task): Killed process 7 (x y) total-vm:1kB,": "7 x y",
		"Killed process 7 (x)":                                "7 x",
		"Killed process 7 x":                                  "",
		"Killed process -1 (x) total-vm:1kB":                  "",
		"oom_reaper: reaped process 7 (dd), now anon-rss:0kB": "",
		"Memory cgroup out of memory: Kill process 7 (dd) score 1 or sacrifice child": "",
	} {
		pid, comm, _, ok := parseKilled(line)
		got := ""
		if ok {
			got = fmt.Sprint(pid, " ", comm)
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", line, got, want)
		}
	}
}

// A burst of kills whose reports were rate-limited after the first: the
// later Killed lines have no cgroup, and must not take the first's.
func TestRateLimitedReportsAreNotGuessed(t *testing.T) {
	var l oomLog
	recs := []Record{
		{Seq: 1, Text: "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/docker/a,task_memcg=/docker/a,task=dd,pid=5,uid=0"},
		{Seq: 2, Text: "Memory cgroup out of memory: Killed process 5 (dd) total-vm:1kB"},
		{Seq: 3, Text: "Memory cgroup out of memory: Killed process 6 (dd) total-vm:1kB"},
	}
	var got []Victim
	for _, r := range recs {
		if v, _, _ := l.add(r); v != nil {
			got = append(got, *v)
		}
	}
	if len(got) != 2 || got[0].CgroupPath != "/docker/a" || got[1].CgroupPath != "" {
		t.Fatalf("%+v", got)
	}
	// A group kill's members come within its window only.
	l = oomLog{}
	recs = []Record{
		{Seq: 1, Time: 0, Text: "Tasks in /g are going to be killed due to memory.oom.group set"},
		{Seq: 2, Time: time.Second, Text: "Memory cgroup out of memory: Killed process 7 (a) total-vm:1kB"},
		{Seq: 3, Time: 10 * time.Second, Text: "Memory cgroup out of memory: Killed process 8 (b) total-vm:1kB"},
	}
	got = nil
	for _, r := range recs {
		if v, _, _ := l.add(r); v != nil {
			got = append(got, *v)
		}
	}
	if len(got) != 2 || got[0].CgroupPath != "/g" || !got[0].Guessed || got[1].CgroupPath != "" {
		t.Fatalf("%+v", got)
	}
}

// FuzzKernelLog feeds arbitrary records to the parser and the OOM log
// reader: nothing panics, every victim has a positive pid and a name the
// kernel could print, and only the kernel's own records name one. As a
// plain test it runs over the seeds: every record of testdata.
func FuzzKernelLog(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.kmsg")
	for _, file := range files {
		for _, r := range readKmsgFile(f, file) {
			f.Add(r, r)
		}
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var l oomLog
		for _, raw := range [][]byte{a, b, a} {
			r, err := ParseRecord(raw)
			if err != nil {
				continue
			}
			v, _, _ := l.add(r)
			switch {
			case v == nil:
			case v.PID <= 0:
				t.Fatalf("victim with pid %d from %q", v.PID, raw)
			case len(v.Process) > maxComm:
				t.Fatalf("victim named %q, longer than the kernel's %d bytes, from %q", v.Process, maxComm, raw)
			case r.Facility != facilityKernel:
				t.Fatalf("victim from a record of facility %d: %q", r.Facility, raw)
			}
		}
	})
}
