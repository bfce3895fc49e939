/* Every function of bifrost.h on the in-process mock provider: results,
 * error statuses and messages, NULL and garbage inputs, callbacks (and the
 * rules for blocking calls inside them), cancellation, streams, shutdown. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#include "testutil.h"

static const char *CONFIG =
    "{\"initial_pool_size\": 4, \"providers\": {"
    " \"mock1\": {\"kind\": \"mock\", \"concurrency_and_buffer_size\": {\"concurrency\": 4, \"buffer_size\": 64}},"
    " \"tiny\": {\"kind\": \"mock\", \"concurrency_and_buffer_size\": {\"concurrency\": 1, \"buffer_size\": 1},"
    "          \"queue\": {\"policy\": \"error\"}},"
    " \"droppy\": {\"kind\": \"mock\", \"concurrency_and_buffer_size\": {\"concurrency\": 1, \"buffer_size\": 1},"
    "          \"queue\": {\"policy\": \"drop\"}}}}";

#define REQ(model, extra) \
    "{\"model\": \"" model "\", \"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]" extra "}"

static void test_version_and_names(void) {
    const char *v = bifrost_version();
    CHECK(v && strlen(v) >= 5 && strchr(v, '.'), "version %s", v ? v : "(null)");
    CHECK(strcmp(bifrost_status_name(BIFROST_OK), "OK") == 0, "OK name");
    CHECK(strcmp(bifrost_status_name(BIFROST_QUEUE_FULL), "QUEUE_FULL") == 0, "QUEUE_FULL name");
    CHECK(strcmp(bifrost_status_name(BIFROST_PENDING), "PENDING") == 0, "PENDING name");
    CHECK(strcmp(bifrost_status_name(BIFROST_INTERNAL), "INTERNAL") == 0, "INTERNAL name");
    CHECK(strcmp(bifrost_status_name(999), "UNKNOWN_STATUS") == 0, "unknown name");
    CHECK(strcmp(bifrost_status_name(-1), "UNKNOWN_STATUS") == 0, "negative name");
    CHECK(BIFROST_OK == 0, "BIFROST_OK is 0");
}

static void test_gateway_new_errors(void) {
    bifrost_gateway *gw = (bifrost_gateway *)0x1;
    char *err = NULL;
    bifrost_status st = bifrost_gateway_new(NULL, &gw, &err);
    CHECK_ST(st, BIFROST_INVALID_REQUEST, err);
    CHECK(gw == NULL, "gateway_out cleared");
    CHECK(err && strstr(err, "config_json"), "names the argument: %s", err);
    t_clear(&err);

    st = bifrost_gateway_new("{}", NULL, &err);
    CHECK_ST(st, BIFROST_INVALID_REQUEST, err);
    t_clear(&err);

    st = bifrost_gateway_new("{not json", &gw, &err);
    CHECK_ST(st, BIFROST_CONFIG, err);
    CHECK(err && strstr(err, "JSON"), "says JSON: %s", err);
    t_clear(&err);

    /* Not UTF-8: CONFIG, as a config string that is not Unicode is in Python and Node. */
    st = bifrost_gateway_new("{\"providers\": {}} \xff", &gw, &err);
    CHECK_ST(st, BIFROST_CONFIG, err);
    CHECK(err && strstr(err, "UTF-8"), "says UTF-8: %s", err);
    t_clear(&err);

    st = bifrost_gateway_new("{\"providers\": {\"a\": {\"kind\": \"mock\", \"bogus\": 1}}}", &gw, &err);
    CHECK_ST(st, BIFROST_CONFIG, err);
    CHECK(err && strstr(err, "bogus"), "names the key: %s", err);
    t_clear(&err);

    st = bifrost_gateway_new(
        "{\"providers\": {\"a\": {\"kind\": \"mock\", \"concurrency_and_buffer_size\": {\"concurrency\": 0}}}}",
        &gw, &err);
    CHECK_ST(st, BIFROST_CONFIG, err);
    CHECK(err && strstr(err, "1..=10000"), "says the range: %s", err);
    t_clear(&err);

    /* err may be NULL: status only. */
    st = bifrost_gateway_new("[1,2", &gw, NULL);
    CHECK_ST(st, BIFROST_CONFIG, NULL);
    CHECK(gw == NULL, "no gateway");
}

static void test_submit_wait(bifrost_gateway *gw) {
    bifrost_job *job = NULL;
    char *err = NULL, *resp = NULL;
    bifrost_status st = bifrost_submit(gw, REQ("mock1/echo-1", ""), &job, &err);
    CHECK_ST(st, BIFROST_OK, err);
    CHECK(job != NULL, "job");
    CHECK(bifrost_job_id(job) > 0, "job id");
    st = bifrost_job_wait(job, BIFROST_WAIT_FOREVER, &resp, &err);
    CHECK_ST(st, BIFROST_OK, err);
    CHECK(resp && strstr(resp, "\"echo: hello\"") && strstr(resp, "\"chat.completion\""), "response %s", resp);
    CHECK(resp && strstr(resp, "\"extra_fields\"") && strstr(resp, "\"provider\":\"mock1\""), "extra %s", resp);
    CHECK(err == NULL, "no error");
    t_clear(&resp);
    /* The outcome stays: wait again, poll. */
    st = bifrost_job_wait(job, 0, &resp, &err);
    CHECK_ST(st, BIFROST_OK, err);
    CHECK(resp != NULL, "second wait has the response");
    t_clear(&resp);
    CHECK_ST(bifrost_job_poll(job), BIFROST_OK, NULL);
    bool cancelled = true;
    CHECK_ST(bifrost_job_cancel(job, &cancelled), BIFROST_OK, NULL);
    CHECK(!cancelled, "a finished job is not cancelled");
    bifrost_job_free(job);
}

