package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartv2util "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// What the chart is checked with: helm's own linter, chart loader and template
// engine (the code behind `helm lint --strict` and `helm template`), then a strict
// decoding of every rendered object and checkObjects.

// chartCase is one set of values, and what it must render.
type chartCase struct {
	name   string
	values string
	// kinds of the rendered objects, sorted
	kinds []string
	// args: the exporter's arguments must include these
	args []string
	// check: more checks of this case's objects
	check func(t *testing.T, s objectSet)
}

var chartCases = []chartCase{
	{
		name:  "defaults: containerd, the kernel's counters, the kernel log through syslog(2)",
		kinds: []string{"DaemonSet", "Service", "ServiceAccount"},
		args: []string{"--no-docker", "--containerd", "--containerd.address=/host/containerd/containerd.sock",
			"--kernel", "--path.sysfs=/host/sys", "--path.procfs=/host/proc", "--kernel.log=syslog"},
		check: func(t *testing.T, s objectSet) {
			// No device: checkObjects checked that it is not privileged and
			// that SYSLOG is its one capability.
			wantHostPaths(t, s, map[string]string{"containerd-socket": "/run/containerd/containerd.sock", "host-cgroup": "/sys/fs/cgroup", "host-proc": "/proc"})
			wantUser(t, s, 0, nil)
			// No Kubernetes Events by default: no token in the pod, no role.
			if tok := s.daemonSets[0].Spec.Template.Spec.AutomountServiceAccountToken; tok == nil || *tok {
				t.Errorf("the pod mounts a service account token by default")
			}
			if len(s.clusterRoles)+len(s.clusterRoleBindings) > 0 {
				t.Errorf("RBAC objects by default")
			}
		},
	},
	{
		name: "Kubernetes Events: the companion's container, its token, the role",
		values: `
kubernetes: {events: {enabled: true}}
sources:
  kernel: {log: kmsg}
`,
		kinds: []string{"ClusterRole", "ClusterRoleBinding", "DaemonSet", "Service", "ServiceAccount"},
		args:  []string{"--kubernetes.events", "--kubernetes.events.socket=/run/mcm-events/events.sock", "--containerd", "--kernel", "--kernel.log=kmsg", "--path.kmsg=/dev/kmsg"},
		check: func(t *testing.T, s objectSet) {
			// checkObjects checked the companion's container, that it alone
			// mounts the token, the role's rules and its binding. The
			// exporter, privileged here, neither has the token nor starts
			// the companion.
			exp := s.daemonSets[0].Spec.Template.Spec.Containers[0]
			if slices.ContainsFunc(exp.Env, func(e corev1.EnvVar) bool { return e.Name == "NODE_NAME" }) {
				t.Errorf("the exporter's container gets NODE_NAME: the companion alone needs it")
			}
			// Cluster-scoped: a release of the same name in another namespace
			// must not take them over.
			if n := s.clusterRoles[0].Name; !strings.Contains(n, "monitoring") {
				t.Errorf("ClusterRole %s is not named by the release's namespace", n)
			}
		},
	},
	{
		name: "Kubernetes Events with their admission policy",
		values: `
kubernetes: {events: {enabled: true, admissionPolicy: {enabled: true}}}
`,
		kinds: []string{"ClusterRole", "ClusterRoleBinding", "DaemonSet", "Service", "ServiceAccount",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		args: []string{"--kubernetes.events"},
	},
	{
		name: "a NetworkPolicy: Prometheus alone reaches the port",
		values: `
networkPolicy: {enabled: true}
`,
		kinds: []string{"DaemonSet", "NetworkPolicy", "Service", "ServiceAccount"},
		check: func(t *testing.T, s objectSet) {
			// checkObjects checked what it selects and lets in.
			from := s.networkPolicies[0].Spec.Ingress[0].From
			if len(from) != 1 || from[0].NamespaceSelector == nil || from[0].PodSelector == nil ||
				from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
				t.Errorf("the default peers %+v: want Prometheus' pods in the namespace monitoring", from)
			}
		},
	},
	{
		name: "Kubernetes Events with a service account of the user's",
		values: `
kubernetes: {events: {enabled: true}}
serviceAccount: {create: false, name: monitoring}
`,
		kinds: []string{"ClusterRole", "ClusterRoleBinding", "DaemonSet", "Service"},
		args:  []string{"--kubernetes.events"},
	},
	{
		name: "the kernel log off: nobody in the containerd socket's group, no capability",
		values: `
sources:
  kernel: {log: none}
`,
		kinds: []string{"DaemonSet", "Service", "ServiceAccount"},
		args:  []string{"--containerd", "--kernel", "--kernel.log=none"},
		check: func(t *testing.T, s objectSet) {
			wantHostPaths(t, s, map[string]string{"containerd-socket": "/run/containerd/containerd.sock", "host-cgroup": "/sys/fs/cgroup", "host-proc": "/proc"})
			wantUser(t, s, 65534, []int64{0})
		},
	},
	{
		name: "the kernel's counters only, without the kernel log: nobody, no group",
		values: `
sources:
  containerd: {enabled: false}
  kernel: {log: none}
`,
		kinds: []string{"DaemonSet", "Service", "ServiceAccount"},
		args:  []string{"--no-docker", "--no-containerd", "--kernel", "--path.sysfs=/host/sys", "--path.procfs=/host/proc", "--kernel.log=none"},
		check: func(t *testing.T, s objectSet) {
			wantHostPaths(t, s, map[string]string{"host-cgroup": "/sys/fs/cgroup", "host-proc": "/proc"})
			wantUser(t, s, 65534, nil)
		},
	},
	{
		name: "Docker Engine nodes whose docker group is known, the kernel log off: nobody in that group",
		values: `
sources:
  docker: {enabled: true, socketGroup: 998}
  containerd: {enabled: false}
  kernel: {log: none}
`,
		kinds: []string{"DaemonSet", "Service", "ServiceAccount"},
		args:  []string{"--docker", "--no-containerd", "--kernel", "--kernel.log=none"},
		check: func(t *testing.T, s objectSet) {
			wantHostPaths(t, s, map[string]string{"docker-socket": "/var/run/docker.sock", "host-cgroup": "/sys/fs/cgroup", "host-proc": "/proc"})
			wantUser(t, s, 65534, []int64{998})
		},
	},
	{
		name: "Docker Engine nodes, the kernel log: root, which owns the socket, with CAP_SYSLOG alone",
		values: `
sources:
  docker: {enabled: true, socketGroup: 998}
  containerd: {enabled: false}
`,
		kinds: []string{"DaemonSet", "Service", "ServiceAccount"},
		args:  []string{"--docker", "--no-containerd", "--kernel", "--kernel.log=syslog"},
		check: func(t *testing.T, s objectSet) {
			wantHostPaths(t, s, map[string]string{"docker-socket": "/var/run/docker.sock", "host-cgroup": "/sys/fs/cgroup", "host-proc": "/proc"})
			wantUser(t, s, 0, nil)
		},
	},
	{
		name: "Docker Engine nodes, PodMonitor, no Service",
		values: `
sources:
  docker: {enabled: true, socket: /run/docker.sock}
  containerd: {enabled: false}
  kernel: {enabled: false}
podMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
service: {enabled: false}
`,
		kinds: []string{"DaemonSet", "PodMonitor", "ServiceAccount"},
		args:  []string{"--docker", "--docker.host=unix:///host/docker/docker.sock", "--no-containerd", "--no-kernel"},
		check: func(t *testing.T, s objectSet) {
			wantHostPaths(t, s, map[string]string{"docker-socket": "/run/docker.sock"})
			// The docker group differs between distributions: root, without capabilities.
			wantUser(t, s, 0, nil)
		},
	},
	{
		name: "CRI-O nodes, the kernel log off: its socket alone, nobody in the socket's group",
		values: `
sources:
  containerd: {enabled: false}
  crio: {enabled: true}
  kernel: {log: none}
`,
		kinds: []string{"DaemonSet", "Service", "ServiceAccount"},
		args:  []string{"--no-docker", "--no-containerd", "--crio", "--crio.address=/host/crio/crio.sock", "--kernel", "--kernel.log=none"},
		check: func(t *testing.T, s objectSet) {
			wantHostPaths(t, s, map[string]string{"crio-socket": "/var/run/crio/crio.sock", "host-cgroup": "/sys/fs/cgroup", "host-proc": "/proc"})
			wantUser(t, s, 65534, []int64{0})
		},
	},
	{
		name: "k3s, namespaces, the kernel log",
		values: `
sources:
  containerd: {socket: /run/k3s/containerd/containerd.sock, namespaces: [k8s.io, moby]}
  kernel: {log: kmsg}
`,
		kinds: []string{"DaemonSet", "Service", "ServiceAccount"},
		args:  []string{"--containerd.namespaces=k8s.io,moby", "--kernel", "--kernel.log=kmsg", "--path.kmsg=/dev/kmsg"},
		check: func(t *testing.T, s objectSet) {
			wantHostPaths(t, s, map[string]string{"containerd-socket": "/run/k3s/containerd/containerd.sock", "host-cgroup": "/sys/fs/cgroup", "host-proc": "/proc", "kmsg": "/dev/kmsg"})
			sc := s.daemonSets[0].Spec.Template.Spec.Containers[0].SecurityContext
			if sc.Privileged == nil || !*sc.Privileged || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
				t.Errorf("opening a hostPath /dev/kmsg needs a privileged container run as root: %+v", sc)
			}
		},
	},
	{
		name: "the kernel log from a device plugin: root with CAP_SYSLOG, not privileged",
		values: `
sources:
  kernel: {log: kmsg, kmsg: {deviceResource: squat.ai/kmsg}}
`,
		kinds: []string{"DaemonSet", "Service", "ServiceAccount"},
		args:  []string{"--kernel", "--kernel.log=kmsg", "--path.kmsg=/dev/kmsg"},
		check: func(t *testing.T, s objectSet) {
			wantHostPaths(t, s, map[string]string{"containerd-socket": "/run/containerd/containerd.sock", "host-cgroup": "/sys/fs/cgroup", "host-proc": "/proc"})
			c := s.daemonSets[0].Spec.Template.Spec.Containers[0]
			if q := c.Resources.Limits["squat.ai/kmsg"]; q.Value() != 1 || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("limits %v: want one squat.ai/kmsg and the memory limit", c.Resources.Limits)
			}
			wantUser(t, s, 0, nil)
		},
	},
	{
		name: "Prometheus Operator, rules, dashboard, basic auth from values",
		values: `
serviceMonitor:
  enabled: true
  labels: {release: kube-prometheus-stack}
  interval: 15s
  basicAuth:
    username: {name: mcm-scrape, key: username}
    password: {name: mcm-scrape, key: password}
prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}
grafanaDashboard: {enabled: true, namespace: grafana}
webConfig:
  config:
    basic_auth_users:
      prometheus: $2y$10$mDwo.lAisC94iLP6TgIN.OVHaZpPsa0pMn6hXq8YN8Jue4RvcwUN2
`,
		kinds: []string{"ConfigMap", "DaemonSet", "PrometheusRule", "Secret", "Service", "ServiceAccount", "ServiceMonitor"},
		args:  []string{"--containerd", "--web.config.file=/etc/missing-container-metrics/web/web-config.yml"},
		check: func(t *testing.T, s objectSet) {
			if got := s.configMaps[0].Data["missing-container-metrics.json"]; got != strings.TrimSuffix(string(readFile(t, dashboardFile)), "\n") {
				t.Errorf("the dashboard ConfigMap does not hold %s", dashboardFile)
			}
			if s.configMaps[0].Namespace != "grafana" {
				t.Errorf("dashboard in namespace %s, want grafana", s.configMaps[0].Namespace)
			}
			var want monitoringv1.PrometheusRuleSpec
			if err := yaml.UnmarshalStrict(readFile(t, rulesFile), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.rules[0].Spec, want) {
				t.Errorf("the chart's PrometheusRule differs from %s", rulesFile)
			}
			var web map[string]any
			if err := yaml.UnmarshalStrict([]byte(s.secrets[0].StringData["web-config.yml"]), &web); err != nil || web["basic_auth_users"] == nil {
				t.Errorf("web config secret: %v %v", web, err)
			}
			c := s.daemonSets[0].Spec.Template.Spec.Containers[0]
			if c.LivenessProbe.TCPSocket == nil {
				t.Errorf("with basic auth, /healthz asks for credentials: the probes must only check the port")
			}
			if s.serviceMonitors[0].Spec.Endpoints[0].BasicAuth == nil {
				t.Errorf("the ServiceMonitor lost its basicAuth")
			}
		},
	},
	{
		name: "TLS from an existing Secret, pinned digest, scheduling",
		values: `
fullnameOverride: mcm
image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
webConfig: {existingSecret: mcm-tls}
serviceMonitor: {enabled: true, scheme: https, tlsConfig: {insecureSkipVerify: true}}
priorityClassName: system-node-critical
nodeSelector: {kubernetes.io/os: linux, node-role.kubernetes.io/worker: ""}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]
tolerations: [{operator: Exists}, {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]
extraArgs: [--retention=10m, --compat.legacy-metric-names]
extraEnv: [{name: GOMAXPROCS, value: "1"}]
log: {level: debug, format: json}
podAnnotations: {example.com/team: platform}
serviceAccount: {create: false, name: monitoring}
`,
		kinds: []string{"DaemonSet", "Service", "ServiceMonitor"},
		args:  []string{"--log.level=debug", "--log.format=json", "--retention=10m", "--compat.legacy-metric-names", "--web.config.file=/etc/missing-container-metrics/web/web-config.yml"},
		check: func(t *testing.T, s objectSet) {
			spec := s.daemonSets[0].Spec.Template.Spec
			if img := spec.Containers[0].Image; !strings.HasSuffix(img, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
				t.Errorf("image %s is not pinned by digest", img)
			}
			if spec.PriorityClassName != "system-node-critical" || spec.Affinity == nil || len(spec.Tolerations) != 2 {
				t.Errorf("scheduling values lost: %q %v %v", spec.PriorityClassName, spec.Affinity, spec.Tolerations)
			}
			if spec.ServiceAccountName != "monitoring" || s.daemonSets[0].Name != "mcm" {
				t.Errorf("service account %q, name %q", spec.ServiceAccountName, s.daemonSets[0].Name)
			}
		},
	},
}

