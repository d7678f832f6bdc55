/*
 * Loads the fast path's BPF object, attaches its programs with tc (clsact)
 * through libbpf's netlink calls, and keeps its maps. Plain C over libbpf;
 * binding.c is the only N-API file. Every call returns 0 or -errno and, on
 * failure, names what failed in *what (a static string).
 */
#ifndef WEFT_FP_LOADER_H
#define WEFT_FP_LOADER_H

#include <stdint.h>

struct weft_fp;

/* Opens and loads the object (the verifier runs here); attaches nothing. */
int weft_fp_open(const char *path, struct weft_fp **out, const char **what);

/*
 * Attaches decap at the clsact ingress of `ifindex` (the underlay) and, when
 * tun_ifindex != 0, encap at the clsact egress of the TUN, each as filter
 * `handle` at `priority`, replacing one a previous process left there.
 */
int weft_fp_attach_decap(struct weft_fp *fp, int ifindex, uint32_t handle, uint32_t priority, const char **what);
int weft_fp_attach_encap(struct weft_fp *fp, int tun_ifindex, uint32_t handle, uint32_t priority, const char **what);

/* Writes the config map; values in host order (converted here). */
struct weft_fp_settings {
  uint32_t local_ip, subnet, subnet_mask, cluster, cluster_mask, tun_ifindex, underlay_ifindex;
  uint16_t port, flags;
};
int weft_fp_configure(struct weft_fp *fp, const struct weft_fp_settings *s);

/*
 * Makes the routes map exactly the `count` given routes (host order):
 * updates each, then deletes every key not among them. *changed gets the
 * number of updates + deletions the kernel took.
 */
int weft_fp_set_routes(struct weft_fp *fp, const uint32_t *nets, const uint8_t *lens, const uint32_t *peers,
                       const uint16_t *ports, const uint8_t *flags, int count, int *changed, const char **what);

/* Sums the per-CPU counters into out[0..n) (n <= WEFT_FP_COUNTERS). */
int weft_fp_counters(struct weft_fp *fp, double *out, int n);

/* Detaches what it attached (a device already gone is fine) and frees everything. */
void weft_fp_close(struct weft_fp *fp);

/* Removes filter handle/priority at the clsact ingress of ifindex if one is there: 1 removed, 0 none, or -errno. */
int weft_fp_detach_ingress(int ifindex, uint32_t handle, uint32_t priority);

#endif
