/*
 * pmem-flush-test: prove that stores to a (DAX-)mapped file can be made durable from user space
 * the way pmem programs do it (CLWB/CLFLUSHOPT/CLFLUSH + SFENCE, non-temporal stores, msync),
 * and measure what each costs. C11 + libc only; part of pmem-image.
 *
 * The read-back shows that the stores reached the file through the chosen path. It cannot show that
 * cache lines were flushed (caches are coherent, and under TCG CLWB is a no-op), and on DRAM-backed
 * (emulated) pmem nothing here shows durability after power loss.
 *
 * Exit codes: 0 verification passed, 1 verification failed, 2 bad arguments or I/O error.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <emmintrin.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define LINE 64
#define PAGE 4096
#define DEFAULT_SIZE (16u << 20)
#define MAX_SIZE ((uint64_t)64 << 30)
#define ROUNDS 3
#define NOTE "the read-back shows the stores reached the file through the chosen flush path; " \
             "caches are coherent, so it cannot show that lines were flushed, and on DRAM-backed " \
             "(emulated) pmem nothing here shows durability after power loss"

enum method { M_CLWB, M_CLFLUSHOPT, M_CLFLUSH, M_NTSTORE, M_MSYNC_RANGE, M_MSYNC_PAGE, M_MEMCPY, M_COUNT };
static const char *const method_names[M_COUNT] = {
    "clwb", "clflushopt", "clflush", "ntstore", "msync", "msync-4k", "memcpy"};

struct features { bool clflush, clflushopt, clwb, sse2, avx512f; };

struct result {
    enum method method;
    double seconds;     /* best of ROUNDS */
    bool verified;
    bool checked;       /* memcpy is a bandwidth ceiling, not a persistence method */
};

struct options {
    bool json;
    const char *method;
    uint64_t size;
    const char *path;
    bool write_seed, check_seed, corrupt_for_test, device;
    uint64_t seed;
};

static bool env_set(const char *name) {
    const char *value = getenv(name);
    return value && strcmp(value, "1") == 0;
}

static struct features detect_features(void) {
    struct features f = {0};
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        f.clflush = d & (1u << 19);
        f.sse2 = d & (1u << 26);
    }
    if (__get_cpuid_max(0, NULL) >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.clflushopt = b & (1u << 23);
        f.clwb = b & (1u << 24);
        f.avx512f = b & (1u << 16);
    }
    /* PMDK's switches, to act as an older CPU would. */
    if (env_set("PMEM_NO_CLWB")) f.clwb = false;
    if (env_set("PMEM_NO_CLFLUSHOPT")) f.clflushopt = false;
    if (env_set("PMEM_NO_MOVNT")) f.sse2 = f.avx512f = false;
    return f;
}

static bool method_available(enum method m, const struct features *f) {
    switch (m) {
    case M_CLWB: return f->clwb;
    case M_CLFLUSHOPT: return f->clflushopt;
    case M_CLFLUSH: return f->clflush;
    case M_NTSTORE: return f->sse2;
    default: return true;
    }
}

static const char *cpuid_bit(enum method m) {
    switch (m) {
    case M_CLWB: return "CPUID.(EAX=7,ECX=0):EBX bit 24";
    case M_CLFLUSHOPT: return "CPUID.(EAX=7,ECX=0):EBX bit 23";
    case M_CLFLUSH: return "CPUID.1:EDX bit 19";
    default: return "CPUID.1:EDX bit 26 (SSE2)";
    }
}