// wantUser checks the uid the exporter runs as and the groups added to it.
func wantUser(t *testing.T, s objectSet, uid int64, groups []int64) {
	t.Helper()
	spec := s.daemonSets[0].Spec.Template.Spec
	sc := spec.Containers[0].SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != uid {
		t.Errorf("runs as %v, want uid %d", sc, uid)
	}
	var got []int64
	if spec.SecurityContext != nil {
		got = spec.SecurityContext.SupplementalGroups
	}
	if !reflect.DeepEqual(got, groups) {
		t.Errorf("supplementalGroups %v, want %v", got, groups)
	}
}

// wantHostPaths checks the node paths the pods mount, by volume name.
func wantHostPaths(t *testing.T, s objectSet, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, v := range s.daemonSets[0].Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			got[v.Name] = v.HostPath.Path
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hostPath volumes %v, want %v", got, want)
	}
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return c
}

func parseValues(t *testing.T, s string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &vals); err != nil {
		t.Fatalf("values: %v", err)
	}
	return vals
}

// renderChart renders the chart as `helm template RELEASE --namespace NS` does,
// values checked against values.schema.json, and decodes the objects strictly.
func renderChart(c *chart.Chart, release, namespace string, vals map[string]any) ([]runtime.Object, map[string]string, error) {
	return renderChartFor(kubeVersion, c, release, namespace, vals)
}

