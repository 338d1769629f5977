package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What the VM tests share: the cached kernel and its modules
// (test/vm/prepare.sh), the prerequisites, static builds of the project's
// commands, and the initramfs format.

// cacheDir is where test/vm/prepare.sh put the kernel and its modules.
func cacheDir() string {
	if d := os.Getenv("MCM_VM_CACHE"); d != "" {
		return d
	}
	return "/var/cache/missing-container-metrics/vm"
}

// kernelPath is the kernel the VMs boot: $MCM_VM_KERNEL, else the cached one.
func kernelPath() string {
	if k := os.Getenv("MCM_VM_KERNEL"); k != "" {
		return k
	}
	return filepath.Join(cacheDir(), "vmlinuz")
}

// prereqs collects what a VM test needs and does not find.
type prereqs struct{ missing []string }

func (p *prereqs) file(path, what string) string {
	if _, err := os.Stat(path); err != nil {
		p.missing = append(p.missing, what+" ("+path+")")
	}
	return path
}

func (p *prereqs) command(name, pkg string) string {
	path, err := exec.LookPath(name)
	if err != nil {
		p.missing = append(p.missing, name+" (Debian package "+pkg+")")
	}
	return path
}

func (p *prereqs) check(cond bool, what string) {
	if !cond {
		p.missing = append(p.missing, what)
	}
}

// done skips the test when something is missing, or under CI fails it.
func (p *prereqs) done(t *testing.T) {
	t.Helper()
	if len(p.missing) == 0 {
		return
	}
	msg := t.Name() + " needs " + strings.Join(p.missing, ", ") + ": run test/vm/prepare.sh (scripts/test.sh does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (a missing prerequisite is a failure under CI)")
	}
	t.Skip(msg)
}

// modules finds the kernel modules test/vm/prepare.sh cached, in load order.
func (p *prereqs) modules() []string {
	var out []string
	order := filepath.Join(cacheDir(), "modules", "order")
	b, err := os.ReadFile(order)
	if err != nil {
		p.check(false, "the kernel's modules ("+order+")")
		return nil
	}
	for _, m := range strings.Fields(string(b)) {
		out = append(out, p.file(filepath.Join(cacheDir(), "modules", m+".ko"), "kernel module "+m))
	}
	return out
}

// buildStatic builds a command of this module without cgo, so that it runs
// in an initramfs without libraries, and returns the binary's path.
func buildStatic(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", out, "./"+pkg)
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// newc writes a cpio archive in the "new ASCII" format the kernel unpacks.
type newc struct {
	buf bytes.Buffer
	ino int
}

func (c *newc) entry(name string, mode uint32, data []byte) {
	c.ino++
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *newc) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *newc) dir(name string)                         { c.entry(name, 0o040755, nil) }
func (c *newc) file(name string, perm uint32, b []byte) { c.entry(name, 0o100000|perm, b) }
func (c *newc) bytes() []byte                           { c.entry("TRAILER!!!", 0, nil); return c.buf.Bytes() }

// modules adds the kernel modules at paths to lib/modules, and their load
// order to lib/modules/order: "insmod /lib/modules/$m.ko" for each m.
func (c *newc) modules(t *testing.T, paths []string) {
	t.Helper()
	c.dir("lib")
	c.dir("lib/modules")
	var order []string
	for _, m := range paths {
		c.copyFile(t, "lib/modules/"+filepath.Base(m), m)
		order = append(order, strings.TrimSuffix(filepath.Base(m), ".ko"))
	}
	c.file("lib/modules/order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
}

// copyFile adds the file at path to the archive as name.
func (c *newc) copyFile(t *testing.T, name, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c.file(name, 0o755, b)
}

// bootVM boots kernel with initrd in qemu (software emulation, 512 MiB, no
// network), with the extra qemu arguments, until the guest powers off or
// timeout passes, and returns what its console printed.
func bootVM(t *testing.T, qemu, kernel, initrd string, timeout time.Duration, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	began := time.Now()
	args := append([]string{"-m", "512", "-nographic", "-no-reboot", "-net", "none"}, extra...)
	args = append(args, "-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check") // see runtimes_test.go
	cmd := exec.CommandContext(ctx, qemu, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	console := strings.ReplaceAll(out.String(), "\r", "")
	t.Logf("the VM ran for %s", time.Since(began).Round(100*time.Millisecond))
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, console)
	}
	return console
}
