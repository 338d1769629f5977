package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// strictDecoder decodes the kinds deploy/ ships into Kubernetes' and the Prometheus
// Operator's API types, and fails on a field those types do not have, or a field given
// twice: a misspelled field fails here instead of being dropped by the API server.
var strictDecoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, monitoringv1.AddToScheme,
		admissionregistrationv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// decodeManifests decodes every YAML document of a multi-document stream strictly.
func decodeManifests(data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := sigsyaml.Unmarshal(doc, &probe); err != nil {
			return nil, fmt.Errorf("YAML: %w\n%s", err, doc)
		}
		if len(probe) == 0 {
			continue // only comments
		}
		obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", gvk, err)
		}
		objs = append(objs, obj)
	}
}

func decodeFile(t *testing.T, path string) []runtime.Object {
	t.Helper()
	objs, err := decodeManifests(readFile(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

// staticManifests decodes deploy/kubernetes/ and its prometheus-operator/.
func staticManifests(t *testing.T) []runtime.Object {
	t.Helper()
	var objs []runtime.Object
	for _, dir := range []string{staticDir, staticDir + "/prometheus-operator"} {
		files, err := filepath.Glob(dir + "/*.yaml")
		if err != nil || len(files) == 0 {
			t.Fatalf("no manifests in %s (%v)", dir, err)
		}
		for _, f := range files {
			objs = append(objs, decodeFile(t, f)...)
		}
	}
	return objs
}

func TestStrictDecodingFindsMisspelledFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIp: None}\n",
		"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\nspec: {template: {spec: {tolerations: [{operater: Exists}]}}}\n",
		"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: a}\nspec: {endpoints: [{honourLabels: true}]}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: ClusterIP, type: NodePort}\n",
	} {
		if _, err := decodeManifests([]byte(doc)); err == nil {
			t.Errorf("no error for\n%s", doc)
		}
	}
}

// objectSet is a deployment's objects, by kind.
type objectSet struct {
	daemonSets      []*appsv1.DaemonSet
	services        []*corev1.Service
	serviceAccounts []*corev1.ServiceAccount
	secrets         []*corev1.Secret
	configMaps      []*corev1.ConfigMap
	namespaces      []*corev1.Namespace
	serviceMonitors []*monitoringv1.ServiceMonitor
	podMonitors     []*monitoringv1.PodMonitor
	rules           []*monitoringv1.PrometheusRule
	networkPolicies []*networkingv1.NetworkPolicy
	// Only with the chart's kubernetes.events.enabled.
	clusterRoles        []*rbacv1.ClusterRole
	clusterRoleBindings []*rbacv1.ClusterRoleBinding
	// Only with kubernetes.events.admissionPolicy.enabled too.
	policies       []*admissionregistrationv1.ValidatingAdmissionPolicy
	policyBindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
}

func sortObjects(t *testing.T, objs []runtime.Object) objectSet {
	t.Helper()
	var s objectSet
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.DaemonSet:
			s.daemonSets = append(s.daemonSets, o)
		case *corev1.Service:
			s.services = append(s.services, o)
		case *corev1.ServiceAccount:
			s.serviceAccounts = append(s.serviceAccounts, o)
		case *corev1.Secret:
			s.secrets = append(s.secrets, o)
		case *corev1.ConfigMap:
			s.configMaps = append(s.configMaps, o)
		case *corev1.Namespace:
			s.namespaces = append(s.namespaces, o)
		case *monitoringv1.ServiceMonitor:
			s.serviceMonitors = append(s.serviceMonitors, o)
		case *monitoringv1.PodMonitor:
			s.podMonitors = append(s.podMonitors, o)
		case *monitoringv1.PrometheusRule:
			s.rules = append(s.rules, o)
		case *networkingv1.NetworkPolicy:
			s.networkPolicies = append(s.networkPolicies, o)
		case *rbacv1.ClusterRole:
			s.clusterRoles = append(s.clusterRoles, o)
		case *rbacv1.ClusterRoleBinding:
			s.clusterRoleBindings = append(s.clusterRoleBindings, o)
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			s.policies = append(s.policies, o)
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			s.policyBindings = append(s.policyBindings, o)
		default:
			t.Errorf("unexpected object %T", o)
		}
	}
	return s
}

