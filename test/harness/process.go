package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a daemon the harness started: in a session of its own (no
// terminal or process-group signal reaches it), its output appended to
// NAME.log in the harness directory, its PID recorded there. Every daemon's
// command line names the harness directory, so that a PID is only ever
// signalled while it is still the process the harness started.
type Process struct {
	h *Harness
	// Name identifies it in the harness ("containerd", "kubelet", ...).
	Name string
	// Args is the command, Args[0] the program.
	Args []string `json:"args"`
	// Env is added to the harness's own environment.
	Env []string `json:"env,omitempty"`
	// Dir is its working directory (default: the harness directory).
	Dir string `json:"dir,omitempty"`
	// Ready tells when it answers.
	Ready Readiness `json:"ready"`
	// StopTimeout is how long it gets after SIGTERM before SIGKILL (default 30 s).
	StopTimeout time.Duration `json:"stopTimeout,omitempty"`
	PID         int           `json:"pid"`

	exited chan struct{} // closed when the child exited; nil if not this process's child
}

// Readiness is how the harness tells that a daemon answers: an HTTP(S) URL
// that must answer 200 (over a unix socket if Unix is set; TLS certificates are
// not checked, the servers' are self-signed), a command that must succeed, or
// a CRI socket whose runtime must say its version.
type Readiness struct {
	URL   string   `json:"url,omitempty"`
	Unix  string   `json:"unix,omitempty"`
	Token string   `json:"token,omitempty"`
	Cmd   []string `json:"cmd,omitempty"`
	CRI   string   `json:"cri,omitempty"`
}

// StartTimeout is how long a daemon gets to answer after it was started.
var StartTimeout = 90 * time.Second

// LogPath is the file its output goes to.
func (p *Process) LogPath() string { return filepath.Join(p.h.Dir, p.Name+".log") }

// LogTail returns the last n lines of its log.
func (p *Process) LogTail(n int) string {
	b, _ := os.ReadFile(p.LogPath())
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Start starts it and waits until it answers.
func (p *Process) Start(ctx context.Context) error {
	if p.Running() {
		return fmt.Errorf("%s is already running (pid %d)", p.Name, p.PID)
	}
	logf, err := os.OpenFile(p.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== %s: %s\n", time.Now().Format(time.RFC3339), strings.Join(p.Args, " "))
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Dir = p.Dir
	if cmd.Dir == "" {
		cmd.Dir = p.h.Dir
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.PID = cmd.Process.Pid
	p.exited = make(chan struct{})
	exited := p.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := p.h.save(); err != nil {
		return err
	}
	p.h.logf("%s started (pid %d)", p.Name, p.PID)
	return p.WaitReady(ctx)
}

// WaitReady waits until it answers, for at most StartTimeout.
func (p *Process) WaitReady(ctx context.Context) error {
	t0 := time.Now()
	err := Until(ctx, StartTimeout, p.Name+" answers", func() error {
		if !p.Running() {
			return Stop(fmt.Errorf("%s exited; its log ends:\n%s", p.Name, p.LogTail(30)))
		}
		return p.Ready.check(ctx)
	})
	if err != nil {
		if p.Running() {
			err = fmt.Errorf("%w; its log ends:\n%s", err, p.LogTail(30))
		}
		return err
	}
	p.h.logf("%s answers after %.1fs", p.Name, time.Since(t0).Seconds())
	return nil
}

// Answers says whether it answers now (its readiness check passes).
func (p *Process) Answers(ctx context.Context) error { return p.Ready.check(ctx) }

// Running says whether the process the harness started is alive (not a
// zombie) and still the one it started.
func (p *Process) Running() bool {
	if p.PID <= 0 {
		return false
	}
	if p.exited != nil {
		// A child not reaped yet cannot have given its PID to another
		// process; right after the fork its command line is still this
		// process's.
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	return ours(p.PID, p.h.Dir)
}

// Stop sends SIGTERM, and SIGKILL if it has not exited after StopTimeout.
func (p *Process) Stop() error {
	if !p.Running() {
		return nil
	}
	timeout := p.StopTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	p.h.logf("stopping %s (pid %d)", p.Name, p.PID)
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	if p.waitGone(timeout) {
		return nil
	}
	p.h.logf("%s (pid %d) still runs %s after SIGTERM: SIGKILL", p.Name, p.PID, timeout)
	return p.Kill()
}

// Kill sends SIGKILL and waits until it is gone.
func (p *Process) Kill() error {
	if !p.Running() {
		return nil
	}
	p.h.logf("killing %s (pid %d)", p.Name, p.PID)
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	if !p.waitGone(10 * time.Second) {
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, p.PID)
	}
	return nil
}

// Restart stops it (SIGTERM) and starts it again with the same command.
func (p *Process) Restart(ctx context.Context) error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.Start(ctx)
}

func (p *Process) waitGone(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.Running() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// ours says whether pid is alive, no zombie, and its command line names dir:
// a recorded PID that was reused by another process is never signalled.
func ours(pid int, dir string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte(dir+"/"))
}

// insecureClient talks to the daemons' self-signed TLS servers.
var insecureClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

func (r Readiness) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if len(r.Cmd) > 0 {
		out, err := exec.CommandContext(ctx, r.Cmd[0], r.Cmd[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(r.Cmd, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if r.CRI != "" {
		return criVersion(ctx, r.CRI)
	}
	client := insecureClient
	if r.Unix != "" {
		client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", r.Unix)
			},
		}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return err
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", r.URL, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// errStop ends Until at once.
type errStop struct{ error }

func (e errStop) Unwrap() error { return e.error }

// Stop wraps err so that Until gives up at once instead of trying again.
func Stop(err error) error { return errStop{err} }

// Until calls check every 100 ms until it returns nil, an error wrapped by
// Stop, ctx ends or timeout passes; it then returns check's last error,
// saying what it waited for.
func Until(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		var stop errStop
		if errors.As(err, &stop) {
			return fmt.Errorf("waiting for %s: %w", what, stop.error)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
