/*
 * subnet.env, as weft's agent and flanneld write it:
 *   FLANNEL_NETWORK=10.244.0.0/16
 *   FLANNEL_SUBNET=10.244.3.1/24
 *   FLANNEL_MTU=1472
 *   FLANNEL_IPMASQ=false
 * Read as a dotenv file (blank lines, # comments, `export`, quotes), the same
 * way weft's agent reads it back (src/subnet/subnet-env.ts). flanneld may also
 * write FLANNEL_IPV6_NETWORK / FLANNEL_IPV6_SUBNET and a comma-separated
 * FLANNEL_NETWORK; as in flannel's plugin, an IPv4 or an IPv6 network and
 * subnet are required, and so are FLANNEL_MTU and FLANNEL_IPMASQ.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cni.h"

int cidr_network(const char *text, char *out, size_t out_len) {
  char addr_text[INET6_ADDRSTRLEN + 1];
  const char *slash = strchr(text, '/');
  if (slash == NULL || (size_t)(slash - text) >= sizeof(addr_text) || slash[1] == '\0') return -1;
  memcpy(addr_text, text, (size_t)(slash - text));
  addr_text[slash - text] = '\0';
  const char *len_text = slash + 1;
  if (strlen(len_text) > 3) return -1;
  for (const char *p = len_text; *p != '\0'; p++) {
    if (!isdigit((unsigned char)*p)) return -1;
  }
  int prefix = atoi(len_text);
  unsigned char bytes[16];
  int family;
  int bits;
  if (inet_pton(AF_INET, addr_text, bytes) == 1) {
    family = AF_INET;
    bits = 32;
  } else if (inet_pton(AF_INET6, addr_text, bytes) == 1) {
    family = AF_INET6;
    bits = 128;
  } else {
    return -1;
  }
  if (prefix > bits) return -1;
  for (int i = 0; i < bits / 8; i++) {
    int keep = prefix - i * 8;
    if (keep >= 8) continue;
    bytes[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
  }
  char net[INET6_ADDRSTRLEN];
  if (inet_ntop(family, bytes, net, sizeof(net)) == NULL) return -1;
  if ((size_t)snprintf(out, out_len, "%s/%d", net, prefix) >= out_len) return -1;
  return family;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
  return s;
}

/* "x" or 'x' -> x; otherwise drops a trailing " # comment". In place. */
static char *unquote(char *v) {
  if ((v[0] == '"' || v[0] == '\'') && v[1] != '\0') {
    char *close = strchr(v + 1, v[0]);
    if (close != NULL) {
      *close = '\0';
      return v + 1;
    }
  }
  for (char *p = v; *p != '\0'; p++) {
    if (*p == '#' && p > v && isspace((unsigned char)p[-1])) {
      *p = '\0';
      return trim(v);
    }
  }
  return v;
}

/* Go's strconv.ParseBool. */
static int parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
  static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
  for (size_t i = 0; i < 6; i++) {
    if (strcmp(s, yes[i]) == 0) return *out = true, 0;
    if (strcmp(s, no[i]) == 0) return *out = false, 0;
  }
  return -1;
}

static int bad_value(struct cni_error *err, const char *path, int line, const char *key, const char *value,
                     const char *expected) {
  return cni_fail(err, CNI_ERR_INVALID_CONFIG, "%s: line %d: %s=\"%s\" is not allowed: %s", path, line, key, value,
                  expected);
}

