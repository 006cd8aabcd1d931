// Package netlab builds the private network of a multi-node system test:
// one Linux network namespace per node (ip netns add sluice-ID-NODE), each
// joined by a veth pair to a bridge in a hub namespace of its own
// (sluice-ID), on a private IPv4 /24 in 10.213.0.0/16 chosen not to overlap
// the host's routes. Every node has lo up and one address on eth0; nothing
// is created in the host's namespace and nothing is routed out of the lab.
//
// Each node's namespace is a bind mount under /run/netns: Node.Path is what
// an environment back-end enters (setns, nsenter --net=PATH) to run the
// node's processes in it, and Node.Command runs a program there with ip
// netns exec. Lab.Hosts gives the /etc/hosts lines that map node names to
// addresses.
//
// Lab.Close deletes every namespace the lab created, and New deletes them
// itself when it fails half-way, so no exit path leaks a namespace, link or
// bridge. A process that dies before Close (SIGKILL) leaves its lab behind
// with a record of its owner under /run/sluice-netlab; Sweep, run when a
// worker starts, removes the labs whose owner is gone. Every command is an ip(8) call with an argument slice, run
// through internal/proc. Creating namespaces needs root (CAP_SYS_ADMIN and
// CAP_NET_ADMIN).
package netlab
