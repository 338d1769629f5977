package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/missing-container-metrics/missing-container-metrics/internal/pages"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
)

// The chart, installed by helm (as a library) into the node's apiserver with
// the image built from this checkout: for each set of values that matters,
// the DaemonSet's pod becomes Ready on the node with the chart's own security
// context, mounts and probes, runs as they say, and its sources are up.
func TestChart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		// sources that must be up
		sources []string
		// what the exporter's container may do (the chart's default: root
		// with CAP_SYSLOG alone)
		priv privilege
		// setUp runs before the install, in the release's namespace, and
		// returns more values.
		setUp func(t *testing.T, ns string, e *exporter) map[string]any
		check func(t *testing.T, ns string, e *exporter)
	}{
		{
			name:    "defaults: the node's runtime at its socket, the kernel's counters, the kernel log through syslog(2), root with CAP_SYSLOG alone",
			sources: []string{env.node.Runtime(), "cgroup", "kmsg"},
			check:   wantKillDescribed,
		},
		{
			name:    "the kernel log off: nobody, no capability",
			values:  map[string]any{"sources": map[string]any{"kernel": map[string]any{"log": "none"}}},
			sources: []string{env.node.Runtime(), "cgroup"},
			priv:    unprivileged,
		},
		{
			name: "Docker Engine: the Docker socket",
			values: map[string]any{"sources": map[string]any{
				"docker":     map[string]any{"enabled": true, "socket": strings.TrimPrefix(env.runtimes.DockerHost, "unix://")},
				"containerd": map[string]any{"enabled": false}}},
			sources: []string{"docker", "cgroup", "kmsg"},
			check: func(t *testing.T, ns string, e *exporter) {
				// A container of that dockerd is exported with its id.
				ctx := ctxFor(t, 2*time.Minute)
				id, err := env.runtimes.Docker(ctx, "run", "-d", "--network", "none", "--cgroup-parent", env.h.CgroupParent(),
					busyboxImage, "sleep", "600")
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _, _ = env.runtimes.Docker(context.Background(), "rm", "-f", id) }()
				e.until(t, time.Minute, func(s *scrape) error {
					if _, err := s.one("container_restarts_total", map[string]string{"container_id": "docker://" + id}); err != nil {
						return err
					}
					return nil
				})
			},
		},
		{
			name:    "the kernel log from /dev/kmsg, in a privileged container",
			values:  map[string]any{"sources": map[string]any{"kernel": map[string]any{"log": "kmsg"}}},
			sources: []string{"containerd", "cgroup", "kmsg"},
			priv:    privileged,
			check:   wantKillDescribed,
		},
		{
			name:    "web config from a Secret of one's own: TLS and basic auth",
			sources: []string{"containerd", "cgroup", "kmsg"},
			setUp: func(t *testing.T, ns string, e *exporter) map[string]any {
				e.user, e.password, e.scheme = "prometheus", randomName("pw"), "https"
				hash, err := bcrypt.GenerateFromPassword([]byte(e.password), bcrypt.MinCost)
				if err != nil {
					t.Fatal(err)
				}
				crt, key, _, pool := tlsCert(t, "missing-container-metrics")
				e.tls = &tls.Config{RootCAs: pool, ServerName: "missing-container-metrics"}
				web := fmt.Sprintf("tls_server_config:\n  cert_file: /etc/missing-container-metrics/web/tls.crt\n"+
					"  key_file: /etc/missing-container-metrics/web/tls.key\nbasic_auth_users:\n  %s: %s\n", e.user, hash)
				secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mcm-web"},
					Data: map[string][]byte{"web-config.yml": []byte(web), "tls.crt": crt, "tls.key": key}}
				if _, err := env.client.CoreV1().Secrets(ns).Create(ctxFor(t, time.Minute), secret, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				return map[string]any{"webConfig": map[string]any{"existingSecret": "mcm-web"}}
			},
			check: func(t *testing.T, ns string, e *exporter) {
				pod := e.currentPod()
				if p := pod.Spec.Containers[0].ReadinessProbe; p == nil || p.TCPSocket == nil {
					t.Errorf("with basic auth the probes must only check the port: %+v", p)
				}
				wantAuth(t, e)
			},
		},
		{
			name: "web config from values: basic auth, the chart's Secret",
			setUp: func(t *testing.T, ns string, e *exporter) map[string]any {
				e.user, e.password = "prometheus", randomName("pw")
				hash, err := bcrypt.GenerateFromPassword([]byte(e.password), bcrypt.MinCost)
				if err != nil {
					t.Fatal(err)
				}
				return map[string]any{"webConfig": map[string]any{"config": map[string]any{
					"basic_auth_users": map[string]any{e.user: string(hash)}}}}
			},
			sources: []string{"containerd", "cgroup", "kmsg"},
			check: func(t *testing.T, ns string, e *exporter) {
				wantAuth(t, e)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			ns := newNamespace(t, "chart")
			e := &exporter{ns: ns, selector: "app.kubernetes.io/instance=mcm", scheme: "http"}
			values := tc.values
			if tc.setUp != nil {
				values = merge(values, tc.setUp(t, ns, e))
			}
			helmInstall(t, "mcm", ns, merge(nodeValues(), values))
			e.waitPod(t)
			t.Cleanup(func() {
				if t.Failed() {
					logPods(t, ns, e.selector)
				}
			})
			e.waitSourcesUp(t, tc.sources...)
			checkExporterPod(t, e, tc.priv)
			if tc.check != nil {
				tc.check(t, ns, e)
			}
			t.Logf("%s", time.Since(t0).Round(100*time.Millisecond))
		})
	}
}

