package deploy_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"
)

// arm64Binary is what `make build GOARCH=arm64` writes, and what the Dockerfile copies
// into the arm64 image; arm64Companion the Kubernetes Events companion beside it.
const (
	arm64Binary    = "../bin/linux-arm64/missing-container-metrics"
	arm64Companion = "../bin/linux-arm64/missing-container-metrics-events"
)

// The arm64 build, as the release makes it: the binary of `make build GOARCH=arm64`
// run under Debian's qemu-user-static, and the image of `make image GOARCH=arm64`
// (BuildKit, as buildx builds each platform of the release's image) on the
// harness's dockerd.
func TestArm64(t *testing.T) {
	v := readVersion(t)
	if out, err := run(t, 10*time.Minute, "make", "-C", "..", "build", "GOARCH=arm64"); err != nil {
		t.Fatalf("make build GOARCH=arm64: %v\n%s", err, out)
	}
	for _, bin := range []string{arm64Binary, arm64Companion} {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		machine := f.Machine
		f.Close()
		if machine != elf.EM_AARCH64 {
			t.Fatalf("%s is for %v, not arm64", bin, machine)
		}
	}

	t.Run("binary under qemu", func(t *testing.T) {
		qemu := need(t, "qemu-aarch64-static", "qemu-user-static")
		out, err := run(t, 2*time.Minute, qemu, arm64Binary, "--version")
		if err != nil {
			t.Fatalf("--version: %v\n%s", err, out)
		}
		if !strings.Contains(out, "version "+v+" ") || !strings.Contains(out, "platform:         linux/arm64") {
			t.Errorf("--version does not say version %s on linux/arm64:\n%s", v, out)
		}
		out, err = run(t, 2*time.Minute, qemu, arm64Companion, "--version")
		if err != nil || !strings.Contains(out, "missing-container-metrics-events, version "+v+" ") {
			t.Errorf("the companion's --version: %v\n%s", err, out)
		}
		serveUnderQemu(t, qemu, v)
	})

	t.Run("image", func(t *testing.T) {
		dockerHost := os.Getenv("MCM_TEST_DOCKER_HOST")
		if dockerHost == "" {
			msg := "MCM_TEST_DOCKER_HOST is not set: run through scripts/test.sh, which starts the harness's dockerd"
			if underCI() {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		docker := buildkitDocker(t, dockerHost)
		image := fmt.Sprintf("missing-container-metrics-test:arm64-%d", os.Getpid())
		build := exec.Command("make", "-C", "..", "image", "GOARCH=arm64", "IMAGE="+image, "DOCKER="+docker)
		build.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("make image GOARCH=arm64: %v\n%s", err, out)
		}
		dockerCmd := func(args ...string) (string, error) {
			cmd := exec.Command(docker, args...)
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err != nil {
				err = fmt.Errorf("docker %s: %w: %s", args[0], err, stderr.String())
			}
			return stdout.String(), err
		}
		t.Cleanup(func() { _, _ = dockerCmd("rmi", "-f", image) })
		cfg, err := dockerCmd("image", "inspect", "-f", `{{.Os}}/{{.Architecture}} {{.Config.User}} {{json .Config.Entrypoint}} {{len .RootFS.Layers}}`, image)
		if err != nil {
			t.Fatal(err)
		}
		if want := `linux/arm64 65534:65534 ["/bin/missing-container-metrics"] 1`; strings.TrimSpace(cfg) != want {
			t.Errorf("image config %q, want %q", strings.TrimSpace(cfg), want)
		}
		saved, err := dockerCmd("save", image)
		if err != nil {
			t.Fatal(err)
		}
		for _, bin := range []string{arm64Binary, arm64Companion} {
			got, err := fileInSavedImage([]byte(saved), "bin/"+path.Base(bin))
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != sha256.Sum256(readFile(t, bin)) {
				t.Errorf("the image's /bin/%s is not %s", path.Base(bin), bin)
			}
		}
	})
}

// serveUnderQemu runs the arm64 exporter on 127.0.0.1, without sources, until
// /healthz answers and /metrics says it is the arm64 build of the version.
func serveUnderQemu(t *testing.T, qemu, version string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(qemu, arm64Binary, "--web.listen-address="+addr, "--no-docker", "--no-containerd", "--no-kernel")
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := get("http://" + addr + "/healthz")
		if err == nil {
			break
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("the exporter exited (%v):\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer within a minute (last: %v)\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, err := get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	info := ""
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "missing_container_metrics_build_info{") {
			info = line
		}
	}
	if !strings.Contains(info, `goarch="arm64"`) || !strings.Contains(info, `version="`+version+`"`) {
		t.Errorf("build info %q: want goarch arm64, version %s", info, version)
	}
	// A clean stop on SIGTERM, as the kubelet and docker stop it.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("exit after SIGINT: %v\n%s", err, logs.String())
		}
	case <-time.After(time.Minute):
		t.Errorf("no exit within a minute of SIGINT\n%s", logs.String())
	}
}

// buildkitDocker returns a docker CLI that builds with BuildKit for another
// platform: one with the buildx plugin, else Debian's docker.io CLI (20.10), which
// uses dockerd's own BuildKit under DOCKER_BUILDKIT=1.
func buildkitDocker(t *testing.T, dockerHost string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, docker := range []string{"docker", "/usr/bin/docker"} {
		if exec.CommandContext(ctx, docker, "buildx", "version").Run() == nil {
			return docker
		}
		cmd := exec.CommandContext(ctx, docker, "version", "-f", "{{.Client.Version}}")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost)
		out, err := cmd.Output()
		major, _, _ := strings.Cut(strings.TrimSpace(string(out)), ".")
		if n, convErr := strconv.Atoi(major); err == nil && convErr == nil && n < 23 {
			return docker
		}
	}
	msg := "no docker CLI that builds with BuildKit: Debian's docker.io (20.10), or one with the buildx plugin"
	if underCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// fileInSavedImage returns a file of the image's layers from `docker save` output.
func fileInSavedImage(saved []byte, name string) ([]byte, error) {
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(saved))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[h.Name] = b
	}
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		return nil, fmt.Errorf("docker save: manifest.json: %v", err)
	}
	for _, layer := range manifest[0].Layers {
		lr := tar.NewReader(bytes.NewReader(files[layer]))
		for {
			h, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", layer, err)
			}
			if path.Clean(h.Name) == name {
				return io.ReadAll(lr)
			}
		}
	}
	return nil, fmt.Errorf("no %s in the image's layers", name)
}
