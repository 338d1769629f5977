package main

import (
	"testing"
)

// A value a flag cannot take is an error that names the flag, or the
// variable that held it, and says what the flag takes.
func TestFlagErrorsSayWhichAndWhat(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--retention=banana"}, nil, `--retention="banana": want a duration such as 90s, 5m or 1h30m`},
		{nil, map[string]string{envPrefix + "RETENTION": "soon"}, envPrefix + `RETENTION="soon" (--retention): want a duration such as 90s, 5m or 1h30m`},
		{[]string{"--kills.kept=many"}, nil, `--kills.kept="many": want a whole number, 0 or more`},
		{[]string{"--max-containers=ten"}, nil, `--max-containers="ten": want a whole number, 0 or more`},
		{[]string{"--kernel.max-watches=x"}, nil, `--kernel.max-watches="x": want a whole number, 0 or more`},
		{nil, map[string]string{"DOCKER": "yes"}, `DOCKER="yes" (--docker): want true or false`},
		{nil, map[string]string{"CONTAINERD": "maybe"}, `CONTAINERD="maybe" (--containerd): want true or false`},
		{nil, map[string]string{envPrefix + "DOCKER": "nah"}, envPrefix + `DOCKER="nah" (--docker): want true or false`},
		{nil, map[string]string{envPrefix + "KERNEL": "on"}, envPrefix + `KERNEL="on" (--kernel): want true or false`},
		{[]string{"--docker.host=/tmp/x.sock"}, nil, `--docker.host="/tmp/x.sock": want an address with its scheme: unix:///tmp/x.sock for a socket, or tcp://HOST:PORT`},
		{nil, map[string]string{"DOCKER_HOST": "/run/d.sock"}, `DOCKER_HOST="/run/d.sock" (--docker.host): want an address with its scheme: unix:///run/d.sock for a socket, or tcp://HOST:PORT`},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		_, err := parseFlags(tc.args)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v %v: %v, want %s", tc.args, tc.env, err, tc.want)
		}
		for k := range tc.env {
			t.Setenv(k, "")
		}
	}
}

// DOCKER and CONTAINERD, the earlier tool's, are generic names: the
// prefixed ones work too and win; a flag wins over both.
func TestPrefixedSourceVariables(t *testing.T) {
	for _, tc := range []struct {
		args                      []string
		env                       map[string]string
		wantDocker, wantContainer bool
	}{
		{nil, map[string]string{envPrefix + "DOCKER": "false", envPrefix + "CONTAINERD": "0"}, false, false},
		{nil, map[string]string{"DOCKER": "false", "CONTAINERD": "false"}, false, false},
		{nil, map[string]string{"DOCKER": "false", envPrefix + "DOCKER": "true"}, true, true},
		{[]string{"--docker"}, map[string]string{"DOCKER": "yes"}, true, true},
		{[]string{"--no-containerd"}, map[string]string{envPrefix + "CONTAINERD": "true"}, true, false},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		cfg, err := parseFlags(tc.args)
		if err != nil {
			t.Errorf("%v %v: %v", tc.args, tc.env, err)
		} else if cfg.docker != tc.wantDocker || cfg.containerd != tc.wantContainer {
			t.Errorf("%v %v: docker %v containerd %v, want %v %v", tc.args, tc.env, cfg.docker, cfg.containerd, tc.wantDocker, tc.wantContainer)
		}
		for k := range tc.env {
			t.Setenv(k, "")
		}
	}
}

// A --docker.host without a scheme is refused only while the Docker source
// is on; with one it is taken as it is.
func TestDockerHostScheme(t *testing.T) {
	for _, args := range [][]string{{"--docker.host=unix:///tmp/x.sock"}, {"--docker.host=tcp://127.0.0.1:2375"}, {"--docker.host=/tmp/x.sock", "--no-docker"}} {
		if _, err := parseFlags(args); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}
