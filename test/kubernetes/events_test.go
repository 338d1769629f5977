package kubernetes

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Kubernetes records no Event for an OOM kill (kubernetes/kubernetes#69676),
// and of a worker killed while its container lives on the kubelet shows
// nothing at all. With the chart's kubernetes.events.enabled the exporter
// records a Warning Event on the Pod that names the process and says that
// the container lived on; kubectl get events shows it. The companion does
// so as the pod's service account, with only what the chart's ClusterRole
// grants, and asks for this node's pods only.
func TestEvents(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	ns := newNamespace(t, "events")
	api := startAPIProxy(t)
	ca := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mcm-api-ca"}, Data: map[string]string{"ca.crt": string(api.caPEM)}}
	if _, err := env.client.CoreV1().ConfigMaps(ns).Create(ctxFor(t, time.Minute), ca, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e := installExporter(t, "mcm", ns, map[string]any{
		"kubernetes": map[string]any{"events": map[string]any{"enabled": true}},
		// The victim's name comes from the kernel log.
		"sources": map[string]any{"kernel": map[string]any{"kmsg": map[string]any{"enabled": true}}},
		// The apiserver's address as a pod sees it (the node has no kube-proxy).
		"extraEnv": []any{
			map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": api.host},
			map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": api.port},
		},
	}, serviceAccountAdmission{caConfigMap: ca.Name})
	e.waitSourcesUp(t, "containerd", "cgroup", "kmsg")
	e.until(t, time.Minute, func(s *scrape) error {
		if v, err := s.one("missing_container_metrics_kubernetes_events_companion_up", nil); err != nil || v != 1 {
			return fmt.Errorf("companion up = %v (%v)", v, err)
		}
		return nil
	})

	// The workload, in a namespace of its own: the role is cluster-wide.
	// The kernel reports at most 10 kills in full in 5 s, host-wide (then
	// only the victim's line: no limit, usage or trigger), and its log is a
	// ring that a burst of kills elsewhere on the host (other tests)
	// overwrites before it is read (then not even which process). The Event
	// then says only what is known; such a kill is tried again, in a pod of
	// its own, a few times.
	wns := newNamespace(t, "events-worker")
	var pod *corev1.Pod
	var ev corev1.Event
	var victim, name string
	attempts := 0
	for attempt := 1; ; attempt++ {
		attempts = attempt
		name = fmt.Sprintf("fluentd-%d", attempt)
		victim = "mcm-" + randomName("k")[2:]
		pod, ev = workerKilled(t, e, wns, name, victim)
		described := ev.Reason != "OOMKill" && strings.Contains(ev.Message, "Limit hit: ")
		if described || attempt == 5 {
			break
		}
		if ev.Reason == "OOMKill" && (!strings.Contains(ev.Message, "is not known") || !strings.Contains(ev.Message, "not the kernel log")) {
			t.Errorf("the Event does not say that the process is not known:\n%s", ev.Message)
		}
		t.Logf("attempt %d: the kernel log did not describe the kill in full (%s); again", attempt, ev.Message)
	}
	t.Logf("Event %s %s: %s", ev.Type, ev.Reason, ev.Message)
	obj := ev.InvolvedObject
	if ev.Type != corev1.EventTypeWarning || ev.Reason != "ProcessOOMKilled" || ev.Count != 1 || ev.Source.Host != env.node.Name {
		t.Errorf("Event %s %s, count %d, from host %q: want one Warning ProcessOOMKilled from %s", ev.Type, ev.Reason, ev.Count, ev.Source.Host, env.node.Name)
	}
	if obj.Kind != "Pod" || obj.UID != pod.UID || obj.FieldPath != "spec.containers{worker}" {
		t.Errorf("Event on %+v, want container worker of pod %s", obj, pod.UID)
	}
	for _, want := range []string{
		"Process " + strconv.Quote(victim) + " (pid ",
		"in container worker was OOM-killed: the container lived on.",
		" memory limit, usage ",
		" of 32 MiB.",
	} {
		if !strings.Contains(ev.Message, want) {
			t.Errorf("the Event's message does not say %q:\n%s", want, ev.Message)
		}
	}
	// The container's limit is the pod's (one container); the pod's cgroup
	// also holds the sandbox's memory, so the kernel finds either over it.
	if !strings.Contains(ev.Message, "Limit hit: the container's memory limit") && !strings.Contains(ev.Message, "Limit hit: the pod's memory limit") {
		t.Errorf("the Event's message names neither the container's limit nor the pod's:\n%s", ev.Message)
	}

	// What a user types.
	out, err := runCmd(t, filepath.Join(os.Getenv("MCM_KUBERNETES_BIN_DIR"), "kubectl"), "--kubeconfig", env.node.Kubeconfig,
		"-n", wns, "get", "events", "--field-selector", "involvedObject.name="+name)
	if err != nil || !strings.Contains(out, "ProcessOOMKilled") || !strings.Contains(out, "pod/"+name) || !strings.Contains(out, strconv.Quote(victim)) {
		t.Errorf("kubectl get events does not show the kill (%v):\n%s", err, out)
	}

	// The kubelet's account: nothing happened.
	p := waitSettled(t, wns, name, "worker", 0)
	st := status(p, "worker")
	if st.RestartCount != 0 || st.LastTerminationState.Terminated != nil || st.State.Running == nil {
		t.Errorf("the kubelet shows a termination: %s", describeStatuses(p))
	}
	evs, err := env.client.CoreV1().Events(wns).List(ctxFor(t, time.Minute), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range evs.Items {
		if o.Source.Component != "missing-container-metrics" && (strings.Contains(o.Reason, "OOM") || strings.Contains(o.Message, "OOM")) {
			t.Errorf("%s told of the kill after all: %s %s", o.Source.Component, o.Reason, o.Message)
		}
	}
	e.until(t, time.Minute, func(s *scrape) error {
		// Other tests' pods on the node may have had kills too.
		if v, err := s.one("missing_container_metrics_kubernetes_events_sent_total", nil); err != nil || v < float64(attempts) {
			return fmt.Errorf("kills sent to the companion: %v (%v), want at least %d", v, err, attempts)
		}
		return nil
	})

	// Every request the companion made is one the chart's role grants, and
	// it asked for pods of this node only.
	roles, err := env.client.RbacV1().ClusterRoles().List(ctxFor(t, time.Minute), metav1.ListOptions{LabelSelector: e.selector})
	if err != nil {
		t.Fatal(err)
	}
	var rules []rbacv1.PolicyRule
	for _, r := range roles.Items {
		if strings.HasPrefix(r.Name, ns+"-") {
			rules = append(rules, r.Rules...)
		}
	}
	reqs := api.requests()
	if !slices.ContainsFunc(reqs, func(r apiRequest) bool { return r.verb == "create" && r.resource == "events" }) {
		t.Errorf("no Event created through the pod's own API access: %+v", reqs)
	}
	for _, r := range reqs {
		if !allows(rules, r) {
			t.Errorf("%s %s: not granted by the chart's ClusterRole %+v", r.method, r.url, rules)
		}
		if r.resource == "pods" && !strings.Contains(r.fieldSelector, "spec.nodeName="+env.node.Name) {
			t.Errorf("%s %s: pods not of this node only", r.method, r.url)
		}
	}
	t.Logf("%d API requests of the companion; %s", len(reqs), time.Since(t0).Round(100*time.Millisecond))
}

// workerKilled runs a pod whose worker process victim is OOM-killed while
// its container lives on, and returns the pod and the one Event on it from
// missing-container-metrics. The kill waits until the exporter knows the
// container: from its runtime, and its memory cgroup watched. (A kill
// before its cgroup is first read counts, but as a kill from before the
// exporter looked, which gets no record and no Event.)
func workerKilled(t *testing.T, e *exporter, ns, name, victim string) (*corev1.Pod, corev1.Event) {
	t.Helper()
	watched := func(s *scrape) float64 {
		v, _ := s.one("missing_container_metrics_containers", map[string]string{"source": "cgroup"})
		return v
	}
	var before float64
	e.until(t, time.Minute, func(s *scrape) error { before = watched(s); return nil })
	rec := newRecords(t)
	pod := createPod(t, ns, newPod(name, rec, corev1.RestartPolicyAlways,
		container("worker", `until [ -e /rec/go ]; do sleep 0.1; done; `+oomKill(victim)+`; [ $? = 137 ] && echo oom >> /rec/ooms; exec sleep 100000`)))
	e.until(t, 2*time.Minute, func(s *scrape) error {
		if _, err := s.one("container_restarts_total", map[string]string{"namespace": ns, "pod": name, "container": "worker"}); err != nil {
			return err
		}
		if n := watched(s); n <= before {
			return fmt.Errorf("%v containers' cgroups watched, %v before the pod", n, before)
		}
		return nil
	})
	rec.touch(t, "go")
	rec.waitLines(t, 2*time.Minute, "ooms", "oom", 1)
	var ev corev1.Event
	eventually(t, 2*time.Minute, func() error {
		evs, err := env.client.CoreV1().Events(ns).List(ctxFor(t, time.Minute), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name + ",source=missing-container-metrics"})
		if err != nil {
			return err
		}
		if len(evs.Items) == 0 {
			return errors.New("no Event from missing-container-metrics yet")
		}
		if len(evs.Items) > 1 {
			return errStop{fmt.Errorf("%d Events for one kill: %+v", len(evs.Items), evs.Items)}
		}
		ev = evs.Items[0]
		return nil
	})
	return pod, ev
}

// runCmd runs a program and returns its combined output.
func runCmd(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctxFor(t, time.Minute), name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// serviceAccountAdmission mounts the service account token into a pod that
// asks for it (automountServiceAccountToken), as the ServiceAccount
// admission plugin of every cluster does. The harness's apiserver runs
// without it (test pods need no token, nor a default service account), so
// this post-renderer does it for the chart's DaemonSet, with the CA of
// caConfigMap, the apiserver's as the pods reach it.
type serviceAccountAdmission struct{ caConfigMap string }

func (a serviceAccountAdmission) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	out := &bytes.Buffer{}
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, err
		}
		if len(obj) == 0 {
			continue // only comments
		}
		if obj["kind"] == "DaemonSet" {
			if err := a.mount(obj); err != nil {
				return nil, err
			}
			if doc, err = yaml.Marshal(obj); err != nil {
				return nil, err
			}
		}
		out.WriteString("---\n")
		out.Write(doc)
	}
}

