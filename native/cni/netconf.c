/*
 * The plugin's network config, as a runtime passes it on stdin:
 *   {"cniVersion": "1.0.0", "name": "cbr0", "type": "flannel",
 *    "subnetFile": "/run/flannel/subnet.env", "dataDir": "/var/lib/cni/flannel",
 *    "delegate": {...}, "ipam": {...}, "runtimeConfig": {...}, "prevResult": {...}}
 * Only the shapes are checked here; what each command needs is checked where it is used.
 */
#include <limits.h>
#include <string.h>

#include "cni.h"

/* An optional member of type `type`; -1 with err set when it has another type. */
static int optional_member(json_t *root, const char *key, json_type type, const char *what, json_t **out,
                           struct cni_error *err) {
  json_t *v = json_object_get(root, key);
  *out = NULL;
  if (v == NULL || json_is_null(v)) return 0;
  if (json_typeof(v) != type) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "network configuration field \"%s\" must be %s", key, what);
  }
  *out = v;
  return 0;
}

static int path_member(json_t *root, const char *key, const char *fallback, const char **out, struct cni_error *err) {
  json_t *v;
  if (optional_member(root, key, JSON_STRING, "a string (an absolute path)", &v, err) < 0) return -1;
  if (v == NULL) {
    *out = fallback;
    return 0;
  }
  const char *s = json_string_value(v);
  if (s[0] != '/') {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "network configuration field \"%s\" is \"%s\": it must be an absolute path",
                    key, s);
  }
  /* room for "/<container ID>" and temp-file names: a path must never be cut short */
  if (strlen(s) > PATH_MAX - NAME_MAX - 2) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "network configuration field \"%s\" is longer than %d bytes", key,
                    PATH_MAX - NAME_MAX - 2);
  }
  *out = s;
  return 0;
}

int netconf_parse(const char *text, size_t len, struct netconf *nc, struct cni_error *err) {
  memset(nc, 0, sizeof(*nc));
  json_error_t jerr;
  json_t *root = json_loadb(text, len, 0, &jerr);
  if (root == NULL) {
    cni_fail(err, CNI_ERR_DECODING, "the network configuration on stdin is not valid JSON: %s (line %d, column %d)",
             jerr.text, jerr.line, jerr.column);
    return -1;
  }
  nc->root = root;
  if (!json_is_object(root)) {
    return cni_fail(err, CNI_ERR_DECODING, "the network configuration on stdin must be a JSON object");
  }
  json_t *v;
  if (optional_member(root, "cniVersion", JSON_STRING, "a string such as \"1.0.0\"", &v, err) < 0) return -1;
  nc->cni_version = v != NULL ? json_string_value(v) : NULL;
  if (optional_member(root, "name", JSON_STRING, "a string", &v, err) < 0) return -1;
  nc->name = v != NULL ? json_string_value(v) : NULL;
  if (path_member(root, "subnetFile", DEFAULT_SUBNET_FILE, &nc->subnet_file, err) < 0) return -1;
  if (path_member(root, "dataDir", DEFAULT_DATA_DIR, &nc->data_dir, err) < 0) return -1;
  if (optional_member(root, "delegate", JSON_OBJECT, "an object (the delegate plugin's config)", &nc->delegate, err) < 0) {
    return -1;
  }
  if (optional_member(root, "ipam", JSON_OBJECT, "an object", &nc->ipam, err) < 0) return -1;
  if (optional_member(root, "runtimeConfig", JSON_OBJECT, "an object", &nc->runtime_config, err) < 0) return -1;
  if (optional_member(root, "prevResult", JSON_OBJECT, "an object (a CNI result)", &nc->prev_result, err) < 0) return -1;
  return 0;
}

void netconf_free(struct netconf *nc) {
  if (nc->root != NULL) json_decref(nc->root);
  nc->root = NULL;
}