static _Noreturn void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("pmem-flush-test: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* Raw encodings so no -mclwb/-mclflushopt is needed; the CPU check above guards their use. */
static inline void flush_clwb(const void *p) { __asm__ volatile(".byte 0x66; xsaveopt %0" : "+m"(*(volatile char *)p)); }
static inline void flush_clflushopt(const void *p) { __asm__ volatile(".byte 0x66; clflush %0" : "+m"(*(volatile char *)p)); }
static inline void flush_clflush(const void *p) { __asm__ volatile("clflush %0" : "+m"(*(volatile char *)p)); }
static inline void sfence(void) { __asm__ volatile("sfence" ::: "memory"); }

static inline uint64_t pattern_word(uint64_t seed, uint64_t index) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 1; /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill(uint64_t *dst, uint64_t words, uint64_t seed) {
    for (uint64_t i = 0; i < words; i++) dst[i] = pattern_word(seed, i);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check_rc(int rc, const char *what, const char *path) {
    if (rc != 0) fail("%s %s: %s", what, path, strerror(rc > 0 ? rc : errno));
}

/* Store the pattern and make it durable with method m; returns the elapsed seconds. With a precomputed
 * `source` only the stores and the flushes are timed; without one (--write-seed) the pattern is generated
 * while storing. */
static double store_and_persist(enum method m, char *map, uint64_t size, uint64_t seed, const uint64_t *source) {
    uint64_t words = size / 8;
    double start = now();
    switch (m) {
    case M_CLWB: case M_CLFLUSHOPT: case M_CLFLUSH:
        if (source) memcpy(map, source, size);
        else fill((uint64_t *)map, words, seed);
        for (uint64_t off = 0; off < size; off += LINE) {
            if (m == M_CLWB) flush_clwb(map + off);
            else if (m == M_CLFLUSHOPT) flush_clflushopt(map + off);
            else flush_clflush(map + off);
        }
        if (m != M_CLFLUSH) sfence(); /* CLFLUSH is ordered by itself */
        break;
    case M_NTSTORE: {
        __m128i *dst = (__m128i *)map;
        if (source)
            for (uint64_t i = 0; i < words; i += 2)
                _mm_stream_si128(dst + i / 2, _mm_loadu_si128((const __m128i *)(source + i)));
        else
            for (uint64_t i = 0; i < words; i += 2)
                _mm_stream_si128(dst + i / 2, _mm_set_epi64x((long long)pattern_word(seed, i + 1),
                                                             (long long)pattern_word(seed, i)));
        sfence();
        break;
    }
    case M_MSYNC_RANGE:
        if (source) memcpy(map, source, size);
        else fill((uint64_t *)map, words, seed);
        if (msync(map, size, MS_SYNC) != 0) fail("msync: %s", strerror(errno));
        break;
    case M_MSYNC_PAGE:
        if (source) memcpy(map, source, size);
        else fill((uint64_t *)map, words, seed);
        for (uint64_t off = 0; off < size; off += PAGE)
            if (msync(map + off, PAGE, MS_SYNC) != 0) fail("msync: %s", strerror(errno));
        break;
    case M_MEMCPY:
        memcpy(map, source, size);
        break;
    default:
        break;
    }
    return now() - start;
}

static char *map_file(int fd, uint64_t size, bool *map_sync, int *map_sync_errno) {
    char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
    if (map != MAP_FAILED) {
        *map_sync = true;
        return map;
    }
    *map_sync = false;
    *map_sync_errno = errno;
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) fail("mmap: %s", strerror(errno));
    return map;
}

/* Re-read the file with pread (after munmap) and compare with the pattern. */
static bool verify_file(int fd, uint64_t size, uint64_t seed, const char *path) {
    static uint64_t buffer[PAGE / 8 * 64];
    for (uint64_t off = 0; off < size;) {
        size_t want = size - off < sizeof buffer ? (size_t)(size - off) : sizeof buffer;
        ssize_t got = pread(fd, buffer, want, (off_t)off);
        if (got <= 0) fail("pread %s: %s", path, got < 0 ? strerror(errno) : "unexpected end of file");
        for (size_t i = 0; i < (size_t)got / 8; i++)
            if (buffer[i] != pattern_word(seed, off / 8 + i)) return false;
        off += (uint64_t)got;
    }
    return true;
}

static void corrupt_one_byte(int fd, uint64_t size) {
    char byte;
    off_t where = (off_t)(size / 2);
    if (pread(fd, &byte, 1, where) != 1) fail("pread: %s", strerror(errno));
    byte ^= 0x5a;
    if (pwrite(fd, &byte, 1, where) != 1) fail("pwrite: %s", strerror(errno));
}

static uint64_t parse_size(const char *text) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-') fail("--size %s: not a size (e.g. 16M, 1G, 65536)", text);
    uint64_t unit = 1;
    if (*end) {
        switch (*end) {
        case 'K': case 'k': unit = 1ull << 10; break;
        case 'M': case 'm': unit = 1ull << 20; break;
        case 'G': case 'g': unit = 1ull << 30; break;
        default: fail("--size %s: unknown unit (use K, M or G)", text);
        }
        if (end[1]) fail("--size %s: not a size (e.g. 16M, 1G, 65536)", text);
    }
    if (value == 0) fail("--size must be above 0");
    if (value > MAX_SIZE / unit) fail("--size %s is larger than the 64 GiB this test allows", text);
    return (value * unit + PAGE - 1) / PAGE * PAGE;
}