// The chart's default socket, /run/containerd/containerd.sock, on a node
// whose containerd is elsewhere: the pod does not start, and its events say
// why (docs/deploy.md: a wrong choice shows at once). The chart mounts the
// socket alone (hostPath type Socket): also where its directory is there
// without a socket (a containerd package installed, no containerd running,
// or another runtime's shims' sockets in it).
func TestChartWrongSocket(t *testing.T) {
	if _, err := os.Stat("/run/containerd/containerd.sock"); err == nil {
		t.Skip("this host has a containerd at /run/containerd/containerd.sock: the chart's default would find one")
	}
	ns := newNamespace(t, "chart-socket")
	chart, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(helmConfig(t, ns))
	install.ReleaseName, install.Namespace = "mcm", ns
	install.WaitStrategy = kube.HookOnlyStrategy
	values := map[string]any{"image": map[string]any{"repository": env.imageRepo, "tag": env.imageTag}}
	if _, err := install.RunWithContext(ctxFor(t, 2*time.Minute), chart, values); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		uninstall := action.NewUninstall(helmConfig(t, ns))
		uninstall.WaitStrategy = kube.HookOnlyStrategy
		if _, err := uninstall.Run("mcm"); err != nil {
			t.Errorf("helm uninstall: %v", err)
		}
	})
	eventually(t, 2*time.Minute, func() error {
		evs, err := env.client.CoreV1().Events(ns).List(ctxFor(t, time.Minute), metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedMount" && strings.Contains(e.Message, "/run/containerd/containerd.sock") &&
				strings.Contains(e.Message, "hostPath type check failed") {
				t.Logf("event: %s", e.Message)
				return nil
			}
		}
		return fmt.Errorf("no FailedMount event naming the socket among %d events", len(evs.Items))
	})
	pods, err := env.client.CoreV1().Pods(ns).List(ctxFor(t, time.Minute), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if err := podReady(&p); err == nil {
			t.Errorf("pod %s is Ready without its socket", p.Name)
		}
	}
}

// The static manifests of deploy/kubernetes, applied as `kubectl apply -f
// deploy/kubernetes/` does (file by file in name order), as they are but for
// the containerd socket's hostPath (the node's containerd is not at the
// default path here): every object is made at the first try, the pod becomes
// Ready and its sources are up. The image they name is the one built from
// the checkout, tagged so.
func TestStaticManifests(t *testing.T) {
	objs := staticManifests(t)
	var ns string
	for _, o := range objs {
		if n, ok := o.(*corev1.Namespace); ok {
			ns = n.Name
		}
	}
	if ns == "" {
		t.Fatal("deploy/kubernetes makes no namespace")
	}
	ctx := ctxFor(t, 5*time.Minute)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = env.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		// The next run makes it again: wait until it is gone.
		_ = waitFor(2*time.Minute, func() error {
			if _, err := env.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
				return fmt.Errorf("namespace %s still there", ns)
			}
			return nil
		})
	})
	var selector string
	create := func(o runtime.Object) error {
		var err error
		switch o := o.(type) {
		case *corev1.Namespace:
			_, err = env.client.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			_, err = env.client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = env.client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.DaemonSet:
			_, err = env.client.AppsV1().DaemonSets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("deploy/kubernetes has a %T: apply it too", o)
		}
		return err
	}
	for _, o := range objs {
		ds, ok := o.(*appsv1.DaemonSet)
		if !ok {
			continue
		}
		replaced := false
		for _, v := range ds.Spec.Template.Spec.Volumes {
			if v.HostPath != nil && v.HostPath.Path == "/run/containerd/containerd.sock" {
				v.HostPath.Path, replaced = env.node.ContainerdAddress, true
			}
		}
		if !replaced {
			t.Fatal("the DaemonSet mounts no /run/containerd/containerd.sock")
		}
		if img := ds.Spec.Template.Spec.Containers[0].Image; img != env.manifestImage {
			t.Fatalf("image %s, want %s", img, env.manifestImage)
		}
		selector = metav1.FormatLabelSelector(ds.Spec.Selector)
	}
	var failed []runtime.Object
	for _, o := range objs {
		if err := create(o); err != nil {
			t.Errorf("kubectl apply -f deploy/kubernetes/ on a new cluster: %T: %v", o, err)
			failed = append(failed, o)
		}
	}
	// As a user would, apply again what failed, to check the rest.
	for _, o := range failed {
		if err := create(o); err != nil {
			t.Fatalf("applied again: %T: %v", o, err)
		}
	}
	e := &exporter{ns: ns, selector: selector, scheme: "http"}
	e.waitPod(t)
	t.Cleanup(func() {
		if t.Failed() {
			logPods(t, ns, selector)
		}
	})
	e.waitSourcesUp(t, "containerd", "cgroup", "kmsg")
	checkExporterPod(t, e, syslogOnly)
}

