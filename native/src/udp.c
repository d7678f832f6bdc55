/* UDP socket: open, recvmmsg and sendmmsg batches. See weft.h. */
#define _GNU_SOURCE
#include "weft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/udp.h>
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* Sets a buffer size, forcing past the sysctl limit when we are privileged. */
static void set_buffer(int fd, int force_opt, int opt, int *size) {
  int want = *size;
  socklen_t len = sizeof(*size);
  if (want > 0) {
    if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof(want)) < 0)
      (void)setsockopt(fd, SOL_SOCKET, opt, &want, sizeof(want));
  }
  if (getsockopt(fd, SOL_SOCKET, opt, size, &len) < 0) *size = -1;
}

int weft_udp_open(uint32_t addr, uint16_t port, int flags, int *rcvbuf, int *sndbuf,
                  const char **failed_call) {
  struct sockaddr_in sa;
  int one = 1, err;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *failed_call = "socket";
    return -errno;
  }
  if ((flags & WEFT_UDP_REUSEPORT) &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
    *failed_call = "setsockopt(SO_REUSEPORT)";
    goto fail;
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf);
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(addr);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    *failed_call = "bind";
    goto fail;
  }
  return fd;
fail:
  err = errno;
  close(fd);
  return -err;
}

int weft_udp_set_gro(int fd, int on) {
  if (setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) < 0) return -errno;
  return 0;
}

int weft_udp_reject_zero_csum(int fd, uint32_t max_whole) {
  /* a UDP socket's filter sees the datagram from its UDP header on: length in bytes 4-5, checksum in 6-7 */
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),         /* a checksum: keep */
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 4),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, max_whole, 1, 0), /* no checksum, longer than a wire packet: keep */
      BPF_STMT(BPF_RET | BPF_K, 0),                         /* no checksum: drop */
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),                /* keep all of it */
  };
  struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) return -errno;
  return 0;
}

int weft_udp_steer_by_inner_flow(int fd, int group) {
  if (group < 1) return -EINVAL;
  /* a reuseport program sees the datagram from its payload on: the inner IPv4 header.
     A load past the end ends the program with 0: such datagrams go to socket 0. */
  struct sock_filter code[] = {
      /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
      /* 1 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf0),
      /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x40, 1, 0),
      /* 3 */ BPF_STMT(BPF_RET | BPF_K, 0),                      /* not IPv4 */
      /* 4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),            /* source */
      /* 5 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
      /* 6 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),            /* destination */
      /* 7 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      /* 8 */ BPF_STMT(BPF_ST, 0),                                /* M[0] = src ^ dst */
      /* 9 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),             /* fragment offset, MF */
      /* 10 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 9, 0), /* a fragment: addresses only (20) */
      /* 11 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),            /* protocol */
      /* 12 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 1, 0),     /* TCP: 14 */
      /* 13 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 6),    /* UDP: 14, else 20 */
      /* 14 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),           /* X = header length */
      /* 15 */ BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0),            /* both ports */
      /* 16 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
      /* 17 */ BPF_STMT(BPF_LD | BPF_MEM, 0),
      /* 18 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      /* 19 */ BPF_STMT(BPF_ST, 0),                               /* M[0] ^= ports */
      /* 20 */ BPF_STMT(BPF_LD | BPF_MEM, 0),
      /* every input bit must reach the bits kept: connect() hands out ports of one parity, so
         the low bits alone would send every stream between two pods to one worker */
      /* 21 */ BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x9e3779b1),
      /* 22 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
      /* 23 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (uint32_t)group),
      /* 24 */ BPF_STMT(BPF_RET | BPF_A, 0),
  };
  struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) < 0) return -errno;
  return 0;
}

int64_t weft_udp_socket_drops(int fd) {
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof(mem);
  memset(mem, 0, sizeof(mem));
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0) return -errno;
  if (len < (socklen_t)((SK_MEMINFO_DROPS + 1) * sizeof(uint32_t))) return -ENOPROTOOPT;
  return mem[SK_MEMINFO_DROPS];
}

