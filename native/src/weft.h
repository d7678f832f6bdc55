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

#define WEFT_MAX_BATCH 1024

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
};

/* Per-thread scratch space for batch calls; one per worker, never shared. */
struct weft_scratch {
  struct mmsghdr msgs[WEFT_MAX_BATCH];
  struct iovec iov[WEFT_MAX_BATCH];
  struct sockaddr_in addrs[WEFT_MAX_BATCH];
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
 * Reads up to max packets; packet i lands at slab + i*slot_size and its
 * length goes to lens[i]. Stops early when the device is empty (EAGAIN).
 * Returns the count read, or -errno if the first read failed with an error
 * other than EAGAIN.
 */
int weft_tun_read_batch(int fd, uint8_t *slab, size_t slot_size, int max,
                        int32_t *lens, struct weft_io *io);

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
 * datagram length, or -1 when it did not fit its slot (truncated).
 * Source address/port (host order) go to addrs[i]/ports[i].
 * Returns the count (0 when nothing is waiting) or -errno.
 */
int weft_udp_recv_batch(int fd, uint8_t *slab, size_t slot_size, int max, int32_t *lens,
                        uint32_t *addrs, uint16_t *ports, struct weft_scratch *s,
                        struct weft_io *io);

/*
 * sendmmsg: datagram i is slab + offsets[i], lens[i], to addrs[i]:ports[i]
 * (host order). A datagram refused with a per-packet error is skipped and
 * counted in io->failed; when the socket buffer stays full for
 * WEFT_SEND_WAIT_MS the rest of the batch is counted as failed.
 * Returns the number sent.
 */
#define WEFT_SEND_WAIT_MS 10
int weft_udp_send_batch(int fd, const uint8_t *slab, const int32_t *offsets,
                        const int32_t *lens, const uint32_t *addrs, const uint16_t *ports,
                        int count, struct weft_scratch *s, struct weft_io *io);

#endif
