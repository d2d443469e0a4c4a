/* config.c - the configuration key table and its INI loader (config.h). */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum {
    T_STR,
    T_SIZE,
    T_DOUBLE,
    T_DURATION,
    T_STRATEGY,
    T_ESTIMATOR,
    T_LEVEL,
    T_LOGFORMAT,
    T_LIST,
    T_BOOL,
    T_ANSWERS,
    T_NORMALIZE
} type_t;

typedef struct {
    const char *section;
    const char *name;
    type_t type;
    int per_task;    /* 1: offset is into ens_task_conf_t and [task.NAME] may set it */
    int reloadable;  /* 1: SIGHUP applies it */
    size_t offset;   /* into ens_config_t, or ens_task_conf_t when per_task */
    double min, max; /* bounds of numbers */
    const char *def; /* default, parsed like the file's value */
} key_t_;

#define G(f) offsetof(ens_config_t, f)
#define T(f) offsetof(ens_task_conf_t, f)

static const key_t_ keys[] = {
    {"ingest", "bind", T_STR, 0, 0, G(ingest_bind), 0, 0, "tcp://127.0.0.1:5557"},
    {"ingest", "connect", T_LIST, 0, 0, G(ingest_connect), 0, 0, ""},
    {"ingest", "sample_rate", T_DOUBLE, 0, 1, G(sample_rate), 1e-6, 1, "1"},
    {"ingest", "max_message_bytes", T_SIZE, 0, 0, G(max_message_bytes), 64, 1 << 30, "1048576"},
    {"ingest", "max_tasks", T_SIZE, 0, 1, G(max_tasks), 1, 4096, "64"},
    {"ingest", "max_models", T_SIZE, 0, 0, G(max_models), 1, 1024, "256"},
    {"ingest", "max_future", T_DURATION, 0, 1, G(max_future), 0, 86400 * 365, "5m"},
    {"ingest", "max_cost", T_DOUBLE, 0, 1, G(max_cost), 0, 1e300, "1e6"},
    {"ingest", "nats", T_STR, 0, 0, G(nats_url), 0, 0, ""},
    {"ingest", "nats_stream", T_STR, 0, 0, G(nats_stream), 0, 0, "EVENTS"},
    {"ingest", "nats_subject", T_STR, 0, 0, G(nats_subject), 0, 0, "events.>"},
    {"ingest", "nats_durable", T_STR, 0, 0, G(nats_durable), 0, 0, "ensembled"},
    {"ingest", "nats_creds", T_STR, 0, 0, G(nats_creds), 0, 0, ""},
    {"ingest", "nats_tls_ca", T_STR, 0, 0, G(nats_tls_ca), 0, 0, ""},
    {"ingest", "nats_ack_wait", T_DURATION, 0, 0, G(nats_ack_wait), 1, 86400, "30s"},
    {"join", "ttl", T_DURATION, 1, 1, T(join_ttl), 0.001, 86400 * 30, "10m"},
    {"join", "max_pending", T_SIZE, 1, 1, T(join_max_pending), 1, 100000000, "100000"},
    {"window", "rows", T_SIZE, 1, 0, T(window_rows), 1, 100000000, "50000"},
    {"window", "max_age", T_DURATION, 1, 1, T(window_max_age), 0, 86400 * 3650, "0"},
    {"window", "answers", T_ANSWERS, 1, 0, T(answers), 0, 0, "choice"},
    {"window", "normalize", T_NORMALIZE, 1, 0, T(normalize), 0, 0, "exact"},
    {"select", "strategy", T_STRATEGY, 1, 1, T(strategy), 0, 0, "greedy-mi"},
    {"select", "budget", T_SIZE, 1, 1, T(budget), 1, 64, "3"},
    {"select", "cost_budget", T_DOUBLE, 1, 1, T(cost_budget), 0, 1e12, "0"},
    {"select", "estimator", T_ESTIMATOR, 1, 1, T(estimator), 0, 0, "heldout"},
    {"select", "min_gain_bits", T_DOUBLE, 1, 1, T(min_gain_bits), -1e9, 1e9, "0"},
    {"select", "explore_rate", T_DOUBLE, 1, 1, T(explore_rate), 0, 1, "0.05"},
    {"select", "min_rows", T_SIZE, 1, 1, T(min_rows), 0, 100000000, "100"},
    {"select", "retire_after", T_DURATION, 1, 1, T(retire_after), 0, 86400 * 3650, "1h"},
    {"publish", "bind", T_STR, 0, 0, G(publish_bind), 0, 0, "tcp://127.0.0.1:5558"},
    {"publish", "interval", T_DURATION, 0, 1, G(publish_interval), 0, 86400, "10s"},
    {"publish", "every_labels", T_SIZE, 0, 1, G(publish_every_labels), 0, 1000000000, "1000"},
    {"publish", "min_improvement_bits", T_DOUBLE, 0, 1, G(min_improvement_bits), 0, 1e9, "0.01"},
    {"publish", "max_queued", T_SIZE, 0, 0, G(publish_max_queued), 1, 100000, "256"},
    {"publish", "nats_kv", T_STR, 0, 0, G(nats_kv), 0, 0, ""},
    {"control", "bind", T_STR, 0, 0, G(control_bind), 0, 0, "ipc:///run/ensembled/control"},
    {"metrics", "bind", T_STR, 0, 0, G(metrics_bind), 0, 0, "127.0.0.1:9559"},
    {"control", "max_queued", T_SIZE, 0, 0, G(control_max_queued), 1, 100000, "16"},
    {"state", "dir", T_STR, 0, 0, G(state_dir), 0, 0, "/var/lib/ensembled"},
    {"state", "snapshot_interval", T_DURATION, 0, 1, G(snapshot_interval), 0, 86400, "5m"},
    {"state", "fsync_interval", T_DURATION, 0, 1, G(fsync_interval), 0, 3600, "1s"},
    {"security", "curve_secret_key_file", T_STR, 0, 0, G(curve_secret_key_file), 0, 0, ""},
    {"security", "curve_public_key_file", T_STR, 0, 0, G(curve_public_key_file), 0, 0, ""},
    {"security", "authorized_keys_dir", T_STR, 0, 0, G(authorized_keys_dir), 0, 0, ""},
    {"security", "allow_plaintext", T_BOOL, 0, 0, G(allow_plaintext), 0, 0, "no"},
    {"log", "level", T_LEVEL, 0, 1, G(log_level), 0, 0, "info"},
    {"log", "format", T_LOGFORMAT, 0, 1, G(log_format), 0, 0, "auto"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= ENS_CONF_MAX_KEYS, "ens_config_t.lines is too short");

int ens_config_parse_duration(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return -1;
    double unit = 1;
    if (strcmp(end, "ms") == 0)
        unit = 0.001;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        unit = 1;
    else if (strcmp(end, "m") == 0)
        unit = 60;
    else if (strcmp(end, "h") == 0)
        unit = 3600;
    else if (strcmp(end, "d") == 0)
        unit = 86400;
    else
        return -1;
    *out = v * unit;
    return 0;
}

/* window.answers and window.normalize (open.h). */
static const char *set_answers(type_t type, char *field, const char *value)
{
    if (type == T_ANSWERS)
        return ens_answers_parse(value, (ens_answers_t *)(void *)field) < 0
                   ? "unknown answers (choice, open)"
                   : NULL;
    return ens_norm_parse(value, (ens_norm_t *)(void *)field) < 0
               ? "unknown normalization (exact, fold, numeric)"
               : NULL;
}

/* Parses value into the field at base + k->offset. Returns NULL or a reason. */
static const char *set_value(const key_t_ *k, void *base, const char *value)
{
    char *field = (char *)base + k->offset;
    char *end = NULL;
    double d;
    static char reason[128];
    switch (k->type) {
    case T_STR:
        if (strlen(value) >= ENS_CONF_STR)
            return "value too long";
        strcpy(field, value);
        return NULL;
    case T_LIST: {
        ens_config_t *c = base;
        c->ingest_nconnect = 0;
        char copy[ENS_CONF_STR * ENS_CONF_MAX_CONNECT];
        if (strlen(value) >= sizeof(copy))
            return "value too long";
        strcpy(copy, value);
        for (char *save = NULL, *t = strtok_r(copy, ", ", &save); t;
             t = strtok_r(NULL, ", ", &save)) {
            if (c->ingest_nconnect == ENS_CONF_MAX_CONNECT || strlen(t) >= ENS_CONF_STR)
                return "too many or too long endpoints (at most 8)";
            strcpy(c->ingest_connect[c->ingest_nconnect++], t);
        }
        return NULL;
    }
    case T_SIZE:
    case T_DOUBLE:
    case T_DURATION:
        if (k->type == T_DURATION) {
            if (ens_config_parse_duration(value, &d) < 0)
                return "not a duration (e.g. 500ms, 10s, 5m, 1h)";
        } else {
            errno = 0;
            d = strtod(value, &end);
            if (errno || end == value || *end || !isfinite(d))
                return "not a number";
            if (k->type == T_SIZE && d != floor(d))
                return "not an integer";
        }
        if (d < k->min || d > k->max) {
            snprintf(reason, sizeof(reason), "%s is out of range [%g, %g]", value, k->min, k->max);
            return reason;
        }
        if (k->type == T_SIZE)
            *(size_t *)(void *)field = (size_t)d;
        else
            *(double *)(void *)field = d;
        return NULL;
    case T_STRATEGY:
        return ens_strategy_parse(value, (ens_strategy_t *)(void *)field) < 0
                   ? "unknown strategy (greedy-mi, greedy-cost, top-k, random, caruana, "
                     "exhaustive)"
                   : NULL;
    case T_ESTIMATOR:
        return ens_estimator_parse(value, (ens_estimator_t *)(void *)field) < 0
                   ? "unknown estimator (heldout, plugin, miller-madow)"
                   : NULL;
    case T_LEVEL:
        return ens_log_parse_level(value, (ens_log_level_t *)(void *)field) < 0
                   ? "unknown level (err, warning, notice, info, debug; error, warn)"
                   : NULL;
    case T_LOGFORMAT:
        return ens_log_parse_format(value, (ens_log_format_t *)(void *)field) < 0
                   ? "unknown format (auto, text, logfmt, journal)"
                   : NULL;
    case T_ANSWERS:
    case T_NORMALIZE:
        return set_answers(k->type, field, value);
    case T_BOOL:
        if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *(int *)(void *)field = 1;
        else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *(int *)(void *)field = 0;
        else
            return "not a boolean (yes or no)";
        return NULL;
    }
    return "bad key type";
}

void ens_config_defaults(ens_config_t *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NKEYS; i++) {
        const char *why =
            set_value(&keys[i], keys[i].per_task ? (void *)&c->task : (void *)c, keys[i].def);
        if (why) {
            fprintf(stderr, "ensembled: bad default of %s.%s: %s\n", keys[i].section, keys[i].name,
                    why);
            abort();
        }
    }
}

