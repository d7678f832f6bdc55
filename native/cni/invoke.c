/*
 * Running a delegate plugin the way a runtime runs a plugin: found by name in
 * CNI_PATH, our environment with CNI_COMMAND (and any overrides), the config on
 * stdin, its result read from stdout (bounded), its stderr passed through to
 * ours (the runtime's log).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cni.h"

extern char **environ;

int delegate_find(const char *type, const char *cni_path, char *path, size_t path_len, struct cni_error *err) {
  const char *p = cni_path != NULL ? cni_path : "";
  while (*p != '\0') {
    const char *end = strchr(p, ':');
    size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
    if (n > 0 && (size_t)snprintf(path, path_len, "%.*s/%s", (int)n, p, type) < path_len) {
      struct stat st;
      if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0) return 0;
    }
    p += n;
    if (*p == ':') p++;
  }
  cni_fail(err, CNI_ERR_INVALID_CONFIG,
           "the delegate plugin \"%s\" is not in CNI_PATH: install it (Debian: containernetworking-plugins, in "
           "/usr/lib/cni) into one of those directories, or set \"delegate\": {\"type\": ...} to a plugin that is",
           type);
  cni_details(err, "CNI_PATH=%s", cni_path != NULL ? cni_path : "");
  return -1;
}

/* environ with CNI_COMMAND and the overrides applied; entries point into environ or static text. */
static char **build_env(const char *command, const struct env_override *ov, size_t n_ov, char *command_entry,
                        size_t command_entry_len, char **owned, size_t *n_owned) {
  size_t count = 0;
  while (environ[count] != NULL) count++;
  char **envp = calloc(count + n_ov + 2, sizeof(char *));
  if (envp == NULL) return NULL;
  size_t out = 0;
  for (size_t i = 0; i < count; i++) {
    const char *e = environ[i];
    bool replaced = strncmp(e, "CNI_COMMAND=", 12) == 0;
    for (size_t j = 0; j < n_ov && !replaced; j++) {
      size_t len = strlen(ov[j].name);
      if (strncmp(e, ov[j].name, len) == 0 && e[len] == '=') replaced = true;
    }
    if (!replaced) envp[out++] = environ[i];
  }
  snprintf(command_entry, command_entry_len, "CNI_COMMAND=%s", command);
  envp[out++] = command_entry;
  *n_owned = 0;
  for (size_t j = 0; j < n_ov; j++) {
    if (ov[j].value == NULL) continue;
    char *entry;
    if (asprintf(&entry, "%s=%s", ov[j].name, ov[j].value) < 0) continue;
    owned[(*n_owned)++] = entry;
    envp[out++] = entry;
  }
  envp[out] = NULL;
  return envp;
}

