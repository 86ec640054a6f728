/*
 * doorgw's GPIO character-device binding (Linux GPIO uAPI v2, <linux/gpio.h>), as a Node-API addon:
 * the few system calls the relay and the door inputs need, nothing more.
 *
 *   chipInfo(path)                         -> { name, label, lines }
 *   lineInfo(path, offset)                 -> { name, consumer, used, output }
 *   request(path, consumer, offsets, opts) -> fd    opts: { output, values, edges, debounceUs, bias }
 *   setValues(fd, values)                  values: physical levels, one per requested line
 *   getValues(fd, count)                   -> physical levels
 *   watch(fd, cb) -> handle                cb(offset, rising, timestampNs (BigInt), seqno) per edge
 *   unwatch(handle)
 *   close(fd)
 *
 * Edges are read by a thread of our own blocked in poll(), never by libuv's pool (a blocked pool
 * thread would delay the database), and handed to JavaScript through a thread-safe function with
 * the kernel's timestamp: late delivery never changes what happened when.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CHECK(call)                                                                 \
  do {                                                                              \
    if ((call) != napi_ok) {                                                        \
      napi_throw_error(env, NULL, "gpio_cdev: Node-API call failed: " #call);       \
      return NULL;                                                                  \
    }                                                                               \
  } while (0)

static const char *errno_code(int e) {
  switch (e) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENODEV: return "ENODEV";
    case ENOTTY: return "ENOTTY";
    case ENOTSUP: return "ENOTSUP";
    case EBADF: return "EBADF";
    default: return "EIO";
  }
}

static napi_value throw_sys(napi_env env, const char *what, int e) {
  char msg[320];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_value m, code, err;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, m, &err);
  napi_value c;
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &c);
  napi_set_named_property(env, err, "code", c);
  napi_throw(env, err);
  return NULL;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len;
  return napi_get_value_string_utf8(env, v, buf, size, &len) == napi_ok ? 0 : -1;
}

static napi_value str(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, strnlen(s, GPIO_MAX_NAME_SIZE), &v);
  return v;
}

static napi_value chip_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[256];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || get_string(env, argv[0], path, sizeof path)) return throw_sys(env, "chipInfo(path)", EINVAL);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return throw_sys(env, path, errno);
  struct gpiochip_info ci;
  memset(&ci, 0, sizeof ci);
  if (ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, &ci) < 0) {
    int e = errno;
    close(fd);
    return throw_sys(env, path, e);
  }
  close(fd);
  napi_value o, n;
  CHECK(napi_create_object(env, &o));
  napi_set_named_property(env, o, "name", str(env, ci.name));
  napi_set_named_property(env, o, "label", str(env, ci.label));
  napi_create_uint32(env, ci.lines, &n);
  napi_set_named_property(env, o, "lines", n);
  return o;
}

static napi_value line_info(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[256];
  uint32_t offset;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || get_string(env, argv[0], path, sizeof path) || napi_get_value_uint32(env, argv[1], &offset) != napi_ok) return throw_sys(env, "lineInfo(path, offset)", EINVAL);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return throw_sys(env, path, errno);
  struct gpio_v2_line_info li;
  memset(&li, 0, sizeof li);
  li.offset = offset;
  if (ioctl(fd, GPIO_V2_GET_LINEINFO_IOCTL, &li) < 0) {
    int e = errno;
    close(fd);
    return throw_sys(env, path, e);
  }
  close(fd);
  napi_value o, b;
  CHECK(napi_create_object(env, &o));
  napi_set_named_property(env, o, "name", str(env, li.name));
  napi_set_named_property(env, o, "consumer", str(env, li.consumer));
  napi_get_boolean(env, (li.flags & GPIO_V2_LINE_FLAG_USED) != 0, &b);
  napi_set_named_property(env, o, "used", b);
  napi_get_boolean(env, (li.flags & GPIO_V2_LINE_FLAG_OUTPUT) != 0, &b);
  napi_set_named_property(env, o, "output", b);
  return o;
}

static int prop_bool(napi_env env, napi_value o, const char *k, int dflt) {
  napi_value v;
  bool has, b;
  if (napi_has_named_property(env, o, k, &has) != napi_ok || !has) return dflt;
  napi_get_named_property(env, o, k, &v);
  return napi_get_value_bool(env, v, &b) == napi_ok ? b : dflt;
}

static uint32_t prop_u32(napi_env env, napi_value o, const char *k, uint32_t dflt) {
  napi_value v;
  bool has;
  uint32_t u;
  if (napi_has_named_property(env, o, k, &has) != napi_ok || !has) return dflt;
  napi_get_named_property(env, o, k, &v);
  return napi_get_value_uint32(env, v, &u) == napi_ok ? u : dflt;
}

static void prop_str(napi_env env, napi_value o, const char *k, char *buf, size_t size) {
  napi_value v;
  bool has;
  buf[0] = 0;
  if (napi_has_named_property(env, o, k, &has) != napi_ok || !has) return;
  napi_get_named_property(env, o, k, &v);
  get_string(env, v, buf, size);
}

/* request(path, consumer, offsets[], { output, values[], edges, debounceUs, bias }) -> fd */
static napi_value request(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char path[256], consumer[GPIO_MAX_NAME_SIZE], edges[16], bias[16];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], consumer, sizeof consumer)) return throw_sys(env, "request(path, consumer, offsets, options)", EINVAL);
  struct gpio_v2_line_request req;
  memset(&req, 0, sizeof req);
  uint32_t n;
  CHECK(napi_get_array_length(env, argv[2], &n));
  if (n == 0 || n > GPIO_V2_LINES_MAX) return throw_sys(env, "request: offsets", EINVAL);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    napi_get_element(env, argv[2], i, &v);
    if (napi_get_value_uint32(env, v, &req.offsets[i]) != napi_ok) return throw_sys(env, "request: offsets", EINVAL);
  }
  req.num_lines = n;
  memcpy(req.consumer, consumer, strnlen(consumer, GPIO_MAX_NAME_SIZE - 1));
  napi_value o = argv[3];
  int output = prop_bool(env, o, "output", 0);
  prop_str(env, o, "edges", edges, sizeof edges);
  prop_str(env, o, "bias", bias, sizeof bias);
  uint32_t debounce = prop_u32(env, o, "debounceUs", 0);
  uint64_t all = n == 64 ? ~0ULL : ((1ULL << n) - 1);
  uint64_t flags = output ? GPIO_V2_LINE_FLAG_OUTPUT : GPIO_V2_LINE_FLAG_INPUT;
  if (!output) {
    if (!strcmp(edges, "both")) flags |= GPIO_V2_LINE_FLAG_EDGE_RISING | GPIO_V2_LINE_FLAG_EDGE_FALLING;
    else if (!strcmp(edges, "rising")) flags |= GPIO_V2_LINE_FLAG_EDGE_RISING;
    else if (!strcmp(edges, "falling")) flags |= GPIO_V2_LINE_FLAG_EDGE_FALLING;
    if (!strcmp(bias, "pull-up")) flags |= GPIO_V2_LINE_FLAG_BIAS_PULL_UP;
    else if (!strcmp(bias, "pull-down")) flags |= GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN;
    else if (!strcmp(bias, "disabled")) flags |= GPIO_V2_LINE_FLAG_BIAS_DISABLED;
  }
  req.config.flags = flags;
  uint32_t na = 0;
  if (output) {
    /* The initial level is part of the request: the line is never driven to anything else first. */
    napi_value vals;
    bool has;
    uint64_t bits = 0;
    if (napi_has_named_property(env, o, "values", &has) == napi_ok && has) {
      napi_get_named_property(env, o, "values", &vals);
      for (uint32_t i = 0; i < n; i++) {
        napi_value v;
        uint32_t b = 0;
        napi_get_element(env, vals, i, &v);
        napi_get_value_uint32(env, v, &b);
        if (b) bits |= 1ULL << i;
      }
    }
    req.config.attrs[na].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
    req.config.attrs[na].attr.values = bits;
    req.config.attrs[na].mask = all;
    na++;
  }
  if (!output && debounce > 0) {
    req.config.attrs[na].attr.id = GPIO_V2_LINE_ATTR_ID_DEBOUNCE;
    req.config.attrs[na].attr.debounce_period_us = debounce;
    req.config.attrs[na].mask = all;
    na++;
  }
  req.config.num_attrs = na;
  int chip = open(path, O_RDWR | O_CLOEXEC);
  if (chip < 0) return throw_sys(env, path, errno);
  if (ioctl(chip, GPIO_V2_GET_LINE_IOCTL, &req) < 0) {
    int e = errno;
    close(chip);
    return throw_sys(env, path, e);
  }
  close(chip);
  napi_value fd;
  napi_create_int32(env, req.fd, &fd);
  return fd;
}

