/*
 * The service manager's readiness protocol (sd_notify): one datagram such as
 * "READY=1" to the AF_UNIX socket named by $NOTIFY_SOCKET. A name starting
 * with '@' is in the abstract namespace. Node has no AF_UNIX datagram sockets,
 * hence this file; it is not on the packet path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "weft.h"

int weft_notify_send(const char *path, size_t path_len, const char *msg, size_t msg_len) {
  struct sockaddr_un sa;
  if (path_len == 0 || path_len >= sizeof(sa.sun_path)) return -EINVAL;
  if (path[0] != '/' && path[0] != '@') return -EAFNOSUPPORT;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, path_len);
  if (path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ssize_t n;
  do {
    n = sendto(fd, msg, msg_len, MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
  } while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : 0;
  close(fd);
  if (err != 0) return -err;
  return (size_t)n == msg_len ? 0 : -EMSGSIZE;
}
