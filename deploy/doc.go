// Package deploy holds no code: its tests check what deploy/ ships — the Helm chart,
// the Kubernetes manifests, the alerting rules, the Grafana dashboard and the systemd
// unit — against Kubernetes' API types, Prometheus' PromQL parser, promtool, helm's
// linter and the exporter's own metrics and flags. It is a module of its own so that
// those heavy dependencies stay out of the exporter's.
package deploy