static uint64_t parse_seed(const char *text) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 0);
    if (errno || end == text || *end || text[0] == '-') fail("seed %s: not a non-negative integer", text);
    return value;
}

static void usage(FILE *out) {
    fputs("usage: pmem-flush-test [--json] [--method auto|clwb|clflushopt|clflush|ntstore|msync|all]\n"
          "                       [--size BYTES] [--write-seed N | --check-seed N] PATH\n"
          "       pmem-flush-test [--json] [--method M] [--size BYTES] --device /dev/daxN.M\n"
          "PATH is a directory (a temporary file is made and removed there) or a file.\n"
          "--device writes a pattern to a device DAX and reads it back through a second mapping.\n"
          "--write-seed N writes and flushes a seeded pattern that --check-seed N verifies later\n"
          "(e.g. across a warm reboot); with a directory the file is PATH/pmem-flush-test.seed.\n"
          "PMEM_NO_CLWB=1, PMEM_NO_CLFLUSHOPT=1, PMEM_NO_MOVNT=1 hide an instruction (as in PMDK).\n"
          "Note: " NOTE ".\n", out);
}

static struct options parse_args(int argc, char **argv) {
    struct options o = {.method = "auto", .size = DEFAULT_SIZE};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) o.json = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--corrupt-for-test")) o.corrupt_for_test = true;
        else if (!strcmp(a, "--device")) o.device = true;
        else if (!strcmp(a, "--method") || !strcmp(a, "--size") || !strcmp(a, "--write-seed") ||
                 !strcmp(a, "--check-seed")) {
            if (!value) fail("%s needs a value", a);
            i++;
            if (!strcmp(a, "--method")) o.method = value;
            else if (!strcmp(a, "--size")) o.size = parse_size(value);
            else { o.seed = parse_seed(value); *(a[2] == 'w' ? &o.write_seed : &o.check_seed) = true; }
        } else if (a[0] == '-' && a[1]) { usage(stderr); fail("unknown option %s", a); }
        else if (o.path) fail("more than one PATH (%s and %s)", o.path, a);
        else o.path = a;
    }
    if (!o.path) { usage(stderr); fail("PATH is required"); }
    if (o.write_seed && o.check_seed) fail("--write-seed and --check-seed exclude each other");
    if (o.device && (o.write_seed || o.check_seed)) fail("--device takes neither --write-seed nor --check-seed");
    return o;
}

