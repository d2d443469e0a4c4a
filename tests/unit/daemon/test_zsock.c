/* test_zsock.c - a libzmq socket driven by a libuv loop (zsock.h).
 *
 * A PUSH socket in the test feeds the wrapped PULL socket over inproc.
 * What the callback is handed is checked against what was sent: every
 * message once, in order, whole (or, past 8 frames, its first 7 and its
 * last), at most the fair cap per loop turn, and messages sent after a
 * drain emptied the socket still arrive without a kick (the drain must end
 * in the state that re-arms ZMQ_FD's edge). Each message's time comes from
 * the drain's clock read, checked against clocks read here. A socket found
 * readable again while its capped drain waits for the next turn still
 * drains once a turn.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "zsock.h"

#define MAX_SEEN 4096
#define MAX_KEPT 16

typedef struct {
    uv_loop_t loop;
    void *ctx, *push;
    ens_zsock_t *z;
    size_t got;                           /* messages handed to the callback */
    uint32_t seq[MAX_SEEN];               /* the first frame of each, as sent */
    size_t nframes[MAX_SEEN];             /* frames handed for each */
    double now[MAX_SEEN], mono[MAX_SEEN]; /* ens_zsock_time in the callback */
    double mono_in[MAX_SEEN];             /* ens_mono() in the callback */
    char last[MAX_KEPT][MAX_KEPT][8];     /* the frames of the first MAX_KEPT messages */
} fx_t;

static void on_msg(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    fx_t *fx = ud;
    assert_true(fx->got < MAX_SEEN);
    assert_true(n >= 1 && n <= 8);
    assert_int_equal(zmq_msg_size(&frames[0]), sizeof(uint32_t));
    memcpy(&fx->seq[fx->got], zmq_msg_data(&frames[0]), sizeof(uint32_t));
    fx->nframes[fx->got] = n;
    ens_zsock_time(z, &fx->now[fx->got], &fx->mono[fx->got]);
    fx->mono_in[fx->got] = ens_mono();
    for (size_t i = 0; fx->got < MAX_KEPT && i < n; i++) {
        size_t len = zmq_msg_size(&frames[i]);
        assert_true(len < 8);
        memcpy(fx->last[fx->got][i], zmq_msg_data(&frames[i]), len);
        fx->last[fx->got][i][len] = '\0';
    }
    fx->got++;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->ctx = zmq_ctx_new();
    fx->push = zmq_socket(fx->ctx, ZMQ_PUSH);
    void *pull = zmq_socket(fx->ctx, ZMQ_PULL);
    int unlimited = 0;
    zmq_setsockopt(fx->push, ZMQ_SNDHWM, &unlimited, sizeof(unlimited));
    zmq_setsockopt(pull, ZMQ_RCVHWM, &unlimited, sizeof(unlimited));
    assert_int_equal(zmq_bind(pull, "inproc://zsock-test"), 0);
    assert_int_equal(zmq_connect(fx->push, "inproc://zsock-test"), 0);
    fx->z = ens_zsock_new(&fx->loop, pull, on_msg, fx, 100);
    assert_non_null(fx->z);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    ens_zsock_close(fx->z);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    zmq_close(fx->push);
    zmq_ctx_term(fx->ctx);
    free(fx);
    return 0;
}

/* Sends message seq: its first frame the 4 bytes of seq, then the frames
 * "f1" .. "f<nframes - 1>". */
static void send_seq(fx_t *fx, uint32_t seq, size_t nframes)
{
    assert_int_equal(zmq_send(fx->push, &seq, sizeof(seq), nframes > 1 ? ZMQ_SNDMORE : 0),
                     (int)sizeof(seq));
    for (size_t i = 1; i < nframes; i++) {
        char f[8];
        int len = snprintf(f, sizeof(f), "f%zu", i);
        assert_int_equal(zmq_send(fx->push, f, (size_t)len, i + 1 < nframes ? ZMQ_SNDMORE : 0),
                         len);
    }
}

/* Runs loop turns without blocking until want messages came (or 5 s). */
static void run_until(fx_t *fx, size_t want)
{
    double end = ens_mono() + 5;
    while (fx->got < want && ens_mono() < end) {
        if (uv_run(&fx->loop, UV_RUN_NOWAIT) == 0)
            break;
        usleep(1000);
    }
    assert_int_equal(fx->got, want);
}

static void test_zsock_every_message_in_order_at_most_fair_cap_per_turn(void **state)
{
    fx_t *fx = *state;
    for (uint32_t i = 0; i < 3000; i++)
        send_seq(fx, i, 1);
    usleep(10000); /* inproc: the messages are queued by now */
    size_t turns = 0;
    double end = ens_mono() + 5;
    while (fx->got < 3000 && ens_mono() < end) {
        size_t before = fx->got;
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        assert_true(fx->got - before <= 100);
        turns += fx->got > before;
    }
    assert_int_equal(fx->got, 3000);
    assert_true(turns >= 30);
    for (uint32_t i = 0; i < 3000; i++) {
        assert_int_equal(fx->seq[i], i);
        assert_int_equal(fx->nframes[i], 1);
    }
}

