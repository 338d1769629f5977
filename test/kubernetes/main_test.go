// Package kubernetes runs the exporter as users deploy it on Kubernetes — the
// Helm chart and the static manifests of deploy/, the image built from this
// checkout — on a real single-node Kubernetes that test/harness starts (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet on a
// containerd of its own), and checks what it counts against the kubelet's own
// account and the workloads' own records.
//
// The node's binaries and a Prometheus with Kubernetes service discovery:
// test/kubernetes/prepare.sh (MCM_KUBERNETES_BIN_DIR, MCM_PROMETHEUS).
// Without them, or without root, the tests skip and say why; under CI=true
// they fail instead. scripts/test.sh runs them.
//
// With MCM_KUBERNETES_RUNTIME=cri-o the node runs on CRI-O instead
// (MCM_CRIO_BIN_DIR: test/crio/prepare.sh), and the chart follows it:
// scripts/test.sh runs the chart's defaults and the count tests there too.
// The tests that read containerd's own records (ctr) are the containerd
// node's.
package kubernetes

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/test/harness"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// env is what TestMain started.
var env struct {
	h        *harness.Harness
	runtimes *harness.Runtimes
	node     *harness.Node
	client   clientset.Interface
	config   *rest.Config
	// The exporter's image as built from this checkout, in the node's containerd.
	imageRepo, imageTag string
	// The image the static manifests name, tagged to the same image.
	manifestImage string
	// records holds the workloads' own records, a hostPath per pod.
	records string
	// runtimeClass is the RuntimeClass of the test pods: on CRI-O,
	// conmonOverhead's; else none.
	runtimeClass string
}

// repoRoot is the checkout, from test/kubernetes.
const repoRoot = "../.."

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	flag.Parse()
	if why := prerequisites(); why != "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "kubernetes: %s (a missing prerequisite is a failure under CI)\n", why)
			return 1
		}
		fmt.Fprintf(os.Stderr, "kubernetes: %s; skipping\n", why)
		return 0
	}
	t0 := time.Now()
	h, err := harness.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubernetes:", err)
		return 1
	}
	h.Logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s harness: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	env.h = h
	var closeOnce sync.Once
	closeHarness := func() {
		closeOnce.Do(func() {
			if err := h.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "kubernetes: stopping the harness:", err)
			}
		})
	}
	defer closeHarness()
	// go test's -timeout ends the binary without deferred calls: stop the
	// node a minute before, so that no daemon outlives the tests.
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 2*time.Minute {
			timer := time.AfterFunc(d-time.Minute, func() {
				fmt.Fprintln(os.Stderr, "kubernetes: the test timeout is near: stopping the node")
				closeHarness()
			})
			defer timer.Stop()
		}
	}
	if err := setUp(); err != nil {
		fmt.Fprintln(os.Stderr, "kubernetes: setting up:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "kubernetes: node, runtimes and image ready in %.1fs\n", time.Since(t0).Seconds())
	return m.Run()
}

// prerequisites says what is missing, or "".
func prerequisites() string {
	if os.Geteuid() != 0 {
		return "needs root (cgroups, mounts, a network bridge)"
	}
	bin := os.Getenv("MCM_KUBERNETES_BIN_DIR")
	if bin == "" || os.Getenv("MCM_PROMETHEUS") == "" {
		return "MCM_KUBERNETES_BIN_DIR or MCM_PROMETHEUS is not set: run `eval \"$(test/kubernetes/prepare.sh)\"` (it builds the Kubernetes binaries and Prometheus once) or scripts/test.sh"
	}
	var missing []string
	for _, p := range []string{"etcd", "containerd", "dockerd", "docker", "ctr", "runc", "make", os.Getenv("MCM_PROMETHEUS")} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if _, err := os.Stat(filepath.Join(bin, "kubelet")); err != nil {
		missing = append(missing, filepath.Join(bin, "kubelet"))
	}
	if len(missing) > 0 {
		return "missing " + strings.Join(missing, ", ") + " (test/kubernetes/prepare.sh and scripts/install-deps.sh install them)"
	}
	switch r := os.Getenv("MCM_KUBERNETES_RUNTIME"); r {
	case "", "containerd":
	case "cri-o":
		if os.Getenv("MCM_CRIO_BIN_DIR") == "" {
			return "MCM_KUBERNETES_RUNTIME=cri-o without MCM_CRIO_BIN_DIR: run `eval \"$(test/crio/prepare.sh)\"` (it builds CRI-O once) or scripts/test.sh"
		}
	default:
		return fmt.Sprintf("MCM_KUBERNETES_RUNTIME=%q: containerd or cri-o", r)
	}
	return ""
}

// crioBinDir is CRI-O's binaries when the node runs on CRI-O, else "".
func crioBinDir() string {
	if os.Getenv("MCM_KUBERNETES_RUNTIME") == "cri-o" {
		return os.Getenv("MCM_CRIO_BIN_DIR")
	}
	return ""
}

// kubeletConfig is the node's kubelet's configuration on top of the harness's:
// the crash loop back-off capped at 1 s (alpha gate KubeletCrashLoopBackOffMax)
// and pods synced every 3 s (it restarts a crashed container at a sync), so
// that a crash loop restarts within seconds instead of minutes. The kubelet's
// restart counting is the same.
var kubeletConfig = map[string]any{
	"featureGates":     map[string]bool{"KubeletCrashLoopBackOffMax": true},
	"crashLoopBackOff": map[string]any{"maxContainerRestartPeriod": "1s"},
	"syncFrequency":    "3s",
}

func setUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h := env.h
	var err error
	t0 := time.Now()
	if env.runtimes, err = h.StartRuntimes(ctx); err != nil {
		return err
	}
	t1 := time.Now()
	if env.node, err = h.StartNode(ctx, harness.NodeOptions{BinDir: os.Getenv("MCM_KUBERNETES_BIN_DIR"), Kubelet: kubeletConfig,
		CRIOBinDir: crioBinDir()}); err != nil {
		return err
	}
	t2 := time.Now()
	if err := buildImage(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "kubernetes: runtimes %.1fs, node %.1fs, image %.1fs\n",
		t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), time.Since(t2).Seconds())
	if env.config, err = clientcmd.BuildConfigFromFlags("", env.node.Kubeconfig); err != nil {
		return err
	}
	env.config.QPS, env.config.Burst = 50, 100
	if env.client, err = clientset.NewForConfig(env.config); err != nil {
		return err
	}
	env.records = filepath.Join(h.Dir, "records")
	if env.node.Runtime() == "cri-o" {
		if err := conmonOverhead(ctx); err != nil {
			return err
		}
	}
	return os.MkdirAll(env.records, 0o755)
}