/* Which methods to run for --method; exits 2 if a forced instruction is missing. */
static int select_methods(const char *name, const struct features *f, enum method *out) {
    int n = 0;
    if (!strcmp(name, "auto")) {
        enum method best = f->clwb ? M_CLWB : f->clflushopt ? M_CLFLUSHOPT : f->clflush ? M_CLFLUSH : M_MSYNC_RANGE;
        out[n++] = best;
    } else if (!strcmp(name, "all")) {
        for (enum method m = M_CLWB; m <= M_NTSTORE; m++)
            if (method_available(m, f)) out[n++] = m;
    } else {
        enum method m = M_COUNT;
        for (enum method k = M_CLWB; k <= M_MSYNC_RANGE; k++)
            if (!strcmp(name, method_names[k])) m = k;
        if (m == M_COUNT) fail("--method %s: use auto, clwb, clflushopt, clflush, ntstore, msync or all", name);
        if (!method_available(m, f))
            fail("--method %s: this CPU does not have it (%s is clear); under QEMU use -cpu max or -cpu host",
                 name, cpuid_bit(m));
        out[n++] = m;
    }
    if (out[n - 1] != M_MSYNC_RANGE) out[n++] = M_MSYNC_RANGE;
    out[n++] = M_MSYNC_PAGE;
    out[n++] = M_MEMCPY;
    return n;
}