// renderChartFor renders the chart for a cluster of Kubernetes version kv.
func renderChartFor(kv string, c *chart.Chart, release, namespace string, vals map[string]any) ([]runtime.Object, map[string]string, error) {
	caps := capabilities(kv)
	if c.Metadata.KubeVersion != "" && !chartv2util.IsCompatibleRange(c.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, nil, fmt.Errorf("chart needs Kubernetes %s, helm renders for %s", c.Metadata.KubeVersion, caps.KubeVersion)
	}
	top, err := chartutil.ToRenderValuesWithSchemaValidation(c, vals,
		common.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true, Revision: 1}, caps, false)
	if err != nil {
		return nil, nil, err
	}
	files, err := engine.Render(c, top)
	if err != nil {
		return nil, nil, err
	}
	var objs []runtime.Object
	names := sortedKeys(files)
	for _, name := range names {
		if path.Ext(name) != ".yaml" || strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		o, err := decodeManifests([]byte(files[name]))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		objs = append(objs, o...)
	}
	return objs, files, nil
}

// kubeVersion is the Kubernetes the chart is rendered for: the one of the API types
// the objects are decoded into (k8s.io/api v0.37 is Kubernetes 1.37). In a test
// binary helm's default would be 1.20; its CLI takes its client-go's version, too.
const kubeVersion = "v1.37.0"