typedef struct {
    ens_config_t *c;
    FILE *f;                 /* the file, read through read_line */
    int line;                /* the line inih is parsing (what it counts) */
    ens_config_errors_t err; /* every error found */
    int skipping;            /* after an unclosed section header */
    /* The keys set so far, "[section] name", to refuse a second setting. */
    struct {
        char key[ENS_CONF_STR + 64];
        int line;
    } seen[600];
    size_t nseen;
    /* Task overrides are applied after the file is read, so that a [task.X]
     * section inherits global keys that appear below it too. */
    struct {
        size_t section;
        const key_t_ *key;
        char value[ENS_CONF_STR];
    } overrides[512];
    size_t noverrides;
} parse_t;

void ens_config_error(ens_config_errors_t *e, int line, const char *fmt, ...)
{
    if (e->n == ENS_CONF_MAX_ERRORS) {
        e->lost++;
        return;
    }
    e->e[e->n].line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->e[e->n].text, sizeof(e->e[e->n].text), fmt, ap);
    va_end(ap);
    e->n++;
}

static int reject(parse_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int reject(parse_t *p, const char *fmt, ...)
{
    if (p->err.n == ENS_CONF_MAX_ERRORS) {
        p->err.lost++;
        return 0;
    }
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ens_config_error(&p->err, p->line, "%s", text);
    return 0;
}

/* Refuses a key set twice in one section (a later value silently winning
 * hides a mistake): 1 when the key is new. */
static int first_setting(parse_t *p, const char *section, const char *name)
{
    char key[sizeof(p->seen[0].key)];
    snprintf(key, sizeof(key), "[%s] %s", section, name);
    for (size_t i = 0; i < p->nseen; i++) {
        if (strcmp(p->seen[i].key, key) == 0) {
            reject(p, "[%s] %s: set again (first at line %d)", section, name, p->seen[i].line);
            return 0;
        }
    }
    if (p->nseen < sizeof(p->seen) / sizeof(p->seen[0])) {
        strcpy(p->seen[p->nseen].key, key);
        p->seen[p->nseen++].line = p->line;
    }
    return 1;
}

static size_t task_section(ens_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nsections; i++)
        if (strcmp(c->sections[i].name, name) == 0)
            return i;
    if (c->nsections == ENS_CONF_MAX_TASKS || strlen(name) >= ENS_CONF_STR)
        return SIZE_MAX;
    strcpy(c->sections[c->nsections].name, name);
    return c->nsections++;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_t *p = user;
    int is_task = strncmp(section, "task.", 5) == 0;
    if (p->skipping)
        return 1;
    if (!first_setting(p, section, name))
        return 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const key_t_ *k = &keys[i];
        if (strcmp(k->name, name) != 0)
            continue;
        if (is_task && k->per_task) {
            size_t s = task_section(p->c, section + 5);
            if (s == SIZE_MAX || section[5] == '\0')
                return reject(p, "[%s]: bad task name or more than %d tasks", section,
                              ENS_CONF_MAX_TASKS);
            if (p->noverrides == sizeof(p->overrides) / sizeof(p->overrides[0]) ||
                strlen(value) >= ENS_CONF_STR)
                return reject(p, "%s: too many task overrides or value too long", name);
            /* Applied after the file is read, but checked now, so that an
             * error carries its line like any other. */
            ens_task_conf_t scratch = p->c->task;
            const char *why = set_value(k, &scratch, value);
            if (why)
                return reject(p, "[%s] %s: %s", section, name, why);
            p->overrides[p->noverrides].section = s;
            p->overrides[p->noverrides].key = k;
            strcpy(p->overrides[p->noverrides++].value, value);
            return 1;
        }
        if (is_task || strcmp(k->section, section) != 0)
            continue;
        const char *why = set_value(k, k->per_task ? (void *)&p->c->task : (void *)p->c, value);
        p->c->lines[i] = p->line;
        return why ? reject(p, "%s.%s: %s", section, name, why) : 1;
    }
    return reject(p, "[%s] %s: unknown key", section, name);
}

