package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// NodeOptions configure StartNode.
type NodeOptions struct {
	// BinDir holds kubelet, kube-apiserver, kube-controller-manager and
	// kube-scheduler (test/kubernetes/prepare.sh builds them).
	BinDir string
	// Kubelet is merged into the KubeletConfiguration (JSON field names), on
	// top of what the harness needs.
	Kubelet map[string]any
	// CRIOBinDir, if set, holds crio and pinns (test/crio/prepare.sh): the
	// kubelet then runs on a CRI-O of its own instead of a containerd.
	CRIOBinDir string
}

// Node is a single-node Kubernetes: etcd, kube-apiserver (token auth),
// kube-controller-manager, kube-scheduler, and a kubelet on a containerd (or
// a CRI-O) of its own, whose pods get addresses on a private subnet of a
// bridge that only this host reaches.
type Node struct {
	h *Harness
	// Name is the node's name.
	Name string `json:"name"`
	// Server is the apiserver's URL, Token a bearer token in system:masters,
	// CAFile the CA of its serving certificate.
	Server string `json:"server"`
	Token  string `json:"token"`
	CAFile string `json:"caFile"`
	// Kubeconfig is a kubeconfig file for Server with Token.
	Kubeconfig string `json:"kubeconfig"`
	// ContainerdAddress is the socket of the node's containerd; empty on a
	// node on CRI-O.
	ContainerdAddress string `json:"containerdAddress"`
	// CRIO is the harness's name of the node's CRI-O, if it runs on one.
	CRIO string `json:"crio,omitempty"`
	// CgroupRoot is the kubelet's cgroupRoot (its path in every hierarchy).
	CgroupRoot string `json:"cgroupRoot"`
	// PodSubnet is the pods' IPv4 subnet, Bridge its interface on the host.
	PodSubnet string `json:"podSubnet"`
	Bridge    string `json:"bridge"`
	// KubeletDir is the kubelet's working directory, with its root-dir and
	// podLogsDir below it.
	KubeletDir string `json:"kubeletDir"`
}

// Names of the node's daemons in the harness.
const (
	NodeContainerd    = "node-containerd"
	NodeCRIO          = "node-crio"
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Kubelet           = "kubelet"
)

// StartNode starts a single-node Kubernetes and waits until the node is Ready.
func (h *Harness) StartNode(ctx context.Context, opts NodeOptions) (*Node, error) {
	t0 := time.Now()
	if err := nodePrereqs(opts.BinDir); err != nil {
		return nil, err
	}
	nd := h.path("node")
	for _, d := range []string{"pki", "etcd", "cni/net.d", "cni/ipam", "kubelet/root", "kubelet/pod-logs", "kubelet/sysctl"} {
		if err := os.MkdirAll(filepath.Join(nd, d), 0o711); err != nil {
			return nil, err
		}
	}
	c := h.containerdPaths("node/containerd")
	// Named localhost: the apiserver reaches the kubelet (logs, exec) by the
	// node's host name, and the kubelet listens on 127.0.0.1 only.
	n := &Node{h: h, Name: "localhost",
		CgroupRoot: h.rec.CgroupParent + "/kubelet", Kubeconfig: nd + "/kubeconfig", KubeletDir: nd + "/kubelet"}
	if opts.CRIOBinDir == "" {
		n.ContainerdAddress = c.address
	}
	h.rec.Node = n

	// Credentials: the apiserver's serving certificate, a token in
	// system:masters, one RSA key that signs and checks service account tokens.
	pki := nd + "/pki"
	if err := writeCerts(pki); err != nil {
		return nil, err
	}
	n.CAFile = pki + "/ca.crt"
	if err := writeRSAKey(pki + "/sa.key"); err != nil {
		return nil, err
	}
	n.Token = randomHex(16)
	if err := os.WriteFile(pki+"/tokens.csv", fmt.Appendf(nil, "%s,admin,admin,\"system:masters\"\n", n.Token), 0o600); err != nil {
		return nil, err
	}

	// Pod network: a bridge of our own with the first address of a free
	// private /24; bridge + host-local give each pod one in it. No gateway,
	// no masquerading, no forwarding: only this host reaches the pods.
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	n.PodSubnet, n.Bridge = subnet.String(), "mcmbr"+randomHex(3)
	h.rec.Bridges = append(h.rec.Bridges, n.Bridge)
	if err := h.save(); err != nil {
		return nil, err
	}
	if err := addBridge(n.Bridge, subnet); err != nil {
		return nil, err
	}
	if err := writeCNIConfig(nd+"/cni", n.Bridge, subnet); err != nil {
		return nil, err
	}

	// The CRI plugin's network namespaces and the CNI library's cache go to
	// these whatever containerd's paths; each pod's entries go with the pod.
	h.noteHostDirs("/run/netns", "/var/lib/cni", "/var/lib/cni/results")
	if opts.CRIOBinDir != "" {
		if _, err := h.StartCRIO(ctx, CRIOOptions{BinDir: opts.CRIOBinDir, Name: NodeCRIO, CNIDir: nd + "/cni/net.d"}); err != nil {
			return nil, err
		}
		n.CRIO = NodeCRIO
	} else if err := n.startContainerd(ctx, c); err != nil {
		return nil, err
	}

	if err := n.startControlPlane(ctx, opts.BinDir); err != nil {
		return nil, err
	}
	if err := n.startKubelet(ctx, opts); err != nil {
		return nil, err
	}
	if err := h.save(); err != nil {
		return nil, err
	}
	h.logf("node %s Ready in %.1fs", n.Name, time.Since(t0).Seconds())
	return n, nil
}

