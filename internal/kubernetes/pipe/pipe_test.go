package pipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleKill() Kill {
	main := false
	usage, limit := uint64(33554432), uint64(33554432)
	return Kill{
		Time: time.Date(2026, 11, 29, 10, 0, 0, 123456789, time.UTC), Namespace: "logging", Pod: "fluentd-x7k2p",
		PodUID: "0b6f4a1e-9b1c-4c7e-8a59-2f1f5b7c9d10", Container: "fluentd", ContainerID: "containerd://4638ae6d",
		Process: "ruby", PID: 4242, MainProcess: &main, Scope: "container", LimitCgroup: "/kubepods/burstable/pod0b6f/4638ae6d",
		Usage: &usage, Limit: &limit, Trigger: "ruby", TriggerPID: 4242, From: "kernel log",
	}
}

// What the exporter writes, the companion reads back as it was.
func TestEncodeRead(t *testing.T) {
	var buf bytes.Buffer
	want := []Kill{sampleKill(), {Time: time.Unix(1, 0).UTC(), Namespace: "a", Pod: "b", PodUID: "u", From: "cgroup counter"}}
	for _, k := range want {
		if err := Encode(&buf, k); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want 2:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), `"main_process":false`) || strings.Contains(strings.Split(buf.String(), "\n")[1], "main_process") {
		t.Errorf("main_process must be false where known and absent where not:\n%s", buf.String())
	}
	var got []Kill
	if err := Read(&buf, func(k Kill) { got = append(got, k) }, func(line []byte, err error) { t.Errorf("bad line %q: %v", line, err) }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read\n%+v\nwant\n%+v", got, want)
	}
}

// A line that is no kill is reported and skipped; the lines after it are read.
func TestReadSkipsBadLines(t *testing.T) {
	var in bytes.Buffer
	in.WriteString("not json\n")
	in.WriteString(`{"namespace":"a","pod":"b"}` + "\n") // no pod UID
	in.WriteString("\n")
	in.WriteString(`{"namespace":"a","pod":"` + strings.Repeat("x", MaxLine) + `","pod_uid":"u"}` + "\n")
	_ = Encode(&in, sampleKill())
	in.WriteString(`{"namespace":"last","pod":"p","pod_uid":"u"}`) // no newline at the end
	var got []string
	var bad []error
	err := Read(&in, func(k Kill) { got = append(got, k.Namespace) }, func(line []byte, err error) {
		if len(line) > 300 {
			t.Errorf("a bad line is passed in full (%d bytes)", len(line))
		}
		bad = append(bad, err)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"logging", "last"}) {
		t.Errorf("read %v, want [logging last]", got)
	}
	if len(bad) != 3 || !errors.Is(bad[2], ErrLineTooLong) {
		t.Errorf("bad lines: %v, want 3, the last too long", bad)
	}
}

// The companion's log records, written by log/slog's JSON handler as
// promslog configures it, become the exporter's records at their level.
func TestParseRecord(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true, Level: slog.LevelDebug}))
	log.Warn("no Event: pod not found", "namespace", "ns", "count", 3, "nested", map[string]any{"a": 1})
	level, msg, attrs, err := parseRecord(bytes.TrimSpace(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if level != slog.LevelWarn || msg != "no Event: pod not found" {
		t.Errorf("level %v msg %q", level, msg)
	}
	b, _ := json.Marshal(attrs)
	if string(b) != `["namespace","ns","count",3,"nested",{"a":1}]` {
		t.Errorf("attrs %s", b)
	}
	for _, line := range []string{"panic: boom", "goroutine 1 [running]:", `{"level":"LOUD","msg":"x"}`, `{"msg":"x"} trailing`, `[1,2]`} {
		if _, _, _, err := parseRecord([]byte(line)); err == nil {
			t.Errorf("%q taken for a record", line)
		}
	}
}
