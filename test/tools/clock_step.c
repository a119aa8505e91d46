// sgw-clock-step: an LD_PRELOAD module that steps the wall clock of one process (a fault the
// real clock cannot be given here: stepping it needs CAP_SYS_TIME and moves every program on
// the machine). CLOCK_REALTIME (clock_gettime, gettimeofday, time) reads the real clock plus an
// offset in seconds read from the file named by SGW_CLOCK_STEP_FILE (a missing or empty file:
// 0); the file is read again at most every 20 ms. CLOCK_MONOTONIC and the other clocks are not
// touched: the wall clock steps, as an NTP step or a VM's clock sync steps it, and time does not.
//
// Used by test/integration/test_clock_step.py. Not installed; built without sanitizers (it is
// preloaded before the ASan runtime, so the tests set verify_asan_link_order=0).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec*);

static clock_gettime_fn real_clock_gettime(void) {
  static _Atomic(clock_gettime_fn) fn = NULL;
  clock_gettime_fn f = atomic_load(&fn);
  if (f == NULL) {
    f = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    atomic_store(&fn, f);
  }
  return f;
}

// The offset in ns, from the file; re-read once 20 ms of CLOCK_MONOTONIC passed since the last read.
static int64_t offset_ns(void) {
  static _Atomic int64_t offset = 0;
  static _Atomic int64_t next_read_ns = 0;
  struct timespec m;
  if (real_clock_gettime()(CLOCK_MONOTONIC, &m) != 0) return atomic_load(&offset);
  const int64_t now = (int64_t)m.tv_sec * 1000000000LL + m.tv_nsec;
  if (now < atomic_load(&next_read_ns)) return atomic_load(&offset);
  atomic_store(&next_read_ns, now + 20000000LL);
  const char* path = getenv("SGW_CLOCK_STEP_FILE");
  if (path == NULL) return 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return atomic_load(&offset);
  char buf[64];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return atomic_load(&offset);
  buf[n] = '\0';
  char* end = NULL;
  double seconds = strtod(buf, &end);
  if (end != buf) atomic_store(&offset, (int64_t)(seconds * 1e9));
  return atomic_load(&offset);
}

static void shift(struct timespec* ts) {
  int64_t ns = (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns();
  ts->tv_sec = (time_t)(ns / 1000000000LL);
  ts->tv_nsec = (long)(ns % 1000000000LL);
}

int clock_gettime(clockid_t id, struct timespec* ts) {
  int r = real_clock_gettime()(id, ts);
  if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) shift(ts);
  return r;
}

int gettimeofday(struct timeval* restrict tv, void* restrict tz) {
  (void)tz;
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
  tv->tv_sec = ts.tv_sec;  // declared nonnull by glibc
  tv->tv_usec = ts.tv_nsec / 1000;
  return 0;
}

time_t time(time_t* out) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
  if (out != NULL) *out = ts.tv_sec;
  return ts.tv_sec;
}
