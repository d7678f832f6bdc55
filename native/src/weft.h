/*
 * weft native data plane: TUN and UDP batch I/O.
 *
 * Pure C, no Node.js headers: every function here can be exercised from a
 * plain C program. binding.c is the only file that knows about N-API.
 *
 * Conventions:
 *  - functions return a count (>= 0) or a negative errno;
 *  - "slab" is caller-owned memory holding packets; the caller gives offsets
 *    and lengths, this code only bounds-checks and never copies a packet;
 *  - every function adds the number of system calls it made to io->syscalls
 *    so the caller can report user/kernel switches per packet.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "offload.h"

/* Messages per sendmmsg/recvmmsg call */
#define WEFT_MAX_BATCH 1024
/* Packets per TUN write call (a GRO batch: up to 64 datagrams per received message) */
#define WEFT_MAX_WRITE 16384
/* iovecs and segment headers per send call (super-packets split into segments) */
#define WEFT_MAX_IOV 16384
#define WEFT_MAX_HDRS 8192
/* Segments of one super-packet (64 KiB / 536-byte MSS < 128) */
#define WEFT_GSO_MAX_SEGS 128
/* Datagrams per UDP_SEGMENT send: the kernel's UDP_MAX_SEGMENTS is 64 on older kernels */
#define WEFT_UDP_GSO_MAX_SEGS 64
/* A UDP_SEGMENT send carries at most this many payload bytes in total */
#define WEFT_UDP_GSO_MAX_BYTES 65000

/* tun open flags (weft's own bits, mapped onto IFF_* in tun.c) */
#define WEFT_TUN_VNET_HDR    0x1
#define WEFT_TUN_MULTI_QUEUE 0x2

/* udp open flags */
#define WEFT_UDP_REUSEPORT 0x1

/* Outcome of one batch call beyond its return value. */
struct weft_io {
  uint32_t syscalls;   /* system calls made by this call */
  uint32_t failed;     /* packets that could not be sent/written (skipped) */
  int32_t last_errno;  /* errno of the last per-packet failure, 0 if none */
  uint32_t bytes;      /* payload bytes the kernel took (sends and writes) */
  uint32_t units;      /* datagrams sent (sends) or TUN writes made (writes) */
  uint32_t malformed;  /* super-packets that could not be split (dropped) */
};

/* Per-thread scratch space for batch calls; one per worker, never shared. */
/*
 * recvmmsg headers, built once for a (slab, slot size, batch, GRO) and reused:
 * a call only resets what the kernel wrote into the headers it filled.
 */
struct weft_recv_headers {
  struct mmsghdr msgs[WEFT_MAX_BATCH];
  struct iovec iov[WEFT_MAX_BATCH];
  struct sockaddr_in addrs[WEFT_MAX_BATCH];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl[WEFT_MAX_BATCH];
  const uint8_t *slab; /* the key the headers were built for; NULL: none yet */
  size_t slot_size;
  int max;
  int with_segs;
};

struct weft_scratch {
  struct weft_recv_headers recv;
  struct mmsghdr msgs[WEFT_MAX_BATCH];
  struct sockaddr_in addrs[WEFT_MAX_BATCH];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl[WEFT_MAX_BATCH];
  uint32_t msg_units[WEFT_MAX_BATCH];
  int32_t msg_src[WEFT_MAX_BATCH]; /* which input packet a message carries (per-packet results) */
  /* 1: the message is a run of whole input packets, segment k = input msg_src + k, one iovec
     each; 0: the segments of one split input, a header and a payload iovec each */
  uint8_t msg_run[WEFT_MAX_BATCH];
  struct iovec iov[WEFT_MAX_IOV];
  uint8_t hdrs[WEFT_MAX_HDRS * WEFT_SEG_HDR_MAX];
  struct weft_seg segs[WEFT_GSO_MAX_SEGS];
  struct weft_gro_group groups[WEFT_MAX_WRITE];
};

/* ---- TUN ---- */

/*
 * Opens /dev/net/tun and attaches to (or creates) the TUN device `name`
 * (may be "" to let the kernel choose). IFF_TUN|IFF_NO_PI always, plus the
 * WEFT_TUN_* flags. The fd is non-blocking and close-on-exec. The actual
 * device name is written to out_name (IFNAMSIZ bytes).
 * Returns the fd or -errno; *failed_call names the failing call.
 */
int weft_tun_open(const char *name, int flags, char *out_name, const char **failed_call);

/* TUNSETOFFLOAD with TUN_F_* bits; returns 0 or -errno. */
int weft_tun_set_offload(int fd, unsigned int offload_flags);

