/* The cost of reading one answer page of the OCSP slot file, by pread and by mmap (issue #14):
 * random 4 KiB-aligned reads over a page-cached file, N of each.
 *   gcc -O2 -o /tmp/pread-floor bench/scale/pread-floor.c
 *   /tmp/pread-floor DATA/ocsp-answers/answers.slots 2000000
 * Prints pread µs per read for 256 B .. 8 KiB, then mmap µs per 4 KiB page touched (every 64th
 * byte summed, as a CRC would read it): unbounded, and with madvise(MADV_DONTNEED) over the
 * whole mapping every 64 Ki and 16 Ki pages (what bounding serve's RSS would cost). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
static uint64_t x = 88172645463325252ULL;
static uint64_t next(void) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s FILE READS\n", argv[0]); return 2; }
  int fd = open(argv[1], O_RDONLY | O_NOATIME);
  if (fd < 0) fd = open(argv[1], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 3 * 4096) { perror(argv[1]); return 1; }
  long pages = st.st_size / 4096, n = atol(argv[2]);
  static char buf[8192];
  volatile uint64_t sink = 0;
  for (long p = 0; p < pages; p++) sink += pread(fd, buf, 4096, p * 4096); /* into the page cache */
  int sizes[] = {256, 1024, 2048, 4096, 8192};
  for (int k = 0; k < 5; k++) {
    double t = now();
    for (long i = 0; i < n; i++) sink += pread(fd, buf, sizes[k], (long)(next() % (pages - 1)) * 4096);
    printf("pread %5d B: %.2f us per read\n", sizes[k], (now() - t) / n * 1e6);
  }
  char *m = mmap(0, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) { perror("mmap"); return 1; }
  madvise(m, st.st_size, MADV_RANDOM);
  long budgets[] = {0, 65536, 16384};
  for (int k = 0; k < 3; k++) {
    madvise(m, st.st_size, MADV_DONTNEED);
    long mapped = 0;
    double t = now();
    for (long i = 0; i < n; i++) {
      const char *b = m + (long)(next() % pages) * 4096;
      uint64_t s = 0;
      for (int j = 0; j < 4096; j += 64) s += b[j];
      sink += s;
      if (budgets[k] && ++mapped >= budgets[k]) { madvise(m, st.st_size, MADV_DONTNEED); mapped = 0; }
    }
    printf("mmap, DONTNEED every %ld pages (0: never): %.2f us per page\n", budgets[k], (now() - t) / n * 1e6);
  }
  return 0;
}