static napi_value set_values(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return throw_sys(env, "setValues(fd, values)", EINVAL);
  uint32_t n;
  CHECK(napi_get_array_length(env, argv[1], &n));
  struct gpio_v2_line_values lv;
  memset(&lv, 0, sizeof lv);
  for (uint32_t i = 0; i < n && i < 64; i++) {
    napi_value v;
    uint32_t b = 0;
    napi_get_element(env, argv[1], i, &v);
    napi_get_value_uint32(env, v, &b);
    if (b) lv.bits |= 1ULL << i;
    lv.mask |= 1ULL << i;
  }
  if (ioctl(fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &lv) < 0) return throw_sys(env, "setValues", errno);
  return NULL;
}

static napi_value get_values(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  uint32_t n;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_uint32(env, argv[1], &n) != napi_ok || n == 0 || n > 64) return throw_sys(env, "getValues(fd, count)", EINVAL);
  struct gpio_v2_line_values lv;
  memset(&lv, 0, sizeof lv);
  lv.mask = n == 64 ? ~0ULL : ((1ULL << n) - 1);
  if (ioctl(fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &lv) < 0) return throw_sys(env, "getValues", errno);
  napi_value arr;
  CHECK(napi_create_array_with_length(env, n, &arr));
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    napi_create_uint32(env, (lv.bits >> i) & 1, &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

/* ---------------------------------------------------------------------------------------------- */
/* Edge events: a thread per watched request, blocked in poll(), woken by a pipe to stop. */

typedef struct {
  int fd;
  int wake[2];
  pthread_t thread;
  napi_threadsafe_function tsfn;
  int running;
} watcher_t;

static void *watch_thread(void *arg) {
  watcher_t *w = arg;
  struct gpio_v2_line_event ev[16];
  for (;;) {
    struct pollfd p[2] = {{.fd = w->fd, .events = POLLIN}, {.fd = w->wake[0], .events = POLLIN}};
    int r = poll(p, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (p[1].revents & POLLIN) || (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))) break;
    if (!(p[0].revents & POLLIN)) continue;
    ssize_t got = read(w->fd, ev, sizeof ev);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) break;
    for (size_t i = 0; i < (size_t)got / sizeof ev[0]; i++) {
      struct gpio_v2_line_event *copy = malloc(sizeof *copy);
      if (!copy) continue;
      *copy = ev[i];
      if (napi_call_threadsafe_function(w->tsfn, copy, napi_tsfn_blocking) != napi_ok) free(copy);
    }
  }
  return NULL;
}