// staticManifests decodes deploy/kubernetes/*.yaml in the order kubectl
// apply -f takes them: files by name, objects as in the file (not the
// Prometheus Operator's objects: this node has no such API).
func staticManifests(t testing.TB) []runtime.Object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy/kubernetes/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/kubernetes: %v %v", files, err)
	}
	var objs []runtime.Object
	for _, f := range files {
		o, err := decodeManifests(f)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	return objs
}

func decodeManifests(path string) ([]runtime.Object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		o, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		objs = append(objs, o)
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}

// staticManifestImage is the image deploy/kubernetes's DaemonSet runs.
func staticManifestImage() (string, error) {
	objs, err := decodeManifests(filepath.Join(repoRoot, "deploy/kubernetes/daemonset.yaml"))
	if err != nil {
		return "", err
	}
	for _, o := range objs {
		if ds, ok := o.(*appsv1.DaemonSet); ok {
			return ds.Spec.Template.Spec.Containers[0].Image, nil
		}
	}
	return "", errors.New("deploy/kubernetes/daemonset.yaml holds no DaemonSet")
}

// privilege is what the exporter's container may do.
type privilege int

const (
	// syslogOnly: root with CAP_SYSLOG as its only capability, not
	// privileged: the kernel log through syslog(2), the chart's default.
	syslogOnly privilege = iota
	// unprivileged: no capability at all (nobody; root only for a Docker
	// socket whose group the chart is not told).
	unprivileged
	// privileged: /dev/kmsg from a hostPath.
	privileged
)

