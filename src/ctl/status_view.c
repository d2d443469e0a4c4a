/* status_view.c - ensemblectl status: the human view of a status reply (a
 * summary line and the tasks as a table), and the --task filter that both
 * views share. Works on the reply as JSON (json.c), the tree --json prints. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* A number of obj[key]; NaN when absent or not a number. */
static double num(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The sum of the values of the map obj[key] (counters by reason). */
static double sum_map(const json_t *obj, const char *key)
{
    const char *k;
    const json_t *v;
    double sum = 0;
    json_object_foreach((json_t *)json_object_get(obj, key), k, v)
    {
        (void)k;
        sum += json_is_number(v) ? json_number_value(v) : 0;
    }
    return sum;
}

/* Seconds as "42 s", "7 min", "3.5 h", "2.0 d"; "-" when unknown. */
static void fmt_age(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, len, "-");
    else if (s < 120)
        snprintf(buf, len, "%.0f s", s);
    else if (s < 7200)
        snprintf(buf, len, "%.0f min", s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%.1f h", s / 3600);
    else
        snprintf(buf, len, "%.1f d", s / 86400);
}

/* Whether code point c takes two terminal columns: the East Asian wide
 * and fullwidth blocks and the emoji planes (Unicode UAX #11, coarsely). */
static int wide(unsigned c)
{
    return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf && c != 0x303f) ||
           (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
           (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
           (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) ||
           (c >= 0x20000 && c <= 0x3fffd);
}

/* Terminal columns of a UTF-8 string (valid: json.c made it so), so that
 * names outside ASCII keep the table aligned. */
static int columns(const char *s)
{
    int n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
        c &= more == 3 ? 0x07u : more == 2 ? 0x0fu : more == 1 ? 0x1fu : 0x7fu;
        for (; more > 0 && (*p & 0xc0) == 0x80; more--)
            c = (c << 6) | (*p++ & 0x3fu);
        n += wide(c) ? 2 : 1;
    }
    return n;
}

/* Prints s left-aligned in width columns, and a space. */
static void cell(const char *s, int width)
{
    int pad = width - columns(s);
    printf("%s%*s ", s, pad > 0 ? pad : 0, "");
}

static void print_summary(const json_t *st)
{
    char up[32];
    fmt_age(num(st, "uptime_s"), up, sizeof(up));
    double refused = sum_map(st, "rejected") + sum_map(st, "dropped");
    const char *version = json_string_value(json_object_get(st, "version"));
    printf("ensembled %s, up %s: %.0f messages in (%.0f events), %.0f refused; "
           "%.0f publications\n",
           version ? version : "?", up, num(st, "messages_in"), num(st, "events_in"), refused,
           num(st, "published"));
}

/* One row of the table. */
static void print_task(const char *name, int name_w, const json_t *t)
{
    char rows[48], pending[24], models[24], version[24], age[32];
    snprintf(rows, sizeof(rows), "%.0f/%.0f", num(t, "rows"), num(t, "capacity"));
    snprintf(pending, sizeof(pending), "%.0f", num(t, "pending"));
    snprintf(models, sizeof(models), "%.0f", num(t, "models"));
    double v = num(t, "version");
    if (v > 0)
        snprintf(version, sizeof(version), "v%.0f", v);
    else
        snprintf(version, sizeof(version), "-");
    fmt_age(num(t, "last_selection_age_s"), age, sizeof(age));
    if (strcmp(age, "-") != 0)
        strncat(age, " ago", sizeof(age) - strlen(age) - 1);
    cell(name, name_w);
    printf("%-15s %7s %6s %7s %-14s ", rows, pending, models, version, age);
    const json_t *ens = json_object_get(t, "ensemble");
    size_t i;
    const json_t *m;
    if (json_array_size(ens) == 0)
        fputs("(none published yet)", stdout);
    json_array_foreach(ens, i, m)
    {
        printf("%s%s", i ? ", " : "", json_is_string(m) ? json_string_value(m) : "?");
    }
    putchar('\n');
}

void ctl_status_print_human(const json_t *st)
{
    print_summary(st);
    const json_t *tasks = json_object_get(st, "tasks");
    if (json_object_size(tasks) == 0) {
        puts("no tasks yet: nothing has sent an event");
        return;
    }
    int name_w = 4;
    const char *name;
    const json_t *t;
    json_object_foreach((json_t *)tasks, name, t)
    {
        if (columns(name) > name_w)
            name_w = columns(name);
    }
    cell("TASK", name_w);
    printf("%-15s %7s %6s %7s %-14s %s\n", "ROWS/CAPACITY", "PENDING", "MODELS", "VERSION",
           "LAST SELECTION", "ENSEMBLE");
    json_object_foreach((json_t *)tasks, name, t)
    {
        print_task(name, name_w, t);
    }
}

int ctl_status_only_task(json_t *st, const char *task)
{
    json_t *tasks = json_object_get(st, "tasks");
    json_t *t = json_object_get(tasks, task);
    if (!t)
        return -1;
    json_t *only = json_object();
    json_object_set(only, task, t);
    json_object_set_new(st, "tasks", only);
    return 0;
}
