// SPDX-License-Identifier: GPL-2.0
/*
 * weft's kernel fast path: flannel's udp wire format (an IPv4 packet as the
 * whole payload of one UDP datagram) with no trip through userspace, for the
 * packets that need no userspace decision.
 *
 *   weft_encap  clsact egress of the TUN: a packet for a peer that runs this
 *               fast path too gets outer IPv4 + UDP headers and leaves through
 *               the underlay (bpf_redirect_neigh fills in the link layer).
 *               TCP super-packets stay super-packets: the kernel's UDP-tunnel
 *               segmentation cuts them, if anything must, on the way out.
 *   weft_decap  clsact ingress of the underlay: a datagram to our port from
 *               the peer that owns the inner source, carrying one valid IPv4
 *               packet for this host's subnet, loses its outer headers and
 *               enters the stack as if read from the TUN.
 *
 * Everything else continues unchanged (TC_ACT_OK) to the TUN or to the UDP
 * socket, where the userspace workers decide, answer with ICMP and count
 * drops. The rules mirror each other so that what one host encapsulates here
 * the other decapsulates here: encap passes on what decap would refuse.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "fastpath.h"

/* Debian 12's uapi header predates it (Linux 6.3) */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define OUTER_LEN (sizeof(struct iphdr) + sizeof(struct udphdr))

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct weft_fp_route_key);
  __type(value, struct weft_fp_route);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} routes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct weft_fp_config);
  __uint(max_entries, 1);
} config SEC(".maps");

/*
 * TCP flows (one direction) that sent a super-packet lately: their segments
 * go to userspace too until the flow has sent none for BULK_NS, so that a
 * flow's packets never overtake each other between the two paths.
 */
#define BULK_NS 2000000ULL

struct flow_key {
  __u32 saddr;
  __u32 daddr;
  __u32 ports;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __type(key, struct flow_key);
  __type(value, __u64);
  __uint(max_entries, 16384);
} bulk_flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, WEFT_FP_COUNTERS);
} counters SEC(".maps");

static __always_inline void count(__u32 which, __u64 n) {
  __u64 *c = bpf_map_lookup_elem(&counters, &which);
  if (c) *c += n;
}

static __always_inline int pass(__u32 why) {
  count(why, 1);
  return TC_ACT_OK;
}

static __always_inline __u16 fold(__u64 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)sum;
}

/* The header checksum of a 20-byte IPv4 header is right (the sum of its words is all ones). */
static __always_inline int header_ok(struct iphdr *ip) {
  return fold((__u32)bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0)) == 0xffff;
}

/* TTL - 1 of the IPv4 header at `at`, with its checksum patched (RFC 1624). */
static __always_inline int decrement_ttl(struct __sk_buff *skb, __u32 at, struct iphdr *ip) {
  __be16 old = *(__be16 *)&ip->ttl; /* ttl and protocol: one 16-bit word of the checksum */
  ip->ttl--;
  __be16 now = *(__be16 *)&ip->ttl;
  if (bpf_l3_csum_replace(skb, at + offsetof(struct iphdr, check), old, now, 2) < 0) return -1;
  return bpf_skb_store_bytes(skb, at + offsetof(struct iphdr, ttl), &ip->ttl, 1, 0);
}

/* Adds the 16-bit words of a 32-bit field as they lie in memory (the sum is byte-order neutral). */
static __always_inline __u64 words(__u32 raw) {
  return (raw & 0xffff) + (raw >> 16);
}

/*
 * What the inner packet's bytes add up to, from its headers alone (RFC 1071
 * sums), so that the outer UDP checksum can be filled in without reading the
 * payload: a valid IPv4 header sums to zero, a valid ICMP message too, and a
 * TCP or UDP segment to the negation of its pseudo-header. The same holds for
 * a checksum the kernel left partial once a NIC completes it (local checksum
 * offload). -1 for packets where the headers do not tell: fragments, UDP
 * without a checksum, other protocols (the userspace path takes those).
 */
static __always_inline int inner_sum(struct __sk_buff *skb, struct iphdr *ip, __u64 *sum) {
  if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) return -1;
  __u32 l4_len = bpf_ntohs(ip->tot_len) - sizeof(*ip);
  if (ip->protocol == IPPROTO_ICMP) {
    *sum = 0;
    return 0;
  }
  if (ip->protocol == IPPROTO_UDP) {
    __u16 check;
    if (bpf_skb_load_bytes(skb, sizeof(*ip) + offsetof(struct udphdr, check), &check, sizeof(check)) < 0 || check == 0)
      return -1;
  } else if (ip->protocol != IPPROTO_TCP) {
    return -1;
  }
  __u64 pseudo = words(ip->saddr) + words(ip->daddr) + bpf_htons((__u16)ip->protocol) + bpf_htons((__u16)l4_len);
  *sum = (~fold(pseudo)) & 0xffff;
  return 0;
}

static __always_inline struct weft_fp_config *configured(void) {
  __u32 zero = 0;
  struct weft_fp_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg || cfg->local_ip == 0) return 0;
  return cfg;
}

