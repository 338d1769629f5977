package kubernetes

import (
	"bufio"
	"bytes"
	"context"
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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// Kubernetes records no Event for an OOM kill (kubernetes/kubernetes#69676),
// and of a worker killed while its container lives on the kubelet shows
// nothing at all. With the chart's kubernetes.events.enabled the exporter
// records a Warning Event on the Pod that names the process and says that
// the container lived on; kubectl get events shows it. The companion runs
// as a container of its own, the only one with the API token, as another
// user without capabilities; it makes the Event as the pod's service
// account, with only what the chart's ClusterRole grants (it gets the
// kill's pod by its name), and within what the chart's admission policy
// admits, which the apiserver enforces on forged Events.
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
		// The victim's name comes from the kernel log, read by default.
		"kubernetes": map[string]any{"events": map[string]any{"enabled": true, "admissionPolicy": map[string]any{"enabled": true}}},
	}, apiAccess{caConfigMap: ca.Name, host: api.host, port: api.port})
	e.waitSourcesUp(t, "containerd", "cgroup", "kmsg")
	e.until(t, time.Minute, func(s *scrape) error {
		if v, err := s.one("missing_container_metrics_kubernetes_events_companion_up", nil); err != nil || v != 1 {
			return fmt.Errorf("companion up = %v (%v)", v, err)
		}
		return nil
	})
	checkCompanionContainer(t, e.currentPod())

	// The workload, in a namespace of its own: the role is cluster-wide.
	// The kernel reports at most 10 kills in full in 5 s, host-wide (then
	// only the victim's line: no limit, usage or trigger), and its log is a
	// ring that a burst of kills elsewhere on the host (other tests)
	// overwrites before it is read (then not even which process). The Event
	// then says only what is known; such a kill is tried again, in a pod of
	// its own, a few times; so is a pod whose cgroup could not be seen
	// watched before its kill (below).
	wns := newNamespace(t, "events-worker")
	var pod *corev1.Pod
	var ev corev1.Event
	var victim, name string
	kills := 0
	for attempt := 1; ; attempt++ {
		name = fmt.Sprintf("fluentd-%d", attempt)
		victim = "mcm-" + randomName("k")[2:]
		var killed bool
		pod, ev, killed = workerKilled(t, e, wns, name, victim)
		if !killed {
			if attempt == 5 {
				t.Fatal("in 5 pods, the exporter's count of watched cgroups never told that the worker's was watched")
			}
			t.Logf("attempt %d: other pods of the node went meanwhile, and the count of watched cgroups cannot tell whether the worker's is; again", attempt)
			continue
		}
		kills++
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
		if v, err := s.one("missing_container_metrics_kubernetes_events_sent_total", nil); err != nil || v < float64(kills) {
			return fmt.Errorf("kills sent to the companion: %v (%v), want at least %d", v, err, kills)
		}
		return nil
	})

	// Every request the companion made is one the chart's role grants, and
	// of pods it got the kills' by their names.
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
		// Other tests' pods on the node may have had kills too: a get of
		// one pod by its name, in any namespace; in this test's, only of
		// the pods killed.
		name := podByName.FindStringSubmatch(r.url)
		if r.resource == "pods" && (r.verb != "get" || name == nil || (name[1] == wns && !strings.HasPrefix(name[2], "fluentd-"))) {
			t.Errorf("%s %s: not a get of a killed pod by its name", r.method, r.url)
		}
	}
	t.Logf("%d API requests of the companion; %s", len(reqs), time.Since(t0).Round(100*time.Millisecond))
	checkEventsPolicy(t, e.currentPod(), wns, pod)
}

// podByName is the path of a get of one pod by its name: its namespace and name.
var podByName = regexp.MustCompile(`^/api/v1/namespaces/([a-z0-9-]+)/pods/([a-z0-9.-]+)(\?.*)?$`)

// checkCompanionContainer checks the pod's companion as the node runs it:
// a container of its own beside the exporter's, whose processes' root
// holds the API token, as uid 65532 without capabilities, no new
// privileges and a read-only root; the exporter's holds no token.
func checkCompanionContainer(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"exporter", "events"}) {
		t.Fatalf("containers %v, want the exporter and its companion, events", names)
	}
	const token = "var/run/secrets/kubernetes.io/serviceaccount/token"
	for _, name := range names {
		st := status(pod, name)
		if st == nil || st.ContainerID == "" {
			t.Fatalf("no container %s in %s: %s", name, pod.Name, describeStatuses(pod))
		}
		pid := containerPID(t, st.ContainerID)
		_, err := os.Stat(fmt.Sprintf("/proc/%d/root/%s", pid, token))
		if has := err == nil; has != (name == "events") {
			t.Errorf("container %s: the API token there %v (%v); want it in the companion's alone", name, has, err)
		}
		if name != "events" {
			continue
		}
		proc := procStatus(t, pid)
		if uid := strings.Fields(proc["Uid"]); len(uid) == 0 || uid[0] != "65532" {
			t.Errorf("the companion runs as uid %v, want 65532", uid)
		}
		if proc["CapEff"] != "0000000000000000" || proc["CapPrm"] != "0000000000000000" || proc["NoNewPrivs"] != "1" {
			t.Errorf("the companion's capabilities: effective %s, permitted %s, no new privileges %s; want none, none, 1",
				proc["CapEff"], proc["CapPrm"], proc["NoNewPrivs"])
		}
		if !rootReadOnly(t, pid) {
			t.Errorf("the companion's root file system is writable")
		}
	}
}

