#!/usr/bin/env bash
# The fluentd story on a real Kubernetes node, in one command (Debian, as root):
# starts a single-node Kubernetes of its own (test/harness: etcd, kube-apiserver,
# controller-manager, scheduler, a kubelet on a private containerd), deploys the
# exporter with `kubectl apply -f deploy/kubernetes/` (the image built from this
# checkout), and runs a pod whose worker process is OOM-killed while the pod keeps
# running. kubectl shows it Running with no restarts and no last state, the kubelet
# tells of no OOM kill — and the exporter counts it. Then it stops everything again.
#
#   scripts/demo-kubernetes.sh
#
# The first run builds the Kubernetes binaries (test/kubernetes/prepare.sh: about
# 15 minutes of CPU, cached afterwards); later runs take about a minute.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh curl make
echo "== the Kubernetes binaries (test/kubernetes/prepare.sh; built once, then cached)"
eval "$(test/kubernetes/prepare.sh)"
kubectl() { "$MCM_KUBERNETES_BIN_DIR/kubectl" "$@"; }

tmp=$(mktemp -d)
harness=$tmp/mcm-harness
go build -o "$harness" ./test/harness/cmd/mcm-harness
# shellcheck disable=SC2317 # run by the trap
cleanup() {
	if [[ -n "${MCM_TEST_HARNESS_DIR:-}" ]]; then "$harness" stop "$MCM_TEST_HARNESS_DIR"; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
echo "== starting a single-node Kubernetes"
exports=$("$harness" start -node) # fails the script if start fails
eval "$exports"
kubectl get nodes

echo "== the exporter's image, built from this checkout, imported into the node's containerd"
arch=$(go env GOARCH)
make build GOARCH="$arch" VERSION=demo BIN_DIR="$tmp/image/bin/linux-$arch" >/dev/null
cp Dockerfile "$tmp/image/"
docker -H "$MCM_TEST_DOCKER_HOST" build -q --build-arg TARGETOS=linux --build-arg TARGETARCH="$arch" -t missing-container-metrics:demo "$tmp/image" >/dev/null
docker -H "$MCM_TEST_DOCKER_HOST" save -o "$tmp/image.tar" missing-container-metrics:demo
ctr_node() { ctr --address "$MCM_TEST_NODE_CONTAINERD_ADDRESS" -n k8s.io "$@"; }
ctr_node images import "$tmp/image.tar" >/dev/null
image=$(sed -n 's|^ *image: \(.*\)$|\1|p' deploy/kubernetes/daemonset.yaml)
ctr_node images tag docker.io/library/missing-container-metrics:demo "$image" >/dev/null

echo "== kubectl apply -f deploy/kubernetes/ (the containerd socket at this node's path, as for k3s)"
mkdir "$tmp/manifests"
cp deploy/kubernetes/*.yaml "$tmp/manifests/"
sed -i "s|^\( *\)path: /run/containerd/containerd.sock .*|\1path: $MCM_TEST_NODE_CONTAINERD_ADDRESS|" "$tmp/manifests/daemonset.yaml"
kubectl apply -f "$tmp/manifests/"
kubectl -n missing-container-metrics rollout status daemonset/missing-container-metrics --timeout=3m
exporter=$(kubectl -n missing-container-metrics get pod -o jsonpath='{.items[0].status.podIP}')

echo "== a fluentd-like pod (limit 32 MiB): its worker is OOM-killed, its main process lives on"
kubectl apply -f - <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: fluentd-demo
spec:
  dnsPolicy: Default
  containers:
    - name: fluentd
      image: busybox:test
      imagePullPolicy: Never
      command: [/bin/sh, -c, "dd if=/dev/zero of=/dev/null bs=64M count=1; echo worker killed; sleep 100000"]
      resources:
        limits: {memory: 32Mi}
EOF
kubectl wait --for=condition=Ready pod/fluentd-demo --timeout=2m >/dev/null

metrics() { curl -fsS "http://$exporter:3001/metrics"; }
for _ in $(seq 300); do
	if metrics 2>/dev/null | grep -q 'container_ooms_total{.*pod="fluentd-demo".*} 1'; then
		echo "== kubectl get pod fluentd-demo: Running, no restarts"
		kubectl get pod fluentd-demo
		echo "== the kubelet's account: restartCount, lastState, and its events"
		kubectl get pod fluentd-demo -o jsonpath='restartCount={.status.containerStatuses[0].restartCount} lastState={.status.containerStatuses[0].lastState}{"\n"}'
		kubectl get events --field-selector involvedObject.name=fluentd-demo
		echo "== curl http://$exporter:3001/metrics (the DaemonSet's pod) | grep fluentd-demo"
		metrics | grep -E '^container_(ooms|restarts)_total.*pod="fluentd-demo"'
		exit 0
	fi
	sleep 0.1
done
echo "demo: the OOM kill did not show within 30 s" >&2
kubectl -n missing-container-metrics logs daemonset/missing-container-metrics >&2 || true
exit 1