// checkObjects checks what the API server's validation and the objects' meaning
// need beyond their types: names, references between the objects, and the
// least-privilege promises of docs/deploy.md.
func checkObjects(t *testing.T, where string, objs []runtime.Object) objectSet {
	t.Helper()
	s := sortObjects(t, objs)
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf(where+": "+format, args...)
	}
	for _, o := range objs {
		m, err := metaOf(o)
		if err != nil {
			errorf("%v", err)
			continue
		}
		kind := fmt.Sprintf("%T", o)
		for _, e := range validation.IsDNS1123Subdomain(m.GetName()) {
			errorf("%s name %q: %s", kind, m.GetName(), e)
		}
		if !clusterScoped(o) && m.GetNamespace() == "" {
			errorf("%s %s has no namespace: it would land in the kubectl context's", kind, m.GetName())
		}
		checkLabels(t, where+" "+kind+" "+m.GetName(), m.GetLabels())
	}
	if len(s.daemonSets) != 1 {
		errorf("%d DaemonSets, want 1", len(s.daemonSets))
		return s
	}
	ds := s.daemonSets[0]
	pod := ds.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		errorf("the DaemonSet's selector %v does not match its pods' labels %v (%v)", ds.Spec.Selector, pod.Labels, err)
	}
	checkLabels(t, where+" pod template", pod.Labels)
	spec := pod.Spec
	// No token in the pod, but in the Kubernetes Events companion's own
	// container, the one use of the API; and then with the role it needs.
	args, _ := podArgs(s)
	events := slices.Contains(args, "--kubernetes.events")
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		errorf("the pod mounts the service account token into every container (automountServiceAccountToken not false)")
	}
	switch {
	case !events && len(s.clusterRoles)+len(s.clusterRoleBindings)+len(s.policies)+len(s.policyBindings) > 0:
		errorf("RBAC or admission objects without --kubernetes.events: the exporter needs nothing from the API")
	case events:
		checkEventsRBAC(t, where, s, spec.ServiceAccountName)
		checkEventsPolicy(t, where, s, spec.ServiceAccountName)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		errorf("the pods share the node's network, PID or IPC namespace")
	}
	if !hasToleration(spec.Tolerations) {
		errorf("the pods do not tolerate every taint: tainted nodes get no exporter")
	}
	if len(s.serviceAccounts) > 0 && !slices.ContainsFunc(s.serviceAccounts, func(sa *corev1.ServiceAccount) bool {
		return sa.Name == spec.ServiceAccountName
	}) {
		errorf("serviceAccountName %q is not among the ServiceAccounts", spec.ServiceAccountName)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		if v.HostPath != nil && (v.HostPath.Type == nil || *v.HostPath.Type == "" || *v.HostPath.Type == corev1.HostPathDirectoryOrCreate || *v.HostPath.Type == corev1.HostPathFileOrCreate) {
			errorf("hostPath %s: no type, or one that creates the path on the node", v.HostPath.Path)
		}
		// A runtime's socket alone: its directory holds more (containerd's: every
		// container's bundle, env values included; Docker's /var/run: every daemon's).
		if (v.Name == "docker-socket" || v.Name == "containerd-socket") && (v.HostPath == nil || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathSocket) {
			errorf("volume %s is not the runtime's socket alone (hostPath type Socket)", v.Name)
		}
		if v.Secret != nil && !slices.ContainsFunc(s.secrets, func(sec *corev1.Secret) bool { return sec.Name == v.Secret.SecretName }) {
			t.Logf("%s: volume %s uses Secret %s, which the user provides", where, v.Name, v.Secret.SecretName)
		}
	}
	// The exporter, and with --kubernetes.events its companion beside it.
	want := []string{"exporter"}
	if events {
		want = append(want, "events")
	}
	var names []string
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, want) {
		errorf("containers %v, want %v", names, want)
		return s
	}
	c := spec.Containers[0]
	for _, ct := range spec.Containers {
		if token := tokenMount(ct, volumes); token != (ct.Name == "events") {
			errorf("container %s: mounts the API token %v, want %v (the companion's alone)", ct.Name, token, !token)
		}
	}
	if events {
		checkCompanion(t, where, c, spec.Containers[1], volumes)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
		for _, e := range validation.IsValidPortName(p.Name) {
			errorf("port name %q: %s", p.Name, e)
		}
	}
	mounted := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			errorf("volumeMount %s: no such volume", vm.Name)
			continue
		}
		mounted[vm.Name] = true
		if !vm.ReadOnly {
			errorf("volume %s is mounted writable; the exporter only reads", vm.Name)
		}
		if v.HostPath != nil && vm.MountPropagation != nil && *vm.MountPropagation == corev1.MountPropagationBidirectional {
			errorf("volume %s: bidirectional mount propagation", vm.Name)
		}
		// A node directory read-only with its submounts (the cgroup v1 controllers
		// under /sys/fs/cgroup): these objects are for Kubernetes 1.33 or later.
		if v.HostPath != nil && v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathDirectory &&
			(vm.RecursiveReadOnly == nil || *vm.RecursiveReadOnly == corev1.RecursiveReadOnlyDisabled) {
			errorf("volume %s (%s) is not mounted recursively read-only", vm.Name, v.HostPath.Path)
		}
		if v.HostPath != nil && v.HostPath.Path == "/sys" {
			errorf("volume %s mounts all of /sys; the exporter reads only /sys/fs/cgroup", vm.Name)
		}
	}
	if events {
		for _, vm := range spec.Containers[1].VolumeMounts {
			mounted[vm.Name] = true
		}
	}
	for name := range volumes {
		if !mounted[name] {
			errorf("volume %s is never mounted", name)
		}
	}
	for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if probe == nil {
			errorf("no liveness or readiness probe")
			continue
		}
		var port string
		switch {
		case probe.HTTPGet != nil:
			port = probe.HTTPGet.Port.String()
		case probe.TCPSocket != nil:
			port = probe.TCPSocket.Port.String()
		}
		if _, ok := ports[port]; !ok {
			errorf("a probe uses port %q, which the container does not name", port)
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() {
		errorf("no memory request or limit")
	}
	checkSecurityContext(t, where, c, volumes)

	for _, svc := range s.services {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(svc.Spec.Selector) == 0 {
			errorf("Service %s selects %v, not the exporter's pods %v", svc.Name, svc.Spec.Selector, pod.Labels)
		}
		for _, p := range svc.Spec.Ports {
			if _, ok := ports[p.TargetPort.String()]; !ok {
				errorf("Service %s targets port %q, which the container does not name", svc.Name, p.TargetPort.String())
			}
		}
	}
	// A NetworkPolicy lets in, to the metrics port alone, only the peers it
	// names: a rule without peers would let in everyone.
	for _, np := range s.networkPolicies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) || np.Namespace != ds.Namespace {
			errorf("NetworkPolicy %s does not select the exporter's pods", np.Name)
		}
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Ingress) == 0 {
			errorf("NetworkPolicy %s: policy types %v, %d ingress rules; want Ingress, with rules", np.Name, np.Spec.PolicyTypes, len(np.Spec.Ingress))
		}
		for _, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 || slices.ContainsFunc(rule.From, func(p networkingv1.NetworkPolicyPeer) bool {
				return p.PodSelector == nil && p.NamespaceSelector == nil && p.IPBlock == nil
			}) {
				errorf("NetworkPolicy %s: a rule lets in everyone: %+v", np.Name, rule.From)
			}
			if len(rule.Ports) != 1 || rule.Ports[0].Port == nil || ports[rule.Ports[0].Port.String()] == 0 {
				errorf("NetworkPolicy %s: ports %+v, want the metrics port alone", np.Name, rule.Ports)
			}
		}
	}
	for _, sm := range s.serviceMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		matched := false
		for _, svc := range s.services {
			if err == nil && sel.Matches(labels.Set(svc.Labels)) && slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Namespace) {
				matched = true
				for _, ep := range sm.Spec.Endpoints {
					if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
						errorf("ServiceMonitor %s scrapes port %q, which Service %s does not name", sm.Name, ep.Port, svc.Name)
					}
				}
			}
		}
		if !matched {
			errorf("ServiceMonitor %s selects no Service of the set", sm.Name)
		}
		for _, ep := range sm.Spec.Endpoints {
			if !ep.HonorLabels {
				errorf("ServiceMonitor %s: honorLabels false renames the workload's namespace, pod and container labels", sm.Name)
			}
		}
	}
	for _, pm := range s.podMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) || !slices.Contains(pm.Spec.NamespaceSelector.MatchNames, ds.Namespace) {
			errorf("PodMonitor %s does not select the exporter's pods", pm.Name)
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Port == nil || ports[*ep.Port] == 0 {
				errorf("PodMonitor %s scrapes a port the container does not name", pm.Name)
			}
			if !ep.HonorLabels {
				errorf("PodMonitor %s: honorLabels false renames the workload's namespace, pod and container labels", pm.Name)
			}
		}
	}
	return s
}