/*
 * Reads up to max packets; each read may take up to slot_size bytes and its
 * length goes to lens[i] (-1 when it did not fit). Without offsets, packet i
 * lands at slab + i*slot_size. With offsets (dense mode), packets are packed
 * one after another, each starting on a 64-byte boundary, and packet i's
 * start goes to offsets[i]: small packets share cache lines' pages instead of
 * one slot each. slot_size must then be a multiple of 64, so max packets
 * always fit in max*slot_size bytes. Stops early when the device is empty
 * (EAGAIN); a caller that passes max = 1 reads one packet and makes no
 * second read. A packet the kernel refuses to hand over is counted in
 * io->failed. Returns the count read, or -errno when the first read finds the
 * device gone (EBADF, EBADFD, EIO).
 */
int weft_tun_read_batch(int fd, uint8_t *slab, size_t slot_size, int max,
                        int32_t *lens, int32_t *offsets, struct weft_io *io);

/*
 * Writes count packets (slab + offsets[i], lens[i]), one write(2) each.
 * A packet the kernel refuses is skipped and counted in io->failed.
 * Returns the number written.
 */
int weft_tun_write_batch(int fd, const uint8_t *slab, const int32_t *offsets,
                         const int32_t *lens, int count, struct weft_io *io);

/* ---- UDP ---- */

/*
 * Opens a non-blocking, close-on-exec IPv4 UDP socket bound to addr:port
 * (host byte order), with receive/send buffers of the given sizes (forced
 * past rmem_max/wmem_max when permitted). Actual sizes are written back.
 */
int weft_udp_open(uint32_t addr, uint16_t port, int flags, int *rcvbuf, int *sndbuf,
                  const char **failed_call);

/*
 * recvmmsg into slab slots (slot i at slab + i*slot_size). lens[i] is the
 * message length, or -1 when it did not fit its slot (truncated). With UDP_GRO
 * on, a message may hold several datagrams of one sender back to back: segs[i]
 * is then their size (the last may be shorter), else 0. segs may be NULL.
 * Source address/port (host order) go to addrs[i]/ports[i].
 * Returns the count (0 when nothing is waiting) or -errno.
 */
int weft_udp_recv_batch(int fd, uint8_t *slab, size_t slot_size, int max, int32_t *lens,
                        int32_t *segs, uint32_t *addrs, uint16_t *ports, struct weft_scratch *s,
                        struct weft_io *io);

/* Turns UDP_GRO on for the socket; 0 or -errno (kernels without it: -ENOPROTOOPT). */
int weft_udp_set_gro(int fd, int on);
/* 1 when the kernel knows UDP_SEGMENT, else 0. */
int weft_udp_gso_supported(int fd);

/*
 * Attaches a socket filter that drops every datagram whose UDP checksum field
 * is 0 (IPv4's "no checksum") and whose UDP length is at most max_whole: the
 * kernel verifies every other checksum before a datagram reaches the socket,
 * so what remains is covered end to end. Longer ones (max_whole: the longest
 * datagram one underlay packet carries) crossed no wire whole: a peer's
 * kernel fast path sent a super-packet, and weft checks its TCP checksum
 * itself (weft_super_vnet). max_whole 0xffff drops every zero checksum.
 * 0 or -errno.
 */
int weft_udp_reject_zero_csum(int fd, uint32_t max_whole);

/*
 * Steers datagrams among the `group` sockets of a SO_REUSEPORT group (the
 * i-th bound is index i) by the inner packet's flow: a hash of the inner IPv4
 * source and destination and, for unfragmented TCP/UDP, the ports, modulo
 * `group`. All flows between two hosts share one outer 4-tuple, which the
 * kernel's own choice would send to one socket. Attach to any member once.
 * 0 or -errno.
 */
int weft_udp_steer_by_inner_flow(int fd, int group);

/* Datagrams the kernel dropped at this socket (buffer full, the filter): SO_MEMINFO's drops; -errno on failure. */
int64_t weft_udp_socket_drops(int fd);

/*
 * Per-packet results of a send batch, optional (NULL: not wanted). For input
 * packet i: per[3i] datagrams the kernel took, per[3i+1] their payload bytes,
 * per[3i+2] datagrams refused or given up. The data plane attributes them to
 * the packet's peer; a split super-packet's datagrams all count for it.
 */
#define WEFT_SEND_RESULT_FIELDS 3

/* weft_udp_send_vnet_batch's flags */
#define WEFT_SEND_GSO 0x1      /* a split super-packet leaves as UDP_SEGMENT messages */
#define WEFT_SEND_PACK_RUNS 0x2 /* consecutive equal-size packets to one peer leave as one UDP_SEGMENT message */

