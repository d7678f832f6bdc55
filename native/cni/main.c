/*
 * weft-cni's entry: the CNI_* environment and stdin in, a result or a CNI
 * error out. Which environment each command needs, and which spec versions
 * allow it, follow the CNI specification (CHECK from 0.4.0, STATUS and GC
 * from 1.1.0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cni.h"

int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* All of stdin, NUL-terminated; NULL with err set when it is unreadable or too large. */
static char *read_stdin(size_t *len, struct cni_error *err) {
  size_t cap = 8192;
  char *buf = malloc(cap);
  *len = 0;
  while (buf != NULL) {
    if (*len + 1 >= cap) {
      if (cap >= MAX_STDIN_BYTES) {
        free(buf);
        cni_fail(err, CNI_ERR_DECODING, "the network configuration on stdin is larger than %u bytes", MAX_STDIN_BYTES);
        return NULL;
      }
      char *grown = realloc(buf, cap * 2);
      if (grown == NULL) break;
      buf = grown;
      cap *= 2;
    }
    ssize_t n = read(STDIN_FILENO, buf + *len, cap - 1 - *len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      free(buf);
      cni_fail(err, CNI_ERR_IO, "cannot read the network configuration from stdin: %s", strerror(e));
      return NULL;
    }
    if (n == 0) {
      buf[*len] = '\0';
      return buf;
    }
    *len += (size_t)n;
  }
  free(buf);
  cni_fail(err, CNI_ERR_INTERNAL, "out of memory");
  return NULL;
}

static int require_env(const char *name, const char *value, struct cni_error *err) {
  if (value != NULL && value[0] != '\0') return 0;
  return cni_fail(err, CNI_ERR_INVALID_ENVIRONMENT, "%s is not set: a container runtime sets it when it runs a CNI plugin",
                  name);
}

enum command { CMD_ADD, CMD_DEL, CMD_CHECK, CMD_STATUS, CMD_GC, CMD_VERSION, CMD_UNKNOWN };

static enum command parse_command(const char *s) {
  static const char *const names[] = {"ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"};
  for (int i = 0; i < 6; i++) {
    if (strcmp(s, names[i]) == 0) return (enum command)i;
  }
  return CMD_UNKNOWN;
}

static int check_environment(enum command cmd, const struct cni_env *env, struct cni_error *err) {
  bool attachment = cmd == CMD_ADD || cmd == CMD_DEL || cmd == CMD_CHECK;
  if (attachment) {
    if (require_env("CNI_CONTAINERID", env->container_id, err) < 0) return -1;
    if (!valid_container_id(env->container_id)) {
      return cni_fail(err, CNI_ERR_INVALID_ENVIRONMENT,
                      "CNI_CONTAINERID \"%s\" is not a container ID: letters, digits, '_', '.' and '-', starting with a "
                      "letter or digit",
                      env->container_id);
    }
    if (require_env("CNI_IFNAME", env->ifname, err) < 0) return -1;
    if (!valid_ifname(env->ifname)) {
      return cni_fail(err, CNI_ERR_INVALID_ENVIRONMENT,
                      "CNI_IFNAME \"%s\" is not an interface name: 1 to 15 printable ASCII bytes, no '/', ':' or spaces", env->ifname);
    }
  }
  if ((cmd == CMD_ADD || cmd == CMD_CHECK) && require_env("CNI_NETNS", env->netns, err) < 0) return -1;
  return require_env("CNI_PATH", env->path, err);
}

/* Versions older than weft-cni supports that flannel's plugin accepts: DEL takes them, so that no
 * attachment made by an older plugin is stranded (DEL replays the saved config anyway). */
static bool legacy_version(const char *v) {
  return v == NULL || strcmp(v, "0.1.0") == 0 || strcmp(v, "0.2.0") == 0 || strcmp(v, "0.3.0") == 0;
}