static void test_zsock_messages_after_a_drain_arrive_without_kick(void **state)
{
    fx_t *fx = *state;
    for (uint32_t round = 0; round < 5; round++) {
        for (uint32_t i = 0; i < 7; i++)
            send_seq(fx, 7 * round + i, 1);
        run_until(fx, 7 * (size_t)(round + 1));
        /* Emptied: nothing more comes until the next sends. */
        for (int k = 0; k < 3; k++)
            uv_run(&fx->loop, UV_RUN_NOWAIT);
        assert_int_equal(fx->got, 7 * (size_t)(round + 1));
    }
    for (uint32_t i = 0; i < 35; i++)
        assert_int_equal(fx->seq[i], i);
}

/* A second sender whose message arrives between a capped drain and the
 * poll, every turn: the socket's descriptor is then readable in the poll
 * phase while the idle handle that re-arms the drain is on. The socket
 * still drains once a turn, at most the fair cap. */
typedef struct {
    fx_t *fx;
    void *push2;
    uint32_t sent;
} late_t;

static void on_prepare_send(uv_prepare_t *h)
{
    late_t *l = h->data;
    uint32_t seq = 1000000 + l->sent++;
    assert_int_equal(zmq_send(l->push2, &seq, sizeof(seq), 0), (int)sizeof(seq));
}

static void test_zsock_one_drain_a_turn_when_readable_again(void **state)
{
    fx_t *fx = *state;
    late_t l = {fx, zmq_socket(fx->ctx, ZMQ_PUSH), 0};
    assert_int_equal(zmq_connect(l.push2, "inproc://zsock-test"), 0);
    for (uint32_t i = 0; i < 2000; i++)
        send_seq(fx, i, 1);
    usleep(10000);
    uv_prepare_t prep;
    uv_prepare_init(&fx->loop, &prep);
    prep.data = &l;
    uv_prepare_start(&prep, on_prepare_send);
    size_t turns = 0, most = 0;
    double end = ens_mono() + 5;
    while (fx->got < 2000 + l.sent && ens_mono() < end && fx->got < MAX_SEEN - 200) {
        size_t before = fx->got;
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        most = fx->got - before > most ? fx->got - before : most;
        turns++;
    }
    uv_prepare_stop(&prep);
    uv_close((uv_handle_t *)&prep, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    zmq_close(l.push2);
    assert_true(most <= 100);
    assert_true(fx->got >= 2000);
    /* The first sender's messages, all of them, in order among the rest. */
    uint32_t next = 0;
    for (size_t i = 0; i < fx->got; i++)
        if (fx->seq[i] < 1000000)
            assert_int_equal(fx->seq[i], next++);
    assert_int_equal(next, 2000);
}

/* Each message's time, from the drain: read before its callback (and after
 * the previous message's), the wall clock as far from it as the clocks
 * read here are. */
static void test_zsock_time_of_each_message(void **state)
{
    fx_t *fx = *state;
    for (uint32_t i = 0; i < 500; i++)
        send_seq(fx, i, 1);
    double before = ens_mono(), offset = ens_now() - before;
    run_until(fx, 500);
    for (size_t i = 0; i < 500; i++) {
        assert_true(fx->mono[i] >= (i ? fx->mono_in[i - 1] : before));
        assert_true(fx->mono[i] <= fx->mono_in[i]);
        assert_true(fabs(fx->now[i] - fx->mono[i] - offset) < 0.1);
    }
}

/* 8 frames are kept whole; of 9 and of 12, the first 7 and the last. */
static void test_zsock_long_message_keeps_first_seven_and_last(void **state)
{
    fx_t *fx = *state;
    static const size_t sizes[4] = {8, 9, 12, 1};
    for (uint32_t i = 0; i < 4; i++)
        send_seq(fx, i, sizes[i]);
    run_until(fx, 4);
    static const size_t kept[4] = {8, 8, 8, 1};
    for (size_t m = 0; m < 4; m++) {
        assert_int_equal(fx->seq[m], m);
        assert_int_equal(fx->nframes[m], kept[m]);
        for (size_t i = 1; i < kept[m]; i++) {
            char want[8];
            snprintf(want, sizeof(want), "f%zu", i < 7 ? i : sizes[m] - 1);
            assert_string_equal(fx->last[m][i], want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zsock_every_message_in_order_at_most_fair_cap_per_turn,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_zsock_messages_after_a_drain_arrive_without_kick,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_zsock_long_message_keeps_first_seven_and_last, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zsock_time_of_each_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zsock_one_drain_a_turn_when_readable_again, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("zsock", tests, NULL, NULL);
}
