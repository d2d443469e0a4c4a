/* fuzz_config.c - libFuzzer target for the configuration loader.
 *
 * ens_config_load takes a path (the daemon reads its file through inih's
 * ini_parse), so each input is written to one temporary file, created once
 * per process under $TMPDIR, and loaded from there. The checks: a load
 * either succeeds with every key inside its table bounds, or fails with a
 * NUL-terminated "file..." message within the buffer; either way nothing
 * may read or write outside the config struct (ASan) or overflow (UBSan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static char path[4096];

static void remove_file(void)
{
    if (path[0])
        unlink(path);
}

/* Creates the temporary file once; returns its path. */
static const char *temp_path(void)
{
    if (path[0])
        return path;
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/ens-fuzz-config-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    atexit(remove_file);
    return path;
}

static void check_task(const ens_task_conf_t *t)
{
    CHECK(t->join_ttl >= 0.001 && t->join_ttl <= 86400.0 * 30);
    CHECK(t->join_max_pending >= 1 && t->join_max_pending <= 100000000);
    CHECK(t->window_rows >= 1 && t->window_rows <= 100000000);
    CHECK(t->budget >= 1 && t->budget <= 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = temp_path();
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);

    static ens_config_t c; /* about 50 KB: kept off the stack */
    char err[512];
    memset(err, 'x', sizeof(err));
    int rc = ens_config_load(p, &c, err, sizeof(err));
    if (rc != 0) {
        CHECK(rc == -1);
        CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        CHECK(strncmp(err, p, strlen(p)) == 0);
        return 0;
    }
    CHECK(c.sample_rate >= 1e-6 && c.sample_rate <= 1);
    CHECK(c.max_message_bytes >= 64 && c.max_message_bytes <= (size_t)1 << 30);
    CHECK(c.max_tasks >= 1 && c.max_tasks <= 4096);
    CHECK(c.max_models >= 1 && c.max_models <= 1024);
    CHECK(c.ingest_nconnect <= ENS_CONF_MAX_CONNECT);
    CHECK(c.nsections <= ENS_CONF_MAX_TASKS);
    CHECK(memchr(c.ingest_bind, '\0', sizeof(c.ingest_bind)) != NULL);
    CHECK(memchr(c.state_dir, '\0', sizeof(c.state_dir)) != NULL);
    check_task(&c.task);
    for (size_t i = 0; i < c.nsections; i++) {
        CHECK(c.sections[i].name[0] != '\0');
        check_task(&c.sections[i].conf);
        CHECK(ens_config_task(&c, c.sections[i].name) == &c.sections[i].conf);
    }
    return 0;
}
