/* control.c - the REP socket of operator commands (docs/protocol.md).
 *
 * Requests are MessagePack maps {"cmd": "status" | "ensemble" | "recompute",
 * "task": name?}; every reply is a map with "ok" and, on failure, "error".
 * A malformed request gets an error reply: a REP socket must answer every
 * request or it stops receiving.
 */
#include <string.h>

#include "daemon.h"
#include "security.h"
#include "state.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void pack_task(msgpack_packer *pk, const ens_task_t *t, double now)
{
    const ens_join_stats_t *js = ens_join_stats(t->join);
    msgpack_pack_map(pk, 19);
    pack_str(pk, "explore_extra_queries_per_query");
    msgpack_pack_double(pk, t->explore_extra);
    pack_kv_u64(pk, "rows", ens_window_rows(t->window));
    pack_kv_u64(pk, "capacity", ens_window_capacity(t->window));
    pack_kv_u64(pk, "pending", ens_join_pending(t->join));
    pack_kv_u64(pk, "models", ens_window_models(t->window));
    pack_kv_u64(pk, "labels", ens_window_labels(t->window));
    pack_kv_u64(pk, "version", t->version);
    pack_kv_u64(pk, "queries", js->queries);
    pack_kv_u64(pk, "joined", js->joined);
    pack_kv_u64(pk, "expired", js->expired);
    pack_kv_u64(pk, "evicted", js->evicted);
    pack_kv_u64(pk, "late_predictions", js->late_predictions);
    pack_kv_u64(pk, "late_labels", js->late_labels);
    pack_kv_u64(pk, "duplicate_predictions", js->dup_predictions);
    pack_kv_u64(pk, "duplicate_labels", js->dup_labels);
    pack_kv_u64(pk, "sampled_out", t->sampled_out);
    pack_str(pk, "last_selection_ms");
    msgpack_pack_double(pk, t->last_select_ms);
    pack_str(pk, "last_selection_age_s");
    if (t->last_select_at > 0)
        msgpack_pack_double(pk, now - t->last_select_at);
    else
        msgpack_pack_nil(pk);
    pack_str(pk, "ensemble");
    msgpack_pack_array(pk, t->pub_n);
    for (size_t i = 0; i < t->pub_n; i++)
        pack_str(pk, t->pub_models[i]);
}

static void reply_status(ens_daemon_t *d, msgpack_packer *pk)
{
    double now = ens_now();
    msgpack_pack_map(pk, 11);
    const ens_security_stats_t *sec = ens_security_stats(d);
    pack_str(pk, "security");
    msgpack_pack_map(pk, 3);
    pack_kv_u64(pk, "curve_accepted", sec->accepted);
    pack_kv_u64(pk, "curve_refused", sec->refused);
    pack_kv_u64(pk, "authorized_keys", sec->keys);
    const ens_state_stats_t *st = ens_state_stats(d);
    pack_str(pk, "state");
    msgpack_pack_map(pk, 5);
    pack_kv_u64(pk, "rows_restored_snapshot", st->rows_snapshot);
    pack_kv_u64(pk, "rows_restored_journal", st->rows_replayed);
    pack_kv_u64(pk, "torn_records", st->torn_records);
    pack_kv_u64(pk, "snapshots", st->snapshots);
    pack_kv_u64(pk, "write_errors", st->write_errors);
    pack_str(pk, "ok");
    msgpack_pack_true(pk);
    pack_str(pk, "version");
    pack_str(pk, ENS_VERSION);
    pack_str(pk, "uptime_s");
    msgpack_pack_double(pk, now - d->started);
    pack_kv_u64(pk, "messages_in", d->messages_in);
    pack_kv_u64(pk, "events_in", d->events_in);
    pack_kv_u64(pk, "published", d->published);
    pack_str(pk, "rejected");
    msgpack_pack_map(pk, ENS_REJECT_COUNT);
    for (int r = 0; r < ENS_REJECT_COUNT; r++)
        pack_kv_u64(pk, ens_reject_name((ens_reject_t)r), d->rejected[r]);
    pack_str(pk, "dropped");
    msgpack_pack_map(pk, ENS_DROP_COUNT);
    for (int r = 0; r < ENS_DROP_COUNT; r++)
        pack_kv_u64(pk, ens_drop_name((ens_drop_t)r), d->dropped[r]);
    pack_str(pk, "tasks");
    msgpack_pack_map(pk, d->ntasks);
    for (const ens_task_t *t = d->tasks; t; t = t->hh.next) {
        pack_str(pk, t->name);
        pack_task(pk, t, now);
    }
}

