/*
 * A fake kernel GPIO character device for tests, loaded with LD_PRELOAD into a process that has no
 * GPIO hardware: opening /dev/gpiochip0 and the v2 uAPI ioctls on it and on line requests are
 * answered here; every other file and ioctl goes to the real libc.
 *
 *   FAKE_GPIO_LABEL   chip label (default pinctrl-bcm2711), FAKE_GPIO_LINES (default 58)
 *   FAKE_GPIO_LOG     file to which every request and every value set is appended, one line each:
 *                       request offsets=17 output=1 values=0 edges=none debounce=0 consumer=…
 *                       set 17=1 t=<monotonic ns>
 *   FAKE_GPIO_CTL     a FIFO the test writes commands to:
 *                       level <offset> <0|1>            the line's input level (no event)
 *                       edge <offset> <0|1> [<ns>|+<ns>] the level changes: an edge event with that
 *                                                       kernel timestamp (default: now; +ns: that
 *                                                       long after the previous event's)
 *   FAKE_GPIO_LEVELS  initial input levels, e.g. "27=1,22=0"
 *   FAKE_GPIO_NO_DEBOUNCE=1   refuse the debounce attribute (EINVAL), like chips without it
 *
 * A line request's fd is one end of a SOCK_SEQPACKET pair: edge events are written to the other
 * end as struct gpio_v2_line_event records, exactly what read() on a real request returns.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 4096
enum { NONE = 0, CHIP = 1, LINE = 2 };
struct req {
  int peer;
  unsigned n;
  unsigned offsets[64];
  int output;
  int rising, falling;
  unsigned seq;
};
static int kind[MAXFD];
static struct req *reqs[MAXFD];
static int levels[256];
static unsigned long long last_ts;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_close)(int);

static unsigned long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void logf_(const char *fmt, ...) {
  const char *path = getenv("FAKE_GPIO_LOG");
  if (!path) return;
  int fd = real_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) {
    ssize_t w = write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    (void)w;
  }
  real_close(fd);
}

static void emit(unsigned offset, int level, unsigned long long ns) {
  pthread_mutex_lock(&mu);
  int prev = levels[offset & 255];
  levels[offset & 255] = level;
  for (int fd = 0; fd < MAXFD; fd++) {
    struct req *r = reqs[fd];
    if (kind[fd] != LINE || !r || r->output) continue;
    for (unsigned i = 0; i < r->n; i++) {
      if (r->offsets[i] != offset || prev == level) continue;
      if ((level && !r->rising) || (!level && !r->falling)) continue; /* an edge the request did not ask for */
      struct gpio_v2_line_event e;
      memset(&e, 0, sizeof e);
      e.timestamp_ns = ns;
      last_ts = ns;
      e.id = level ? GPIO_V2_LINE_EVENT_RISING_EDGE : GPIO_V2_LINE_EVENT_FALLING_EDGE;
      e.offset = offset;
      e.seqno = ++r->seq;
      e.line_seqno = r->seq;
      ssize_t w = write(r->peer, &e, sizeof e);
      (void)w;
    }
  }
  pthread_mutex_unlock(&mu);
}

static void *control(void *arg) {
  (void)arg;
  const char *path = getenv("FAKE_GPIO_CTL");
  int fd = real_open(path, O_RDWR | O_CLOEXEC); /* RDWR: never sees EOF when a writer closes */
  if (fd < 0) return NULL;
  char buf[4096];
  size_t have = 0;
  for (;;) {
    ssize_t got = read(fd, buf + have, sizeof buf - 1 - have);
    if (got <= 0) break;
    have += (size_t)got;
    buf[have] = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = 0;
      unsigned off;
      int lv;
      unsigned long long ns = 0;
      char rel = 0;
      if (sscanf(line, "edge %u %d +%llu", &off, &lv, &ns) == 3) rel = 1;
      if (rel) emit(off, lv != 0, (last_ts ? last_ts : now_ns()) + ns);
      else if (sscanf(line, "edge %u %d %llu", &off, &lv, &ns) >= 2) emit(off, lv != 0, ns ? ns : now_ns());
      else if (sscanf(line, "level %u %d", &off, &lv) == 2) {
        pthread_mutex_lock(&mu);
        levels[off & 255] = lv != 0;
        pthread_mutex_unlock(&mu);
      }
      line = nl + 1;
    }
    have = strlen(line);
    memmove(buf, line, have);
  }
  return NULL;
}

