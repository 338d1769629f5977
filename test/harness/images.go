package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Test images, without a registry: a busybox root file system, as a Docker
// archive (what `docker save` writes) that `docker load` and `ctr images
// import` both take.
const (
	// BusyboxImage is the test image: /bin/busybox and its applets, CMD /bin/sh.
	BusyboxImage = "busybox:test"
	// PauseImage is the pod sandbox image, under the name containerd's CRI
	// plugin asks for (it never pulls): the same file system, sleeping.
	PauseImage = "registry.k8s.io/pause:3.6"
)

// busyboxApplets are the applets linked in the root file system (linking all
// ~400 takes seconds); `busybox APPLET` reaches the rest.
var busyboxApplets = strings.Fields(`sh ash sleep usleep dd cat echo printf true false kill killall pkill
	pidof ps top ls mkdir rmdir rm cp mv ln touch head tail grep egrep sed awk wc tr cut sort uniq tee
	env id date hostname uname whoami yes seq test [ [[ stat find xargs timeout nproc free uptime mount
	umount chmod chown du df basename dirname readlink realpath sync od hexdump md5sum sha256sum base64
	tar gzip gunzip vi less more which nc wget ip`)

// buildRootfs makes a busybox root file system in dir.
func buildRootfs(dir string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox (Debian package busybox-static): %w", err)
	}
	if out, err := exec.Command("ldd", bb).CombinedOutput(); err == nil {
		return fmt.Errorf("%s is not static (install busybox-static): %s", bb, out)
	}
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(dir, d), 0o1777); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(filepath.Join(dir, "bin/busybox"), "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	have := strings.Fields(string(out))
	for _, a := range busyboxApplets {
		if slices.Contains(have, a) {
			if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
				return err
			}
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// imageConfig is an image's name and what it runs.
type imageConfig struct {
	Ref        string
	Entrypoint []string
	Cmd        []string
}

// writeImageArchive writes a Docker archive of images that share one layer:
// the root file system in dir.
func writeImageArchive(w io.Writer, dir string, images ...imageConfig) error {
	var layer bytes.Buffer
	if err := tarDir(&layer, dir); err != nil {
		return err
	}
	sum := sha256.Sum256(layer.Bytes())
	diffID := "sha256:" + hex.EncodeToString(sum[:])
	layerPath := hex.EncodeToString(sum[:]) + "/layer.tar"

	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := add(layerPath, layer.Bytes()); err != nil {
		return err
	}
	type manifestEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []manifestEntry
	for _, img := range images {
		cfg, err := json.Marshal(map[string]any{
			"architecture": runtime.GOARCH,
			"os":           "linux",
			"config": map[string]any{
				"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
				"Entrypoint": img.Entrypoint,
				"Cmd":        img.Cmd,
			},
			"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
			"history": []map[string]string{{"created_by": "test/harness: busybox root file system"}},
		})
		if err != nil {
			return err
		}
		cs := sha256.Sum256(cfg)
		name := hex.EncodeToString(cs[:]) + ".json"
		if err := add(name, cfg); err != nil {
			return err
		}
		manifest = append(manifest, manifestEntry{Config: name, RepoTags: []string{img.Ref}, Layers: []string{layerPath}})
	}
	m, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := add("manifest.json", m); err != nil {
		return err
	}
	return tw.Close()
}

// tarDir writes the tree under dir as a tar stream, owned by root.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// testImages are the busybox test image and the sandbox image.
var testImages = []imageConfig{
	{Ref: BusyboxImage, Cmd: []string{"/bin/sh"}},
	{Ref: PauseImage, Entrypoint: []string{"/bin/sleep", "inf"}},
}

// importImages imports the archive of the test images in file into
// containerd's namespace ns at address.
func importImages(ctx context.Context, address, ns, file string) error {
	cmd := exec.CommandContext(ctx, "ctr", "--address", address, "-n", ns, "images", "import", file)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import: %w: %s", err, out)
	}
	return nil
}