// mount adds the token's volume to the DaemonSet's pods, if they ask for it.
func (a serviceAccountAdmission) mount(ds map[string]any) error {
	var spec corev1.PodSpec
	specMap, ok := ds["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	if !ok {
		return errors.New("DaemonSet without spec.template.spec")
	}
	b, err := yaml.Marshal(specMap)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, &spec); err != nil {
		return err
	}
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		return nil
	}
	expiry := int64(3607)
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &expiry}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: a.caConfigMap},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		}}}})
	for i := range spec.Containers {
		spec.Containers[i].VolumeMounts = append(spec.Containers[i].VolumeMounts, corev1.VolumeMount{
			Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true})
	}
	if b, err = yaml.Marshal(spec); err != nil {
		return err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return err
	}
	ds["spec"].(map[string]any)["template"].(map[string]any)["spec"] = m
	return nil
}

// apiProxy is the apiserver as the node's pods reach it: at the pod
// network's gateway (the apiserver listens on 127.0.0.1 alone, and the node
// has no kube-proxy for its Service), with a certificate for that address.
// It passes each request on, credentials and all, and keeps what was asked.
type apiProxy struct {
	host, port string
	caPEM      []byte

	mu   sync.Mutex
	reqs []apiRequest
}

// apiRequest is one request through the proxy, as RBAC sees it.
type apiRequest struct {
	method, url                   string
	verb, resource, fieldSelector string
}