/* inih's reader: one call per line, as inih counts them, so that a
 * handler knows which line it is called for. inih's line buffer is fixed
 * (INI_MAX_LINE in the library as built); it would take the rest of a
 * longer line for lines of their own, a long comment's tail for a key, so
 * such a line is consumed whole here and refused, unless it is a comment. */
static char *read_line(char *str, int num, void *stream)
{
    parse_t *p = stream;
    char *r = fgets(str, num, p->f);
    if (!r)
        return NULL;
    p->line++;
    /* An unclosed section header: its keys would land in the section
     * before it, each an error of its own, so they are skipped until the
     * next header. */
    const char *h = str + strspn(str, " \t");
    if (*h == '[') {
        p->skipping = strchr(h, ']') == NULL;
        if (p->skipping)
            reject(p, "unclosed section header (no ']'); its keys are skipped");
    }
    size_t n = strlen(str);
    int ch;
    if (n > 0 && str[n - 1] != '\n' && (ch = fgetc(p->f)) != EOF && ch != '\n') {
        while ((ch = fgetc(p->f)) != EOF && ch != '\n')
            ;
        const char *t = str + strspn(str, " \t");
        if (*t != '#' && *t != ';')
            reject(p, "line longer than %d bytes", num - 1);
        str[0] = '\0';
    }
    return r;
}