SEC("tc")
int weft_encap(struct __sk_buff *skb) {
  struct weft_fp_config *cfg = configured();
  if (!cfg || cfg->underlay_ifindex == 0) return TC_ACT_OK;
  if (skb->protocol != bpf_htons(ETH_P_IP)) return pass(WEFT_FP_ENCAP_PASS_OTHER);
  struct iphdr inner;
  if (bpf_skb_load_bytes(skb, 0, &inner, sizeof(inner)) < 0) return pass(WEFT_FP_ENCAP_PASS_OTHER);
  if (inner.version != 4 || inner.ihl != 5) return pass(WEFT_FP_ENCAP_PASS_OTHER);
  /* the peer's decap takes only sources inside the network (others follow userspace's rule) */
  if ((inner.saddr & cfg->cluster_mask) != cfg->cluster) return pass(WEFT_FP_ENCAP_PASS_OTHER);
  struct weft_fp_route_key key = {32, inner.daddr};
  struct weft_fp_route *r = bpf_map_lookup_elem(&routes, &key);
  if (!r) return pass(WEFT_FP_ENCAP_PASS_NO_ROUTE);
  /*
   * A peer without the fast path reads datagrams in userspace: a super-packet
   * (nothing segments it on a veth) or a packet whose checksum the kernel left
   * partial would reach it broken. Userspace sends it one whole packet each.
   */
  if (!(r->flags & WEFT_FP_ROUTE_FAST)) return pass(WEFT_FP_ENCAP_PASS_PLAIN_PEER);
  /* TTL 2 would arrive as 1 and expire at the peer: userspace handles both ends of that (ICMP) */
  if (inner.ttl <= 2) return pass(WEFT_FP_ENCAP_PASS_TTL);
  int super = skb->gso_size != 0;
  if (super && inner.protocol != IPPROTO_TCP) return pass(WEFT_FP_ENCAP_PASS_OTHER);
  /*
   * A single packet gets a real outer UDP checksum (from the headers, see
   * inner_sum), so that whatever path it takes at the peer — its kernel's
   * decap, or its userspace workers, whose sockets refuse datagrams without
   * a checksum — it is covered. A super-packet's datagrams carry none: the
   * segmenter leaves a zero checksum, and only a peer that decapsulates in
   * its kernel gets them.
   */
  __u64 payload_sum = 0;
  if (!super && (skb->len != bpf_ntohs(inner.tot_len) || inner_sum(skb, &inner, &payload_sum) < 0))
    return pass(WEFT_FP_ENCAP_PASS_OTHER);

  __u32 peer = r->peer;
  __u16 dport = r->port;
  __u32 inner_len = skb->len;
  __u32 underlay = cfg->underlay_ifindex;
  struct iphdr outer = {
    .version = 4,
    .ihl = 5,
    .tot_len = bpf_htons(inner_len + OUTER_LEN),
    .frag_off = bpf_htons(IP_DF),
    .ttl = 64,
    .protocol = IPPROTO_UDP,
    .saddr = cfg->local_ip,
    .daddr = peer,
  };
  outer.check = ~fold((__u32)bpf_csum_diff(0, 0, (__be32 *)&outer, sizeof(outer), 0)) & 0xffff;
  struct udphdr udp = {
    .source = cfg->port,
    .dest = dport,
    .len = bpf_htons(inner_len + sizeof(struct udphdr)),
  };
  if (!super) {
    /* the inner TTL drops by one below: its header then sums to zero again (the header checksum follows) */
    __u64 sum = words(outer.saddr) + words(outer.daddr) + bpf_htons((__u16)IPPROTO_UDP) + udp.len + /* pseudo-header */
                udp.source + udp.dest + udp.len + payload_sum;
    __u16 check = ~fold(sum) & 0xffff;
    udp.check = check == 0 ? 0xffff : check;
  }
  struct ethhdr eth = {.h_proto = bpf_htons(ETH_P_IP)};

  /* a TUN packet has no link layer; bpf_redirect_neigh needs one to fill in */
  if (bpf_skb_change_head(skb, ETH_HLEN, 0) < 0) return pass(WEFT_FP_ENCAP_PASS_OTHER);
  /* from here on the packet is changed: a failure drops it (and counts) */
  if (bpf_skb_adjust_room(skb, OUTER_LEN, BPF_ADJ_ROOM_MAC,
                          BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP) < 0 ||
      bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0 ||
      bpf_skb_store_bytes(skb, ETH_HLEN, &outer, sizeof(outer), 0) < 0 ||
      bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(outer), &udp, sizeof(udp), 0) < 0 ||
      decrement_ttl(skb, ETH_HLEN + OUTER_LEN, &inner) < 0) {
    count(WEFT_FP_ERRORS, 1);
    return TC_ACT_SHOT;
  }
  count(WEFT_FP_ENCAP_PACKETS, 1);
  count(WEFT_FP_ENCAP_BYTES, inner_len);
  if (super) count(WEFT_FP_ENCAP_SUPER, 1);
  return bpf_redirect_neigh(underlay, 0, 0, 0);
}