static int check_version(enum command cmd, const struct netconf *nc, struct cni_error *err) {
  if (cmd == CMD_DEL && legacy_version(nc->cni_version)) return 0;
  if (nc->cni_version == NULL) {
    return cni_fail(err, CNI_ERR_INCOMPATIBLE_VERSION,
                    "the network configuration has no \"cniVersion\": weft-cni supports 0.3.1, 0.4.0, 1.0.0 and 1.1.0");
  }
  if (!cni_version_supported(nc->cni_version)) {
    return cni_fail(err, CNI_ERR_INCOMPATIBLE_VERSION,
                    "CNI version \"%s\" is not supported: weft-cni supports 0.3.1, 0.4.0, 1.0.0 and 1.1.0", nc->cni_version);
  }
  const char *needs = cmd == CMD_CHECK ? "0.4.0" : cmd == CMD_STATUS || cmd == CMD_GC ? "1.1.0" : NULL;
  if (needs != NULL && !cni_version_at_least(nc->cni_version, needs)) {
    return cni_fail(err, CNI_ERR_INCOMPATIBLE_VERSION, "%s needs cniVersion %s or later; the configuration says %s",
                    cmd == CMD_CHECK ? "CHECK" : cmd == CMD_STATUS ? "STATUS" : "GC", needs, nc->cni_version);
  }
  return 0;
}

static int version_command(const char *input, size_t len) {
  json_t *root = len > 0 ? json_loadb(input, len, 0, NULL) : NULL;
  json_t *v = json_is_object(root) ? json_object_get(root, "cniVersion") : NULL;
  json_t *info = cni_version_info(json_is_string(v) ? json_string_value(v) : NULL);
  char *text = json_dumps(info, JSON_COMPACT);
  int rc = text != NULL && write_all(STDOUT_FILENO, text, strlen(text)) == 0 && write_all(STDOUT_FILENO, "\n", 1) == 0 ? 0 : 1;
  free(text);
  json_decref(info);
  if (root != NULL) json_decref(root);
  return rc;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  /* a runtime may start us with SIGCHLD ignored; then waitpid could not report the delegate's exit status */
  signal(SIGCHLD, SIG_DFL);
  struct cni_env env = {
      .command = getenv("CNI_COMMAND"),
      .container_id = getenv("CNI_CONTAINERID"),
      .netns = getenv("CNI_NETNS"),
      .ifname = getenv("CNI_IFNAME"),
      .path = getenv("CNI_PATH"),
  };
  if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
    printf("%s\n", WEFT_CNI_ABOUT);
    return 0;
  }
  if (env.command == NULL || env.command[0] == '\0') {
    /* run by hand: say what this is, as CNI's own plugins do */
    fprintf(stderr, "%s\nRun by a container runtime with CNI_COMMAND and the network configuration on stdin.\n",
            WEFT_CNI_ABOUT);
    return 0;
  }
  struct cni_error err = {0};
  const char *version = CNI_LATEST_VERSION;
  struct netconf nc = {0};
  int rc = -1;
  size_t len = 0;
  char *input = NULL;
  /* stdin first, whatever the command: a runtime writing the config must never see EPIPE */
  input = read_stdin(&len, &err);
  if (input == NULL) goto out;
  enum command cmd = parse_command(env.command);
  if (cmd == CMD_UNKNOWN) {
    cni_fail(&err, CNI_ERR_INVALID_ENVIRONMENT, "CNI_COMMAND \"%s\" is not one of ADD, DEL, CHECK, STATUS, GC, VERSION",
             env.command);
    goto out;
  }
  if (cmd == CMD_VERSION) {
    rc = version_command(input, len);
    free(input);
    return rc;
  }
  if (check_environment(cmd, &env, &err) < 0) goto out;
  if (netconf_parse(input, len, &nc, &err) < 0) goto out;
  if (check_version(cmd, &nc, &err) < 0) goto out;
  if (nc.cni_version != NULL && cni_version_supported(nc.cni_version)) version = nc.cni_version;
  switch (cmd) {
    case CMD_ADD: rc = cmd_add(&env, &nc, &err); break;
    case CMD_DEL: rc = cmd_del(&env, &nc, &err); break;
    case CMD_CHECK: rc = cmd_check(&env, &nc, &err); break;
    case CMD_STATUS: rc = cmd_status(&env, &nc, &err); break;
    case CMD_GC: rc = cmd_gc(&env, &nc, &err); break;
    default: break;
  }
  if (rc < 0 && err.msg[0] == '\0') cni_fail(&err, CNI_ERR_IO, "cannot write the result to stdout: %s", strerror(errno));
out:
  if (rc < 0) cni_error_print(&err, version);
  netconf_free(&nc);
  free(input);
  return rc < 0 ? 1 : 0;
}
