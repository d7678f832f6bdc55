/* The CNI specification versions weft-cni speaks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cni.h"

static const char *const supported[] = {"0.3.1", "0.4.0", "1.0.0", "1.1.0"};
#define SUPPORTED_COUNT (sizeof(supported) / sizeof(supported[0]))

bool cni_version_supported(const char *version) {
  if (version == NULL) return false;
  for (size_t i = 0; i < SUPPORTED_COUNT; i++) {
    if (strcmp(version, supported[i]) == 0) return true;
  }
  return false;
}

/* "1.0.0" -> {1, 0, 0}; missing parts are 0. */
static void parse_version(const char *v, long parts[3]) {
  parts[0] = parts[1] = parts[2] = 0;
  for (int i = 0; i < 3 && v != NULL && *v != '\0'; i++) {
    char *end;
    parts[i] = strtol(v, &end, 10);
    v = *end == '.' ? end + 1 : end;
    if (*end != '.') break;
  }
}

bool cni_version_at_least(const char *a, const char *b) {
  long pa[3], pb[3];
  parse_version(a, pa);
  parse_version(b, pb);
  for (int i = 0; i < 3; i++) {
    if (pa[i] != pb[i]) return pa[i] > pb[i];
  }
  return true;
}

json_t *cni_version_info(const char *requested) {
  json_t *list = json_array();
  for (size_t i = 0; i < SUPPORTED_COUNT; i++) json_array_append_new(list, json_string(supported[i]));
  json_t *o = json_object();
  json_object_set_new(o, "cniVersion", json_string(cni_version_supported(requested) ? requested : CNI_LATEST_VERSION));
  json_object_set_new(o, "supportedVersions", list);
  return o;
}