static void test_submit_errors(bifrost_gateway *gw) {
    bifrost_job *job = (bifrost_job *)0x1;
    char *err = NULL, *resp = NULL;
    struct { const char *req; bifrost_status want; const char *needle; } cases[] = {
        {"{not json", BIFROST_INVALID_REQUEST, "invalid request"},
        {"[]", BIFROST_INVALID_REQUEST, "invalid request"},
        {"{\"model\": \"mock1/x\", \"messages\": []}", BIFROST_INVALID_REQUEST, "messages"},
        {"{\"model\": \"no-slash\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
         BIFROST_INVALID_REQUEST, "model"},
        {REQ("nope/x", ""), BIFROST_UNKNOWN_PROVIDER, "nope"},
        {REQ("mock1/x", ", \"timeout_ms\": 0"), BIFROST_INVALID_REQUEST, "timeout_ms"},
        {"{\"model\": \"mock1/\xc3\x28\", \"messages\": []}", BIFROST_INVALID_REQUEST, "UTF-8"},
        {"", BIFROST_INVALID_REQUEST, "invalid request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        job = (bifrost_job *)0x1;
        bifrost_status st = bifrost_submit(gw, cases[i].req, &job, &err);
        CHECK_ST(st, cases[i].want, err);
        CHECK(job == NULL, "case %zu: no job", i);
        CHECK(err && strstr(err, cases[i].needle), "case %zu: message %s lacks %s", i, err, cases[i].needle);
        t_clear(&err);
    }
    CHECK_ST(bifrost_submit(NULL, REQ("mock1/x", ""), &job, &err), BIFROST_INVALID_REQUEST, err);
    CHECK(err && strstr(err, "gateway"), "names gateway: %s", err);
    t_clear(&err);
    CHECK_ST(bifrost_submit(gw, NULL, &job, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);
    CHECK_ST(bifrost_submit(gw, REQ("mock1/x", ""), NULL, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);
    CHECK_ST(bifrost_submit(NULL, NULL, NULL, NULL), BIFROST_INVALID_REQUEST, NULL);

    /* Provider error: status in the message. */
    bifrost_status st = bifrost_submit(
        gw, REQ("mock1/x", ", \"mock\": {\"failure_rate\": 1.0, \"failure_status\": 503}"), &job, &err);
    CHECK_ST(st, BIFROST_OK, err);
    st = bifrost_job_wait(job, BIFROST_WAIT_FOREVER, &resp, &err);
    CHECK_ST(st, BIFROST_PROVIDER, err);
    CHECK(resp == NULL, "no response on error");
    CHECK(err && strstr(err, "503"), "status in message: %s", err);
    CHECK_ST(bifrost_job_poll(job), BIFROST_PROVIDER, NULL);
    t_clear(&err);
    bifrost_job_free(job);

    /* A panic inside the provider: INTERNAL, the worker survives. */
    st = bifrost_submit(gw, REQ("mock1/x", ", \"mock\": {\"panic_rate\": 1.0}"), &job, &err);
    CHECK_ST(st, BIFROST_OK, err);
    st = bifrost_job_wait(job, BIFROST_WAIT_FOREVER, &resp, &err);
    CHECK_ST(st, BIFROST_INTERNAL, err);
    CHECK(err && strstr(err, "panic"), "panic in message: %s", err);
    t_clear(&err);
    bifrost_job_free(job);

    /* Request deadline. */
    st = bifrost_submit(gw, REQ("mock1/x", ", \"timeout_ms\": 20, \"mock\": {\"latency_ms\": 2000}"), &job, &err);
    CHECK_ST(st, BIFROST_OK, err);
    st = bifrost_job_wait(job, BIFROST_WAIT_FOREVER, &resp, &err);
    CHECK_ST(st, BIFROST_TIMEOUT, err);
    t_clear(&err);
    bifrost_job_free(job);
}

static void test_wait_poll_cancel(bifrost_gateway *gw) {
    bifrost_job *job = NULL;
    char *err = NULL, *resp = NULL;
    bifrost_status st = bifrost_submit(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 5000}"), &job, &err);
    CHECK_ST(st, BIFROST_OK, err);
    CHECK_ST(bifrost_job_poll(job), BIFROST_PENDING, NULL);
    double t0 = t_now_s();
    st = bifrost_job_wait(job, 50, &resp, &err);
    double took = t_now_s() - t0;
    CHECK_ST(st, BIFROST_PENDING, err);
    CHECK(took >= 0.045 && took < 3.0, "waited %.3fs", took);
    CHECK(resp == NULL && err == NULL, "nothing produced on PENDING");
    st = bifrost_job_wait(job, 0, &resp, &err);
    CHECK_ST(st, BIFROST_PENDING, err);
    bool cancelled = false;
    CHECK_ST(bifrost_job_cancel(job, &cancelled), BIFROST_OK, NULL);
    CHECK(cancelled, "cancel took effect");
    CHECK_ST(bifrost_job_cancel(job, NULL), BIFROST_OK, NULL);
    st = bifrost_job_wait(job, 5000, &resp, &err);
    CHECK_ST(st, BIFROST_CANCELLED, err);
    CHECK(err && strstr(err, "cancelled"), "message %s", err);
    t_clear(&err);
    bifrost_job_free(job);

    /* Free before completion cancels (counted in stats). */
    for (int i = 0; i < 5; i++) {
        CHECK_ST(bifrost_submit(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 5000}"), &job, &err),
                 BIFROST_OK, err);
        bifrost_job_free(job);
    }

    /* NULLs. */
    CHECK_ST(bifrost_job_wait(NULL, 0, &resp, &err), BIFROST_INVALID_REQUEST, err);
    CHECK(err && strstr(err, "job"), "names job: %s", err);
    t_clear(&err);
    CHECK_ST(bifrost_job_wait(job, 0, NULL, &err), BIFROST_INVALID_REQUEST, err); /* job is dangling but unused */
    t_clear(&err);
    CHECK_ST(bifrost_job_wait(NULL, -1, NULL, NULL), BIFROST_INVALID_REQUEST, NULL);
    CHECK_ST(bifrost_job_poll(NULL), BIFROST_INVALID_REQUEST, NULL);
    cancelled = true;
    CHECK_ST(bifrost_job_cancel(NULL, &cancelled), BIFROST_INVALID_REQUEST, NULL);
    CHECK(!cancelled, "cancelled cleared");
    CHECK(bifrost_job_id(NULL) == 0, "id of NULL");
    bifrost_job_free(NULL);
}

/* Cancelling from another thread while one waits. */
struct waiter { bifrost_job *job; bifrost_status st; };
static void *wait_thread(void *p) {
    struct waiter *w = p;
    char *resp = NULL, *err = NULL;
    w->st = bifrost_job_wait(w->job, BIFROST_WAIT_FOREVER, &resp, &err);
    bifrost_string_free(resp);
    bifrost_string_free(err);
    return NULL;
}

static void test_cancel_while_waiting(bifrost_gateway *gw) {
    bifrost_job *job = NULL;
    char *err = NULL;
    CHECK_ST(bifrost_submit(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 10000}"), &job, &err), BIFROST_OK, err);
    struct waiter w1 = {job, BIFROST_OK}, w2 = {job, BIFROST_OK};
    pthread_t a, b;
    pthread_create(&a, NULL, wait_thread, &w1);
    pthread_create(&b, NULL, wait_thread, &w2);
    t_sleep_ms(50);
    bool cancelled = false;
    double t0 = t_now_s();
    CHECK_ST(bifrost_job_cancel(job, &cancelled), BIFROST_OK, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(t_now_s() - t0 < 5.0, "waiters released promptly");
    CHECK(cancelled, "cancelled");
    CHECK_ST(w1.st, BIFROST_CANCELLED, NULL);
    CHECK_ST(w2.st, BIFROST_CANCELLED, NULL);
    bifrost_job_free(job);
}

/* Callbacks, and what a callback may and may not call. */
struct cb_state {
    atomic_int calls;
    bifrost_status status;
    char response[4096];
    char error[1024];
    bifrost_gateway *gw;
    bifrost_job *other; /* a pending job, to try a blocking wait on */
    bifrost_status wait_in_cb, shutdown_in_cb, stream_in_cb, submit_in_cb, poll_in_cb, stats_in_cb;
    int check_rules;
};

static void on_done(void *user_data, bifrost_status status, const char *response_json, const char *error) {
    struct cb_state *s = user_data;
    s->status = status;
    if (response_json) snprintf(s->response, sizeof s->response, "%s", response_json);
    if (error) snprintf(s->error, sizeof s->error, "%s", error);
    if (s->check_rules) {
        char *out = NULL, *err = NULL;
        s->wait_in_cb = bifrost_job_wait(s->other, 100, &out, &err);
        bifrost_string_free(out);
        bifrost_string_free(err);
        err = NULL;
        s->shutdown_in_cb = bifrost_gateway_shutdown(s->gw, 10, NULL);
        bifrost_stream *stream = NULL;
        s->stream_in_cb = bifrost_stream_open(s->gw, REQ("mock1/x", ""), &stream, &err);
        bifrost_string_free(err);
        err = NULL;
        bifrost_stream_free(stream);
        bifrost_job *j = NULL;
        s->submit_in_cb = bifrost_submit(s->gw, REQ("mock1/x", ""), &j, &err);
        bifrost_string_free(err);
        bifrost_job_free(j);
        s->poll_in_cb = bifrost_job_poll(s->other);
        s->stats_in_cb = bifrost_stats_json(s->gw, &out);
        bifrost_string_free(out);
    }
    atomic_fetch_add(&s->calls, 1);
}

static void wait_calls(struct cb_state *s, int n) {
    for (int i = 0; i < 1000 && atomic_load(&s->calls) < n; i++) t_sleep_ms(10);
}

static void test_callbacks(bifrost_gateway *gw) {
    char *err = NULL;
    static struct cb_state ok, fail, rules;
    memset(&ok, 0, sizeof ok);
    memset(&fail, 0, sizeof fail);
    memset(&rules, 0, sizeof rules);

    CHECK_ST(bifrost_submit_cb(gw, REQ("mock1/x", ""), on_done, &ok, &err), BIFROST_OK, err);
    wait_calls(&ok, 1);
    t_sleep_ms(20);
    CHECK(atomic_load(&ok.calls) == 1, "called once: %d", atomic_load(&ok.calls));
    CHECK_ST(ok.status, BIFROST_OK, ok.error);
    CHECK(strstr(ok.response, "echo: hello") != NULL, "response %s", ok.response);
    CHECK(ok.error[0] == 0, "no error");

    CHECK_ST(bifrost_submit_cb(gw, REQ("mock1/x", ", \"mock\": {\"failure_rate\": 1.0, \"failure_status\": 429}"),
                               on_done, &fail, &err), BIFROST_OK, err);
    wait_calls(&fail, 1);
    CHECK(atomic_load(&fail.calls) == 1, "called once");
    CHECK_ST(fail.status, BIFROST_PROVIDER, fail.error);
    CHECK(strstr(fail.error, "429") != NULL, "status in error: %s", fail.error);
    CHECK(fail.response[0] == 0, "no response");

    /* Blocking calls inside a callback are refused, non-blocking ones work. */
    bifrost_job *other = NULL;
    CHECK_ST(bifrost_submit(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 5000}"), &other, &err), BIFROST_OK, err);
    rules.gw = gw;
    rules.other = other;
    rules.check_rules = 1;
    CHECK_ST(bifrost_submit_cb(gw, REQ("mock1/x", ""), on_done, &rules, &err), BIFROST_OK, err);
    wait_calls(&rules, 1);
    CHECK(atomic_load(&rules.calls) == 1, "called once");
    CHECK_ST(rules.wait_in_cb, BIFROST_INTERNAL, NULL);
    CHECK_ST(rules.shutdown_in_cb, BIFROST_INTERNAL, NULL);
    CHECK_ST(rules.stream_in_cb, BIFROST_INTERNAL, NULL);
    CHECK_ST(rules.submit_in_cb, BIFROST_OK, NULL);
    CHECK_ST(rules.poll_in_cb, BIFROST_PENDING, NULL);
    CHECK_ST(rules.stats_in_cb, BIFROST_OK, NULL);
    bifrost_job_free(other);

    /* Submit errors: the callback is never called. */
    static struct cb_state never;
    memset(&never, 0, sizeof never);
    CHECK_ST(bifrost_submit_cb(gw, REQ("nope/x", ""), on_done, &never, &err), BIFROST_UNKNOWN_PROVIDER, err);
    t_clear(&err);
    CHECK_ST(bifrost_submit_cb(gw, "{bad", on_done, &never, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);
    CHECK_ST(bifrost_submit_cb(gw, REQ("mock1/x", ""), NULL, &never, &err), BIFROST_INVALID_REQUEST, err);
    CHECK(err && strstr(err, "callback"), "names callback: %s", err);
    t_clear(&err);
    CHECK_ST(bifrost_submit_cb(NULL, REQ("mock1/x", ""), on_done, &never, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);
    CHECK_ST(bifrost_submit_cb(gw, NULL, on_done, &never, NULL), BIFROST_INVALID_REQUEST, NULL);
    t_sleep_ms(50);
    CHECK(atomic_load(&never.calls) == 0, "never called");
    /* user_data may be NULL. */
}

static void noop_cb(void *u, bifrost_status s, const char *r, const char *e) { (void)u; (void)s; (void)r; (void)e; }

static void test_policies(bifrost_gateway *gw) {
    char *err = NULL, *resp = NULL;
    bifrost_job *jobs[4] = {0};
    int full = 0;
    for (int i = 0; i < 4; i++) {
        bifrost_status st = bifrost_submit(gw, REQ("tiny/x", ", \"mock\": {\"latency_ms\": 300}"), &jobs[i], &err);
        if (st == BIFROST_QUEUE_FULL) {
            full++;
            CHECK(err && strstr(err, "full") && strstr(err, "buffer_size=1"), "message %s", err);
            CHECK(jobs[i] == NULL, "no job");
        } else {
            CHECK_ST(st, BIFROST_OK, err);
        }
        t_clear(&err);
    }
    CHECK(full >= 1, "policy error rejects: %d", full);
    for (int i = 0; i < 4; i++) bifrost_job_free(jobs[i]);

    int dropped = 0;
    for (int i = 0; i < 4; i++) {
        bifrost_status st = bifrost_submit(gw, REQ("droppy/x", ", \"mock\": {\"latency_ms\": 300}"), &jobs[i], &err);
        CHECK_ST(st, BIFROST_OK, err);
        t_clear(&err);
    }
    for (int i = 0; i < 4; i++) {
        bifrost_status st = bifrost_job_wait(jobs[i], BIFROST_WAIT_FOREVER, &resp, &err);
        if (st == BIFROST_DROPPED) dropped++;
        else CHECK_ST(st, BIFROST_OK, err);
        t_clear(&resp);
        t_clear(&err);
        bifrost_job_free(jobs[i]);
    }
    CHECK(dropped >= 1, "policy drop drops: %d", dropped);
    (void)noop_cb;
}

static void test_stream(bifrost_gateway *gw) {
    bifrost_stream *s = NULL;
    char *err = NULL, *chunk = NULL;
    bifrost_status st = bifrost_stream_open(gw, REQ("mock1/x", ", \"mock\": {\"stream_chunks\": 3}"), &s, &err);
    CHECK_ST(st, BIFROST_OK, err);
    int n = 0, finished = 0;
    for (;;) {
        st = bifrost_stream_next(s, &chunk, &err);
        CHECK_ST(st, BIFROST_OK, err);
        if (st != BIFROST_OK || chunk == NULL) break;
        CHECK(strstr(chunk, "chat.completion.chunk") != NULL, "chunk %s", chunk);
        if (strstr(chunk, "\"finish_reason\":\"stop\"")) finished = 1;
        n++;
        t_clear(&chunk);
        if (n > 50) break;
    }
    CHECK(n >= 3, "chunks: %d", n);
    CHECK(finished, "last chunk finishes");
    /* After the end: OK + NULL again. */
    CHECK_ST(bifrost_stream_next(s, &chunk, &err), BIFROST_OK, err);
    CHECK(chunk == NULL, "still ended");
    bifrost_stream_free(s);

    /* Free before the end. */
    CHECK_ST(bifrost_stream_open(gw, REQ("mock1/x", ""), &s, &err), BIFROST_OK, err);
    bifrost_stream_free(s);

    /* Errors. */
    s = (bifrost_stream *)0x1;
    CHECK_ST(bifrost_stream_open(gw, REQ("nope/x", ""), &s, &err), BIFROST_UNKNOWN_PROVIDER, err);
    CHECK(s == NULL, "no stream");
    t_clear(&err);
    CHECK_ST(bifrost_stream_open(gw, REQ("mock1/x", ", \"mock\": {\"failure_rate\": 1.0, \"failure_status\": 500}"),
                                 &s, &err), BIFROST_PROVIDER, err);
    CHECK(err && strstr(err, "500"), "status: %s", err);
    t_clear(&err);
    CHECK_ST(bifrost_stream_open(gw, "\x80", &s, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);
    CHECK_ST(bifrost_stream_open(NULL, REQ("mock1/x", ""), &s, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);
    CHECK_ST(bifrost_stream_open(gw, NULL, &s, NULL), BIFROST_INVALID_REQUEST, NULL);
    CHECK_ST(bifrost_stream_open(gw, REQ("mock1/x", ""), NULL, NULL), BIFROST_INVALID_REQUEST, NULL);
    CHECK_ST(bifrost_stream_next(NULL, &chunk, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);
    CHECK_ST(bifrost_stream_next(NULL, NULL, NULL), BIFROST_INVALID_REQUEST, NULL);
    bifrost_stream_free(NULL);
}

static void test_introspection(bifrost_gateway *gw) {
    char *out = NULL, *err = NULL;
    CHECK_ST(bifrost_stats_json(gw, &out), BIFROST_OK, NULL);
    CHECK(out && strstr(out, "\"providers\"") && strstr(out, "\"object_pools\"") && strstr(out, "\"runtime\""),
          "stats %s", out);
    if (out) {
        t_check_invariant(out, "mock1");
        t_check_invariant(out, "tiny");
        t_check_invariant(out, "droppy");
    }
    t_clear(&out);
    CHECK_ST(bifrost_health_json(gw, &out), BIFROST_OK, NULL);
    CHECK(out && strstr(out, "\"status\"") && strstr(out, "\"mock1\""), "health %s", out);
    t_clear(&out);
    CHECK_ST(bifrost_prometheus(gw, &out), BIFROST_OK, NULL);
    CHECK(out && strstr(out, "bifrost_jobs_submitted_total"), "prometheus");
    t_clear(&out);
    CHECK_ST(bifrost_stats_json(NULL, &out), BIFROST_INVALID_REQUEST, NULL);
    CHECK_ST(bifrost_stats_json(gw, NULL), BIFROST_INVALID_REQUEST, NULL);
    CHECK_ST(bifrost_health_json(NULL, &out), BIFROST_INVALID_REQUEST, NULL);
    CHECK_ST(bifrost_health_json(gw, NULL), BIFROST_INVALID_REQUEST, NULL);
    CHECK_ST(bifrost_prometheus(NULL, &out), BIFROST_INVALID_REQUEST, NULL);
    CHECK_ST(bifrost_prometheus(gw, NULL), BIFROST_INVALID_REQUEST, NULL);
    CHECK(out == NULL, "nothing produced");

    CHECK_ST(bifrost_optimal_concurrency(50, 2, 0.1, &out, &err), BIFROST_OK, err);
    CHECK(out && strstr(out, "\"concurrency\":110"), "sizing %s", out);
    t_clear(&out);
    CHECK_ST(bifrost_optimal_concurrency(-1, 2, 0.1, &out, &err), BIFROST_INVALID_REQUEST, err);
    CHECK(err && strstr(err, "rate_limit_rps"), "message %s", err);
    t_clear(&err);
    CHECK_ST(bifrost_optimal_concurrency(1, 1, 0, NULL, NULL), BIFROST_INVALID_REQUEST, NULL);
    bifrost_string_free(NULL);
}

/* A request's fallbacks run on bifrost's runtime: with no C thread in
 * bifrost_job_wait or bifrost_job_poll, the chain still reaches the
 * fallback provider and completes there; the job then has its outcome. */
/* The fallback scenario of tests/python/test_agreement.py and
 * tests/node/agreement.test.js. */
static void test_fallback_advances_without_waiting(void) {
    static const char *cfg =
        "{\"providers\": {\"bad\": {\"kind\": \"mock\", \"mock\": {\"failure_rate\": 1.0}},"
        " \"good\": {\"kind\": \"mock\"}}}";
    bifrost_gateway *gw = NULL;
    char *err = NULL, *resp = NULL;
    CHECK_ST(bifrost_gateway_new(cfg, &gw, &err), BIFROST_OK, err);
    if (!gw) return;
    bifrost_job *job = NULL;
    CHECK_ST(bifrost_submit(gw, REQ("bad/m", ", \"fallbacks\": [\"good/m\"]"), &job, &err), BIFROST_OK, err);
    long long completed = 0;
    for (int i = 0; i < 6000 && completed < 1; i++) { /* up to 60 s: a liveness bound */
        char *stats = NULL;
        if (bifrost_stats_json(gw, &stats) != BIFROST_OK) break;
        const char *good = t_find_obj(stats, "good");
        const char *jobs = good ? t_find_obj(good, "jobs") : NULL;
        completed = jobs ? t_num(jobs, "completed") : -1;
        bifrost_string_free(stats);
        if (completed < 1) t_sleep_ms(10);
    }
    CHECK(completed == 1, "the fallback completed while nobody waited (completed=%lld)", completed);
    CHECK_ST(bifrost_job_wait(job, 0, &resp, &err), BIFROST_OK, err);
    CHECK(resp && strstr(resp, "\"fallback_index\":1"), "served by the fallback: %s", t_or_dash(resp));
    t_clear(&resp);
    t_clear(&err);
    bifrost_job_free(job);
    char *report = NULL;
    CHECK_ST(bifrost_gateway_shutdown(gw, 2000, &report), BIFROST_OK, NULL);
    bifrost_string_free(report);
    bifrost_gateway_free(gw);
}

/* Jobs of `provider` in a stats snapshot: {submitted, cancelled, queued, running, completed, failed}. */
static void agreement_jobs(bifrost_gateway *gw, const char *provider, long long out[6]) {
    static const char *keys[6] = {"submitted", "cancelled", "queued", "running", "completed", "failed"};
    char *stats = NULL;
    for (int i = 0; i < 6; i++) out[i] = -1;
    if (bifrost_stats_json(gw, &stats) != BIFROST_OK) return;
    const char *p = t_find_obj(stats, provider);
    const char *jobs = p ? t_find_obj(p, "jobs") : NULL;
    for (int i = 0; i < 6 && jobs; i++) out[i] = t_num(jobs, keys[i]);
    bifrost_string_free(stats);
}

/* The cancel scenario of tests/python/test_agreement.py and
 * tests/node/agreement.test.js, with the same expected answers. */
static void test_agreement_cancel(void) {
    static const char *cfg =
        "{\"providers\": {\"slow\": {\"kind\": \"mock\", \"mock\": {\"latency_ms\": 600000},"
        " \"concurrency_and_buffer_size\": {\"concurrency\": 1, \"buffer_size\": 8}},"
        " \"fast\": {\"kind\": \"mock\"}}}";
    bifrost_gateway *gw = NULL;
    char *err = NULL, *resp = NULL;
    CHECK_ST(bifrost_gateway_new(cfg, &gw, &err), BIFROST_OK, err);
    if (!gw) return;
    bifrost_job *running = NULL, *queued = NULL, *done = NULL;
    CHECK_ST(bifrost_submit(gw, REQ("slow/m", ""), &running, &err), BIFROST_OK, err);
    CHECK_ST(bifrost_submit(gw, REQ("slow/m", ""), &queued, &err), BIFROST_OK, err);
    bool did = false;
    CHECK_ST(bifrost_job_cancel(queued, &did), BIFROST_OK, NULL);
    CHECK(did, "the first cancel of a queued job answers true");
    CHECK_ST(bifrost_job_cancel(queued, &did), BIFROST_OK, NULL);
    CHECK(!did, "a second cancel finds the job over");
    CHECK_ST(bifrost_job_wait(queued, 60000, &resp, &err), BIFROST_CANCELLED, NULL);
    t_clear(&err);
    CHECK_ST(bifrost_job_cancel(running, &did), BIFROST_OK, NULL);
    CHECK(did, "cancelling the running job answers true");
    CHECK_ST(bifrost_job_wait(running, 60000, &resp, &err), BIFROST_CANCELLED, NULL);
    t_clear(&err);
    CHECK_ST(bifrost_submit(gw, REQ("fast/m", ""), &done, &err), BIFROST_OK, err);
    CHECK_ST(bifrost_job_wait(done, 60000, &resp, &err), BIFROST_OK, err);
    t_clear(&resp);
    CHECK_ST(bifrost_job_cancel(done, &did), BIFROST_OK, NULL);
    CHECK(!did, "a finished job cannot be cancelled");
    long long slow[6], fast[6];
    agreement_jobs(gw, "slow", slow);
    agreement_jobs(gw, "fast", fast);
    CHECK(slow[0] == 2 && slow[1] == 2 && slow[2] == 0 && slow[3] == 0,
          "slow: submitted %lld cancelled %lld queued %lld running %lld", slow[0], slow[1], slow[2], slow[3]);
    CHECK(fast[4] == 1, "fast: completed %lld", fast[4]);
    bifrost_job_free(running);
    bifrost_job_free(queued);
    bifrost_job_free(done);
    char *report = NULL;
    CHECK_ST(bifrost_gateway_shutdown(gw, 2000, &report), BIFROST_OK, NULL);
    bifrost_string_free(report);
    bifrost_gateway_free(gw);
}

/* A provider's `limits`: the same cases as tests/python/test_limits.py and
 * tests/node/limits.test.js. */
static void test_limits(void) {
    static const char *cfg =
        "{\"providers\": {\"p\": {\"kind\": \"mock\", \"limits\": {\"requests_per_minute\": 2}}}}";
    bifrost_gateway *gw = NULL;
    char *err = NULL, *resp = NULL, *stats = NULL;
    CHECK_ST(bifrost_gateway_new(cfg, &gw, &err), BIFROST_OK, err);
    if (!gw) return;
    for (int i = 0; i < 2; i++) {
        bifrost_job *job = NULL;
        CHECK_ST(bifrost_submit(gw, REQ("p/m", ""), &job, &err), BIFROST_OK, err);
        CHECK_ST(bifrost_job_wait(job, 60000, &resp, &err), BIFROST_OK, err);
        t_clear(&resp);
        bifrost_job_free(job);
    }
    bifrost_job *late = NULL;
    CHECK_ST(bifrost_submit(gw, REQ("p/m", ", \"timeout_ms\": 5000"), &late, &err), BIFROST_OK, err);
    CHECK_ST(bifrost_job_wait(late, 60000, &resp, &err), BIFROST_RATE_LIMITED, NULL);
    CHECK(err && strstr(err, "requests_per_minute"), "names the limit: %s", t_or_dash(err));
    t_clear(&err);
    bifrost_job_free(late);
    CHECK_ST(bifrost_stats_json(gw, &stats), BIFROST_OK, NULL);
    const char *p = stats ? t_find_obj(stats, "p") : NULL;
    const char *jobs = p ? t_find_obj(p, "jobs") : NULL;
    CHECK(jobs && t_num(jobs, "rate_limited") == 1 && t_num(jobs, "completed") == 2, "jobs: %s", t_or_dash(stats));
    const char *limits = p ? t_find_obj(p, "limits") : NULL;
    const char *bucket = limits ? t_find_obj(limits, "requests") : NULL;
    CHECK(bucket && t_num(bucket, "limit") == 2 && t_num(bucket, "remaining") == 0, "bucket: %s", t_or_dash(stats));
    bifrost_string_free(stats);
    char *prom = NULL;
    CHECK_ST(bifrost_prometheus(gw, &prom), BIFROST_OK, NULL);
    CHECK(prom && strstr(prom, "bifrost_ratelimit_rate_limited_total{provider=\"p\",bucket=\"requests\"} 1"),
          "prometheus: %s", t_or_dash(prom));
    bifrost_string_free(prom);
    char *report = NULL;
    CHECK_ST(bifrost_gateway_shutdown(gw, 2000, &report), BIFROST_OK, NULL);
    bifrost_string_free(report);
    bifrost_gateway_free(gw);
}

/* `limits_store` from C: a bad section is a CONFIG error naming the key,
 * and the URL (a credential) appears in no message. (The unreachable-Redis
 * cases run in tests/python/test_limits.py and tests/node/limits.test.js:
 * under valgrind, the store's reconnecting task would still hold its
 * connection future when this process exits; see the issue 17 note.) */
static void test_limits_store(void) {
    bifrost_gateway *gw = NULL;
    char *err = NULL;
    CHECK_ST(bifrost_gateway_new("{\"limits_store\": {\"kind\": \"redis\", \"url\": \"redis://:hunter2@127.0.0.1:1/0\"},"
                                 " \"providers\": {\"p\": {\"kind\": \"mock\", \"limits\": {\"requests_per_minute\": 5}}}}",
                                 &gw, &err),
             BIFROST_CONFIG, NULL);
    CHECK(err && strstr(err, "limits_store.fleet_size") && !strstr(err, "hunter2"), "config error: %s", t_or_dash(err));
    t_clear(&err);
    CHECK_ST(bifrost_gateway_new("{\"limits_store\": {\"kind\": \"memory\", \"url\": \"redis://:hunter2@h\"},"
                                 " \"providers\": {\"p\": {\"kind\": \"mock\"}}}",
                                 &gw, &err),
             BIFROST_CONFIG, NULL);
    CHECK(err && strstr(err, "limits_store.url") && !strstr(err, "hunter2"), "config error: %s", t_or_dash(err));
    t_clear(&err);
    CHECK(gw == NULL, "no gateway from a bad config");
}

static void test_shutdown(void) {
    bifrost_gateway *gw = NULL;
    char *err = NULL, *report = NULL, *resp = NULL;
    CHECK_ST(bifrost_gateway_new(CONFIG, &gw, &err), BIFROST_OK, err);
    bifrost_job *slow = NULL, *quick = NULL;
    CHECK_ST(bifrost_submit(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 10000}"), &slow, &err), BIFROST_OK, err);
    CHECK_ST(bifrost_submit(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 10}"), &quick, &err), BIFROST_OK, err);
    static struct cb_state cb;
    memset(&cb, 0, sizeof cb);
    CHECK_ST(bifrost_submit_cb(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 10000}"), on_done, &cb, &err),
             BIFROST_OK, err);
    CHECK_ST(bifrost_gateway_shutdown(gw, 200, &report), BIFROST_OK, NULL);
    CHECK(report && strstr(report, "\"aborted\":2") && strstr(report, "\"completed\":1"), "report %s", report);
    t_clear(&report);
    CHECK_ST(bifrost_job_wait(slow, BIFROST_WAIT_FOREVER, &resp, &err), BIFROST_SHUTDOWN, err);
    t_clear(&err);
    CHECK_ST(bifrost_job_wait(quick, BIFROST_WAIT_FOREVER, &resp, &err), BIFROST_OK, err);
    t_clear(&resp);
    wait_calls(&cb, 1);
    CHECK(atomic_load(&cb.calls) == 1, "callback once");
    CHECK_ST(cb.status, BIFROST_SHUTDOWN, cb.error);
    /* Double shutdown: same report; NULL report is fine. */
    CHECK_ST(bifrost_gateway_shutdown(gw, 200, &report), BIFROST_OK, NULL);
    CHECK(report && strstr(report, "\"aborted\":2"), "same report %s", report);
    t_clear(&report);
    CHECK_ST(bifrost_gateway_shutdown(gw, 0, NULL), BIFROST_OK, NULL);
    bifrost_job *late = (bifrost_job *)0x1;
    CHECK_ST(bifrost_submit(gw, REQ("mock1/x", ""), &late, &err), BIFROST_SHUTDOWN, err);
    CHECK(late == NULL, "no job after shutdown");
    t_clear(&err);
    CHECK_ST(bifrost_submit_cb(gw, REQ("mock1/x", ""), on_done, &cb, &err), BIFROST_SHUTDOWN, err);
    t_clear(&err);
    CHECK_ST(bifrost_stats_json(gw, &report), BIFROST_OK, NULL);
    if (report) t_check_invariant(report, "mock1");
    t_clear(&report);
    CHECK_ST(bifrost_health_json(gw, &report), BIFROST_OK, NULL);
    CHECK(report && strstr(report, "\"status\":\"shutdown\""), "health %s", report);
    t_clear(&report);
    CHECK_ST(bifrost_gateway_shutdown(NULL, 0, &report), BIFROST_INVALID_REQUEST, NULL);
    /* Free after shutdown; jobs outlive the gateway. */
    bifrost_gateway_free(gw);
    CHECK_ST(bifrost_job_poll(slow), BIFROST_SHUTDOWN, NULL);
    bifrost_job_free(slow);
    bifrost_job_free(quick);
    bifrost_gateway_free(NULL);

    /* Free without shutdown: pending jobs end SHUTDOWN, callbacks fire. */
    CHECK_ST(bifrost_gateway_new(CONFIG, &gw, &err), BIFROST_OK, err);
    memset(&cb, 0, sizeof cb);
    CHECK_ST(bifrost_submit(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 10000}"), &slow, &err), BIFROST_OK, err);
    CHECK_ST(bifrost_submit_cb(gw, REQ("mock1/x", ", \"mock\": {\"latency_ms\": 10000}"), on_done, &cb, &err),
             BIFROST_OK, err);
    bifrost_gateway_free(gw);
    CHECK_ST(bifrost_job_wait(slow, 5000, &resp, &err), BIFROST_SHUTDOWN, err);
    t_clear(&err);
    bifrost_job_free(slow);
    wait_calls(&cb, 1);
    CHECK(atomic_load(&cb.calls) == 1, "callback once after free");
    CHECK_ST(cb.status, BIFROST_SHUTDOWN, cb.error);
}

int main(void) {
    test_version_and_names();
    test_gateway_new_errors();
    bifrost_gateway *gw = NULL;
    char *err = NULL;
    bifrost_status st = bifrost_gateway_new(CONFIG, &gw, &err);
    CHECK_ST(st, BIFROST_OK, err);
    if (st != BIFROST_OK) return t_finish("test_api");
    test_submit_wait(gw);
    test_submit_errors(gw);
    test_wait_poll_cancel(gw);
    test_cancel_while_waiting(gw);
    test_callbacks(gw);
    test_policies(gw);
    test_stream(gw);
    CHECK(t_wait_idle(gw), "every job of the tests above finished");
    test_introspection(gw);
    char *report = NULL;
    CHECK_ST(bifrost_gateway_shutdown(gw, 2000, &report), BIFROST_OK, NULL);
    bifrost_string_free(report);
    bifrost_gateway_free(gw);
    test_shutdown();
    test_fallback_advances_without_waiting();
    test_agreement_cancel();
    test_limits();
    test_limits_store();
    return t_finish("test_api");
}