int delegate_exec(const char *path, const char *command, const struct env_override *overrides, size_t n_overrides,
                  json_t *config, struct delegate_run *run, struct cni_error *err) {
  memset(run, 0, sizeof(*run));
  char *input = json_dumps(config, JSON_COMPACT);
  if (input == NULL) return cni_fail(err, CNI_ERR_INTERNAL, "cannot serialise the delegate config");
  char command_entry[64];
  char *owned[16];
  size_t n_owned = 0;
  if (n_overrides > 16) n_overrides = 16;
  char **envp = build_env(command, overrides, n_overrides, command_entry, sizeof(command_entry), owned, &n_owned);
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, exec_pipe[2] = {-1, -1};
  int rc = -1;
  pid_t pid = -1;
  bool too_big = false;
  if (envp == NULL || pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(exec_pipe, O_CLOEXEC) < 0) {
    cni_fail(err, CNI_ERR_INTERNAL, "cannot prepare to run %s: %s", path, strerror(errno));
    goto out;
  }
  pid = fork();
  if (pid < 0) {
    cni_fail(err, CNI_ERR_INTERNAL, "cannot run %s: fork: %s", path, strerror(errno));
    goto out;
  }
  if (pid == 0) {
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in_pipe[0], STDIN_FILENO) < 0 || dup2(out_pipe[1], STDOUT_FILENO) < 0) _exit(126);
    char *argv[] = {(char *)path, NULL};
    execve(path, argv, envp);
    int e = errno;
    ssize_t ignored = write(exec_pipe[1], &e, sizeof(e));
    (void)ignored;
    _exit(127);
  }
  close(in_pipe[0]);
  in_pipe[0] = -1;
  close(out_pipe[1]);
  out_pipe[1] = -1;
  close(exec_pipe[1]);
  exec_pipe[1] = -1;

  /* feed stdin and drain stdout together, so neither side can block the other */
  size_t in_len = strlen(input), in_off = 0, cap = 4096;
  run->output = malloc(cap);
  if (run->output == NULL) {
    cni_fail(err, CNI_ERR_INTERNAL, "out of memory");
    goto reap;
  }
  fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
  while (out_pipe[0] >= 0) {
    struct pollfd fds[2] = {{.fd = out_pipe[0], .events = POLLIN}, {.fd = in_pipe[1], .events = POLLOUT}};
    int nfds = in_pipe[1] >= 0 ? 2 : 1;
    if (poll(fds, (nfds_t)nfds, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (nfds == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t n = write(in_pipe[1], input + in_off, in_len - in_off);
      if (n > 0) in_off += (size_t)n;
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
        close(in_pipe[1]);
        in_pipe[1] = -1;
      }
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      if (run->output_len + 1 >= cap) {
        if (cap >= MAX_DELEGATE_OUTPUT_BYTES) {
          too_big = true;
          kill(pid, SIGKILL);
          break;
        }
        char *grown = realloc(run->output, cap * 2);
        if (grown == NULL) break;
        run->output = grown;
        cap *= 2;
      }
      ssize_t n = read(out_pipe[0], run->output + run->output_len, cap - 1 - run->output_len);
      if (n > 0) {
        run->output_len += (size_t)n;
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(out_pipe[0]);
        out_pipe[0] = -1;
      }
    }
  }
  run->output[run->output_len] = '\0';
reap:;
  /* the delegate must not wait on us: it sees EOF on stdin, and is killed if we gave up reading it */
  if (in_pipe[1] >= 0) {
    close(in_pipe[1]);
    in_pipe[1] = -1;
  }
  if (out_pipe[0] >= 0) {
    kill(pid, SIGKILL);
    close(out_pipe[0]);
    out_pipe[0] = -1;
  }
  int status = 0;
  pid_t waited;
  while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (waited < 0) {
    cni_fail(err, CNI_ERR_INTERNAL, "cannot learn how the delegate plugin %s ended: waitpid: %s", path, strerror(errno));
    goto out;
  }
  int exec_errno = 0;
  if (read(exec_pipe[0], &exec_errno, sizeof(exec_errno)) == (ssize_t)sizeof(exec_errno)) {
    cni_fail(err, CNI_ERR_INVALID_CONFIG, "cannot run the delegate plugin %s: %s", path, strerror(exec_errno));
    goto out;
  }
  if (too_big) {
    cni_fail(err, CNI_ERR_INTERNAL, "the delegate plugin %s wrote more than %u bytes", path, MAX_DELEGATE_OUTPUT_BYTES);
    goto out;
  }
  if (run->output == NULL) goto out;
  run->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  rc = 0;
out:
  for (int i = 0; i < 2; i++) {
    if (in_pipe[i] >= 0) close(in_pipe[i]);
    if (out_pipe[i] >= 0) close(out_pipe[i]);
    if (exec_pipe[i] >= 0) close(exec_pipe[i]);
  }
  for (size_t i = 0; i < n_owned; i++) free(owned[i]);
  free(envp);
  free(input);
  if (rc < 0) {
    free(run->output);
    run->output = NULL;
    run->output_len = 0;
  }
  return rc;
}

int delegate_call(const char *type, const char *cni_path, const char *command, const struct env_override *overrides,
                  size_t n_overrides, json_t *config, struct delegate_run *run, struct cni_error *err) {
  char path[PATH_MAX];
  if (delegate_find(type, cni_path, path, sizeof(path), err) < 0) return -1;
  if (delegate_exec(path, command, overrides, n_overrides, config, run, err) < 0) return -1;
  if (run->exit_status == 0) return 0;
  json_t *result = json_loadb(run->output, run->output_len, 0, NULL);
  json_t *code = json_is_object(result) ? json_object_get(result, "code") : NULL;
  json_t *msg = json_is_object(result) ? json_object_get(result, "msg") : NULL;
  if (json_is_integer(code)) {
    cni_fail(err, (int)json_integer_value(code), "delegate plugin %s %s failed: %s", type, command,
             json_is_string(msg) ? json_string_value(msg) : "(no message)");
    json_t *details = json_object_get(result, "details");
    if (json_is_string(details)) cni_details(err, "%s", json_string_value(details));
  } else if (run->exit_status < 0) {
    cni_fail(err, CNI_ERR_INTERNAL, "delegate plugin %s %s was killed by a signal", type, command);
  } else {
    cni_fail(err, CNI_ERR_INTERNAL, "delegate plugin %s %s exited with status %d", type, command, run->exit_status);
    cni_details(err, "%.2000s", run->output);
  }
  if (result != NULL) json_decref(result);
  free(run->output);
  run->output = NULL;
  return -1;
}