// conmonOverhead makes the RuntimeClass of the test pods on CRI-O: CRI-O's
// runc with 16 MiB of pod overhead, which the kubelet adds to the pod's
// memory limit. With the cgroupfs driver CRI-O puts each container's conmon
// in the pod's cgroup, and conmon here cannot keep the OOM killer off itself
// (its oom_score_adj of -1000 takes CAP_SYS_RESOURCE, which this host's root
// lacks): at a pod limit of exactly its one container's, the OOM killer took
// conmon right after the container's victim, and CRI-O never learned of the
// exit. Pod overhead is the runtime's own cost in the pod, as conmon is.
func conmonOverhead(ctx context.Context) error {
	rc := &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "crio-conmon"},
		Handler:    "runc",
		Overhead:   &nodev1.Overhead{PodFixed: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}},
	}
	if _, err := env.client.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("RuntimeClass %s: %w", rc.Name, err)
	}
	env.runtimeClass = rc.Name
	return nil
}

// buildImage builds the exporter's image (the exporter and its Kubernetes
// Events companion) from this checkout as the Makefile and the Dockerfile
// do (on the harness's dockerd, without writing into the checkout), and
// imports it into the node's containerd, also under the name the static
// manifests give.
func buildImage(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "mcm-node-image")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	arch := runtime.GOARCH
	env.imageRepo, env.imageTag = "missing-container-metrics", fmt.Sprintf("node-test-%d", os.Getpid())
	image := env.imageRepo + ":" + env.imageTag
	if err := command(ctx, repoRoot, "make", "build", "GOARCH="+arch, "VERSION="+env.imageTag,
		"BIN_DIR="+filepath.Join(dir, "bin", "linux-"+arch)); err != nil {
		return err
	}
	dockerfile, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), dockerfile, 0o644); err != nil {
		return err
	}
	if _, err := env.runtimes.Docker(ctx, "build", "--build-arg", "TARGETOS=linux", "--build-arg", "TARGETARCH="+arch,
		"-t", image, dir); err != nil {
		return err
	}
	archive := filepath.Join(dir, "image.tar")
	if _, err := env.runtimes.Docker(ctx, "save", "-o", archive, image); err != nil {
		return err
	}
	if env.manifestImage, err = staticManifestImage(); err != nil {
		return err
	}
	return env.node.LoadImage(ctx, archive, image, env.manifestImage)
}

// command runs a command in dir and returns an error with its output.
func command(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return nil
}