static int open_target(const char *path, bool keep, char *name, size_t name_size, bool *temporary) {
    struct stat st;
    int fd;
    *temporary = false;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (keep) {
            snprintf(name, name_size, "%s/pmem-flush-test.seed", path);
            fd = open(name, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
        } else {
            snprintf(name, name_size, "%s/.pmem-flush-test.XXXXXX", path);
            fd = mkstemp(name);
            *temporary = fd >= 0;
        }
    } else {
        snprintf(name, name_size, "%s", path);
        fd = open(name, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
    }
    if (fd < 0) fail("cannot open %s: %s", name, strerror(errno));
    /* Only a regular file: a block or character device (or anything else) is never written here. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) fail("%s is not a regular file or a directory", name);
    return fd;
}

/* 1 when statx says the file is accessed with DAX, 0 when it says not, -1 when it cannot tell. */
static int statx_dax(int fd) {
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0) return -1;
    if (!(stx.stx_attributes_mask & STATX_ATTR_DAX)) return -1;
    return (stx.stx_attributes & STATX_ATTR_DAX) ? 1 : 0;
}

static const char *tri(int value, const char *yes, const char *no, const char *unknown) {
    return value > 0 ? yes : value == 0 ? no : unknown;
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void print_report(const struct options *o, const char *file, const struct features *f, bool map_sync,
                         int map_sync_errno, int dax, const struct result *r, int n, bool ok) {
    if (o->json) {
        printf("{\"program\":\"pmem-flush-test\",\"format\":1,\"path\":");
        json_string(file);
        printf(",\"size\":%" PRIu64 ",\"features\":{\"clflush\":%s,\"clflushopt\":%s,\"clwb\":%s,\"sse2\":%s,"
               "\"avx512f\":%s},\"map_sync\":%s,\"map_sync_error\":",
               o->size, f->clflush ? "true" : "false", f->clflushopt ? "true" : "false", f->clwb ? "true" : "false",
               f->sse2 ? "true" : "false", f->avx512f ? "true" : "false", map_sync ? "true" : "false");
        if (map_sync) printf("null");
        else json_string(strerror(map_sync_errno));
        printf(",\"statx_dax\":%s", tri(dax, "true", "false", "null"));
        printf(",\"selected\":\"%s\",\"results\":[", method_names[r[0].method]);
        for (int i = 0; i < n; i++) {
            double gbps = r[i].seconds > 0 ? o->size / r[i].seconds / 1e9 : 0;
            double ns = r[i].seconds * 1e9 / (double)(o->size / LINE);
            printf("%s{\"method\":\"%s\",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"gbps\":%.3f,\"ns_per_line\":%.2f,"
                   "\"verified\":%s}", i ? "," : "", method_names[r[i].method], o->size, r[i].seconds, gbps, ns,
                   r[i].checked ? (r[i].verified ? "true" : "false") : "null");
        }
        printf("],\"verification\":\"%s\",\"note\":", ok ? "ok" : "failed");
        json_string(NOTE);
        printf("}\n");
        return;
    }
    printf("pmem-flush-test: %s, %" PRIu64 " bytes\n", file, o->size);
    printf("cpu: clflush=%s clflushopt=%s clwb=%s sse2=%s avx512f=%s\n", f->clflush ? "yes" : "no",
           f->clflushopt ? "yes" : "no", f->clwb ? "yes" : "no", f->sse2 ? "yes" : "no", f->avx512f ? "yes" : "no");
    if (map_sync) printf("MAP_SYNC: accepted (DAX mapping: flushed stores are durable without msync)\n");
    else printf("MAP_SYNC: refused (%s): not a DAX mapping, msync is still required\n", strerror(map_sync_errno));
    printf("statx DAX attribute: %s\n", tri(dax, "set", "clear", "not reported by this kernel"));
    printf("%-11s %12s %10s %9s %12s  %s\n", "method", "bytes", "seconds", "GB/s", "ns/line", "read-back");
    for (int i = 0; i < n; i++)
        printf("%-11s %12" PRIu64 " %10.4f %9.3f %12.2f  %s\n", method_names[r[i].method], o->size, r[i].seconds,
               r[i].seconds > 0 ? o->size / r[i].seconds / 1e9 : 0.0, r[i].seconds * 1e9 / (double)(o->size / LINE),
               r[i].checked ? (r[i].verified ? "ok" : "FAILED") : "(ceiling)");
    printf("verification: %s\nnote: %s\n", ok ? "ok" : "FAILED", NOTE);
}

static int run_seed(const struct options *o, int fd, const char *file, const struct features *f) {
    bool map_sync;
    int map_sync_errno = 0;
    if (o->check_seed) {
        struct stat st;
        if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < o->size)
            fail("%s is smaller than --size; was it written with --write-seed?", file);
        bool ok = verify_file(fd, o->size, o->seed, file);
        if (o->json) printf("{\"program\":\"pmem-flush-test\",\"check_seed\":%" PRIu64 ",\"verification\":\"%s\"}\n",
                            o->seed, ok ? "ok" : "failed");
        else printf("check-seed %" PRIu64 " on %s: %s\n", o->seed, file, ok ? "ok" : "FAILED");
        return ok ? 0 : 1;
    }
    char *map = map_file(fd, o->size, &map_sync, &map_sync_errno);
    enum method chosen[M_COUNT];
    select_methods(o->method, f, chosen);
    store_and_persist(chosen[0], map, o->size, o->seed, NULL);
    if (!map_sync && msync(map, o->size, MS_SYNC) != 0) fail("msync: %s", strerror(errno));
    munmap(map, o->size);
    if (fsync(fd) != 0) fail("fsync %s: %s", file, strerror(errno));
    if (o->json) printf("{\"program\":\"pmem-flush-test\",\"write_seed\":%" PRIu64 ",\"method\":\"%s\",\"map_sync\":%s}\n",
                        o->seed, method_names[chosen[0]], map_sync ? "true" : "false");
    else printf("write-seed %" PRIu64 " on %s: written with %s (MAP_SYNC %s)\n", o->seed, file,
                method_names[chosen[0]], map_sync ? "accepted" : "refused");
    return 0;
}

/* Device DAX (/dev/daxN.M) has no read(2) and no file to allocate: store the pattern through one
 * mapping with the best flush method, unmap it, and read it back through a second mapping. */
static int run_device(const struct options *o, const struct features *f) {
    struct stat st;
    if (stat(o->path, &st) != 0 || !S_ISCHR(st.st_mode) || strncmp(o->path, "/dev/dax", 8))
        fail("--device %s: give a device DAX character device (/dev/daxN.M)", o->path);
    int fd = open(o->path, O_RDWR);
    if (fd < 0) fail("cannot open %s: %s", o->path, strerror(errno));
    enum method chosen[M_COUNT];
    select_methods(o->method, f, chosen);
    bool map_sync;
    int map_sync_errno = 0;
    char *map = map_file(fd, o->size, &map_sync, &map_sync_errno);
    double seconds = store_and_persist(chosen[0], map, o->size, o->seed, NULL);
    munmap(map, o->size);
    map = map_file(fd, o->size, &map_sync, &map_sync_errno);
    bool ok = true;
    for (uint64_t i = 0; i < o->size / 8 && ok; i++) ok = ((const uint64_t *)map)[i] == pattern_word(o->seed, i);
    munmap(map, o->size);
    close(fd);
    if (o->json) {
        printf("{\"program\":\"pmem-flush-test\",\"device\":");
        json_string(o->path);
        printf(",\"size\":%" PRIu64 ",\"method\":\"%s\",\"map_sync\":%s,\"seconds\":%.6f,\"verification\":\"%s\"}\n",
               o->size, method_names[chosen[0]], map_sync ? "true" : "false", seconds, ok ? "ok" : "failed");
    } else {
        printf("%s: %" PRIu64 " bytes stored with %s, read back through a new mapping: %s\n", o->path, o->size,
               method_names[chosen[0]], ok ? "ok" : "FAILED");
    }
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    struct options o = parse_args(argc, argv);
    struct features f = detect_features();
    if (o.device) {
        o.seed = 0x646178ull;
        return run_device(&o, &f);
    }
    enum method methods[M_COUNT + 2];
    int n = (o.write_seed || o.check_seed) ? 0 : select_methods(o.method, &f, methods);
    char file[PATH_MAX + 64];
    bool temporary;
    int fd = open_target(o.path, o.write_seed || o.check_seed, file, sizeof file, &temporary);
    if (!o.check_seed) check_rc(posix_fallocate(fd, 0, (off_t)o.size), "cannot allocate space in", file);
    if (o.write_seed || o.check_seed) {
        int rc = run_seed(&o, fd, file, &f);
        close(fd);
        return rc;
    }
    uint64_t *source = malloc(o.size);
    if (!source) fail("cannot allocate %" PRIu64 " bytes of memory", o.size);
    struct result results[M_COUNT + 2];
    bool map_sync = false, ok = true;
    int map_sync_errno = 0;
    /* One mapping for the whole run, every page faulted in before any clock runs (MAP_SYNC write faults
     * are not what the timings are about). */
    char *map = map_file(fd, o.size, &map_sync, &map_sync_errno);
    memset(map, 0, o.size);
    if (msync(map, o.size, MS_SYNC) != 0) fail("msync: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        results[i] = (struct result){.method = methods[i], .seconds = 1e300, .checked = methods[i] != M_MEMCPY,
                                     .verified = true};
        for (int round = 0; round < ROUNDS; round++) {
            /* A seed of its own per round, the pattern made before the clock starts, and every round's
             * stores read back: a round that wrote nothing cannot pass on an earlier round's data. */
            uint64_t seed = 0x706d656d0000ull + (uint64_t)(i * ROUNDS + round);
            fill(source, o.size / 8, seed);
            double seconds = store_and_persist(methods[i], map, o.size, seed, source);
            if (seconds < results[i].seconds) results[i].seconds = seconds;
            if (!results[i].checked) continue;
            if (o.corrupt_for_test && i == 0 && round == ROUNDS - 1) corrupt_one_byte(fd, o.size);
            results[i].verified = verify_file(fd, o.size, seed, file) && results[i].verified;
        }
        ok = ok && results[i].verified;
    }
    munmap(map, o.size);
    free(source);
    int dax = statx_dax(fd);
    if (temporary) unlink(file);
    close(fd);
    print_report(&o, file, &f, map_sync, map_sync_errno, dax, results, n, ok);
    return ok ? 0 : 1;
}
