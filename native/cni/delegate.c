/*
 * The delegate's config, rendered as flannel's plugin renders it: the user's
 * "delegate" object plus
 *   name       the network's name
 *   type       "bridge" unless set
 *   ipMasq     !FLANNEL_IPMASQ unless set (masquerade here when the agent does not)
 *   mtu        FLANNEL_MTU unless set
 *   isGateway  true for bridge unless set
 *   cniVersion the network config's
 *   ipam       the top-level "ipam" (type host-local unless set) with
 *              ranges = [[{"subnet": <FLANNEL_SUBNET as a network>}]] (and IPv6)
 *              routes = its own routes + one per FLANNEL_NETWORK, via the
 *                       lease's first address (host-local's gateway; flannel's
 *                       plugin leaves "gw" out, which means the same route, but
 *                       the reference bridge's CHECK then looks for a route
 *                       without a gateway and fails)
 * The delegate may not set name or ipam: both come from here.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "cni.h"

static int check_routes(json_t *routes, struct cni_error *err) {
  if (!json_is_array(routes)) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "network configuration field \"ipam.routes\" must be a list of {\"dst\": CIDR}");
  }
  size_t i;
  json_t *route;
  json_array_foreach(routes, i, route) {
    json_t *dst = json_object_get(route, "dst");
    char net[CIDR_TEXT_MAX];
    if (!json_is_object(route) || !json_is_string(dst) || cidr_network(json_string_value(dst), net, sizeof(net)) < 0) {
      return cni_fail(err, CNI_ERR_INVALID_CONFIG, "network configuration field \"ipam.routes[%zu]\" must be {\"dst\": CIDR}", i);
    }
  }
  return 0;
}

/* "10.244.3.0/24" -> "10.244.3.1": the gateway host-local gives a range by default. */
static int first_address(const char *cidr, char *out, size_t out_len) {
  char addr[INET6_ADDRSTRLEN];
  const char *slash = strchr(cidr, '/');
  if (slash == NULL || (size_t)(slash - cidr) >= sizeof(addr)) return -1;
  memcpy(addr, cidr, (size_t)(slash - cidr));
  addr[slash - cidr] = '\0';
  unsigned char bytes[16];
  int family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
  if (inet_pton(family, addr, bytes) != 1) return -1;
  int last = family == AF_INET ? 3 : 15;
  for (int i = last; i >= 0 && ++bytes[i] == 0; i--) {
  }
  return inet_ntop(family, bytes, out, (socklen_t)out_len) != NULL ? 0 : -1;
}

static json_t *render_ipam(const struct netconf *nc, const struct subnet_env *env, struct cni_error *err) {
  json_t *ipam = nc->ipam != NULL ? json_deep_copy(nc->ipam) : json_object();
  if (json_object_get(ipam, "type") == NULL) json_object_set_new(ipam, "type", json_string("host-local"));
  json_t *ranges = json_array();
  const char *subnets[2] = {env->subnet4, env->subnet6};
  for (int i = 0; i < 2; i++) {
    if (subnets[i][0] == '\0') continue;
    json_t *range = json_array();
    json_array_append_new(range, json_pack("{s:s}", "subnet", subnets[i]));
    json_array_append_new(ranges, range);
  }
  json_object_set_new(ipam, "ranges", ranges);
  json_t *routes = json_object_get(ipam, "routes");
  if (routes == NULL) {
    routes = json_array();
    json_object_set_new(ipam, "routes", routes);
  } else if (check_routes(routes, err) < 0) {
    json_decref(ipam);
    return NULL;
  }
  for (int i = 0; i < env->network_count; i++) {
    const char *net = env->networks[i];
    const char *subnet = strchr(net, ':') != NULL ? env->subnet6 : env->subnet4;
    char gw[INET6_ADDRSTRLEN];
    json_t *route = json_pack("{s:s}", "dst", net);
    if (subnet[0] != '\0' && first_address(subnet, gw, sizeof(gw)) == 0) json_object_set_new(route, "gw", json_string(gw));
    json_array_append_new(routes, route);
  }
  return ipam;
}

/* The user's delegate object may choose the plugin and its options, not its name or IPAM. */
static int check_user_delegate(json_t *d, struct cni_error *err) {
  json_t *type = json_object_get(d, "type");
  if (type != NULL && !json_is_string(type)) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "\"delegate.type\" must be a string naming a plugin, such as \"bridge\"");
  }
  if (json_object_get(d, "name") != NULL) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG,
                    "\"delegate\" must not set \"name\": weft-cni names the delegate after the network");
  }
  if (json_object_get(d, "ipam") != NULL) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG,
                    "\"delegate\" must not set \"ipam\": weft-cni sets it from the host's lease in subnet.env "
                    "(put other host-local settings, such as \"dataDir\", in the top-level \"ipam\")");
  }
  return 0;
}

json_t *delegate_render(const struct netconf *nc, const struct subnet_env *env, struct cni_error *err) {
  if (nc->name == NULL || nc->name[0] == '\0') {
    cni_fail(err, CNI_ERR_INVALID_CONFIG, "the network configuration has no \"name\": the delegate is named after the network");
    return NULL;
  }
  json_t *d = nc->delegate != NULL ? json_deep_copy(nc->delegate) : json_object();
  if (check_user_delegate(d, err) < 0) {
    json_decref(d);
    return NULL;
  }
  if (nc->runtime_config != NULL) json_object_set(d, "runtimeConfig", nc->runtime_config);
  json_object_set_new(d, "name", json_string(nc->name));
  if (json_object_get(d, "type") == NULL) json_object_set_new(d, "type", json_string(DEFAULT_DELEGATE_TYPE));
  if (json_object_get(d, "ipMasq") == NULL) json_object_set_new(d, "ipMasq", json_boolean(!env->ipmasq));
  if (json_object_get(d, "mtu") == NULL) json_object_set_new(d, "mtu", json_integer(env->mtu));
  if (strcmp(json_string_value(json_object_get(d, "type")), "bridge") == 0 && json_object_get(d, "isGateway") == NULL) {
    json_object_set_new(d, "isGateway", json_true());
  }
  if (nc->cni_version != NULL) json_object_set_new(d, "cniVersion", json_string(nc->cni_version));
  json_t *ipam = render_ipam(nc, env, err);
  if (ipam == NULL) {
    json_decref(d);
    return NULL;
  }
  json_object_set_new(d, "ipam", ipam);
  return d;
}

int delegate_type(json_t *config, const char **type, struct cni_error *err) {
  json_t *t = json_object_get(config, "type");
  const char *s = json_is_string(t) ? json_string_value(t) : NULL;
  if (s == NULL || s[0] == '\0' || strchr(s, '/') != NULL || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "the delegate's \"type\" must name a plugin file in CNI_PATH, such as \"bridge\"");
  }
  *type = s;
  return 0;
}