/* FLANNEL_NETWORK may list several networks, comma-separated. */
static int add_networks(struct subnet_env *env, char *value, int family, const char *path, int line, const char *key,
                        struct cni_error *err) {
  char *save = NULL;
  int added = 0;
  for (char *item = strtok_r(value, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
    item = trim(item);
    char net[CIDR_TEXT_MAX];
    if (cidr_network(item, net, sizeof(net)) != family) {
      return bad_value(err, path, line, key, item,
                       family == AF_INET ? "it must be an IPv4 CIDR such as 10.244.0.0/16"
                                         : "it must be an IPv6 CIDR such as fd00:10:244::/56");
    }
    if (env->network_count == SUBNET_ENV_MAX_NETWORKS) {
      return cni_fail(err, CNI_ERR_INVALID_CONFIG, "%s: line %d: more than %d networks", path, line,
                      SUBNET_ENV_MAX_NETWORKS);
    }
    memcpy(env->networks[env->network_count++], net, sizeof(net));
    added++;
  }
  if (added == 0) return bad_value(err, path, line, key, "", "it must name at least one network");
  return 0;
}

/* The keys weft-cni reads; every other key is ignored. */
enum env_key { K_NETWORK, K_IPV6_NETWORK, K_SUBNET, K_IPV6_SUBNET, K_MTU, K_IPMASQ, K_COUNT };
static const char *const key_names[K_COUNT] = {
    "FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK", "FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ",
};

/* A key's value as the file finally says it: the last assignment wins, as in the agent's reader. */
struct assignment {
  char *value; /* NULL: the key is absent */
  int line;
};

/* Checks the final value of each key into env. */
static int check_values(const struct assignment *a, const char *path, struct subnet_env *env, struct cni_error *err) {
  for (int k = 0; k < K_COUNT; k++) {
    char *value = a[k].value;
    int line = a[k].line;
    const char *key = key_names[k];
    if (value == NULL) continue;
    switch (k) {
      case K_NETWORK:
      case K_IPV6_NETWORK:
        if (add_networks(env, value, k == K_NETWORK ? AF_INET : AF_INET6, path, line, key, err) < 0) return -1;
        break;
      case K_SUBNET:
        if (cidr_network(value, env->subnet4, sizeof(env->subnet4)) != AF_INET) {
          return bad_value(err, path, line, key, value, "it must be an IPv4 address with a prefix length such as 10.244.3.1/24");
        }
        break;
      case K_IPV6_SUBNET:
        if (cidr_network(value, env->subnet6, sizeof(env->subnet6)) != AF_INET6) {
          return bad_value(err, path, line, key, value, "it must be an IPv6 address with a prefix length");
        }
        break;
      case K_MTU: {
        char *end;
        errno = 0;
        unsigned long mtu = strtoul(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || !isdigit((unsigned char)value[0]) || errno != 0 || mtu < 68 || mtu > 65535) {
          return bad_value(err, path, line, key, value, "it must be a whole number between 68 and 65535");
        }
        env->mtu = (unsigned)mtu;
        break;
      }
      case K_IPMASQ:
        if (parse_bool(value, &env->ipmasq) < 0) return bad_value(err, path, line, key, value, "it must be true or false");
        break;
      default:
        break;
    }
  }
  return 0;
}

int subnet_env_parse(const char *text, size_t len, const char *path, struct subnet_env *env, struct cni_error *err) {
  memset(env, 0, sizeof(*env));
  if (memchr(text, '\0', len) != NULL) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "%s contains a NUL byte: it is not a subnet file", path);
  }
  char *copy = strndup(text, len);
  if (copy == NULL) return cni_fail(err, CNI_ERR_INTERNAL, "out of memory");
  struct assignment last[K_COUNT] = {{0}};
  int rc = 0;
  int line_no = 0;
  char *cursor = copy;
  while (cursor != NULL) {
    char *nl = strchr(cursor, '\n');
    if (nl != NULL) *nl = '\0';
    line_no++;
    char *line = trim(cursor);
    cursor = nl != NULL ? nl + 1 : NULL;
    if (*line == '\0' || *line == '#') continue;
    if (strncmp(line, "export", 6) == 0 && isspace((unsigned char)line[6])) line = trim(line + 6);
    char *eq = strchr(line, '=');
    bool key_ok = eq != NULL && eq != line && (isalpha((unsigned char)line[0]) || line[0] == '_');
    if (key_ok) {
      *eq = '\0';
      char *key_end = trim(line);
      for (char *p = key_end; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.') key_ok = false;
      }
    }
    if (!key_ok) {
      rc = cni_fail(err, CNI_ERR_INVALID_CONFIG, "%s: line %d: \"%s\" is not KEY=VALUE", path, line_no, line);
      break;
    }
    char *key = trim(line);
    for (int k = 0; k < K_COUNT; k++) {
      if (strcmp(key, key_names[k]) == 0) last[k] = (struct assignment){unquote(trim(eq + 1)), line_no};
    }
  }
  if (rc == 0) rc = check_values(last, path, env, err);
  free(copy);
  if (rc < 0) return -1;

  char missing[256] = "";
  if (last[K_NETWORK].value == NULL && last[K_IPV6_NETWORK].value == NULL) strcat(missing, "FLANNEL_NETWORK (or FLANNEL_IPV6_NETWORK), ");
  if (last[K_SUBNET].value == NULL && last[K_IPV6_SUBNET].value == NULL) strcat(missing, "FLANNEL_SUBNET (or FLANNEL_IPV6_SUBNET), ");
  if (last[K_MTU].value == NULL) strcat(missing, "FLANNEL_MTU, ");
  if (last[K_IPMASQ].value == NULL) strcat(missing, "FLANNEL_IPMASQ, ");
  if (missing[0] != '\0') {
    missing[strlen(missing) - 2] = '\0';
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "%s is missing %s: it is not a subnet file written by weft or flanneld",
                    path, missing);
  }
  return 0;
}

int subnet_env_load(const char *path, struct subnet_env *env, struct cni_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return cni_fail(err, CNI_ERR_TRY_AGAIN_LATER,
                      "the subnet file %s does not exist: this host has no lease yet; start `weft agent` (or flanneld) "
                      "on this host, or set \"subnetFile\" to where the agent writes it (--subnet-file)",
                      path);
    }
    return cni_fail(err, CNI_ERR_IO, "cannot open the subnet file %s: %s", path, strerror(errno));
  }
  char *buf = malloc(MAX_SUBNET_ENV_BYTES + 1);
  if (buf == NULL) {
    close(fd);
    return cni_fail(err, CNI_ERR_INTERNAL, "out of memory");
  }
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, MAX_SUBNET_ENV_BYTES + 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return cni_fail(err, CNI_ERR_IO, "cannot read the subnet file %s: %s", path, strerror(e));
    }
    if (n == 0) break;
    len += (size_t)n;
    if (len > MAX_SUBNET_ENV_BYTES) {
      free(buf);
      close(fd);
      return cni_fail(err, CNI_ERR_INVALID_CONFIG, "the subnet file %s is larger than %u bytes: it is not a subnet file",
                      path, MAX_SUBNET_ENV_BYTES);
    }
  }
  close(fd);
  int rc = subnet_env_parse(buf, len, path, env, err);
  free(buf);
  return rc;
}