func capabilities(version string) *common.Capabilities {
	kv, err := common.ParseKubeVersion(version)
	if err != nil {
		panic(err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	return caps
}

func TestHelmLint(t *testing.T) {
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			l := lint.RunAll(chartDir, parseValues(t, tc.values), "monitoring", lint.WithKubeVersion(kv))
			for _, m := range l.Messages {
				// --strict: warnings fail too. INFO (an icon is recommended) does not.
				if m.Severity >= support.WarningSev {
					t.Error(m.Error())
				} else {
					t.Log(m.Error())
				}
			}
		})
	}
}

func TestHelmTemplate(t *testing.T) {
	c := loadChart(t)
	total := 0
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			objs, files, err := renderChart(c, "mcm-test", "monitoring", parseValues(t, tc.values))
			if err != nil {
				t.Fatal(err)
			}
			total += len(objs)
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, reflect.TypeOf(o).Elem().Name())
			}
			sort.Strings(kinds)
			if !reflect.DeepEqual(kinds, tc.kinds) {
				t.Errorf("rendered %v, want %v", kinds, tc.kinds)
			}
			s := checkObjects(t, tc.name, objs)
			args, envs := podArgs(s)
			for _, want := range tc.args {
				found := false
				for _, a := range args {
					found = found || a == want
				}
				if !found {
					t.Errorf("argument %s missing from %v", want, args)
				}
			}
			checkArgs(t, tc.name, args)
			checkEnv(t, tc.name, envs)
			if tc.check != nil && !t.Failed() {
				tc.check(t, s)
			}
			if notes := files["missing-container-metrics/templates/NOTES.txt"]; !strings.Contains(notes, "port-forward") {
				t.Errorf("NOTES.txt does not render: %q", notes)
			}
		})
	}
	t.Logf("%d cases, %d objects rendered and decoded strictly", len(chartCases), total)
}

