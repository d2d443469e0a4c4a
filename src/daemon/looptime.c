/* looptime.c - the event loop's turns, timed (see looptime.h). */
#include "looptime.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensembled/xalloc.h"

/* The recent maximum covers the current window of this length and the
 * one before it: 10 to 20 seconds. */
#define WINDOW_NS (10ull * 1000 * 1000 * 1000)

struct ens_looptime_s {
    uv_prepare_t prepare;
    uint64_t last_wall; /* uv_hrtime at the last prepare (0: none yet) */
    uint64_t last_idle; /* uv_metrics_idle_time then */
    uint64_t last_cpu;  /* the loop thread's CPU time then */
    uint64_t turns;
    uint64_t slow; /* turns over ENS_LOOPTIME_SLOW_MS */
    uint64_t max_ns;
    uint64_t slow_cpu; /* turns whose CPU time was over ENS_LOOPTIME_SLOW_MS */
    uint64_t max_cpu;
    uint64_t window_start;                 /* uv_hrtime the current window began */
    uint64_t window_max;                   /* longest turn in it */
    uint64_t prev_max;                     /* longest turn in the window before */
    pthread_t thread;                      /* the loop's */
    ens_loop_section_t section;            /* charged now */
    uint64_t section_since;                /* CPU time it was entered */
    uint64_t turn_cpu[ENS_LOOP_NSECTIONS]; /* this turn's, by section */
    uint64_t slow_by[ENS_LOOP_NSECTIONS];  /* slow turns, by their largest */
    ens_loop_section_t max_cpu_in;         /* the longest turn's largest */
};

static const char *const section_names[ENS_LOOP_NSECTIONS] = {
    [ENS_LOOP_OTHER] = "other",   [ENS_LOOP_INGEST] = "ingest",   [ENS_LOOP_REQUESTS] = "requests",
    [ENS_LOOP_TASKS] = "tasks",   [ENS_LOOP_JOURNAL] = "journal", [ENS_LOOP_SNAPSHOT] = "snapshot",
    [ENS_LOOP_SELECT] = "select", [ENS_LOOP_METRICS] = "metrics",
};

/* The looptime sections are charged to: the daemon runs one loop. */
static ens_looptime_t *current;

int ens_looptime_configure(uv_loop_t *loop)
{
    return uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

ens_loop_section_t ens_looptime_enter(ens_loop_section_t s)
{
    ens_looptime_t *lt = current;
    if (!lt || !pthread_equal(lt->thread, pthread_self()))
        return ENS_LOOP_OTHER;
    uint64_t now = thread_cpu_ns();
    ens_loop_section_t was = lt->section;
    lt->turn_cpu[was] += now - lt->section_since;
    lt->section = s;
    lt->section_since = now;
    return was;
}

/* The CPU time of a turn, apart: a turn whose work time is long but whose
 * CPU time is short waited for a core (other threads or processes ran). */
static void count_cpu(ens_looptime_t *lt, uint64_t cpu)
{
    uint64_t used = cpu - lt->last_cpu;
    lt->turn_cpu[lt->section] += cpu - lt->section_since;
    ens_loop_section_t largest = ENS_LOOP_OTHER;
    for (int i = 0; i < ENS_LOOP_NSECTIONS; i++)
        if (lt->turn_cpu[i] > lt->turn_cpu[largest])
            largest = (ens_loop_section_t)i;
    if (used > (uint64_t)(ENS_LOOPTIME_SLOW_MS * 1e6)) {
        lt->slow_cpu++;
        lt->slow_by[largest]++;
    }
    if (used > lt->max_cpu) {
        lt->max_cpu = used;
        lt->max_cpu_in = largest;
    }
    memset(lt->turn_cpu, 0, sizeof(lt->turn_cpu));
}

static void on_prepare(uv_prepare_t *h)
{
    ens_looptime_t *lt = h->data;
    uint64_t wall = uv_hrtime(), idle = uv_metrics_idle_time(h->loop), cpu = thread_cpu_ns();
    if (lt->last_wall) {
        count_cpu(lt, cpu);
        uint64_t span = wall - lt->last_wall, waited = idle - lt->last_idle;
        uint64_t work = span > waited ? span - waited : 0;
        lt->turns++;
        if (work > (uint64_t)(ENS_LOOPTIME_SLOW_MS * 1e6))
            lt->slow++;
        if (work > lt->max_ns)
            lt->max_ns = work;
        if (wall - lt->window_start >= WINDOW_NS) {
            /* A window with no turn at all left nothing to remember. */
            lt->prev_max = wall - lt->window_start >= 2 * WINDOW_NS ? 0 : lt->window_max;
            lt->window_max = 0;
            lt->window_start = wall;
        }
        if (work > lt->window_max)
            lt->window_max = work;
    } else {
        lt->window_start = wall;
        memset(lt->turn_cpu, 0, sizeof(lt->turn_cpu)); /* not a timed turn */
    }
    lt->last_wall = wall;
    lt->last_idle = idle;
    lt->last_cpu = cpu;
    lt->section = ENS_LOOP_OTHER; /* between turns: libuv's own work */
    lt->section_since = cpu;
}

ens_looptime_t *ens_looptime_new(uv_loop_t *loop)
{
    ens_looptime_t *lt = ens_xcalloc(1, sizeof(*lt));
    if (uv_prepare_init(loop, &lt->prepare) < 0) {
        free(lt);
        return NULL;
    }
    lt->prepare.data = lt;
    lt->thread = pthread_self();
    lt->section_since = thread_cpu_ns();
    current = lt;
    uv_prepare_start(&lt->prepare, on_prepare);
    uv_unref((uv_handle_t *)&lt->prepare); /* measuring keeps no loop alive */
    return lt;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void ens_looptime_close(ens_looptime_t *lt)
{
    if (current == lt)
        current = NULL;
    if (lt)
        uv_close((uv_handle_t *)&lt->prepare, on_closed);
}

void ens_looptime_status(const ens_looptime_t *lt, ens_mpw_t *w)
{
    static const ens_looptime_t none;
    if (!lt)
        lt = &none;
    uint64_t recent = lt->window_max > lt->prev_max ? lt->window_max : lt->prev_max;
    ens_mpw_cstr(w, "loop");
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "turns");
    ens_mpw_uint(w, lt->turns);
    ens_mpw_cstr(w, "longest_turn_ms");
    ens_mpw_double(w, (double)lt->max_ns / 1e6);
    ens_mpw_cstr(w, "longest_turn_recent_ms");
    ens_mpw_double(w, (double)recent / 1e6);
    ens_mpw_cstr(w, "turns_over_5ms");
    ens_mpw_uint(w, lt->slow);
    ens_mpw_cstr(w, "longest_turn_cpu_ms");
    ens_mpw_double(w, (double)lt->max_cpu / 1e6);
    ens_mpw_cstr(w, "longest_turn_cpu_in");
    ens_mpw_cstr(w, section_names[lt->max_cpu_in]);
    ens_mpw_cstr(w, "turns_over_5ms_cpu");
    ens_mpw_uint(w, lt->slow_cpu);
    ens_mpw_cstr(w, "turns_over_5ms_cpu_by");
    ens_mpw_map_begin(w);
    for (int i = 0; i < ENS_LOOP_NSECTIONS; i++) {
        ens_mpw_cstr(w, section_names[i]);
        ens_mpw_uint(w, lt->slow_by[i]);
    }
    ens_mpw_map_end(w);
    ens_mpw_map_end(w);
}