static void call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  (void)ctx;
  struct gpio_v2_line_event *e = data;
  if (env && cb) {
    napi_value argv[4], undefined;
    napi_create_uint32(env, e->offset, &argv[0]);
    napi_get_boolean(env, e->id == GPIO_V2_LINE_EVENT_RISING_EDGE, &argv[1]);
    napi_create_bigint_uint64(env, e->timestamp_ns, &argv[2]);
    napi_create_uint32(env, e->seqno, &argv[3]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, cb, 4, argv, NULL);
  }
  free(e);
}

static napi_value watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return throw_sys(env, "watch(fd, callback)", EINVAL);
  watcher_t *w = calloc(1, sizeof *w);
  if (!w) return throw_sys(env, "watch", ENOMEM);
  w->fd = fd;
  if (pipe2(w->wake, O_CLOEXEC) < 0) {
    free(w);
    return throw_sys(env, "watch: pipe", errno);
  }
  napi_value name;
  napi_create_string_utf8(env, "gpio-edges", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &w->tsfn) != napi_ok) {
    close(w->wake[0]);
    close(w->wake[1]);
    free(w);
    napi_throw_error(env, NULL, "watch: could not create the event bridge");
    return NULL;
  }
  /* The watcher must not keep the process alive on its own. */
  napi_unref_threadsafe_function(env, w->tsfn);
  if (pthread_create(&w->thread, NULL, watch_thread, w) != 0) {
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
    close(w->wake[0]);
    close(w->wake[1]);
    free(w);
    return throw_sys(env, "watch: thread", EAGAIN);
  }
  w->running = 1;
  napi_value handle;
  CHECK(napi_create_external(env, w, NULL, NULL, &handle));
  return handle;
}

static napi_value unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  watcher_t *w;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&w) != napi_ok || !w) return NULL;
  if (!w->running) return NULL;
  w->running = 0;
  ssize_t ignored = write(w->wake[1], "x", 1);
  (void)ignored;
  pthread_join(w->thread, NULL);
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
  close(w->wake[0]);
  close(w->wake[1]);
  return NULL;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return NULL;
  close(fd);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor d[] = {
      {"chipInfo", NULL, chip_info, NULL, NULL, NULL, napi_default_method, NULL},
      {"lineInfo", NULL, line_info, NULL, NULL, NULL, napi_default_method, NULL},
      {"request", NULL, request, NULL, NULL, NULL, napi_default_method, NULL},
      {"setValues", NULL, set_values, NULL, NULL, NULL, napi_default_method, NULL},
      {"getValues", NULL, get_values, NULL, NULL, NULL, napi_default_method, NULL},
      {"watch", NULL, watch, NULL, NULL, NULL, napi_default_method, NULL},
      {"unwatch", NULL, unwatch, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}
