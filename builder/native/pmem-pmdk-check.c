/*
 * pmem-pmdk-check: what PMDK itself makes of a pmem mount or a device DAX, as JSON (part of pmem-image).
 *
 *   pmem-pmdk-check DIR                      libpmem2 store granularity and libpmem's pmem_is_pmem() on a
 *                                            file in DIR; a libpmemobj pool DIR/.pmem-pmdk-check.obj made
 *                                            there, a transaction on its root object, closed, re-opened and
 *                                            read back (the pool is left for `pmempool check`)
 *   pmem-pmdk-check --device /dev/daxN.M     granularity and pmem_is_pmem() of the device's first 2 MiB
 *   pmem-pmdk-check --write-pool FILE VALUE  create FILE as a pool holding VALUE (warm-reboot first boot)
 *   pmem-pmdk-check --read-pool FILE VALUE   open FILE and compare its value with VALUE (second boot)
 *
 * PMEM_IS_PMEM_FORCE is removed from the environment first: forcing would make every answer "yes".
 * Exit codes: 0 the checks passed, 1 a check failed, 2 bad arguments or an error before any check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpmem.h>
#include <libpmem2.h>
#include <libpmemobj.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LAYOUT "pmem-image"
#define MAP_LENGTH ((size_t)2 << 20)           /* one 2 MiB page: the device DAX alignment */
#define POOL_SIZE ((size_t)16 << 20)