// startContainerd starts the node's containerd, with the pod network's CNI
// configuration, and imports the test images.
func (n *Node) startContainerd(ctx context.Context, c containerdPaths) error {
	h, nd := n.h, n.h.path("node")
	containerd, err := h.newContainerd(NodeContainerd, c, fmt.Sprintf(`
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = %q
  conf_dir = %q
`, cniBinDir, nd+"/cni/net.d"))
	if err != nil {
		return err
	}
	if err := containerd.Start(ctx); err != nil {
		return err
	}
	archive := nd + "/images.tar"
	rootfs := nd + "/rootfs"
	if err := buildRootfs(rootfs); err != nil {
		return err
	}
	if err := writeImageFile(archive, rootfs); err != nil {
		return err
	}
	return importImages(ctx, c.address, "k8s.io", archive)
}

// crio is the node's CRI-O, nil if it runs on containerd.
func (n *Node) crio() *CRIO {
	for _, c := range n.h.rec.CRIO {
		if n.CRIO != "" && c.Name == n.CRIO {
			return c
		}
	}
	return nil
}

// RuntimeEndpoint is the CRI socket the kubelet uses.
func (n *Node) RuntimeEndpoint() string {
	if c := n.crio(); c != nil {
		return c.Address
	}
	return n.ContainerdAddress
}

// Runtime is the name of the node's runtime as container ids name it:
// "containerd" or "cri-o".
func (n *Node) Runtime() string {
	if n.CRIO != "" {
		return "cri-o"
	}
	return "containerd"
}

// LoadImage loads a Docker archive (docker save) of image (its short name,
// repository:tag) into the node's runtime, as docker.io/library/image and
// under the aliases.
func (n *Node) LoadImage(ctx context.Context, archive, image string, aliases ...string) error {
	if c := n.crio(); c != nil {
		return c.LoadImage(ctx, archive, image, aliases...)
	}
	if _, err := n.Ctr(ctx, "-n", "k8s.io", "images", "import", archive); err != nil {
		return err
	}
	for _, a := range aliases {
		if _, err := n.Ctr(ctx, "-n", "k8s.io", "images", "tag", "docker.io/library/"+image, a); err != nil {
			return err
		}
	}
	return nil
}

// ContainerPID is the main process's pid of a running container of the node
// (its id without the runtime's prefix), from its runtime's verbose CRI status.
func (n *Node) ContainerPID(ctx context.Context, id string) (int, error) {
	conn, err := grpc.NewClient("unix://"+n.RuntimeEndpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := runtimeapi.NewRuntimeServiceClient(conn).ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, err
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(res.GetInfo()["info"]), &info); err != nil || info.Pid <= 0 {
		return 0, fmt.Errorf("container %s: no pid in its verbose status (%v)", id, err)
	}
	return info.Pid, nil
}