// checkExporterPod checks that the exporter's pod runs as its spec says, and
// sees itself as kube-state-metrics would name it: the process has the
// capabilities priv says and no other, cannot gain any, runs under seccomp
// (unless privileged), on a read-only root file system; its probes pass; and
// /metrics has the exporter's own container with its namespace, pod,
// container and container_id.
func checkExporterPod(t *testing.T, e *exporter, priv privilege) {
	t.Helper()
	pod := e.currentPod()
	st := status(pod, "exporter")
	if st == nil || st.ContainerID == "" {
		t.Fatalf("no exporter container in %s: %s", pod.Name, describeStatuses(pod))
	}
	c := pod.Spec.Containers[0]
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Errorf("the exporter has no liveness or readiness probe")
	}
	if sc := c.SecurityContext; priv != privileged && sc != nil && sc.Privileged != nil && *sc.Privileged {
		t.Errorf("the exporter's container is privileged")
	}
	pid := containerPID(t, st.ContainerID)
	proc := procStatus(t, pid)
	capEff, err := strconv.ParseUint(proc["CapEff"], 16, 64)
	if err != nil {
		t.Fatalf("CapEff %q: %v", proc["CapEff"], err)
	}
	const capSyslog = 34 // reading the kernel log
	switch priv {
	case privileged:
		if capEff&(1<<capSyslog) == 0 {
			t.Errorf("effective capabilities %s: no CAP_SYSLOG", proc["CapEff"])
		}
	case syslogOnly:
		const want = "0000000400000000"
		if proc["CapEff"] != want || proc["CapPrm"] != want || proc["CapBnd"] != want {
			t.Errorf("capabilities: effective %s, permitted %s, bounding %s; want CAP_SYSLOG alone (%s)", proc["CapEff"], proc["CapPrm"], proc["CapBnd"], want)
		}
	default:
		if capEff != 0 || proc["CapPrm"] != "0000000000000000" {
			t.Errorf("capabilities: effective %s, permitted %s; want none", proc["CapEff"], proc["CapPrm"])
		}
	}
	if priv != privileged && (proc["NoNewPrivs"] != "1" || proc["Seccomp"] != "2") {
		t.Errorf("NoNewPrivs %s, Seccomp %s; want 1 (no privilege escalation) and 2 (RuntimeDefault filter)", proc["NoNewPrivs"], proc["Seccomp"])
	}
	// nobody, in the containerd socket's group; root only where the spec says
	// (the kernel log, a Docker socket whose group the chart does not know).
	want := int64(65534)
	if sc := pod.Spec.SecurityContext; sc != nil && sc.RunAsUser != nil {
		want = *sc.RunAsUser
	}
	if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil {
		want = *sc.RunAsUser
	}
	if want == 0 && priv == unprivileged && !e.hasDocker() {
		t.Errorf("runs as root with neither the kernel log nor a Docker socket to need it")
	}
	if priv == syslogOnly && want != 0 {
		t.Errorf("uid %d: CAP_SYSLOG is lost at exec by any user but root", want)
	}
	if uid := strings.Fields(proc["Uid"]); len(uid) == 0 || uid[0] != strconv.FormatInt(want, 10) {
		t.Errorf("uid %v, want %d, as the pod spec says", uid, want)
	}
	if !rootReadOnly(t, pid) {
		t.Errorf("the root file system is writable")
	}
	e.until(t, time.Minute, func(s *scrape) error {
		labels := map[string]string{"namespace": pod.Namespace, "pod": pod.Name, "container": "exporter", "container_id": st.ContainerID}
		if _, err := s.one("container_restarts_total", labels); err != nil {
			if s.Families["container_restarts_total"] == nil && e.hasDocker() {
				return nil // the Docker source: this node's containerd is not followed
			}
			return err
		}
		return nil
	})
	// The liveness probe has run at least once by now, and never failed.
	if p := getPod(t, pod.Namespace, pod.Name); status(p, "exporter").RestartCount != 0 {
		t.Errorf("the exporter restarted: %s", describeStatuses(p))
	}
}

func (e *exporter) hasDocker() bool {
	return strings.Contains(strings.Join(e.currentPod().Spec.Containers[0].Args, " "), "--docker ")
}

// containerPID is the main process of the node's container id (containerd://…, cri-o://…).
func containerPID(t testing.TB, id string) int {
	t.Helper()
	pid, err := env.node.ContainerPID(ctxFor(t, time.Minute), strings.TrimPrefix(id, env.node.Runtime()+"://"))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// procStatus is /proc/PID/status.
func procStatus(t testing.TB, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// rootReadOnly says whether the process's root is mounted read-only.
func rootReadOnly(t testing.TB, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			return strings.HasPrefix(f[5], "ro")
		}
	}
	t.Fatalf("no root mount in /proc/%d/mountinfo", pid)
	return false
}

// wantAuth checks that /metrics asks for the credentials, and takes them.
func wantAuth(t *testing.T, e *exporter) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	code, _, err := fetch(ctx, e.url(), "", "", e.tls)
	if err != nil || code != 401 {
		t.Errorf("/metrics without credentials: %d %v, want 401", code, err)
	}
	code, _, err = fetch(ctx, e.url(), e.user, "wrong", e.tls)
	if err != nil || code != 401 {
		t.Errorf("/metrics with a wrong password: %d %v, want 401", code, err)
	}
	if _, err := e.scrape(ctx); err != nil {
		t.Errorf("/metrics with the credentials: %v", err)
	}
}