/* err: "path:line: text" per error, in line order (insertion sort: stable,
 * so that the errors of one line keep the order they were found in). */
static void format_errors(ens_config_errors_t *e, const char *path, char *err, size_t errlen)
{
    for (size_t i = 1; i < e->n; i++)
        for (size_t j = i; j > 0 && e->e[j - 1].line > e->e[j].line; j--) {
            ens_config_error_t t = e->e[j];
            e->e[j] = e->e[j - 1];
            e->e[j - 1] = t;
        }
    size_t used = 0;
    if (errlen)
        err[0] = '\0';
    for (size_t i = 0; i < e->n && used < errlen; i++) {
        const char *sep = i ? "\n" : "";
        if (e->e[i].line > 0)
            used += (size_t)snprintf(err + used, errlen - used, "%s%s:%d: %s", sep, path,
                                     e->e[i].line, e->e[i].text);
        else
            used +=
                (size_t)snprintf(err + used, errlen - used, "%s%s: %s", sep, path, e->e[i].text);
    }
    if (e->lost && used < errlen)
        snprintf(err + used, errlen - used, "\n%s: %zu more errors", path, e->lost);
}

/* Opens path, a regular file: NULL with the reason in e otherwise. */
static FILE *open_config(const char *path, ens_config_errors_t *e)
{
    FILE *f = fopen(path, "r");
    struct stat st;
    if (!f) {
        ens_config_error(e, 0, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        ens_config_error(e, 0, "not a regular file");
        fclose(f);
        return NULL;
    }
    return f;
}

/* Applies the task overrides, now that every global key is read. */
static void apply_overrides(parse_t *p)
{
    ens_config_t *c = p->c;
    for (size_t s = 0; s < c->nsections; s++)
        c->sections[s].conf = c->task;
    for (size_t i = 0; i < p->noverrides; i++) {
        const char *why = set_value(p->overrides[i].key, &c->sections[p->overrides[i].section].conf,
                                    p->overrides[i].value);
        if (why)
            ens_config_error(&p->err, 0, "[task.%s] %s: %s",
                             c->sections[p->overrides[i].section].name, p->overrides[i].key->name,
                             why);
    }
}

/* Parses path into c, every error into p->err. */
static void load(const char *path, parse_t *p)
{
    ens_config_defaults(p->c);
    p->f = open_config(path, &p->err);
    if (!p->f)
        return;
    /* inih returns the first line in error (0: none): a handler's, or its
     * own syntax error, which is reported unless a handler's error came
     * from that line already. inih reports only its first syntax error. */
    int line = ini_parse_stream(read_line, p, on_key, p);
    fclose(p->f);
    int known = 0;
    for (size_t i = 0; i < p->err.n; i++)
        known |= p->err.e[i].line == line;
    if (line > 0 && !known)
        ens_config_error(&p->err, line, "syntax error (expected [section] or key = value)");
    apply_overrides(p);
    ens_config_check_values(p->c, &p->err);
}

static int load_and_report(const char *path, ens_config_t *c, int files, char *err, size_t errlen)
{
    parse_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    p->c = c;
    load(path, p);
    if (files && p->f)
        ens_config_check_files(c, &p->err);
    int rc = p->err.n ? -1 : 0;
    if (rc < 0)
        format_errors(&p->err, path, err, errlen);
    free(p);
    return rc;
}

int ens_config_load(const char *path, ens_config_t *c, char *err, size_t errlen)
{
    return load_and_report(path, c, 0, err, errlen);
}

int ens_config_check(const char *path, ens_config_t *c, char *err, size_t errlen)
{
    return load_and_report(path, c, 1, err, errlen);
}

int ens_config_line(const ens_config_t *c, const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!keys[i].per_task && strcmp(keys[i].section, section) == 0 &&
            strcmp(keys[i].name, name) == 0)
            return c->lines[i];
    return 0;
}