// cniBinDir is where Debian's containernetworking-plugins are.
const cniBinDir = "/usr/lib/cni"

func nodePrereqs(binDir string) error {
	var missing []string
	for _, b := range []string{"kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			missing = append(missing, filepath.Join(binDir, b)+" (test/kubernetes/prepare.sh)")
		}
	}
	for _, p := range []string{"etcd", "containerd", "ctr", "runc", "unshare", "ip", "busybox"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			missing = append(missing, filepath.Join(cniBinDir, p)+" (containernetworking-plugins)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the Kubernetes node needs: %s", strings.Join(missing, ", "))
	}
	return nil
}

func (n *Node) startControlPlane(ctx context.Context, binDir string) error {
	h, nd := n.h, n.h.path("node")
	pki := nd + "/pki"
	etcdPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	client, peer := "http://127.0.0.1:"+itoa(etcdPort), "http://127.0.0.1:"+itoa(peerPort)
	etcd := h.newProcess(Etcd, "etcd", "--name", "mcm", "--data-dir", nd+"/etcd",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "mcm="+peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn")
	etcd.Ready = Readiness{URL: client + "/health"}
	if err := etcd.Start(ctx); err != nil {
		return err
	}

	apiPort, err := freePort()
	if err != nil {
		return err
	}
	n.Server = "https://127.0.0.1:" + itoa(apiPort)
	api := h.newProcess(APIServer, filepath.Join(binDir, "kube-apiserver"),
		"--etcd-servers="+client, "--bind-address=127.0.0.1", "--secure-port="+itoa(apiPort),
		"--cert-dir="+nd+"/apiserver", "--tls-cert-file="+pki+"/serving.crt", "--tls-private-key-file="+pki+"/serving.key",
		"--token-auth-file="+pki+"/tokens.csv", "--anonymous-auth=false", "--authorization-mode=AlwaysAllow",
		"--service-account-key-file="+pki+"/sa.key", "--service-account-signing-key-file="+pki+"/sa.key",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.254.0.0/24",
		// Pods need no service account token: the exporter's has none.
		"--disable-admission-plugins=ServiceAccount",
		"--kubelet-preferred-address-types=Hostname",
		"--kubelet-client-certificate="+pki+"/client.crt", "--kubelet-client-key="+pki+"/client.key",
		// The chart's kernel log option runs a privileged container.
		"--allow-privileged=true", "--profiling=false")
	api.Ready = Readiness{URL: n.Server + "/readyz", Token: n.Token}
	if err := api.Start(ctx); err != nil {
		return err
	}
	if err := n.writeKubeconfig(); err != nil {
		return err
	}

	// Both serve /healthz on 127.0.0.1 with the apiserver's certificate, and
	// check callers through the apiserver.
	serving := func(port int) []string {
		return []string{"--kubeconfig=" + n.Kubeconfig, "--authentication-kubeconfig=" + n.Kubeconfig,
			"--authorization-kubeconfig=" + n.Kubeconfig, "--bind-address=127.0.0.1", "--secure-port=" + itoa(port),
			"--tls-cert-file=" + pki + "/serving.crt", "--tls-private-key-file=" + pki + "/serving.key",
			"--leader-elect=false", "--profiling=false"}
	}
	cmPort, err := freePort()
	if err != nil {
		return err
	}
	// Its DaemonSet controller runs the exporter, the namespace controller ends
	// a deleted namespace, the garbage collector removes what a helm uninstall leaves.
	cm := h.newProcess(ControllerManager, append([]string{filepath.Join(binDir, "kube-controller-manager")},
		append(serving(cmPort), "--service-account-private-key-file="+pki+"/sa.key", "--use-service-account-credentials=false")...)...)
	cm.Ready = Readiness{URL: fmt.Sprintf("https://127.0.0.1:%d/healthz", cmPort)}
	if err := cm.Start(ctx); err != nil {
		return err
	}
	schedPort, err := freePort()
	if err != nil {
		return err
	}
	sched := h.newProcess(Scheduler, append([]string{filepath.Join(binDir, "kube-scheduler")}, serving(schedPort)...)...)
	sched.Ready = Readiness{URL: fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort)}
	return sched.Start(ctx)
}