struct root { uint64_t value; uint64_t updates; };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void json_string(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int error_out(const char *what, const char *detail) {
    printf("{\"program\":\"pmem-pmdk-check\",\"error\":");
    json_string(what);
    printf(",\"detail\":");
    json_string(detail);
    printf("}\n");
    return 2;
}

static const char *granularity_name(enum pmem2_granularity g) {
    switch (g) {
    case PMEM2_GRANULARITY_BYTE: return "BYTE";
    case PMEM2_GRANULARITY_CACHE_LINE: return "CACHE_LINE";
    case PMEM2_GRANULARITY_PAGE: return "PAGE";
    }
    return "UNKNOWN";
}

/* libpmem2's view of fd's first MAP_LENGTH bytes: the store granularity it would map them with, and
 * whether a pattern stored and persisted through its own memcpy reads back. */
static void print_pmem2(int fd) {
    struct pmem2_config *config = NULL;
    struct pmem2_source *source = NULL;
    struct pmem2_map *map = NULL;
    printf("\"pmem2\":{");
    if (pmem2_config_new(&config) || pmem2_source_from_fd(&source, fd) ||
        pmem2_config_set_required_store_granularity(config, PMEM2_GRANULARITY_PAGE) ||
        pmem2_config_set_length(config, MAP_LENGTH) || pmem2_map_new(&map, config, source)) {
        printf("\"error\":");
        json_string(pmem2_errormsg());
    } else {
        char *address = pmem2_map_get_address(map);
        pmem2_memcpy_fn copy = pmem2_get_memcpy_fn(map);
        char pattern[4096];
        for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (char)(i * 31 + 7);
        copy(address, pattern, sizeof pattern, 0);
        printf("\"granularity\":\"%s\",\"read_back\":%s",
               granularity_name(pmem2_map_get_store_granularity(map)),
               memcmp(address, pattern, sizeof pattern) ? "false" : "true");
        pmem2_map_delete(&map);
    }
    printf("}");
    if (source) pmem2_source_delete(&source);
    if (config) pmem2_config_delete(&config);
}

/* libpmem's pmem_is_pmem() on a mapping of path (pmem_map_file maps files and device DAX alike). */
static void print_is_pmem(const char *path, size_t length) {
    size_t mapped = 0;
    int map_says = 0;
    void *address = pmem_map_file(path, length, 0, 0, &mapped, &map_says);
    if (!address) {
        printf("\"pmem_is_pmem\":null,\"pmem_map_file_error\":");
        json_string(pmem_errormsg());
        return;
    }
    printf("\"pmem_is_pmem\":%s,\"pmem_map_file_is_pmem\":%s", pmem_is_pmem(address, mapped) ? "true" : "false",
           map_says ? "true" : "false");
    pmem_unmap(address, mapped);
}

/* Create a pool holding value in its root object, set in one transaction. */
static bool write_pool(const char *file, uint64_t value, double *seconds) {
    double start = now();
    PMEMobjpool *pool = pmemobj_create(file, LAYOUT, POOL_SIZE, 0600);
    if (!pool) return false;
    *seconds = now() - start;
    PMEMoid oid = pmemobj_root(pool, sizeof(struct root));
    struct root *root = pmemobj_direct(oid);
    volatile bool ok = true;   /* set after the transaction's setjmp */
    TX_BEGIN(pool) {
        pmemobj_tx_add_range_direct(root, sizeof *root);
        root->value = value;
        root->updates += 1;
    } TX_ONABORT {
        ok = false;
    } TX_END
    pmemobj_close(pool);
    return ok;
}

/* Open the pool and read its root object back; -1 when it cannot be opened. */
static int read_pool(const char *file, uint64_t *value) {
    PMEMobjpool *pool = pmemobj_open(file, LAYOUT);
    if (!pool) return -1;
    struct root *root = pmemobj_direct(pmemobj_root(pool, sizeof(struct root)));
    *value = root->value;
    pmemobj_close(pool);
    return 0;
}

static int pool_only(bool write, const char *file, const char *text) {
    uint64_t value = strtoull(text, NULL, 10), found = 0;
    double seconds = 0;
    bool ok;
    if (write) {
        unlink(file);
        ok = write_pool(file, value, &seconds);
    } else {
        ok = read_pool(file, &found) == 0 && found == value;
    }
    printf("{\"program\":\"pmem-pmdk-check\",\"pool\":");
    json_string(file);
    printf(",\"%s\":%" PRIu64 ",\"read\":%" PRIu64 ",\"ok\":%s,\"error\":", write ? "written" : "expected", value,
           write ? value : found, ok ? "true" : "false");
    if (ok) printf("null");
    else json_string(pmemobj_errormsg());
    printf("}\n");
    return ok ? 0 : 1;
}

static int check_device(const char *device) {
    struct stat st;
    if (stat(device, &st) != 0 || !S_ISCHR(st.st_mode)) return error_out("not a character device", device);
    int fd = open(device, O_RDWR);
    if (fd < 0) return error_out("cannot open", strerror(errno));
    printf("{\"program\":\"pmem-pmdk-check\",\"device\":");
    json_string(device);
    printf(",");
    print_pmem2(fd);
    close(fd);
    printf(",");
    print_is_pmem(device, 0);
    printf("}\n");
    return 0;
}

static int check_directory(const char *directory) {
    char file[4096], pool[4096];
    snprintf(file, sizeof file, "%s/.pmem-pmdk-check.%ld", directory, (long)getpid());
    snprintf(pool, sizeof pool, "%s/.pmem-pmdk-check.obj", directory);
    int fd = open(file, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return error_out("cannot create a file in the directory", strerror(errno));
    int rc = posix_fallocate(fd, 0, (off_t)MAP_LENGTH);
    if (rc) {
        unlink(file);
        return error_out("cannot allocate the test file", strerror(rc));
    }
    printf("{\"program\":\"pmem-pmdk-check\",\"directory\":");
    json_string(directory);
    printf(",");
    print_pmem2(fd);
    close(fd);
    printf(",");
    print_is_pmem(file, 0);
    unlink(file);

    uint64_t value = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32), found = 0;
    double create_seconds = 0;
    unlink(pool);
    bool written = write_pool(pool, value, &create_seconds);
    int opened = written ? read_pool(pool, &found) : -1;
    printf(",\"pool\":{\"file\":");
    json_string(pool);
    printf(",\"size\":%zu,\"created\":%s,\"create_seconds\":%.4f,\"reopened\":%s,\"value_read_back\":%s,\"error\":",
           POOL_SIZE, written ? "true" : "false", create_seconds, opened == 0 ? "true" : "false",
           opened == 0 && found == value ? "true" : "false");
    if (written && opened == 0) printf("null");
    else json_string(pmemobj_errormsg());
    printf("}}\n");
    /* The pool stays for `pmempool check`; the caller removes it. */
    return written && opened == 0 && found == value ? 0 : 1;
}

int main(int argc, char **argv) {
    unsetenv("PMEM_IS_PMEM_FORCE");
    if (argc == 2 && argv[1][0] != '-') return check_directory(argv[1]);
    if (argc == 3 && !strcmp(argv[1], "--device")) return check_device(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "--write-pool")) return pool_only(true, argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "--read-pool")) return pool_only(false, argv[2], argv[3]);
    fprintf(stderr, "usage: pmem-pmdk-check DIR | --device /dev/daxN.M | --write-pool FILE VALUE | "
                    "--read-pool FILE VALUE\n");
    return 2;
}