int weft_udp_gso_supported(int fd) {
  int size = 0;
  socklen_t len = sizeof(size);
  return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, &len) == 0;
}

/* (Re)builds the receive headers when the slab, slot size, batch or GRO differ from last time. */
static struct weft_recv_headers *recv_headers(struct weft_scratch *s, uint8_t *slab, size_t slot_size,
                                              int max, int with_segs) {
  struct weft_recv_headers *h = &s->recv;
  if (h->slab == slab && h->slot_size == slot_size && h->max == max && h->with_segs == with_segs) return h;
  for (int i = 0; i < max; i++) {
    h->iov[i].iov_base = slab + (size_t)i * slot_size;
    h->iov[i].iov_len = slot_size;
    memset(&h->msgs[i].msg_hdr, 0, sizeof(h->msgs[i].msg_hdr));
    h->msgs[i].msg_hdr.msg_iov = &h->iov[i];
    h->msgs[i].msg_hdr.msg_iovlen = 1;
    h->msgs[i].msg_hdr.msg_name = &h->addrs[i];
    h->msgs[i].msg_hdr.msg_namelen = sizeof(h->addrs[i]);
    if (with_segs) {
      h->msgs[i].msg_hdr.msg_control = h->ctrl[i].buf;
      h->msgs[i].msg_hdr.msg_controllen = sizeof(h->ctrl[i].buf);
    }
  }
  h->slab = slab;
  h->slot_size = slot_size;
  h->max = max;
  h->with_segs = with_segs;
  return h;
}

int weft_udp_recv_batch(int fd, uint8_t *slab, size_t slot_size, int max, int32_t *lens,
                        int32_t *segs, uint32_t *addrs, uint16_t *ports, struct weft_scratch *s,
                        struct weft_io *io) {
  int n;
  if (max > WEFT_MAX_BATCH) max = WEFT_MAX_BATCH;
  struct weft_recv_headers *h = recv_headers(s, slab, slot_size, max, segs != NULL);
  do {
    n = recvmmsg(fd, h->msgs, (unsigned int)max, MSG_DONTWAIT, NULL);
    io->syscalls++;
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -errno;
  }
  for (int i = 0; i < n; i++) {
    struct msghdr *m = &h->msgs[i].msg_hdr;
    lens[i] = (m->msg_flags & MSG_TRUNC) ? -1 : (int32_t)h->msgs[i].msg_len;
    addrs[i] = ntohl(h->addrs[i].sin_addr.s_addr);
    ports[i] = ntohs(h->addrs[i].sin_port);
    if (segs != NULL) {
      segs[i] = 0;
      /* without its control message a GRO message could not be split: drop it whole */
      if (m->msg_flags & MSG_CTRUNC) lens[i] = -1;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int size;
          memcpy(&size, CMSG_DATA(c), sizeof(size));
          segs[i] = size;
        }
      }
      m->msg_controllen = sizeof(h->ctrl[i].buf); /* the kernel wrote what it used */
    }
    m->msg_namelen = sizeof(h->addrs[i]);
  }
  return n;
}

/*
 * Retries of sends the kernel refuses for want of buffer space (EAGAIN,
 * ENOBUFS), shared by everything one batch call sends. poll(2) saying
 * "writable" does not promise the next send goes through: ENOBUFS can come
 * from a datagram whose IP fragments do not fit the send buffer, or from
 * memory pressure, with the buffer empty. A loop that only trusts poll then
 * spins forever on the worker thread. So a call gives up on one datagram after
 * WEFT_SEND_RETRIES fruitless retries in a row, and on the rest of its batch
 * when the buffer stays full for WEFT_SEND_WAIT_MS or once WEFT_SEND_BUDGET_MS
 * have passed since its first stall. What is given up is counted in io->failed.
 */
struct send_budget {
  int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 until the call's first stall (no clock read before) */
  int fruitless;       /* retries in a row that sent nothing */
};