// clusterScoped: objects that have no namespace.
func clusterScoped(o runtime.Object) bool {
	switch o.(type) {
	case *corev1.Namespace, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding,
		*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return true
	}
	return false
}

// checkEventsRBAC checks what --kubernetes.events is granted: exactly what
// its companion does (create an Event, patch it when a burst is folded
// into it, get the kill's pod by its name), bound to the pods' service
// account, and nothing else: no Secret, no write to a Pod, no list of the
// cluster's pods (a field selector on the node is the client's choice, which
// RBAC does not enforce: a list would read every pod spec, env values
// included).
func checkEventsRBAC(t *testing.T, where string, s objectSet, account string) {
	t.Helper()
	if len(s.clusterRoles) != 1 || len(s.clusterRoleBindings) != 1 {
		t.Errorf("%s: %d ClusterRoles, %d ClusterRoleBindings; want one of each for --kubernetes.events", where, len(s.clusterRoles), len(s.clusterRoleBindings))
		return
	}
	role, binding := s.clusterRoles[0], s.clusterRoleBindings[0]
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
	}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("%s: ClusterRole %s grants %+v, want %+v", where, role.Name, role.Rules, want)
	}
	if binding.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}) {
		t.Errorf("%s: ClusterRoleBinding %s refers to %+v, not ClusterRole %s", where, binding.Name, binding.RoleRef, role.Name)
	}
	ns := s.daemonSets[0].Namespace
	if len(binding.Subjects) != 1 || binding.Subjects[0] != (rbacv1.Subject{Kind: "ServiceAccount", Name: account, Namespace: ns}) {
		t.Errorf("%s: ClusterRoleBinding %s binds %+v, want service account %s/%s alone", where, binding.Name, binding.Subjects, ns, account)
	}
}

