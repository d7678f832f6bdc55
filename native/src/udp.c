/* UDP socket: open, recvmmsg and sendmmsg batches. See weft.h. */
#define _GNU_SOURCE
#include "weft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

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

int weft_udp_recv_batch(int fd, uint8_t *slab, size_t slot_size, int max, int32_t *lens,
                        uint32_t *addrs, uint16_t *ports, struct weft_scratch *s,
                        struct weft_io *io) {
  int n;
  if (max > WEFT_MAX_BATCH) max = WEFT_MAX_BATCH;
  for (int i = 0; i < max; i++) {
    s->iov[i].iov_base = slab + (size_t)i * slot_size;
    s->iov[i].iov_len = slot_size;
    memset(&s->msgs[i].msg_hdr, 0, sizeof(s->msgs[i].msg_hdr));
    s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
    s->msgs[i].msg_hdr.msg_name = &s->addrs[i];
    s->msgs[i].msg_hdr.msg_namelen = sizeof(s->addrs[i]);
  }
  do {
    n = recvmmsg(fd, s->msgs, (unsigned int)max, MSG_DONTWAIT, NULL);
    io->syscalls++;
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -errno;
  }
  for (int i = 0; i < n; i++) {
    lens[i] = (s->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)s->msgs[i].msg_len;
    addrs[i] = ntohl(s->addrs[i].sin_addr.s_addr);
    ports[i] = ntohs(s->addrs[i].sin_port);
  }
  return n;
}

/* Waits until the socket can take more data; false after WEFT_SEND_WAIT_MS. */
static int wait_writable(int fd, struct weft_io *io) {
  struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
  int r;
  do {
    r = poll(&p, 1, WEFT_SEND_WAIT_MS);
    io->syscalls++;
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

int weft_udp_send_batch(int fd, const uint8_t *slab, const int32_t *offsets,
                        const int32_t *lens, const uint32_t *addrs, const uint16_t *ports,
                        int count, struct weft_scratch *s, struct weft_io *io) {
  int done = 0, sent = 0;
  if (count > WEFT_MAX_BATCH) count = WEFT_MAX_BATCH;
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
  while (done < count) {
    int r = sendmmsg(fd, s->msgs + done, (unsigned int)(count - done), 0);
    io->syscalls++;
    if (r > 0) {
      for (int i = done; i < done + r; i++) io->bytes += s->msgs[i].msg_len;
      done += r;
      sent += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      if (wait_writable(fd, io)) continue;
      io->failed += (uint32_t)(count - done);
      io->last_errno = EAGAIN;
      break;
    }
    /* the datagram at `done` was refused (EMSGSIZE, ENETUNREACH, EPERM...): skip it */
    io->failed++;
    io->last_errno = r < 0 ? errno : EIO;
    done++;
  }
  return sent;
}