enum stall_action { STALL_RETRY, STALL_SKIP_ONE, STALL_GIVE_UP };

static int64_t monotonic_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int is_stall(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

/* A send that took nothing failed with a stall errno: wait for room, skip the datagram, or stop. */
static enum stall_action on_stall(int fd, struct send_budget *b, struct weft_io *io) {
  int64_t now = monotonic_ns();
  if (b->deadline_ns == 0) b->deadline_ns = now + (int64_t)WEFT_SEND_BUDGET_MS * 1000000;
  if (now >= b->deadline_ns) return STALL_GIVE_UP;
  if (++b->fruitless > WEFT_SEND_RETRIES) {
    b->fruitless = 0;
    return STALL_SKIP_ONE;
  }
  int64_t left_ms = (b->deadline_ns - now + 999999) / 1000000;
  struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
  int r;
  do {
    r = poll(&p, 1, left_ms < WEFT_SEND_WAIT_MS ? (int)left_ms : WEFT_SEND_WAIT_MS);
    io->syscalls++;
  } while (r < 0 && errno == EINTR);
  return r > 0 ? STALL_RETRY : STALL_GIVE_UP; /* timed out: the buffer stays full */
}

/* Per-packet results (see WEFT_SEND_RESULT_FIELDS); `per` may be NULL. */
static inline void per_sent(int32_t *per, int src, uint32_t units, uint32_t bytes) {
  if (per == NULL) return;
  per[3 * src] += (int32_t)units;
  per[3 * src + 1] += (int32_t)bytes;
}

static inline void per_failed(int32_t *per, int src, uint32_t units) {
  if (per != NULL) per[3 * src + 2] += (int32_t)units;
}

int weft_udp_send_batch(int fd, const uint8_t *slab, const int32_t *offsets,
                        const int32_t *lens, const uint32_t *addrs, const uint16_t *ports,
                        int count, int32_t *per, struct weft_scratch *s, struct weft_io *io) {
  int done = 0, sent = 0;
  if (count > WEFT_MAX_BATCH) count = WEFT_MAX_BATCH;
  if (per != NULL) memset(per, 0, sizeof(*per) * WEFT_SEND_RESULT_FIELDS * (size_t)count);
  for (int i = 0; i < count; i++) {
    s->addrs[i].sin_family = AF_INET;
    s->addrs[i].sin_port = htons(ports[i]);
    s->addrs[i].sin_addr.s_addr = htonl(addrs[i]);
    memset(s->addrs[i].sin_zero, 0, sizeof(s->addrs[i].sin_zero));
    s->iov[i].iov_base = (void *)(slab + offsets[i]);
    s->iov[i].iov_len = (size_t)lens[i];
    memset(&s->msgs[i].msg_hdr, 0, sizeof(s->msgs[i].msg_hdr));
    s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
    s->msgs[i].msg_hdr.msg_name = &s->addrs[i];
    s->msgs[i].msg_hdr.msg_namelen = sizeof(s->addrs[i]);
  }
  struct send_budget budget = {0, 0};
  while (done < count) {
    int r = sendmmsg(fd, s->msgs + done, (unsigned int)(count - done), 0);
    io->syscalls++;
    if (r > 0) {
      for (int i = done; i < done + r; i++) {
        io->bytes += s->msgs[i].msg_len;
        per_sent(per, i, 1, s->msgs[i].msg_len);
      }
      done += r;
      sent += r;
      budget.fruitless = 0;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (is_stall(err)) {
      enum stall_action a = on_stall(fd, &budget, io);
      if (a == STALL_RETRY) continue;
      if (a == STALL_GIVE_UP) {
        io->failed += (uint32_t)(count - done);
        for (int i = done; i < count; i++) per_failed(per, i, 1);
        io->last_errno = err;
        break;
      }
    }
    /* the datagram at `done` was refused (EMSGSIZE, ENETUNREACH, EPERM..., or a stall
       that retries did not clear): skip it */
    io->failed++;
    per_failed(per, done, 1);
    io->last_errno = err;
    done++;
  }
  return sent;
}

/*
 * Sends the segments of one UDP_SEGMENT message as separate datagrams: the
 * header/payload iovec pairs of a split super-packet, or the packets of a run
 * (one iovec each; segment k is input src + k). Returns 0, or -1 when the
 * call's send budget ran out (the datagrams not sent are counted in io->failed).
 */
static int send_singly(int fd, const struct mmsghdr *gso, int src, int run, int32_t *per, struct send_budget *budget,
                       struct weft_io *io) {
  struct mmsghdr one[WEFT_UDP_GSO_MAX_SEGS];
  const struct msghdr *g = &gso->msg_hdr;
  int per_seg = run ? 1 : 2;
  int n = (int)(g->msg_iovlen / (size_t)per_seg);
  for (int k = 0; k < n; k++) {
    memset(&one[k].msg_hdr, 0, sizeof(one[k].msg_hdr));
    one[k].msg_hdr.msg_name = g->msg_name;
    one[k].msg_hdr.msg_namelen = g->msg_namelen;
    one[k].msg_hdr.msg_iov = g->msg_iov + per_seg * k;
    one[k].msg_hdr.msg_iovlen = (size_t)per_seg;
  }
  int done = 0;
  while (done < n) {
    int r = sendmmsg(fd, one + done, (unsigned int)(n - done), 0);
    io->syscalls++;
    if (r > 0) {
      for (int i = done; i < done + r; i++) {
        io->bytes += one[i].msg_len;
        per_sent(per, run ? src + i : src, 1, one[i].msg_len);
      }
      io->units += (uint32_t)r;
      done += r;
      budget->fruitless = 0;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (is_stall(err)) {
      enum stall_action a = on_stall(fd, budget, io);
      if (a == STALL_RETRY) continue;
      if (a == STALL_GIVE_UP) {
        io->failed += (uint32_t)(n - done);
        for (int i = done; i < n; i++) per_failed(per, run ? src + i : src, 1);
        io->last_errno = err;
        return -1;
      }
    }
    io->failed++;
    per_failed(per, run ? src + done : src, 1);
    io->last_errno = err;
    done++;
  }
  return 0;
}

/*
 * Sends msgs[0..nmsg) with sendmmsg, skipping refused ones; counts in datagram
 * units. When the send budget runs out, the rest is counted failed.
 */
/* Message k's datagrams were all sent (sent) or all refused: per-packet results. */
static void per_msg(const struct weft_scratch *s, int k, int sent, int32_t *per) {
  if (per == NULL) return;
  const struct msghdr *m = &s->msgs[k].msg_hdr;
  if (s->msg_run[k]) {
    for (size_t j = 0; j < m->msg_iovlen; j++) {
      if (sent) per_sent(per, s->msg_src[k] + (int)j, 1, (uint32_t)m->msg_iov[j].iov_len);
      else per_failed(per, s->msg_src[k] + (int)j, 1);
    }
  } else if (sent) {
    per_sent(per, s->msg_src[k], s->msg_units[k], s->msgs[k].msg_len);
  } else {
    per_failed(per, s->msg_src[k], s->msg_units[k]);
  }
}

static void flush_msgs(int fd, struct weft_scratch *s, int nmsg, int32_t *per, struct send_budget *budget,
                      struct weft_io *io) {
  int done = 0;
  while (done < nmsg) {
    int r = sendmmsg(fd, s->msgs + done, (unsigned int)(nmsg - done), 0);
    io->syscalls++;
    if (r > 0) {
      for (int i = done; i < done + r; i++) {
        io->bytes += s->msgs[i].msg_len;
        io->units += s->msg_units[i];
        per_msg(s, i, 1, per);
      }
      done += r;
      budget->fruitless = 0;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (is_stall(err)) {
      enum stall_action a = on_stall(fd, budget, io);
      if (a == STALL_RETRY) continue;
      if (a == STALL_GIVE_UP) {
        for (int i = done; i < nmsg; i++) {
          io->failed += s->msg_units[i];
          per_msg(s, i, 0, per);
        }
        io->last_errno = err;
        return;
      }
      /* STALL_SKIP_ONE: falls through to the refusal below */
    } else if (s->msg_units[done] > 1 && (err == EMSGSIZE || err == EINVAL || err == EIO)) {
      /* the kernel refused UDP_SEGMENT for this path (MTU below the segment, IPsec, no
         checksum offload): the same datagrams still go, one by one */
      if (send_singly(fd, &s->msgs[done], s->msg_src[done], s->msg_run[done], per, budget, io) < 0) {
        for (int i = done + 1; i < nmsg; i++) {
          io->failed += s->msg_units[i];
          per_msg(s, i, 0, per);
        }
        return;
      }
      done++;
      continue;
    }
    io->failed += s->msg_units[done];
    per_msg(s, done, 0, per);
    io->last_errno = err;
    done++;
  }
}

/* Gives message k a UDP_SEGMENT control message: its datagrams are gso_size bytes (the last may be shorter). */
static void set_segment(struct weft_scratch *s, int k, uint16_t gso_size) {
  struct msghdr *m = &s->msgs[k].msg_hdr;
  m->msg_control = s->ctrl[k].buf;
  m->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
  struct cmsghdr *c = CMSG_FIRSTHDR(m);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  memcpy(CMSG_DATA(c), &gso_size, sizeof(gso_size));
}

/* Appends one message of `niov` iovecs (already in s->iov from `iov0`) to the batch. */
static void add_msg(struct weft_scratch *s, int k, int iov0, int niov, uint32_t addr, uint16_t port,
                    uint16_t gso_size, uint32_t units, int src) {
  struct msghdr *m = &s->msgs[k].msg_hdr;
  memset(m, 0, sizeof(*m));
  s->addrs[k].sin_family = AF_INET;
  s->addrs[k].sin_port = htons(port);
  s->addrs[k].sin_addr.s_addr = htonl(addr);
  memset(s->addrs[k].sin_zero, 0, sizeof(s->addrs[k].sin_zero));
  m->msg_name = &s->addrs[k];
  m->msg_namelen = sizeof(s->addrs[k]);
  m->msg_iov = &s->iov[iov0];
  m->msg_iovlen = (size_t)niov;
  if (gso_size > 0) set_segment(s, k, gso_size);
  s->msg_units[k] = units;
  s->msg_src[k] = src;
  s->msg_run[k] = 0;
}

int weft_udp_send_vnet_batch(int fd, uint8_t *slab, const int32_t *offsets, const int32_t *lens,
                             const uint32_t *addrs, const uint16_t *ports, int count, int flags,
                             int32_t *per, struct weft_scratch *s, struct weft_io *io) {
  int nmsg = 0, niov = 0, nhdr = 0;
  int use_gso = flags & WEFT_SEND_GSO;
  /* the run the next whole packet may join: the last message, while it is one (see the header) */
  struct {
    int open;
    int next;      /* the input index that may join it */
    size_t size;   /* its datagram size */
    size_t bytes;  /* its payload so far */
  } run = {0, 0, 0, 0};
  if (per != NULL) memset(per, 0, sizeof(*per) * WEFT_SEND_RESULT_FIELDS * (size_t)count);
  uint32_t before = io->units;
  /* one budget for the whole call: a flush that ran out leaves the next ones one try each */
  struct send_budget budget = {0, 0};
  for (int i = 0; i < count; i++) {
    uint8_t *p = slab + offsets[i];
    if (lens[i] < WEFT_VNET_HDR_LEN + 20) {
      io->malformed++;
      continue;
    }
    struct weft_vnet_hdr h;
    weft_vnet_read(p, &h);
    uint8_t *pkt = p + WEFT_VNET_HDR_LEN;
    size_t len = (size_t)lens[i] - WEFT_VNET_HDR_LEN;
    if ((h.gso_type & ~WEFT_VNET_GSO_ECN) == WEFT_VNET_GSO_NONE) {
      if ((h.flags & WEFT_VNET_F_NEEDS_CSUM) && weft_csum_complete(pkt, len, h.csum_start, h.csum_offset) < 0) {
        io->malformed++;
        continue;
      }
      if (run.open && run.next == i && niov + 1 <= WEFT_MAX_IOV && len <= run.size &&
          s->msg_units[nmsg - 1] < WEFT_UDP_GSO_MAX_SEGS && run.bytes + len <= WEFT_UDP_GSO_MAX_BYTES &&
          s->addrs[nmsg - 1].sin_addr.s_addr == htonl(addrs[i]) && s->addrs[nmsg - 1].sin_port == htons(ports[i])) {
        int k = nmsg - 1;
        s->iov[niov].iov_base = pkt;
        s->iov[niov].iov_len = len;
        niov += 1;
        s->msgs[k].msg_hdr.msg_iovlen++;
        if (s->msg_units[k]++ == 1) set_segment(s, k, (uint16_t)run.size);
        s->msg_run[k] = 1;
        run.bytes += len;
        run.next = i + 1;
        run.open = len == run.size; /* a shorter datagram can only be the last */
        continue;
      }
      if (nmsg + 1 > WEFT_MAX_BATCH || niov + 1 > WEFT_MAX_IOV) {
        flush_msgs(fd, s, nmsg, per, &budget, io);
        nmsg = niov = nhdr = 0;
      }
      s->iov[niov].iov_base = pkt;
      s->iov[niov].iov_len = len;
      add_msg(s, nmsg++, niov, 1, addrs[i], ports[i], 0, 1, i);
      s->msg_run[nmsg - 1] = 1;
      niov += 1;
      run.open = (flags & WEFT_SEND_PACK_RUNS) && len <= 0xffff;
      run.next = i + 1;
      run.size = len;
      run.bytes = len;
      continue;
    }
    run.open = 0;
    /* a super-packet: make room for its worst case first */
    if (nhdr + WEFT_GSO_MAX_SEGS > WEFT_MAX_HDRS || niov + 2 * WEFT_GSO_MAX_SEGS > WEFT_MAX_IOV ||
        nmsg + WEFT_GSO_MAX_SEGS > WEFT_MAX_BATCH) {
      flush_msgs(fd, s, nmsg, per, &budget, io);
      nmsg = niov = nhdr = 0;
    }
    int n = weft_gso_split(pkt, len, &h, s->hdrs + (size_t)nhdr * WEFT_SEG_HDR_MAX, s->segs, WEFT_GSO_MAX_SEGS);
    if (n < 0) {
      io->malformed++;
      continue;
    }
    nhdr += n;
    size_t seg_wire = (size_t)s->segs[0].hdr_len + s->segs[0].payload_len; /* every segment but the last */
    int per_msg = 1;
    if (use_gso && n > 1) {
      per_msg = (int)(WEFT_UDP_GSO_MAX_BYTES / seg_wire);
      if (per_msg > WEFT_UDP_GSO_MAX_SEGS) per_msg = WEFT_UDP_GSO_MAX_SEGS;
      if (per_msg < 1) per_msg = 1;
    }
    for (int k = 0; k < n; k += per_msg) {
      int c = n - k < per_msg ? n - k : per_msg;
      int iov0 = niov;
      for (int j = k; j < k + c; j++) {
        s->iov[niov].iov_base = (void *)s->segs[j].hdr;
        s->iov[niov].iov_len = s->segs[j].hdr_len;
        s->iov[niov + 1].iov_base = (void *)s->segs[j].payload;
        s->iov[niov + 1].iov_len = s->segs[j].payload_len;
        niov += 2;
      }
      add_msg(s, nmsg++, iov0, 2 * c, addrs[i], ports[i], c > 1 ? (uint16_t)seg_wire : 0, (uint32_t)c, i);
    }
  }
  if (nmsg > 0) flush_msgs(fd, s, nmsg, per, &budget, io);
  return (int)(io->units - before);
}