// tokenMount says whether c mounts a volume that holds a service account
// token.
func tokenMount(c corev1.Container, volumes map[string]corev1.Volume) bool {
	return slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
		v := volumes[vm.Name]
		return v.Projected != nil && slices.ContainsFunc(v.Projected.Sources, func(p corev1.VolumeProjection) bool {
			return p.ServiceAccountToken != nil
		})
	})
}

// checkCompanion holds the Kubernetes Events companion's container to what
// docs/deploy.md says of it: its own program and limits; another user than
// the exporter's, not root, no capability, no privilege escalation, a
// read-only root; no node path; the token (tokenMount), its socket in a
// directory in memory that only the two containers mount, the exporter's
// read-only; this node's name.
func checkCompanion(t *testing.T, where string, exporter, c corev1.Container, volumes map[string]corev1.Volume) {
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf(where+": the companion's container: "+format, args...)
	}
	if !slices.Equal(c.Command, []string{"/bin/missing-container-metrics-events"}) {
		errorf("command %v, want the companion program", c.Command)
	}
	var envs []string
	for _, e := range c.Env {
		envs = append(envs, e.Name)
	}
	checkCLI(t, where, "the companion", companion.cli(t, "socket", "NODE_NAME"), c.Args, envs)
	sc := c.SecurityContext
	switch {
	case sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		errorf("not a user of its own that is not root: %+v", sc)
	case exporter.SecurityContext != nil && exporter.SecurityContext.RunAsUser != nil && *exporter.SecurityContext.RunAsUser == *sc.RunAsUser:
		errorf("runs as the exporter's user %d, which could read its token through the node's /proc", *sc.RunAsUser)
	case sc.Privileged != nil && *sc.Privileged, sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation,
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem,
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
		errorf("privileges beyond none: %+v", sc)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() {
		errorf("no memory request or limit of its own")
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if f := env["GOMEMLIMIT"].ValueFrom; f == nil || f.ResourceFieldRef == nil || f.ResourceFieldRef.ContainerName != c.Name || f.ResourceFieldRef.Resource != "limits.memory" {
		errorf("GOMEMLIMIT is not its own memory limit: %+v", env["GOMEMLIMIT"])
	}
	if f := env["NODE_NAME"].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "spec.nodeName" {
		errorf("no NODE_NAME from spec.nodeName: it would not know its node's pods")
	}
	// The socket: the companion listens where the exporter connects.
	var socket, listen string
	for _, a := range exporter.Args {
		if v, ok := strings.CutPrefix(a, "--kubernetes.events.socket="); ok {
			socket = v
		}
	}
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--socket="); ok {
			listen = v
		}
	}
	if socket == "" || socket != listen {
		errorf("the exporter connects to %q, the companion listens on %q", socket, listen)
	}
	mountOf := func(c corev1.Container) *corev1.VolumeMount {
		for i, vm := range c.VolumeMounts {
			if vm.MountPath == filepath.Dir(socket) {
				return &c.VolumeMounts[i]
			}
		}
		return nil
	}
	em, cm := mountOf(exporter), mountOf(c)
	switch {
	case em == nil || cm == nil || em.Name != cm.Name:
		errorf("the socket's directory %s is not one volume of both containers", filepath.Dir(socket))
	case volumes[em.Name].EmptyDir == nil || volumes[em.Name].EmptyDir.Medium != corev1.StorageMediumMemory:
		errorf("the socket's volume %s is not a directory of the pod's own, in memory", em.Name)
	case !em.ReadOnly:
		errorf("the exporter mounts the socket's directory writable; it only connects")
	}
	for _, vm := range c.VolumeMounts {
		if volumes[vm.Name].HostPath != nil {
			errorf("mounts a node path (%s)", vm.Name)
		}
	}
}