func startAPIProxy(t *testing.T) *apiProxy {
	t.Helper()
	subnet, err := netip.ParsePrefix(env.node.PodSubnet)
	if err != nil {
		t.Fatal(err)
	}
	gw := subnet.Masked().Addr().Next().String()
	crt, key, caPEM, _ := tlsCert(t, gw)
	cert, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(env.node.Server)
	if err != nil {
		t.Fatal(err)
	}
	caData, err := os.ReadFile(env.node.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	apiCA := x509.NewCertPool()
	if !apiCA.AppendCertsFromPEM(caData) {
		t.Fatalf("no certificate in %s", env.node.CAFile)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: apiCA}}
	l, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p := &apiProxy{caPEM: caPEM}
	p.host, p.port, _ = net.SplitHostPort(l.Addr().String())
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.Lock()
			p.reqs = append(p.reqs, requestOf(r))
			p.mu.Unlock()
			rp.ServeHTTP(w, r)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: time.Minute,
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *apiProxy) requests() []apiRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

// requestOf reads a request to a namespaced core/v1 resource as the
// apiserver's authorizer does; anything else has no verb.
func requestOf(r *http.Request) apiRequest {
	req := apiRequest{method: r.Method, url: r.URL.String(), fieldSelector: r.URL.Query().Get("fieldSelector")}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 5 || len(parts) > 6 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" {
		return req
	}
	req.resource = parts[4]
	named := len(parts) == 6
	switch {
	case r.Method == http.MethodGet && named:
		req.verb = "get"
	case r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		req.verb = "watch"
	case r.Method == http.MethodGet:
		req.verb = "list"
	case r.Method == http.MethodPost && !named:
		req.verb = "create"
	case r.Method == http.MethodPatch && named:
		req.verb = "patch"
	case r.Method == http.MethodPut && named:
		req.verb = "update"
	case r.Method == http.MethodDelete:
		req.verb = "delete"
	}
	return req
}

// allows says whether a rule grants the request (core API group).
func allows(rules []rbacv1.PolicyRule, r apiRequest) bool {
	if r.verb == "" {
		return false
	}
	return slices.ContainsFunc(rules, func(rule rbacv1.PolicyRule) bool {
		return slices.Contains(rule.APIGroups, "") &&
			(slices.Contains(rule.Resources, r.resource) || slices.Contains(rule.Resources, "*")) &&
			(slices.Contains(rule.Verbs, r.verb) || slices.Contains(rule.Verbs, "*"))
	})
}
