package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"crypto/rand"
)

// freeSubnet picks a /24 in 10.128.0.0/9 that overlaps no address or route
// of this host (other harnesses' bridges included).
func freeSubnet() (netip.Prefix, error) {
	out, err := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip route: %w", err)
	}
	addrs, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip addr: %w", err)
	}
	var used []netip.Prefix
	for _, f := range strings.Fields(string(out) + " " + string(addrs)) {
		if p, err := netip.ParsePrefix(f); err == nil {
			used = append(used, p.Masked())
		}
	}
	for range 100 {
		n, err := rand.Int(rand.Reader, big.NewInt(1<<15))
		if err != nil {
			return netip.Prefix{}, err
		}
		i := n.Int64()
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + i>>8), byte(i), 0}), 24)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /24 in 10.128.0.0/9")
}

// addBridge makes a bridge with the subnet's first address, up.
func addBridge(name string, subnet netip.Prefix) error {
	gw := subnet.Addr().Next()
	for _, args := range [][]string{
		{"link", "add", "name", name, "type", "bridge"},
		{"addr", "add", netip.PrefixFrom(gw, subnet.Bits()).String(), "dev", name},
		{"link", "set", name, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// deleteLink removes a network interface the harness made.
func deleteLink(name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil // never made, or gone
	}
	if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link del %s: %w: %s", name, err, out)
	}
	return nil
}

// writeCNIConfig writes the pod network's conflist into dir/net.d: the
// bridge plugin on the harness's bridge (it neither adds an address to it
// nor turns on forwarding without isGateway), host-local addresses kept in
// dir/ipam (not /var/lib/cni).
func writeCNIConfig(dir, bridge string, subnet netip.Prefix) error {
	cfg := map[string]any{
		"cniVersion": "0.4.0",
		"name":       bridge,
		"plugins": []any{map[string]any{
			"type":      "bridge",
			"bridge":    bridge,
			"isGateway": false,
			"ipMasq":    false,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": filepath.Join(dir, "ipam"),
				"ranges":  [][]map[string]string{{{"subnet": subnet.String(), "gateway": subnet.Addr().Next().String()}}},
			},
		}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "net.d", "10-mcm.conflist"), b, 0o644)
}
