package main

import (
	"testing"
	"time"
)

func TestFlagDefaults(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *cfg.web.WebListenAddresses; len(got) != 1 || got[0] != ":3001" {
		t.Errorf("listen address %v", got)
	}
	if !cfg.docker || cfg.dockerHost != "unix:///var/run/docker.sock" || cfg.retention != 5*time.Minute || cfg.legacyNames {
		t.Errorf("defaults: %+v", cfg)
	}
}

// The earlier tool's environment variables keep working.
func TestEarlierToolsEnvironment(t *testing.T) {
	t.Setenv("BIND_ADDRESS", ":9999")
	t.Setenv("DOCKER", "false")
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *cfg.web.WebListenAddresses; len(got) != 1 || got[0] != ":9999" {
		t.Errorf("BIND_ADDRESS ignored: %v", got)
	}
	if cfg.docker {
		t.Error("DOCKER=false ignored")
	}
	if cfg.dockerHost != "tcp://127.0.0.1:2375" {
		t.Errorf("DOCKER_HOST ignored: %s", cfg.dockerHost)
	}
}

func TestNewVariablesWinOverOldOnes(t *testing.T) {
	t.Setenv("BIND_ADDRESS", ":9999")
	t.Setenv(envPrefix+"WEB_LISTEN_ADDRESS", ":8888")
	t.Setenv(envPrefix+"RETENTION", "1h")
	t.Setenv(envPrefix+"COMPAT_LEGACY_METRIC_NAMES", "true")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *cfg.web.WebListenAddresses; len(got) != 1 || got[0] != ":8888" {
		t.Errorf("listen address %v", got)
	}
	if cfg.retention != time.Hour || !cfg.legacyNames {
		t.Errorf("environment ignored: %+v", cfg)
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
	cfg, err := parseFlags([]string{"--docker.host=unix:///x.sock", "--no-docker", "--retention=10s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.dockerHost != "unix:///x.sock" || cfg.docker || cfg.retention != 10*time.Second {
		t.Errorf("flags: %+v", cfg)
	}
}

func TestBadFlagsAreRejected(t *testing.T) {
	for _, args := range [][]string{{"--retention=-1s"}, {"--retention=soon"}, {"--no-such-flag"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestKernelFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.kernel || cfg.kernelCfg.SysFS != "/sys" || cfg.kernelCfg.ProcFS != "/proc" || cfg.kernelCfg.Kmsg != "/dev/kmsg" {
		t.Errorf("kernel defaults: %v %+v", cfg.kernel, cfg.kernelCfg)
	}
	t.Setenv(envPrefix+"PATH_SYSFS", "/host/sys")
	cfg, err = parseFlags([]string{"--no-kernel", "--path.procfs=/host/proc", "--path.kmsg=/host/kmsg"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.kernel || cfg.kernelCfg.SysFS != "/host/sys" || cfg.kernelCfg.ProcFS != "/host/proc" || cfg.kernelCfg.Kmsg != "/host/kmsg" {
		t.Errorf("kernel flags: %v %+v", cfg.kernel, cfg.kernelCfg)
	}
	// An empty --path.kmsg: the kernel log is not read.
	if cfg, err = parseFlags([]string{"--path.kmsg="}); err != nil || cfg.kernelCfg.Kmsg != "" {
		t.Errorf("--path.kmsg= gave %q (%v)", cfg.kernelCfg.Kmsg, err)
	}
}

func TestContainerdFlags(t *testing.T) {
	t.Setenv("CONTAINERD", "false")
	cfg, err := parseFlags([]string{"--containerd.address=unix:///x/containerd.sock", "--containerd.namespaces=k8s.io,default", "--containerd.namespaces=other"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.containerd {
		t.Error("CONTAINERD=false ignored")
	}
	if cfg.containerdAddress != "unix:///x/containerd.sock" || len(cfg.containerdNamespaces) != 2 {
		t.Errorf("containerd flags: %q %q", cfg.containerdAddress, cfg.containerdNamespaces)
	}
}
