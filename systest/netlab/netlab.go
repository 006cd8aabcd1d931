package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ci/sluice/internal/proc"
)

// MaxNodes is the most nodes a lab holds: one /24, less the network and
// broadcast addresses.
const MaxNodes = 250

// nsPrefix starts the name of every namespace a lab creates.
const nsPrefix = "sluice-"

// netnsDir is where ip netns keeps its namespaces.
const netnsDir = "/run/netns"

// cleanupTimeout bounds Close, which runs with a context of its own so that
// a cancelled caller still cleans up.
const cleanupTimeout = 30 * time.Second

var nodeName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$`)

// Node is one node of a lab.
type Node struct {
	// Name is the node's name in the scenario and in Lab.Hosts.
	Name string
	// Namespace is the ip netns name of the node's network namespace.
	Namespace string
	// Path is the namespace's bind mount (/run/netns/NAME): open it and
	// setns(2) it, or give it to nsenter --net=, to run in the node.
	Path string
	// Addr is the node's address on eth0.
	Addr netip.Addr
	// Interface is the name of the node's link to the lab, inside its
	// namespace.
	Interface string

	ip string
}

// Command returns a command that runs argv inside the node's network
// namespace (ip netns exec), in its own process group, killed with its
// group when ctx ends. Only the network namespace changes: the caller
// chooses the root and the other namespaces.
func (n Node) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return proc.Command(ctx, n.ip, append([]string{"netns", "exec", n.Namespace}, argv...)...)
}

// Lab is a private network of nodes. Its exported fields are read-only.
type Lab struct {
	// ID is the short random identifier in every namespace name.
	ID string
	// Subnet is the lab's private IPv4 network.
	Subnet netip.Prefix
	// Hub is the namespace that holds the bridge.
	Hub string
	// Nodes are the nodes, in the order given to New.
	Nodes []Node
	// IP is the path of the ip program the lab uses.
	IP string

	log     *slog.Logger
	mu      sync.Mutex
	created []string // namespaces this lab created, in creation order
	closed  bool
}

// ErrNotRoot is returned by New when the process cannot create network
// namespaces.
var ErrNotRoot = errors.New("netlab: network namespaces need root")

// New creates a lab with one node per name. Names are lower-case DNS
// labels of at most 32 characters, unique. On error, everything New
// created is removed before it returns.
func New(ctx context.Context, log *slog.Logger, names []string) (*Lab, error) {
	var raw [4]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("netlab: lab id: %w", err)
	}
	return newLab(ctx, log, hex.EncodeToString(raw[:]), names)
}

func newLab(ctx context.Context, log *slog.Logger, id string, names []string) (*Lab, error) {
	if err := checkNames(names); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("netlab: ip (iproute2): %w", err)
	}
	l := &Lab{ID: id, Hub: nsPrefix + id, IP: ipPath, log: log}
	if l.Subnet, err = l.chooseSubnet(ctx); err != nil {
		return nil, err
	}
	// The record comes first: a lab of a process that dies from here on
	// is found by Sweep.
	if err := writeOwner(id); err != nil {
		return nil, err
	}
	if err := l.build(ctx, names); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	log.Info("network lab created", "lab", l.ID, "subnet", l.Subnet.String(), "nodes", len(l.Nodes))
	return l, nil
}

func checkNames(names []string) error {
	if len(names) == 0 || len(names) > MaxNodes {
		return fmt.Errorf("netlab: %d nodes, want 1 to %d", len(names), MaxNodes)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if err := CheckName(n); err != nil {
			return err
		}
		if seen[n] {
			return fmt.Errorf("netlab: node name %q given twice", n)
		}
		seen[n] = true
	}
	return nil
}

// CheckName checks that name can name a node: a lower-case DNS label of at
// most 32 characters (letters, digits, inner hyphens, starting with a
// letter), so that it fits in a namespace name and in /etc/hosts.
func CheckName(name string) error {
	if !nodeName.MatchString(name) {
		return fmt.Errorf("netlab: node name %q: want a lower-case DNS label of at most 32 characters, starting with a letter", name)
	}
	return nil
}

func (l *Lab) build(ctx context.Context, names []string) error {
	if err := l.addNamespace(ctx, l.Hub); err != nil {
		return err
	}
	hub := []string{"-n", l.Hub}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "br0", "type", "bridge"},
		{"link", "set", "br0", "up"},
	} {
		if err := l.ip(ctx, append(hub, args...)...); err != nil {
			return err
		}
	}
	base := l.Subnet.Addr().As4()
	for i, name := range names {
		addr := base
		addr[3] = byte(i + 1)
		n := Node{
			Name:      name,
			Namespace: nsPrefix + l.ID + "-" + name,
			Addr:      netip.AddrFrom4(addr),
			Interface: "eth0",
			ip:        l.IP,
		}
		n.Path = netnsDir + "/" + n.Namespace
		if err := l.addNamespace(ctx, n.Namespace); err != nil {
			return err
		}
		port := fmt.Sprintf("p%d", i)
		inNode := []string{"-n", n.Namespace}
		for _, args := range [][]string{
			append(inNode, "link", "set", "lo", "up"),
			// Both ends are born in namespaces of the lab: nothing ever
			// appears in the host's namespace, even for a moment.
			append(hub, "link", "add", port, "type", "veth", "peer", "name", n.Interface, "netns", n.Namespace),
			append(hub, "link", "set", port, "master", "br0", "up"),
			append(inNode, "addr", "add", netip.PrefixFrom(n.Addr, l.Subnet.Bits()).String(), "dev", n.Interface),
			append(inNode, "link", "set", n.Interface, "up"),
		} {
			if err := l.ip(ctx, args...); err != nil {
				return err
			}
		}
		l.Nodes = append(l.Nodes, n)
	}
	return nil
}

func (l *Lab) addNamespace(ctx context.Context, name string) error {
	if err := l.ip(ctx, "netns", "add", name); err != nil {
		return err
	}
	l.created = append(l.created, name)
	return nil
}

// Node returns the node called name.
func (l *Lab) Node(name string) (Node, bool) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Hosts returns /etc/hosts content for a node of the lab: localhost, then
// one line per node with its address and name.
func (l *Lab) Hosts() []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "%s\t%s\n", n.Addr, n.Name)
	}
	return b.Bytes()
}

// Close deletes every namespace the lab created, with the links and the
// bridge in them, then the lab's owner record (see Sweep). It runs on a context of its own (bounded by 30 s) so that
// it also cleans up after a cancelled test, and may be called more than
// once. A process still running in a node keeps that namespace alive
// until it exits, but not its name: stop the nodes' processes first.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	for i := len(l.created) - 1; i >= 0; i-- {
		name := l.created[i]
		if err := l.ip(ctx, "netns", "delete", name); err != nil {
			if _, serr := os.Stat(netnsDir + "/" + name); !errors.Is(serr, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
		}
		l.created = l.created[:i]
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // the record stays: Sweep retries
	}
	if err := removeOwner(l.ID); err != nil {
		return err
	}
	l.closed = true
	l.log.Info("network lab removed", "lab", l.ID)
	return nil
}

// Namespaces lists the ip netns namespaces whose names belong to the lab
// with the given ID: what Close must leave empty.
func Namespaces(ctx context.Context, id string) ([]string, error) {
	cmd := proc.Command(ctx, "ip", "netns", "list")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("netlab: ip netns list: %w", err)
	}
	var ours []string
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name == nsPrefix+id || strings.HasPrefix(name, nsPrefix+id+"-") {
			ours = append(ours, name)
		}
	}
	return ours, nil
}

var env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

func (l *Lab) ip(ctx context.Context, args ...string) error {
	cmd := proc.Command(ctx, l.IP, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("netlab %s: ip %s: %w: %s", l.ID, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// chooseSubnet picks a /24 in 10.213.0.0/16, starting from one derived
// from the lab's ID, that overlaps none of the host's IPv4 routes (all
// tables), so that a node's address can never be mistaken for a host's.
func (l *Lab) chooseSubnet(ctx context.Context) (netip.Prefix, error) {
	cmd := proc.Command(ctx, l.IP, "-j", "-4", "route", "show", "table", "all")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("netlab %s: ip route show: %w", l.ID, err)
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return netip.Prefix{}, fmt.Errorf("netlab %s: read ip -j route: %w", l.ID, err)
	}
	var used []netip.Prefix
	for _, r := range routes {
		if p, err := netip.ParsePrefix(r.Dst); err == nil && p.Bits() > 0 {
			used = append(used, p.Masked())
		} else if a, err := netip.ParseAddr(r.Dst); err == nil {
			used = append(used, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	h := fnv.New32a()
	h.Write([]byte(l.ID))
	start := int(binary.BigEndian.Uint32(h.Sum(nil)) % 256)
	for i := range 256 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte((start + i) % 256), 0}), 24)
		free := true
		for _, u := range used {
			free = free && !u.Overlaps(p)
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("netlab %s: every /24 of 10.213.0.0/16 overlaps a host route", l.ID)
}