int ens_config_path(const char *value, char *out, size_t outlen, const char **why)
{
    const char *prefix = "credential:";
    size_t n = strlen(prefix);
    if (strncmp(value, prefix, n) != 0) {
        snprintf(out, outlen, "%s", value);
        return 0;
    }
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (!dir || !dir[0]) {
        *why = "no $CREDENTIALS_DIRECTORY (set by systemd for LoadCredential=)";
        return -1;
    }
    if (!value[n] || strchr(value + n, '/')) {
        *why = "credential:NAME needs a plain name";
        return -1;
    }
    if ((size_t)snprintf(out, outlen, "%s/%s", dir, value + n) >= outlen) {
        *why = "path too long";
        return -1;
    }
    return 0;
}

const ens_task_conf_t *ens_config_task(const ens_config_t *c, const char *task)
{
    for (size_t i = 0; i < c->nsections; i++)
        if (strcmp(c->sections[i].name, task) == 0)
            return &c->sections[i].conf;
    return &c->task;
}

static size_t field_size(const key_t_ *k);

size_t ens_config_restart_needed(const ens_config_t *old, const ens_config_t *new_conf, char *buf,
                                 size_t buflen)
{
    size_t n = 0, used = 0;
    if (buflen)
        buf[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const key_t_ *k = &keys[i];
        if (k->reloadable)
            continue;
        const void *a =
            (const char *)(k->per_task ? (const void *)&old->task : (const void *)old) + k->offset;
        const void *b =
            (const char *)(k->per_task ? (const void *)&new_conf->task : (const void *)new_conf) +
            k->offset;
        if (memcmp(a, b, field_size(k)) == 0)
            continue;
        n++;
        if (used < buflen)
            used += (size_t)snprintf(buf + used, buflen - used, "%s%s.%s", n > 1 ? ", " : "",
                                     k->section, k->name);
    }
    return n;
}

static size_t field_size(const key_t_ *k)
{
    switch (k->type) {
    case T_STR:
        return ENS_CONF_STR;
    case T_LIST:
        return sizeof(((ens_config_t *)0)->ingest_connect);
    case T_SIZE:
        return sizeof(size_t);
    case T_DOUBLE:
    case T_DURATION:
        return sizeof(double);
    default:
        return sizeof(int);
    }
}

void ens_config_keep_fixed(ens_config_t *next, const ens_config_t *cur)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const key_t_ *k = &keys[i];
        if (k->reloadable)
            continue;
        if (k->per_task) {
            /* Per task, a fixed key keeps the running task's value (task.c). */
            memcpy((char *)&next->task + k->offset, (const char *)&cur->task + k->offset,
                   field_size(k));
            continue;
        }
        memcpy((char *)next + k->offset, (const char *)cur + k->offset, field_size(k));
        if (k->type == T_LIST)
            next->ingest_nconnect = cur->ingest_nconnect;
    }
}
