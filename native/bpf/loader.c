/* The fast path's loader: libbpf for the object, its maps and tc attachment. See loader.h. */
#define _GNU_SOURCE
#include "loader.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "fastpath.h"

struct weft_fp {
  struct bpf_object *obj;
  int encap_fd, decap_fd;
  int routes_fd, config_fd, counters_fd;
  int ncpus;
  /* what is attached, so that close removes exactly that */
  int decap_ifindex, encap_ifindex;
  uint32_t decap_handle, decap_priority, encap_handle, encap_priority;
  int created_ingress_qdisc; /* the underlay had no clsact before: close removes it again */
};

int weft_fp_open(const char *path, struct weft_fp **out, const char **what) {
  struct weft_fp *fp = calloc(1, sizeof(*fp));
  int err;
  if (fp == NULL) {
    *what = "calloc";
    return -ENOMEM;
  }
  fp->obj = bpf_object__open_file(path, NULL);
  if (fp->obj == NULL) {
    err = -errno;
    *what = "bpf_object__open_file";
    free(fp);
    return err;
  }
  err = bpf_object__load(fp->obj);
  if (err < 0) {
    *what = "bpf_object__load (the kernel's verifier or BPF support)";
    goto fail;
  }
  struct bpf_program *encap = bpf_object__find_program_by_name(fp->obj, "weft_encap");
  struct bpf_program *decap = bpf_object__find_program_by_name(fp->obj, "weft_decap");
  fp->routes_fd = bpf_object__find_map_fd_by_name(fp->obj, "routes");
  fp->config_fd = bpf_object__find_map_fd_by_name(fp->obj, "config");
  fp->counters_fd = bpf_object__find_map_fd_by_name(fp->obj, "counters");
  if (encap == NULL || decap == NULL || fp->routes_fd < 0 || fp->config_fd < 0 || fp->counters_fd < 0) {
    err = -ENOENT;
    *what = "the object lacks a program or map weft expects (rebuild it)";
    goto fail;
  }
  fp->encap_fd = bpf_program__fd(encap);
  fp->decap_fd = bpf_program__fd(decap);
  fp->ncpus = libbpf_num_possible_cpus();
  if (fp->ncpus <= 0) {
    err = fp->ncpus < 0 ? fp->ncpus : -EINVAL;
    *what = "libbpf_num_possible_cpus";
    goto fail;
  }
  *out = fp;
  return 0;
fail:
  bpf_object__close(fp->obj);
  free(fp);
  return err;
}

static int attach(int ifindex, enum bpf_tc_attach_point point, int prog_fd, uint32_t handle, uint32_t priority,
                  int *created, const char **what) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
  int err = bpf_tc_hook_create(&hook);
  if (err == 0) {
    if (created != NULL) *created = 1;
  } else if (err != -EEXIST) {
    *what = "bpf_tc_hook_create (clsact qdisc)";
    return err;
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE);
  err = bpf_tc_attach(&hook, &opts);
  if (err < 0) *what = "bpf_tc_attach";
  return err;
}

static int detach(int ifindex, enum bpf_tc_attach_point point, uint32_t handle, uint32_t priority) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
  return bpf_tc_detach(&hook, &opts);
}

int weft_fp_attach_decap(struct weft_fp *fp, int ifindex, uint32_t handle, uint32_t priority, const char **what) {
  int err = attach(ifindex, BPF_TC_INGRESS, fp->decap_fd, handle, priority, &fp->created_ingress_qdisc, what);
  if (err < 0) return err;
  fp->decap_ifindex = ifindex;
  fp->decap_handle = handle;
  fp->decap_priority = priority;
  return 0;
}

int weft_fp_attach_encap(struct weft_fp *fp, int tun_ifindex, uint32_t handle, uint32_t priority, const char **what) {
  int err = attach(tun_ifindex, BPF_TC_EGRESS, fp->encap_fd, handle, priority, NULL, what);
  if (err < 0) return err;
  fp->encap_ifindex = tun_ifindex;
  fp->encap_handle = handle;
  fp->encap_priority = priority;
  return 0;
}

int weft_fp_configure(struct weft_fp *fp, const struct weft_fp_settings *s) {
  struct weft_fp_config c = {
    .local_ip = htonl(s->local_ip),
    .subnet = htonl(s->subnet),
    .subnet_mask = htonl(s->subnet_mask),
    .cluster = htonl(s->cluster),
    .cluster_mask = htonl(s->cluster_mask),
    .tun_ifindex = s->tun_ifindex,
    .underlay_ifindex = s->underlay_ifindex,
    .port = htons(s->port),
    .flags = s->flags,
  };
  uint32_t zero = 0;
  return bpf_map_update_elem(fp->config_fd, &zero, &c, BPF_ANY);
}