// recursiveReadOnly is GA from Kubernetes 1.33 on: the chart sets it there, as
// values.yaml says, and leaves it out on older clusters, whose API server would
// refuse or drop the field.
func TestHelmRecursiveReadOnly(t *testing.T) {
	c := loadChart(t)
	for _, tc := range []struct {
		kube, values string
		want         string // on every hostPath directory mount; "" for none
	}{
		{"v1.33.0", "", "IfPossible"},
		{"v1.32.4", "", ""},
		{"v1.25.0", "", ""},
		{"v1.34.1", "recursiveReadOnly: Enabled", "Enabled"},
	} {
		objs, _, err := renderChartFor(tc.kube, c, "mcm", "monitoring", parseValues(t, tc.values))
		if err != nil {
			t.Fatalf("Kubernetes %s: %v", tc.kube, err)
		}
		spec := sortObjects(t, objs).daemonSets[0].Spec.Template.Spec
		dirs := map[string]bool{}
		for _, v := range spec.Volumes {
			if v.HostPath != nil && v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathDirectory {
				dirs[v.Name] = true
			}
		}
		n := 0
		for _, m := range spec.Containers[0].VolumeMounts {
			got := ""
			if m.RecursiveReadOnly != nil {
				got = string(*m.RecursiveReadOnly)
			}
			if dirs[m.Name] {
				n++
				if got != tc.want {
					t.Errorf("Kubernetes %s, values %q: mount %s recursiveReadOnly %q, want %q", tc.kube, tc.values, m.Name, got, tc.want)
				}
			} else if got != "" {
				t.Errorf("Kubernetes %s: mount %s (no directory) has recursiveReadOnly %q", tc.kube, m.Name, got)
			}
		}
		if n != 2 {
			t.Errorf("Kubernetes %s: %d directory mounts, want /sys/fs/cgroup and /proc", tc.kube, n)
		}
	}
}

