package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"
)

// flagWants says what a flag takes, in the error of a value it cannot
// take: kingpin's own errors name neither the flag nor what would do
// (`time: invalid duration "banana"`, `strconv.ParseBool: parsing "yes"`).
// Boolean flags take true or false; flags of strings take anything.
var flagWants = map[string]string{
	"retention":          "a duration such as 90s, 5m or 1h30m",
	"kills.kept":         "a whole number, 0 or more",
	"max-containers":     "a whole number, 0 or more",
	"kernel.max-watches": "a whole number, 0 or more",
	"runtime.gomaxprocs": "a whole number, 1 or more",
}

// legacyEnvars are the earlier tool's environment variables of flags whose
// own variable is the prefixed one: they set the flag where that is not set.
var legacyEnvars = map[string]string{"docker": "DOCKER", "containerd": "CONTAINERD"}

// nameFlagErrors makes a bad value of a boolean flag, or of one in
// flagWants, an error that names the flag, or the environment variable
// that held the value, and says what the flag takes. It applies the
// variables of legacyEnvars. Call it once every flag is declared.
func nameFlagErrors(app *kingpin.Application) {
	for _, m := range app.Model().Flags {
		want, ok := flagWants[m.Name]
		if m.IsBoolFlag() && m.Name != "help" && m.Name != "version" {
			want, ok = "true or false", true
		}
		if !ok {
			continue
		}
		envars := []string{m.Envar}
		if m.Envar == "" { // kingpin's DefaultEnvars name, as it makes it
			envars[0] = envPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(m.Name))
		}
		f := app.GetFlag(m.Name)
		if old := legacyEnvars[m.Name]; old != "" {
			envars = append(envars, old)
			if v := os.Getenv(old); v != "" && os.Getenv(envars[0]) == "" {
				f.Default(v)
			}
		}
		f.SetValue(&namedValue{Value: m.Value, flag: m.Name, envars: envars, want: want})
	}
}

// namedValue is a flag's value whose errors say which flag, and what it
// takes.
type namedValue struct {
	kingpin.Value
	flag   string
	envars []string // that can set it
	want   string
}

func (v *namedValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		from := fmt.Sprintf("--%s=%q", v.flag, s)
		for _, e := range v.envars {
			if s != "" && os.Getenv(e) == s {
				from = fmt.Sprintf("%s=%q (--%s)", e, s, v.flag)
				break
			}
		}
		return fmt.Errorf("%s: want %s", from, v.want)
	}
	return nil
}

// IsBoolFlag keeps a boolean flag one: --docker, --no-docker.
func (v *namedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// noSources is the warning of an exporter with every source off: it runs,
// and exports nothing of any container.
const noSources = "every source is off (--no-docker, --no-containerd, --no-kernel): no container's OOM kills, restarts or exit codes will be exported; turn one on"

// checkDockerHost rejects a --docker.host without a scheme, which the
// Docker client refuses only once the exporter starts, with "unable to
// parse docker host", and says how to write it.
func checkDockerHost(cfg *config) error {
	if !cfg.docker || strings.Contains(cfg.dockerHost, "://") {
		return nil
	}
	from := fmt.Sprintf("--docker.host=%q", cfg.dockerHost)
	if os.Getenv("DOCKER_HOST") == cfg.dockerHost {
		from = fmt.Sprintf("DOCKER_HOST=%q (--docker.host)", cfg.dockerHost)
	}
	return fmt.Errorf("%s: want an address with its scheme: unix://%s for a socket, or tcp://HOST:PORT", from, strings.TrimPrefix(cfg.dockerHost, "//"))
}