func (n *Node) writeKubeconfig() error {
	ca, err := os.ReadFile(n.CAFile)
	if err != nil {
		return err
	}
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "mcm",
		"clusters": []any{map[string]any{"name": "mcm", "cluster": map[string]any{
			"server": n.Server, "certificate-authority-data": ca}}},
		"users":    []any{map[string]any{"name": "admin", "user": map[string]any{"token": n.Token}}},
		"contexts": []any{map[string]any{"name": "mcm", "context": map[string]any{"cluster": "mcm", "user": "admin"}}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(n.Kubeconfig, b, 0o600)
}

// kernelTunables are the sysctls the kubelet sets on its host at every start
// (it offers no way not to), with the values it wants. The harness shows it
// these values in files bound over /proc/sys in its own mount namespace and
// sets protectKernelDefaults, so that it checks them and changes nothing.
var kernelTunables = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// kubeletWrapper runs the kubelet in a mount namespace of its own: there the
// sysctls it would set read as it wants them, and /var/log and /var/lib are
// empty tmpfs (it links every container's log into /var/log/containers, and
// puts its device plugin socket in /var/lib/kubelet, whatever its root-dir).
// Its root directory is a shared mount, so that the volumes it mounts there
// (secrets, projected tokens) reach containerd, in the host's namespace.
const kubeletWrapper = `set -e
mount --make-rprivate /proc
mount --make-private /
for f in "$SYSCTLS"/*; do mount --bind "$f" "/proc/sys/$(basename "$f" | tr . /)"; done
mount -t tmpfs -o mode=0755,size=16m kubelet-var-log /var/log
mount -t tmpfs -o mode=0755,size=16m kubelet-var-lib /var/lib
exec "$@"`

func (n *Node) startKubelet(ctx context.Context, opts NodeOptions) error {
	h, dir := n.h, n.KubeletDir
	if err := h.makeCgroup(n.CgroupRoot); err != nil {
		return err
	}
	for name, v := range kernelTunables {
		if err := os.WriteFile(filepath.Join(dir, "sysctl", strings.ReplaceAll(name, "/", ".")), []byte(v+"\n"), 0o644); err != nil {
			return err
		}
	}
	root := dir + "/root"
	if err := syscall.Mount(root, root, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s: %w", root, err)
	}
	h.rec.Mounts = append(h.rec.Mounts, root)
	if err := syscall.Mount("", root, "", syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", root, err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	healthz, err := freePort()
	if err != nil {
		return err
	}
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		// This host's memory controller is cgroup v1.
		"failCgroupV1": false,
		"cgroupDriver": "cgroupfs",
		// Every pod's cgroup nested in the harness's.
		"cgroupRoot":               n.CgroupRoot,
		"cgroupsPerQOS":            true,
		"enforceNodeAllocatable":   []string{},
		"failSwapOn":               false,
		"protectKernelDefaults":    true,
		"makeIPTablesUtilChains":   false,
		"containerRuntimeEndpoint": "unix://" + n.RuntimeEndpoint(),
		// The kubelet garbage-collects log files by paths relative to its
		// working directory: both are its own.
		"podLogsDir":         dir + "/pod-logs",
		"volumePluginDir":    dir + "/volume-plugins",
		"address":            "127.0.0.1",
		"port":               port,
		"readOnlyPort":       0,
		"healthzBindAddress": "127.0.0.1",
		"healthzPort":        healthz,
		"tlsCertFile":        h.path("node/pki/serving.crt"),
		"tlsPrivateKeyFile":  h.path("node/pki/serving.key"),
		// The apiserver's client certificate (kubectl logs, exec), nothing else.
		"authentication": map[string]any{"anonymous": map[string]any{"enabled": false},
			"webhook": map[string]any{"enabled": false}, "x509": map[string]any{"clientCAFile": h.path("node/pki/ca.crt")}},
		"authorization": map[string]any{"mode": "AlwaysAllow"},
		// No eviction and no image garbage collection: the test images were
		// imported, nothing could pull them again.
		"evictionHard":                map[string]string{},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"nodeStatusUpdateFrequency":   "2s",
		"nodeStatusReportFrequency":   "10s",
		"fileCheckFrequency":          "5s",
		"syncFrequency":               "10s",
	}
	for k, v := range opts.Kubelet {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(dir+"/config.json", b, 0o644); err != nil {
		return err
	}
	args := []string{"--mount", "--propagation", "unchanged", "--", "/bin/sh", "-c", kubeletWrapper, "kubelet", filepath.Join(opts.BinDir, "kubelet"),
		"--config=" + dir + "/config.json", "--kubeconfig=" + n.Kubeconfig, "--root-dir=" + root,
		"--cert-dir=" + dir + "/pki", "--hostname-override=" + n.Name}
	if n.ContainerdAddress != "" {
		// cAdvisor's own client of containerd, which names its containers'
		// cgroups (namespace, pod, container of /metrics/cadvisor); its
		// default is containerd's usual socket, not this node's.
		args = append(args, "--containerd="+n.ContainerdAddress)
	}
	k := h.newProcess(Kubelet, append([]string{"unshare"}, args...)...)
	k.Env = []string{"SYSCTLS=" + dir + "/sysctl"}
	k.Dir = dir
	k.Ready = Readiness{URL: fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz)}
	if err := k.Start(ctx); err != nil {
		return err
	}
	return n.WaitReady(ctx)
}

// Kubelet is the node's kubelet.
func (n *Node) Kubelet() *Process { return n.h.Process(Kubelet) }

// Containerd is the node's containerd.
func (n *Node) Containerd() *Process { return n.h.Process(NodeContainerd) }

// Env is the node's settings for a shell or a test.
func (n *Node) Env() []string {
	return []string{
		"KUBECONFIG=" + n.Kubeconfig,
		"MCM_TEST_NODE_NAME=" + n.Name,
		"MCM_TEST_NODE_CONTAINERD_ADDRESS=" + n.ContainerdAddress,
		"MCM_TEST_NODE_CRI_ADDRESS=" + n.RuntimeEndpoint(),
		"MCM_TEST_NODE_CGROUP_ROOT=" + n.CgroupRoot,
		"MCM_TEST_NODE_POD_SUBNET=" + n.PodSubnet,
	}
}

// WaitReady waits until the apiserver shows the node Ready.
func (n *Node) WaitReady(ctx context.Context) error {
	t0 := time.Now()
	err := Until(ctx, 2*time.Minute, "node "+n.Name+" Ready", func() error {
		if k := n.Kubelet(); k != nil && !k.Running() {
			return Stop(fmt.Errorf("the kubelet exited; its log ends:\n%s", k.LogTail(30)))
		}
		var node struct {
			Status struct {
				Conditions []struct{ Type, Status, Reason, Message string }
			}
		}
		if err := n.get(ctx, "/api/v1/nodes/"+n.Name, &node); err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == "Ready" {
				if c.Status == "True" {
					return nil
				}
				return fmt.Errorf("condition Ready is %s: %s %s", c.Status, c.Reason, c.Message)
			}
		}
		return errors.New("no Ready condition yet")
	})
	if err == nil {
		n.h.logf("node %s Ready after %.1fs", n.Name, time.Since(t0).Seconds())
	}
	return err
}

// get reads an object of the apiserver (GET path) into v.
func (n *Node) get(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Server+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+n.Token)
	client, err := n.httpClient()
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.Unmarshal(body, v)
}

// removePods stops the kubelet, so that it starts nothing again, and removes
// every pod sandbox through the CRI: their containers, and their network
// (the CNI plugins release the addresses and remove the interfaces).
func (n *Node) removePods(ctx context.Context) error {
	var errs []error
	if k := n.Kubelet(); k != nil {
		errs = append(errs, k.Stop())
	}
	if c := n.crio(); c != nil {
		return errors.Join(append(errs, c.removePods(ctx))...)
	}
	c := n.Containerd()
	if c == nil || !c.Running() {
		return errors.Join(errs...)
	}
	errs = append(errs, removeCRIPods(ctx, n.ContainerdAddress))
	errs = append(errs, removeContainerdContainers(ctx, n.ContainerdAddress))
	return errors.Join(errs...)
}

// Ctr runs ctr against the node's containerd and returns its output.
func (n *Node) Ctr(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.ContainerdAddress}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