// The commands NOTES.txt gives after an install print what they say, run against
// the exporter (here on 127.0.0.1, with the kernel's counters of this machine).
func TestNotesCommandsWork(t *testing.T) {
	need(t, "curl", "curl")
	_, files, err := renderChart(loadChart(t), "mcm", "monitoring", nil)
	if err != nil {
		t.Fatal(err)
	}
	var curls []string
	for _, line := range strings.Split(files["missing-container-metrics/templates/NOTES.txt"], "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "curl ") {
			curls = append(curls, line)
		}
	}
	if len(curls) == 0 {
		t.Fatal("NOTES.txt gives no curl command")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(exporterBinary(t), "--web.listen-address="+addr, "--no-docker", "--no-containerd", "--kernel", "--path.kmsg=")
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		body, err := get("http://" + addr + "/metrics")
		if err == nil && strings.Contains(body, `missing_container_metrics_source_up{source="cgroup"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exporter's cgroup source is not up within a minute: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, c := range curls {
		c = strings.ReplaceAll(c, "localhost:3001", addr)
		out, err := run(t, time.Minute, "sh", "-c", c)
		t.Logf("%s\n%s", c, out)
		switch {
		case i == 0 && (err != nil || !strings.Contains(out, `missing_container_metrics_source_up{source="cgroup"} 1`)):
			t.Errorf("%s: want each source and its state: %v\n%s", c, err, out)
		case strings.Contains(out, "<"):
			t.Errorf("%s prints HTML:\n%s", c, out)
		}
	}
}

// Values the chart must refuse, with why.
func TestHelmTemplateRefuses(t *testing.T) {
	c := loadChart(t)
	for _, tc := range []struct{ values, want string }{
		{"sources: {dokcer: {enabled: true}}", "dokcer"},
		{"serviceMonitor: {enabled: true, interval: 30}", "interval"},
		{"sources: {containerd: {enabled: false}, kernel: {enabled: false}}", "enable at least one"},
		{"serviceMonitor: {enabled: true}\npodMonitor: {enabled: true}", "not both"},
		{"serviceMonitor: {enabled: true}\nservice: {enabled: false}", "needs service.enabled"},
		{"log: {level: verbose}", "level"},
		{"recursiveReadOnly: true", "recursiveReadOnly"},
		{"sources: {kernel: {sysfs: /sys}}", "sysfs"},
		{"sources: {docker: {socketGroup: docker}}", "socketGroup"},
		{"sources: {kernel: {kmsg: {deviceResource: 'kmsg device'}}}", "deviceResource"},
		{"sources: {kernel: {kmsg: {deviceResource: squat.ai/kmsg}}}", "sources.kernel.log=kmsg"},
		{"sources: {kernel: {log: dmesg}}", "log"},
		{"sources: {kernel: {kmsg: {enabled: true}}}", "enabled"},
		{"kubernetes: {events: true}", "events"},
		{"kubernetes: {events: {enabled: yes please}}", "enabled"},
		{"kubernetes: {event: {enabled: true}}", "event"},
		{"kubernetes: {events: {enabled: true, admissionPolicy: true}}", "admissionPolicy"},
		{"networkPolicy: {enabled: true, from: []}", "admits everyone"},
		{"networkPolicy: {enabled: true, from: [{}]}", "minProperties"},
	} {
		_, _, err := renderChart(c, "r", "monitoring", parseValues(t, tc.values))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %q: error %v, want one about %q", tc.values, err, tc.want)
		}
	}
}

// The Events' admission policy is admissionregistration.k8s.io/v1, GA in
// Kubernetes 1.30: on an older cluster the chart says so instead of sending
// an object the API server does not know.
func TestHelmAdmissionPolicyNeeds130(t *testing.T) {
	c := loadChart(t)
	vals := parseValues(t, "kubernetes: {events: {enabled: true, admissionPolicy: {enabled: true}}}")
	if _, _, err := renderChartFor("v1.29.9", c, "mcm", "monitoring", vals); err == nil || !strings.Contains(err.Error(), "1.30") {
		t.Errorf("Kubernetes 1.29: %v, want an error naming 1.30", err)
	}
	if _, _, err := renderChartFor("v1.30.0", c, "mcm", "monitoring", vals); err != nil {
		t.Errorf("Kubernetes 1.30: %v", err)
	}
}

// The static manifests are what the chart renders from its defaults (with the
// Prometheus Operator objects on), apart from the labels Helm adds.
func TestStaticManifestsMatchChart(t *testing.T) {
	const name = "missing-container-metrics"
	static := sortObjects(t, staticManifests(t))
	objs, _, err := renderChart(loadChart(t), name, name, parseValues(t, "serviceMonitor: {enabled: true}\nprometheusRule: {enabled: true}"))
	if err != nil {
		t.Fatal(err)
	}
	rendered := sortObjects(t, objs)
	if len(static.daemonSets) != 1 || len(rendered.daemonSets) != 1 {
		t.Fatalf("want one DaemonSet in each")
	}
	// The pods: everything but the labels, which differ by Helm's.
	a, b := static.daemonSets[0].Spec.Template.Spec, rendered.daemonSets[0].Spec.Template.Spec
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the static DaemonSet's pod spec differs from the chart's:\nstatic:   %s\nrendered: %s", toYAML(t, a), toYAML(t, b))
	}
	if !reflect.DeepEqual(static.daemonSets[0].Spec.UpdateStrategy, rendered.daemonSets[0].Spec.UpdateStrategy) {
		t.Errorf("update strategies differ")
	}
	sa, sb := static.services[0].Spec, rendered.services[0].Spec
	sa.Selector, sb.Selector = nil, nil
	if !reflect.DeepEqual(sa, sb) {
		t.Errorf("Service specs differ:\nstatic:   %s\nrendered: %s", toYAML(t, sa), toYAML(t, sb))
	}
	if !reflect.DeepEqual(static.serviceMonitors[0].Spec.Endpoints, rendered.serviceMonitors[0].Spec.Endpoints) {
		t.Errorf("ServiceMonitor endpoints differ:\nstatic:   %s\nrendered: %s",
			toYAML(t, static.serviceMonitors[0].Spec.Endpoints), toYAML(t, rendered.serviceMonitors[0].Spec.Endpoints))
	}
	if !reflect.DeepEqual(static.rules[0].Spec, rendered.rules[0].Spec) {
		t.Errorf("PrometheusRule specs differ")
	}
}

func toYAML(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}