// checkEventsPolicy checks the ValidatingAdmissionPolicy of the Events, if
// there is one: it matches the writes of Events by the pods' service
// account alone, denies what it does not admit, and holds each check of
// docs/deploy.md. The real apiserver runs it in test/kubernetes.
func checkEventsPolicy(t *testing.T, where string, s objectSet, account string) {
	t.Helper()
	if len(s.policies)+len(s.policyBindings) == 0 {
		return
	}
	if len(s.policies) != 1 || len(s.policyBindings) != 1 {
		t.Errorf("%s: %d policies, %d bindings; want one of each", where, len(s.policies), len(s.policyBindings))
		return
	}
	p, b := s.policies[0], s.policyBindings[0]
	ns := s.daemonSets[0].Namespace
	user := fmt.Sprintf("request.userInfo.username == %q", "system:serviceaccount:"+ns+":"+account)
	if len(p.Spec.MatchConditions) != 1 || p.Spec.MatchConditions[0].Expression != user {
		t.Errorf("%s: the policy matches %+v, want the requests of %s/%s alone", where, p.Spec.MatchConditions, ns, account)
	}
	if mc := p.Spec.MatchConstraints; mc == nil || len(mc.ResourceRules) != 1 || !slices.Equal(mc.ResourceRules[0].Resources, []string{"events"}) ||
		!slices.Equal(mc.ResourceRules[0].Operations, []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}) {
		t.Errorf("%s: the policy does not match the creates and updates (patches) of events: %+v", where, mc)
	}
	if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("%s: the policy's failure policy is not Fail: an expression that cannot be evaluated would admit", where)
	}
	var exprs []string
	for _, v := range p.Spec.Validations {
		exprs = append(exprs, v.Expression)
	}
	all := strings.Join(exprs, " ")
	for _, want := range []string{"object.involvedObject.kind == 'Pod'", "object.type == 'Warning'", "object.source.component == 'missing-container-metrics'",
		"object.source.host == variables.node", "object.involvedObject.namespace == object.metadata.namespace"} {
		if !strings.Contains(all, want) {
			t.Errorf("%s: the policy does not check %s", where, want)
		}
	}
	if b.Spec.PolicyName != p.Name || !slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
		t.Errorf("%s: the binding %s binds %s with %v, want %s with Deny", where, b.Name, b.Spec.PolicyName, b.Spec.ValidationActions, p.Name)
	}
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", o)
	}
	return m, nil
}

