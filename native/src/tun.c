/* TUN device: open, offloads, batch read and write. See weft.h. */
#define _GNU_SOURCE
#include "weft.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int weft_tun_open(const char *name, int flags, char *out_name, const char **failed_call) {
  struct ifreq ifr;
  int fd, err;

  if (strlen(name) >= IFNAMSIZ) {
    *failed_call = "open";
    return -ENAMETOOLONG;
  }
  fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *failed_call = "open";
    return -errno;
  }
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (flags & WEFT_TUN_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
  if (flags & WEFT_TUN_MULTI_QUEUE) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  memcpy(ifr.ifr_name, name, strlen(name));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    err = errno;
    close(fd);
    *failed_call = "ioctl(TUNSETIFF)";
    return -err;
  }
  memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
  out_name[IFNAMSIZ - 1] = '\0';
  return fd;
}

int weft_tun_set_offload(int fd, unsigned int offload_flags) {
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)offload_flags) < 0) return -errno;
  return 0;
}

int weft_tun_read_batch(int fd, uint8_t *slab, size_t slot_size, int max,
                        int32_t *lens, struct weft_io *io) {
  int n = 0;
  while (n < max) {
    ssize_t r = read(fd, slab + (size_t)n * slot_size, slot_size);
    io->syscalls++;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (n == 0) return -errno;
      io->last_errno = errno;
      break;
    }
    lens[n++] = (int32_t)r;
  }
  return n;
}

int weft_tun_write_batch(int fd, const uint8_t *slab, const int32_t *offsets,
                         const int32_t *lens, int count, struct weft_io *io) {
  int written = 0;
  for (int i = 0; i < count; i++) {
    ssize_t r;
    do {
      r = write(fd, slab + offsets[i], (size_t)lens[i]);
      io->syscalls++;
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      io->failed++;
      io->last_errno = errno;
      continue;
    }
    io->bytes += (uint32_t)r;
    written++;
  }
  return written;
}