/* Outer IPv4 + UDP and the inner IPv4 header, as they follow the Ethernet header. */
struct tunnelled {
  struct iphdr outer;
  struct udphdr udp;
  struct iphdr inner;
};

SEC("tc")
int weft_decap(struct __sk_buff *skb) {
  struct weft_fp_config *cfg = configured();
  if (!cfg || cfg->tun_ifindex == 0) return TC_ACT_OK;
  if (skb->protocol != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
  struct tunnelled h;
  /* too short to carry an IPv4 header: not ours to judge (the socket gets it; userspace counts it) */
  if (bpf_skb_load_bytes(skb, ETH_HLEN, &h, sizeof(h)) < 0) return TC_ACT_OK;
  if (h.outer.version != 4 || h.outer.ihl != 5 || h.outer.protocol != IPPROTO_UDP) return TC_ACT_OK;
  if (h.outer.daddr != cfg->local_ip || h.udp.dest != cfg->port) return TC_ACT_OK;
  if (h.outer.frag_off & bpf_htons(IP_MF | IP_OFFSET)) return TC_ACT_OK; /* the stack reassembles it for the socket */

  /* for us: from here on every packet left to userspace is counted by why */
  if (h.inner.version != 4 || h.inner.ihl != 5) return pass(WEFT_FP_DECAP_PASS_MALFORMED);
  __u32 inner_len = bpf_ntohs(h.inner.tot_len);
  /* exactly one packet: a GRO train of several datagrams or a bad length goes to userspace, which splits or drops */
  if (bpf_ntohs(h.udp.len) != inner_len + sizeof(struct udphdr) || bpf_ntohs(h.outer.tot_len) != inner_len + OUTER_LEN ||
      skb->len < ETH_HLEN + OUTER_LEN + inner_len || !header_ok(&h.inner))
    return pass(WEFT_FP_DECAP_PASS_MALFORMED);
  if (h.inner.ttl <= 1) return pass(WEFT_FP_DECAP_PASS_TTL);
  if ((h.inner.daddr & cfg->subnet_mask) != cfg->subnet) return pass(WEFT_FP_DECAP_PASS_OTHER);
  if ((h.inner.saddr & cfg->cluster_mask) != cfg->cluster) return pass(WEFT_FP_DECAP_PASS_OTHER);
  if (cfg->flags & WEFT_FP_VALIDATE_SOURCES) {
    /* source validation: the sender must be the host whose lease holds the inner source */
    struct weft_fp_route_key key = {32, h.inner.saddr};
    struct weft_fp_route *r = bpf_map_lookup_elem(&routes, &key);
    if (!r || r->peer != h.outer.saddr) return pass(WEFT_FP_DECAP_PASS_SOURCE);
  }
  /*
   * A super-packet decapsulated here would keep its UDP-tunnel GSO type and
   * skb->encapsulation (Linux 6.18 has no adjust_room flag that clears them),
   * and forwarding it to a bridge would segment and checksum it in software.
   * The workers write it to the TUN as one clean GSO write instead (measured
   * far faster), and the rest of that flow follows it there for a while.
   */
  if (h.inner.protocol == IPPROTO_TCP) {
    struct flow_key fk = {.saddr = h.inner.saddr, .daddr = h.inner.daddr};
    if (bpf_skb_load_bytes(skb, ETH_HLEN + OUTER_LEN + sizeof(struct iphdr), &fk.ports, sizeof(fk.ports)) < 0)
      return pass(WEFT_FP_DECAP_PASS_MALFORMED);
    __u64 now = bpf_ktime_get_ns();
    if (skb->gso_size != 0) {
      bpf_map_update_elem(&bulk_flows, &fk, &now, BPF_ANY);
      return pass(WEFT_FP_DECAP_PASS_SUPER);
    }
    __u64 *last = bpf_map_lookup_elem(&bulk_flows, &fk);
    if (last && now - *last < BULK_NS) return pass(WEFT_FP_DECAP_PASS_SUPER);
  }
  __u32 tun = cfg->tun_ifindex;
  if (bpf_skb_adjust_room(skb, -(__s32)OUTER_LEN, BPF_ADJ_ROOM_MAC,
                          BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4) < 0) {
    count(WEFT_FP_ERRORS, 1);
    return TC_ACT_OK; /* unchanged: the socket gets it */
  }
  if (decrement_ttl(skb, ETH_HLEN, &h.inner) < 0) {
    count(WEFT_FP_ERRORS, 1);
    return TC_ACT_SHOT;
  }
  /*
   * A checksum the device verified was the outer UDP one (level 0): it says
   * nothing of the inner packet now, so the stack must verify that itself.
   */
  long level = bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY);
  if (level == 0) bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET);
  else if (level > 0) bpf_csum_level(skb, BPF_CSUM_LEVEL_DEC);
  count(WEFT_FP_DECAP_PACKETS, 1);
  count(WEFT_FP_DECAP_BYTES, inner_len);
  /* as if read from the TUN: rp_filter, iptables and routing see what the userspace path gives them */
  return bpf_redirect(tun, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
