package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const unitBinary = "/usr/local/bin/missing-container-metrics"

// unitCopy writes the unit with ExecStart pointing at a built exporter, since
// systemd-analyze verify checks that the program exists.
func unitCopy(t *testing.T) string {
	t.Helper()
	unit := string(readFile(t, systemdUnit))
	if !strings.Contains(unit, "ExecStart="+unitBinary+" ") {
		t.Fatalf("%s: ExecStart does not start %s", systemdUnit, unitBinary)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, filepath.Base(systemdUnit))
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(unit, unitBinary, exporterBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// systemd-analyze verify: the unit loads, and names no unknown key or bad value
// (those are only warnings to systemd, so any output fails).
func TestSystemdUnitVerifies(t *testing.T) {
	sa := need(t, "systemd-analyze", "systemd")
	out, err := run(t, time.Minute, sa, "verify", unitCopy(t))
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// systemd-analyze security rates the sandboxing from 0 (tight) to 10 (none).
func TestSystemdUnitIsConfined(t *testing.T) {
	sa := need(t, "systemd-analyze", "systemd")
	p := unitCopy(t)
	out, err := run(t, time.Minute, sa, "security", "--offline=yes", "--threshold=20", p)
	if err != nil {
		t.Fatalf("exposure above 2.0 (or systemd-analyze failed): %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	t.Logf("exposure level %s (0 = confined, 10 = not at all)", m[1])
}

// readEnvFile reads an EnvironmentFile: KEY=VALUE lines, # comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not KEY=VALUE: %q", path, line)
		}
		env[k] = v
	}
	return env
}

// The environment file names variables the exporter reads (a misspelled one would be
// ignored in silence), and the unit passes flags it knows.
func TestSystemdSettingsAreTheExportersOwn(t *testing.T) {
	env := readEnvFile(t, systemdEnvFile)
	var names []string
	for k := range env {
		if k != "MCM_ARGS" { // the unit's own: extra flags on ExecStart
			names = append(names, k)
		}
	}
	checkEnv(t, systemdEnvFile, names)
	if args := strings.Fields(env["MCM_ARGS"]); len(args) > 0 {
		checkArgs(t, systemdEnvFile+" MCM_ARGS", args)
	}
	// Commented-out settings, too.
	for _, line := range strings.Split(string(readFile(t, systemdEnvFile)), "\n") {
		if k, _, ok := strings.Cut(strings.TrimPrefix(line, "#"), "="); ok && strings.HasPrefix(line, "#") && regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`).MatchString(k) {
			checkEnv(t, systemdEnvFile+" (commented out)", []string{k})
		}
	}
}

// The unit's settings run the exporter against a real dockerd: the one of the test
// harness (scripts/harness.sh), with only the address and the socket changed.
func TestSystemdSettingsRunTheExporter(t *testing.T) {
	dockerHost := os.Getenv("MCM_TEST_DOCKER_HOST")
	if dockerHost == "" {
		msg := "MCM_TEST_DOCKER_HOST is not set: run through scripts/test.sh, which starts the harness's dockerd"
		if underCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	env := readEnvFile(t, systemdEnvFile)
	env["MISSING_CONTAINER_METRICS_WEB_LISTEN_ADDRESS"] = addr
	env["DOCKER_HOST"] = dockerHost
	cmd := exec.Command(exporterBinary(t), strings.Fields(env["MCM_ARGS"])...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := get("http://" + addr + "/metrics")
		if err == nil && strings.Contains(body, `missing_container_metrics_source_up{source="docker"} 1`) {
			return
		}
		select {
		case <-done:
			t.Fatalf("the exporter exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no docker source up within 30s (last: %v)\nlog:\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}