static void init(void) {
  real_open = dlsym(RTLD_NEXT, "open");
  real_openat = dlsym(RTLD_NEXT, "openat");
  real_ioctl = dlsym(RTLD_NEXT, "ioctl");
  real_close = dlsym(RTLD_NEXT, "close");
  const char *lv = getenv("FAKE_GPIO_LEVELS");
  while (lv && *lv) {
    unsigned off;
    int v, used = 0;
    if (sscanf(lv, "%u=%d%n", &off, &v, &used) != 2) break;
    levels[off & 255] = v != 0;
    lv += used;
    if (*lv == ',') lv++;
  }
  if (getenv("FAKE_GPIO_CTL")) {
    pthread_t t;
    pthread_create(&t, NULL, control, NULL);
    pthread_detach(t);
  }
}

static int is_chip(const char *path) {
  return path && !strncmp(path, "/dev/gpiochip", 13);
}

static int open_chip(const char *path) {
  if (strcmp(path, "/dev/gpiochip0")) {
    errno = ENOENT;
    return -1;
  }
  int fd = real_open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd >= 0 && fd < MAXFD) kind[fd] = CHIP;
  return fd;
}

int open(const char *path, int flags, ...) {
  pthread_once(&once, init);
  if (is_chip(path)) return open_chip(path);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_arg(ap, mode_t);
  va_end(ap);
  return real_open(path, flags, mode);
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...) {
  pthread_once(&once, init);
  if (is_chip(path)) return open_chip(path);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_arg(ap, mode_t);
  va_end(ap);
  return real_openat(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

int close(int fd) {
  pthread_once(&once, init);
  if (fd >= 0 && fd < MAXFD && kind[fd]) {
    pthread_mutex_lock(&mu);
    if (kind[fd] == LINE && reqs[fd]) {
      logf_("release offsets=%u\n", reqs[fd]->offsets[0]);
      real_close(reqs[fd]->peer);
      free(reqs[fd]);
      reqs[fd] = NULL;
    }
    kind[fd] = NONE;
    pthread_mutex_unlock(&mu);
  }
  return real_close(fd);
}

static int line_request(struct gpio_v2_line_request *r) {
  const char *label = getenv("FAKE_GPIO_LINES");
  unsigned lines = label ? (unsigned)atoi(label) : 58;
  int out = (r->config.flags & GPIO_V2_LINE_FLAG_OUTPUT) != 0;
  unsigned long long values = 0;
  unsigned debounce = 0;
  for (unsigned i = 0; i < r->config.num_attrs; i++) {
    if (r->config.attrs[i].attr.id == GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES) values = r->config.attrs[i].attr.values;
    if (r->config.attrs[i].attr.id == GPIO_V2_LINE_ATTR_ID_DEBOUNCE) {
      if (getenv("FAKE_GPIO_NO_DEBOUNCE")) return -EINVAL;
      debounce = r->config.attrs[i].attr.debounce_period_us;
    }
  }
  if (r->num_lines == 0 || r->num_lines > 64) return -EINVAL;
  for (unsigned i = 0; i < r->num_lines; i++) if (r->offsets[i] >= lines) return -EINVAL;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  struct req *q = calloc(1, sizeof *q);
  q->peer = sv[1];
  q->n = r->num_lines;
  q->output = out;
  q->rising = (r->config.flags & GPIO_V2_LINE_FLAG_EDGE_RISING) != 0;
  q->falling = (r->config.flags & GPIO_V2_LINE_FLAG_EDGE_FALLING) != 0;
  memcpy(q->offsets, r->offsets, sizeof(unsigned) * r->num_lines);
  const char *edges = (r->config.flags & GPIO_V2_LINE_FLAG_EDGE_RISING) && (r->config.flags & GPIO_V2_LINE_FLAG_EDGE_FALLING) ? "both"
                      : (r->config.flags & GPIO_V2_LINE_FLAG_EDGE_RISING) ? "rising"
                      : (r->config.flags & GPIO_V2_LINE_FLAG_EDGE_FALLING) ? "falling" : "none";
  char offs[256] = "";
  for (unsigned i = 0; i < r->num_lines; i++) {
    char one[16];
    snprintf(one, sizeof one, "%s%u", i ? "," : "", r->offsets[i]);
    strncat(offs, one, sizeof offs - strlen(offs) - 1);
    if (out) levels[r->offsets[i] & 255] = (values >> i) & 1;
  }
  const char *bias = (r->config.flags & GPIO_V2_LINE_FLAG_BIAS_PULL_UP) ? "pull-up" : (r->config.flags & GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN) ? "pull-down" : (r->config.flags & GPIO_V2_LINE_FLAG_BIAS_DISABLED) ? "disabled" : "as-is";
  logf_("request offsets=%s output=%d values=%llu edges=%s debounce=%u consumer=%s bias=%s t=%llu\n", offs, out, values, edges, debounce, r->consumer, bias, now_ns());
  pthread_mutex_lock(&mu);
  kind[sv[0]] = LINE;
  reqs[sv[0]] = q;
  pthread_mutex_unlock(&mu);
  r->fd = sv[0];
  return 0;
}

int ioctl(int fd, unsigned long request, ...) {
  pthread_once(&once, init);
  va_list ap;
  va_start(ap, request);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  if (fd < 0 || fd >= MAXFD || !kind[fd]) return real_ioctl(fd, request, arg);
  int rc = 0;
  if (kind[fd] == CHIP && request == GPIO_GET_CHIPINFO_IOCTL) {
    struct gpiochip_info *ci = arg;
    memset(ci, 0, sizeof *ci);
    strcpy(ci->name, "gpiochip0");
    const char *label = getenv("FAKE_GPIO_LABEL");
    strncpy(ci->label, label ? label : "pinctrl-bcm2711", sizeof ci->label - 1);
    const char *lines = getenv("FAKE_GPIO_LINES");
    ci->lines = lines ? (unsigned)atoi(lines) : 58;
  } else if (kind[fd] == CHIP && request == GPIO_V2_GET_LINEINFO_IOCTL) {
    struct gpio_v2_line_info *li = arg;
    unsigned off = li->offset;
    memset(li, 0, sizeof *li);
    li->offset = off;
    snprintf(li->name, sizeof li->name, "GPIO%u", off);
  } else if (kind[fd] == CHIP && request == GPIO_V2_GET_LINE_IOCTL) {
    rc = line_request(arg);
  } else if (kind[fd] == LINE && request == GPIO_V2_LINE_SET_VALUES_IOCTL) {
    struct gpio_v2_line_values *v = arg;
    struct req *q = reqs[fd];
    for (unsigned i = 0; i < q->n; i++) {
      if (!((v->mask >> i) & 1)) continue;
      levels[q->offsets[i] & 255] = (v->bits >> i) & 1;
      logf_("set %u=%llu t=%llu\n", q->offsets[i], (v->bits >> i) & 1, now_ns());
    }
  } else if (kind[fd] == LINE && request == GPIO_V2_LINE_GET_VALUES_IOCTL) {
    struct gpio_v2_line_values *v = arg;
    struct req *q = reqs[fd];
    unsigned long long bits = 0;
    for (unsigned i = 0; i < q->n; i++) if (levels[q->offsets[i] & 255]) bits |= 1ULL << i;
    v->bits = bits & v->mask;
  } else {
    rc = -ENOTTY;
  }
  if (rc < 0) {
    errno = -rc;
    return -1;
  }
  return 0;
}