static void reply_error(msgpack_packer *pk, const char *msg)
{
    msgpack_pack_map(pk, 2);
    pack_str(pk, "ok");
    msgpack_pack_false(pk);
    pack_str(pk, "error");
    pack_str(pk, msg);
}

/* Reads the string value of key in map m into buf (NUL-terminated). */
static int get_str(const msgpack_object *m, const char *key, char *buf, size_t buflen)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0) {
            if (kv->val.type != MSGPACK_OBJECT_STR || kv->val.via.str.size >= buflen)
                return -1;
            memcpy(buf, kv->val.via.str.ptr, kv->val.via.str.size);
            buf[kv->val.via.str.size] = '\0';
            return 0;
        }
    }
    return 1;
}

static void handle(ens_daemon_t *d, const msgpack_object *req, msgpack_packer *pk,
                   msgpack_sbuffer *out)
{
    char cmd[32], task[ENS_MAX_NAME + 1] = "default";
    if (req->type != MSGPACK_OBJECT_MAP || get_str(req, "cmd", cmd, sizeof(cmd)) != 0) {
        reply_error(pk, "request must be a map with a string \"cmd\"");
        return;
    }
    int has_task = get_str(req, "task", task, sizeof(task));
    if (has_task < 0) {
        reply_error(pk, "\"task\" must be a string of at most 256 bytes");
        return;
    }
    if (strcmp(cmd, "status") == 0) {
        reply_status(d, pk);
    } else if (strcmp(cmd, "ensemble") == 0) {
        ens_task_t *t = ens_task_find(d, task, strlen(task));
        if (!t || t->body.size == 0) {
            reply_error(pk, t ? "no ensemble published yet for this task" : "unknown task");
            return;
        }
        msgpack_pack_map(pk, 2);
        pack_str(pk, "ok");
        msgpack_pack_true(pk);
        pack_str(pk, "ensemble");
        msgpack_sbuffer_write(out, t->body.data, t->body.size);
    } else if (strcmp(cmd, "recompute") == 0) {
        size_t n = 0;
        for (ens_task_t *t = d->tasks; t; t = t->hh.next) {
            if (has_task == 0 && strcmp(t->name, task) != 0)
                continue;
            ens_recompute_start(t);
            n++;
        }
        if (has_task == 0 && n == 0) {
            reply_error(pk, "unknown task");
            return;
        }
        msgpack_pack_map(pk, 2);
        pack_str(pk, "ok");
        msgpack_pack_true(pk);
        pack_kv_u64(pk, "tasks", n);
    } else {
        reply_error(pk, "unknown command (status, ensemble, recompute)");
    }
}

static void on_request(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    ens_daemon_t *d = ud;
    const char *buf = zmq_msg_data(&frames[n - 1]);
    size_t len = zmq_msg_size(&frames[n - 1]);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object req;
    size_t off = 0;
    if (len > 65536 || ens_proto_prewalk(buf, len, 4) < 0 ||
        msgpack_unpack(buf, len, &off, &zone, &req) != MSGPACK_UNPACK_SUCCESS)
        reply_error(&pk, "request is not a valid MessagePack object of at most 64 KiB");
    else
        handle(d, &req, &pk, &out);
    msgpack_zone_destroy(&zone);
    if (zmq_send(ens_zsock_socket(z), out.data, out.size, ZMQ_DONTWAIT) < 0)
        ENS_LOG(WARNING, "control: reply not sent: %s", zmq_strerror(zmq_errno()));
    msgpack_sbuffer_destroy(&out);
}

int ens_control_open(ens_daemon_t *d, char *err, size_t errlen)
{
    void *s = zmq_socket(d->zctx, ZMQ_REP);
    ens_security_apply(d, s);
    if (zmq_bind(s, d->conf.control_bind) < 0) {
        snprintf(err, errlen, "control.bind %s: %s", d->conf.control_bind,
                 zmq_strerror(zmq_errno()));
        zmq_close(s);
        return -1;
    }
    d->ctl = ens_zsock_new(d->loop, s, on_request, d, 64);
    return d->ctl ? 0 : -1;
}