func checkLabels(t *testing.T, where string, ls map[string]string) {
	t.Helper()
	for k, v := range ls {
		for _, e := range validation.IsQualifiedName(k) {
			t.Errorf("%s: label key %q: %s", where, k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			t.Errorf("%s: label %s value %q: %s", where, k, v, e)
		}
	}
}

func hasToleration(ts []corev1.Toleration) bool {
	return slices.ContainsFunc(ts, func(t corev1.Toleration) bool {
		return t.Operator == corev1.TolerationOpExists && t.Key == "" && t.Effect == ""
	})
}

// checkSecurityContext holds the container to the privileges docs/deploy.md gives
// it, and to the API server's rules on combining them.
func checkSecurityContext(t *testing.T, where string, c corev1.Container, volumes map[string]corev1.Volume) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	privileged := sc.Privileged != nil && *sc.Privileged
	// The kernel log: through syslog(2) with CAP_SYSLOG alone, or /dev/kmsg,
	// from a hostPath (which only a privileged container may open) or a
	// device plugin's device (with CAP_SYSLOG alone); or not read at all.
	kmsgHostPath := false
	for _, v := range volumes {
		if v.HostPath != nil && v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathCharDev {
			kmsgHostPath = true
		}
	}
	reader := "none"
	if !slices.Contains(c.Args, "--no-kernel") {
		reader = ""
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--kernel.log="); ok {
				reader = v
			}
		}
	}
	switch reader {
	case "syslog", "kmsg", "none":
	default:
		// auto would leave the choice to what the container happens to get.
		t.Errorf("%s: --kernel.log=%q; a deployment names the reader its privileges are for", where, reader)
	}
	if privileged != kmsgHostPath || (kmsgHostPath && reader != "kmsg") {
		t.Errorf("%s: privileged=%v with the kernel log %s, but only opening a hostPath /dev/kmsg needs it (mounted: %v)", where, privileged, reader, kmsgHostPath)
	}
	wantAdd := []corev1.Capability(nil)
	if reader != "none" && !kmsgHostPath {
		wantAdd = []corev1.Capability{"SYSLOG"}
	}
	// Root only for what takes it: the kernel log (CAP_SYSLOG is lost at exec by any
	// other uid), or a Docker socket whose group the deployment does not know.
	_, dockerSocket := volumes["docker-socket"]
	if root := sc.RunAsUser == nil || *sc.RunAsUser == 0; root && reader == "none" && !dockerSocket {
		t.Errorf("%s: runs as root, but reads no kernel log and mounts no socket that needs it", where)
	} else if !root && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
		t.Errorf("%s: runs as uid %d without runAsNonRoot", where, *sc.RunAsUser)
	} else if !root && reader != "none" {
		t.Errorf("%s: runs as uid %d, which loses CAP_SYSLOG at exec, yet reads the kernel log (%s)", where, *sc.RunAsUser, reader)
	}
	// The API server rejects privileged with allowPrivilegeEscalation false, and
	// runAsNonRoot true with runAsUser 0.
	if privileged && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		t.Errorf("%s: privileged and allowPrivilegeEscalation false: the API server refuses it", where)
	}
	if sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("%s: runAsNonRoot with runAsUser 0: the API server refuses it", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: the root filesystem is writable", where)
	}
	if !privileged {
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: privilege escalation allowed", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || !slices.Equal(sc.Capabilities.Add, wantAdd) {
			t.Errorf("%s: capabilities %+v, want every one dropped and %v added", where, sc.Capabilities, wantAdd)
		}
	}
}

// podArgs returns the exporter's arguments and environment variable names.
func podArgs(s objectSet) ([]string, []string) {
	if len(s.daemonSets) != 1 || len(s.daemonSets[0].Spec.Template.Spec.Containers) == 0 {
		return nil, nil
	}
	c := s.daemonSets[0].Spec.Template.Spec.Containers[0]
	var envs []string
	for _, e := range c.Env {
		envs = append(envs, e.Name)
	}
	return append(slices.Clone(c.Command), c.Args...), envs
}

func TestStaticManifests(t *testing.T) {
	objs := staticManifests(t)
	s := checkObjects(t, staticDir, objs)
	if len(s.namespaces) != 1 || s.namespaces[0].Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("want one Namespace that Pod Security Admission lets mount hostPath volumes")
	}
	if len(s.serviceMonitors) != 1 || len(s.rules) != 1 {
		t.Errorf("want a ServiceMonitor and a PrometheusRule in %s/prometheus-operator", staticDir)
	}
	args, envs := podArgs(s)
	checkArgs(t, staticDir+"/daemonset.yaml", args)
	checkEnv(t, staticDir+"/daemonset.yaml", envs)
	t.Logf("%d objects decoded strictly", len(objs))
}