// checkEventsPolicy writes Events as the companion can, with a token of its
// service account bound to its pod (which names the node): the apiserver
// admits the companion's own kind of Event, and the chart's admission
// policy denies the rest, which the role alone would grant: an Event on
// another kind of object, from another node, and a change to the kubelet's.
func checkEventsPolicy(t *testing.T, exporterPod *corev1.Pod, ns string, victim *corev1.Pod) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	tr, err := env.client.CoreV1().ServiceAccounts(exporterPod.Namespace).CreateToken(ctx, exporterPod.Spec.ServiceAccountName, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: exporterPod.Name, UID: exporterPod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.config)
	cfg.BearerToken, cfg.BearerTokenFile = tr.Status.Token, ""
	cfg.Username, cfg.Password, cfg.CertFile, cfg.KeyFile, cfg.CertData, cfg.KeyData = "", "", "", "", nil, nil
	as, err := clientset.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	event := func(name string, edit func(*corev1.Event)) *corev1.Event {
		ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: victim.Name, UID: victim.UID},
			Type:           corev1.EventTypeWarning, Reason: "OOMKill", Message: "a test of the admission policy",
			Source: corev1.EventSource{Component: "missing-container-metrics", Host: env.node.Name}, Count: 1,
			FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now()}
		if edit != nil {
			edit(ev)
		}
		return ev
	}
	if _, err := as.CoreV1().Events(ns).Create(ctx, event("mcm-policy-admits", nil), metav1.CreateOptions{}); err != nil {
		t.Errorf("the companion's kind of Event is refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*corev1.Event)
	}{
		{"another object", func(e *corev1.Event) {
			e.InvolvedObject = corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: ns, Name: "kube-root-ca.crt"}
		}},
		{"another node", func(e *corev1.Event) { e.Source.Host = "another-node" }},
		{"another component", func(e *corev1.Event) { e.Source.Component = "kubelet" }},
		{"another reason", func(e *corev1.Event) { e.Type, e.Reason = corev1.EventTypeNormal, "Started" }},
	} {
		_, err := as.CoreV1().Events(ns).Create(ctx, event("mcm-policy-"+strings.ReplaceAll(tc.name, " ", "-"), tc.edit), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
			t.Errorf("an Event on %s: %v, want it denied by the admission policy", tc.name, err)
		}
	}
	// The kubelet's Events of the victim's pod: the role grants patch, the
	// policy denies it.
	evs, err := env.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "source=kubelet"})
	if err != nil || len(evs.Items) == 0 {
		t.Fatalf("no Event of the kubelet in %s to change (%v)", ns, err)
	}
	_, err = as.CoreV1().Events(ns).Patch(ctx, evs.Items[0].Name, types.StrategicMergePatchType, []byte(`{"message":"all is well"}`), metav1.PatchOptions{})
	if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
		t.Errorf("a patch of the kubelet's Event %s: %v, want it denied by the admission policy", evs.Items[0].Name, err)
	}
}

// workerKilled runs a pod whose worker process victim is OOM-killed while
// its container lives on, and returns the pod and the one Event on it from
// missing-container-metrics. The kill waits until the exporter knows the
// container: from its runtime, and its memory cgroup watched. (A kill
// before its cgroup is first read counts, but as a kill from before the
// exporter looked, which gets no record and no Event.) The count of watched
// cgroups is the node's: where it falls meanwhile (other tests' pods went),
// it cannot tell, and workerKilled returns before the kill, with false.
func workerKilled(t *testing.T, e *exporter, ns, name, victim string) (*corev1.Pod, corev1.Event, bool) {
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
	errFell := errors.New("the count of watched cgroups fell")
	err := waitFor(2*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		s, err := e.scrape(ctx)
		if err != nil {
			return err
		}
		if _, err := s.one("container_restarts_total", map[string]string{"namespace": ns, "pod": name, "container": "worker"}); err != nil {
			return err
		}
		switch n := watched(s); {
		case n < before:
			return errStop{fmt.Errorf("%w: %v containers' cgroups watched, %v before the pod", errFell, n, before)}
		case n == before:
			return fmt.Errorf("%v containers' cgroups watched, %v before the pod", n, before)
		}
		return nil
	})
	if stop := (errStop{}); errors.As(err, &stop) && errors.Is(stop.error, errFell) {
		return nil, corev1.Event{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
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
	return pod, ev, true
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

// apiAccess points the chart's companion at the apiserver as the node's
// pods reach it: the CA of caConfigMap in its token's volume (the chart's is
// kube-root-ca.crt, the apiserver's own), and the address host:port (the
// node has no kube-proxy for the Service whose address the kubelet passes).
type apiAccess struct{ caConfigMap, host, port string }

func (a apiAccess) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
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
			if err := a.edit(obj); err != nil {
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

// edit changes the DaemonSet's pod spec.
func (a apiAccess) edit(ds map[string]any) error {
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
	cas := 0
	for _, v := range spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ConfigMap != nil && src.ConfigMap.Name == "kube-root-ca.crt" {
				src.ConfigMap.Name = a.caConfigMap
				cas++
			}
		}
	}
	if cas != 1 {
		return fmt.Errorf("%d projected volumes of kube-root-ca.crt, want the token's", cas)
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == "events" {
			spec.Containers[i].Env = append(spec.Containers[i].Env,
				corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: a.host}, corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: a.port})
		}
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