/* A route's identity as one sortable number: prefix length, then network (host order). */
static uint64_t route_id(uint32_t len, uint32_t net) {
  return ((uint64_t)len << 32) | net;
}

static int cmp_id(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Whether the map key is one of the `count` sorted wanted ids (a binary search: a snapshot of many peers stays fast). */
static int wanted(const struct weft_fp_route_key *k, const uint64_t *ids, int count) {
  uint64_t id = route_id(k->prefixlen, ntohl(k->addr));
  return bsearch(&id, ids, (size_t)count, sizeof(*ids), cmp_id) != NULL;
}

int weft_fp_set_routes(struct weft_fp *fp, const uint32_t *nets, const uint8_t *lens, const uint32_t *peers,
                       const uint16_t *ports, const uint8_t *flags, int count, int *changed, const char **what) {
  int n = 0;
  for (int i = 0; i < count; i++) {
    struct weft_fp_route_key k = {.prefixlen = lens[i], .addr = htonl(nets[i])};
    struct weft_fp_route v = {.peer = htonl(peers[i]), .port = htons(ports[i]), .flags = flags[i]};
    if (bpf_map_update_elem(fp->routes_fd, &k, &v, BPF_ANY) < 0) {
      *what = "bpf_map_update_elem(routes)";
      *changed = n;
      return -errno;
    }
    n++;
  }
  /*
   * Deletions: walk the keys, collecting those no longer wanted, then delete
   * them (deleting while walking an LPM trie would restart the walk). Rare
   * and small: one snapshot removes the peers that left since the last one.
   */
  uint64_t *ids = malloc((size_t)(count > 0 ? count : 1) * sizeof(*ids));
  if (ids == NULL) {
    *what = "malloc";
    *changed = n;
    return -ENOMEM;
  }
  for (int i = 0; i < count; i++) ids[i] = route_id(lens[i], nets[i]);
  qsort(ids, (size_t)count, sizeof(*ids), cmp_id);
  struct weft_fp_route_key key, next, *gone = NULL;
  int ngone = 0, cap = 0;
  void *prev = NULL;
  while (bpf_map_get_next_key(fp->routes_fd, prev, &next) == 0) {
    if (!wanted(&next, ids, count)) {
      if (ngone == cap) {
        cap = cap == 0 ? 16 : cap * 2;
        struct weft_fp_route_key *grown = realloc(gone, (size_t)cap * sizeof(*gone));
        if (grown == NULL) {
          free(gone);
          free(ids);
          *what = "realloc";
          *changed = n;
          return -ENOMEM;
        }
        gone = grown;
      }
      gone[ngone++] = next;
    }
    key = next;
    prev = &key;
  }
  free(ids);
  for (int i = 0; i < ngone; i++) {
    if (bpf_map_delete_elem(fp->routes_fd, &gone[i]) == 0) n++;
  }
  free(gone);
  *changed = n;
  return 0;
}

int weft_fp_counters(struct weft_fp *fp, double *out, int n) {
  uint64_t *per = calloc((size_t)fp->ncpus, sizeof(uint64_t));
  if (per == NULL) return -ENOMEM;
  if (n > WEFT_FP_COUNTERS) n = WEFT_FP_COUNTERS;
  for (uint32_t i = 0; i < (uint32_t)n; i++) {
    out[i] = 0;
    if (bpf_map_lookup_elem(fp->counters_fd, &i, per) < 0) {
      int err = -errno;
      free(per);
      return err;
    }
    for (int c = 0; c < fp->ncpus; c++) out[i] += (double)per[c];
  }
  free(per);
  return 0;
}

void weft_fp_close(struct weft_fp *fp) {
  if (fp == NULL) return;
  if (fp->encap_ifindex != 0) detach(fp->encap_ifindex, BPF_TC_EGRESS, fp->encap_handle, fp->encap_priority);
  if (fp->decap_ifindex != 0) {
    detach(fp->decap_ifindex, BPF_TC_INGRESS, fp->decap_handle, fp->decap_priority);
    if (fp->created_ingress_qdisc) {
      /* ours: the underlay had no clsact before (destroying the hook removes the qdisc) */
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = fp->decap_ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
  }
  bpf_object__close(fp->obj);
  free(fp);
}

int weft_fp_detach_ingress(int ifindex, uint32_t handle, uint32_t priority) {
  int err = detach(ifindex, BPF_TC_INGRESS, handle, priority);
  if (err == 0) return 1;
  if (err == -ENOENT || err == -EINVAL) return 0; /* no such filter, or no clsact qdisc at all */
  return err;
}
