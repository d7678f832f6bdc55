/*
 * The kernel fast path's maps, shared by the BPF programs (fastpath.bpf.c)
 * and their loader (loader.c). Addresses and ports are in network byte order,
 * as the packets carry them.
 */
#ifndef WEFT_FASTPATH_H
#define WEFT_FASTPATH_H

#include <linux/types.h>

/* routes: LPM trie, a peer's subnet -> where its host listens */
struct weft_fp_route_key {
  __u32 prefixlen;
  __u32 addr;
};

/* the peer decapsulates in its kernel: it takes super-packets (and packets with a partial checksum) */
#define WEFT_FP_ROUTE_FAST 1u

struct weft_fp_route {
  __u32 peer;   /* the peer's public IP */
  __u16 port;   /* the peer's UDP port */
  __u16 flags;  /* WEFT_FP_ROUTE_* */
};

/* config: array of one; all zero until the agent fills it (the programs then pass everything on) */
#define WEFT_FP_VALIDATE_SOURCES 1u

struct weft_fp_config {
  __u32 local_ip;      /* this host's public IP: outer source, and the destination decap accepts */
  __u32 subnet;        /* this host's subnet (decap delivers only into it) */
  __u32 subnet_mask;
  __u32 cluster;       /* the cluster network */
  __u32 cluster_mask;
  __u32 tun_ifindex;   /* decapsulated packets enter the stack as if read from the TUN */
  __u32 underlay_ifindex; /* encapsulated packets leave through it */
  __u16 port;          /* this host's UDP port (source of what it sends, destination it decaps) */
  __u16 flags;         /* WEFT_FP_* */
};

/*
 * counters: per-CPU array, one __u64 each. "pass" = handed to the userspace
 * path unchanged (it decides and counts); "error" = dropped because a helper
 * failed half-way (the packet was already changed).
 */
enum weft_fp_counter {
  WEFT_FP_ENCAP_PACKETS,
  WEFT_FP_ENCAP_BYTES,
  WEFT_FP_ENCAP_SUPER,        /* of which super-packets (GSO) */
  WEFT_FP_DECAP_PACKETS,
  WEFT_FP_DECAP_BYTES,
  WEFT_FP_ENCAP_PASS_NO_ROUTE,
  WEFT_FP_ENCAP_PASS_PLAIN_PEER, /* the peer runs no fast path: userspace sends it one packet per datagram */
  WEFT_FP_ENCAP_PASS_TTL,        /* TTL too low to cross: userspace answers with ICMP */
  WEFT_FP_ENCAP_PASS_OTHER,      /* not IPv4, IP options, a source outside the network, a UDP super-packet */
  WEFT_FP_DECAP_PASS_TTL,
  WEFT_FP_DECAP_PASS_MALFORMED,  /* not exactly one packet (lengths; a UDP_SEGMENT train on a veth), header checksum, IP options */
  WEFT_FP_DECAP_PASS_SOURCE,     /* sender unknown or not the owner of the inner source */
  WEFT_FP_DECAP_PASS_OTHER,      /* not for this host's subnet, source outside the network */
  WEFT_FP_DECAP_PASS_SUPER,      /* a TCP super-packet (userspace writes it as one GSO write), or its flow's next segments */
  WEFT_FP_ERRORS,
  WEFT_FP_COUNTERS
};

#endif