/*
 * Sends packets read from a TUN with a virtio-net header: packet i is
 * slab + offsets[i] (vnet header first), lens[i] bytes, to addrs[i]:ports[i].
 * Partial checksums are completed; TCP/UDP super-packets are split into
 * wire-sized packets (one datagram each), sent with UDP_SEGMENT when
 * WEFT_SEND_GSO is set, else as separate datagrams of the same sendmmsg.
 * With WEFT_SEND_PACK_RUNS, a run of whole packets next to each other in the
 * batch, to the same address and port, of one size (the last may be
 * shorter), goes as one UDP_SEGMENT message: still one packet per datagram
 * on the wire, one pass through the stack for all of them. io->units counts
 * datagrams sent, io->failed datagrams refused, io->malformed packets that
 * could not be split. Returns datagrams sent.
 */
int weft_udp_send_vnet_batch(int fd, uint8_t *slab, const int32_t *offsets, const int32_t *lens,
                             const uint32_t *addrs, const uint16_t *ports, int count, int flags,
                             int32_t *per, struct weft_scratch *s, struct weft_io *io);

/*
 * Writes one IPv4 TCP super-packet that arrived whole in one datagram (a
 * peer's kernel fast path sent it and nothing on the way segmented it) to a
 * TUN opened with a virtio-net header, as a GSO write that the kernel cuts
 * into segments of at most `mtu` bytes. Its TCP checksum must be either the
 * partial one a sender's stack leaves for the NIC (the pseudo-header sum) or
 * complete and right (verified here, then turned into the partial form): the
 * kernel completes it for every segment. Returns 1 when written, 0 when
 * refused (not such a packet, or a wrong checksum: counted in io->malformed),
 * -errno when the write failed (also counted in io->failed).
 */
int weft_tun_write_super(int fd, uint8_t *pkt, size_t len, int mtu, struct weft_io *io);
/* The checks and the virtio-net header (WEFT_VNET_HDR_LEN bytes to hdr) of weft_tun_write_super; 0 or -1 (refused). */
/*
 * A single packet's virtio-net header when its TCP or UDP checksum field holds
 * the partial form (the pseudo-header sum a sender's kernel leaves for a NIC:
 * a peer's fast path sent it over a link that never completed it): NEEDS_CSUM
 * at its L4 header, 1. Otherwise 0 (and hdr untouched): write it with none.
 * Either way the kernel's sum seeded with that field is the right checksum.
 */
int weft_partial_vnet(const uint8_t *pkt, size_t len, uint8_t *hdr);
int weft_super_vnet(uint8_t *pkt, size_t len, int mtu, uint8_t *hdr);

/*
 * Writes plain IPv4 packets (slab + offsets[i], lens[i]) to a TUN. With
 * `vnet` every write carries a virtio-net header, and gro_flags merge
 * consecutive segments of a flow into one write (see weft_gro_plan; the
 * first packet's headers are rewritten in place). io->units counts writes.
 * Returns the number of packets the kernel took.
 */
int weft_tun_write_packets(int fd, uint8_t *slab, const int32_t *offsets, const int32_t *lens,
                           int count, int vnet, int gro_flags, struct weft_scratch *s,
                           struct weft_io *io);

/*
 * sendmmsg: datagram i is slab + offsets[i], lens[i], to addrs[i]:ports[i]
 * (host order). A datagram refused with a per-packet error is skipped and
 * counted in io->failed. Sends refused for want of buffer space (EAGAIN,
 * ENOBUFS) wait for room and retry, within bounds (the same for
 * weft_udp_send_vnet_batch): a datagram still refused after
 * WEFT_SEND_RETRIES retries in a row is skipped; when the socket buffer stays
 * full for WEFT_SEND_WAIT_MS, or WEFT_SEND_BUDGET_MS after the call's first
 * stall, the rest of the batch is counted as failed. A call therefore never
 * spends much more than WEFT_SEND_BUDGET_MS waiting. Returns the number sent.
 */
#define WEFT_SEND_WAIT_MS 10
#define WEFT_SEND_RETRIES 3
#define WEFT_SEND_BUDGET_MS 50
int weft_udp_send_batch(int fd, const uint8_t *slab, const int32_t *offsets,
                        const int32_t *lens, const uint32_t *addrs, const uint16_t *ports,
                        int count, int32_t *per, struct weft_scratch *s, struct weft_io *io);

/* notify.c: one datagram to the service manager's socket ("@name" = abstract). 0 or -errno. */
int weft_notify_send(const char *path, size_t path_len, const char *msg, size_t msg_len);

/* Opens (creating, 0600) and flock()s `path` exclusively without waiting: the descriptor holding
   the lock (closing it releases it), or -errno (-EWOULDBLOCK: another process holds it). */
int weft_lock_file(const char *path);

#endif