// tlsCert makes a CA and a server certificate for name (a host name or an
// IP address); it returns the certificate and key, the CA (PEM) and a pool
// with the CA.
func tlsCert(t testing.TB, name string) (crt, key, caPEM []byte, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(name); ip != nil {
		leaf.IPAddresses = []net.IP{ip}
	} else {
		leaf.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool
}

// wantKillDescribed kills a worker of a new pod, as fluentd's are killed, and
// finds the kill described in full: its victim by name in
// container_oom_kills_by_process_total, and on /api/v1/kills the record a
// user reads on /kills: the process, not the main one, the container lived
// on, the container's own limit hit, with the usage and the limit. The kernel
// reports at most 10 kills in full in 5 s, host-wide, and other tests' kills
// may overwrite its ring before it is read: a kill it did not describe in
// full is tried again in a new pod, up to 5 times. The count is exact each
// time.
func wantKillDescribed(t *testing.T, ns string, e *exporter) {
	for attempt := 1; ; attempt++ {
		name := fmt.Sprintf("victim-%d", attempt)
		victim := "mcm-" + randomName("k")[2:]
		rec := newRecords(t)
		createPod(t, ns, newPod(name, rec, corev1.RestartPolicyNever,
			container("worker", `until [ -e /rec/go ]; do sleep 0.1; done; `+oomKill(victim)+`; [ $? = 137 ] && echo oom >> /rec/ooms; exec sleep 600`)))
		// The container known first, so that the kill is placed in it.
		labels := map[string]string{"namespace": ns, "pod": name, "container": "worker"}
		e.until(t, 2*time.Minute, func(s *scrape) error {
			_, err := s.one("container_restarts_total", labels)
			return err
		})
		rec.touch(t, "go")
		rec.waitLines(t, 2*time.Minute, "ooms", "oom", 1)
		e.until(t, time.Minute, func(s *scrape) error {
			if v, err := s.one("container_ooms_total", labels); err != nil || v != 1 {
				return fmt.Errorf("container_ooms_total %v (%v), want 1", v, err)
			}
			return nil
		})
		// The record, its outcome decided: from the kernel log where the
		// kernel's report was still in its ring when read.
		var k pages.APIKill
		err := waitFor(90*time.Second, func() error {
			kills, err := e.kills(ns, name)
			if err != nil {
				return err
			}
			if len(kills) != 1 {
				return fmt.Errorf("%d records of the pod's kill, want 1: %+v", len(kills), kills)
			}
			k = kills[0]
			if k.From != "kernel_log" || k.Outcome == "" {
				return fmt.Errorf("the record, from %s, outcome %q: not yet from the kernel log with its outcome", k.From, k.Outcome)
			}
			return nil
		})
		if err != nil && k.From == "" {
			t.Fatal(err)
		}
		if err != nil || k.Victim == nil || k.Victim.Name == "" || k.LimitBytes == nil {
			if attempt == 5 {
				t.Fatalf("in 5 pods, the kernel never reported a kill in full (other tests' kills): %s (%v)", describe(k), err)
			}
			t.Logf("attempt %d: the kernel log did not report the kill in full (%s, %v); again", attempt, describe(k), err)
			continue
		}
		// The pod's limit is its one container's: the kernel names either.
		if k.Victim.Name != victim || k.MainProcess == nil || *k.MainProcess || k.Outcome != "lived_on" ||
			(k.Scope != "container" && k.Scope != "pod") || *k.LimitBytes != uint64(memoryLimit.Value()) || k.UsageBytes == nil || *k.UsageBytes == 0 {
			t.Errorf("the record of %s's kill: %s\nwant the victim %s, not the main process, lived_on, the container's or the pod's limit of %d bytes and a usage", name, describe(k), victim, memoryLimit.Value())
		}
		e.until(t, time.Minute, func(s *scrape) error {
			v, err := s.one("container_oom_kills_by_process_total", map[string]string{"namespace": ns, "pod": name, "process": victim})
			if err != nil || v != 1 {
				return fmt.Errorf("kills of %s: %v (%v)", victim, v, err)
			}
			return nil
		})
		t.Logf("attempt %d: %s killed in %s, described in full: %s", attempt, victim, name, k.HeldBy)
		return
	}
}

// describe is what a test says of a kill's record.
func describe(k pages.APIKill) string {
	deref := func(p *uint64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	mainProcess := any(nil)
	if k.MainProcess != nil {
		mainProcess = *k.MainProcess
	}
	victim := ""
	if k.Victim != nil {
		victim = k.Victim.Name
	}
	return fmt.Sprintf("from %s, victim %q, main process %v, outcome %q, scope %q, usage %v, limit %v", k.From, victim, mainProcess, k.Outcome, k.Scope, deref(k.UsageBytes), deref(k.LimitBytes))
}

// kills reads the exporter's records of the kills in a pod.
func (e *exporter) kills(ns, pod string) ([]pages.APIKill, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	u := strings.TrimSuffix(e.url(), "/metrics") + "/api/v1/kills?" + url.Values{"namespace": {ns}, "pod": {pod}}.Encode()
	code, body, err := fetch(ctx, u, e.user, e.password, e.tls)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("%s: HTTP %d: %s", u, code, body)
	}
	var r pages.APIKills
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return r.Kills, nil
}
