/* The C API against the bifrost-mock HTTP server (OpenAI protocol over
 * loopback): unary, callbacks, streams, provider errors (the HTTP status in
 * the message), a stream cut off mid-way, a request deadline, and a
 * network error. Usage: test_http PORT */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

static char config[1024];

#define REQ(model, extra) \
    "{\"model\": \"" model "\", \"messages\": [{\"role\": \"user\", \"content\": \"hello http\"}]" extra "}"

static atomic_int cb_calls;
static bifrost_status cb_status;
static char cb_text[2048];
static void on_done(void *u, bifrost_status status, const char *response_json, const char *error) {
    (void)u;
    cb_status = status;
    snprintf(cb_text, sizeof cb_text, "%s", response_json ? response_json : error);
    atomic_fetch_add(&cb_calls, 1);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    snprintf(config, sizeof config,
             "{\"providers\": {"
             " \"oai\": {\"kind\": \"openai\", \"keys\": [{\"value\": \"mock-key\", \"models\": [\"*\"]}],"
             "   \"network_config\": {\"base_url\": \"http://127.0.0.1:%s/v1\", \"max_retries\": 0}},"
             " \"badkey\": {\"kind\": \"openai\", \"keys\": [{\"value\": \"wrong-key\", \"models\": [\"*\"]}],"
             "   \"network_config\": {\"base_url\": \"http://127.0.0.1:%s/v1\", \"max_retries\": 0}},"
             " \"down\": {\"kind\": \"openai\", \"keys\": [{\"value\": \"mock-key\", \"models\": [\"*\"]}],"
             "   \"network_config\": {\"base_url\": \"http://127.0.0.1:1/v1\", \"max_retries\": 0}}}}",
             argv[1], argv[1]);
    bifrost_gateway *gw = NULL;
    char *err = NULL, *resp = NULL, *chunk = NULL;
    bifrost_status st = bifrost_gateway_new(config, &gw, &err);
    CHECK_ST(st, BIFROST_OK, err);
    if (st != BIFROST_OK) return t_finish("test_http");

    bifrost_job *job = NULL;
    CHECK_ST(bifrost_submit(gw, REQ("oai/gpt-4o-mini", ", \"params\": {\"temperature\": 0.2}"), &job, &err),
             BIFROST_OK, err);
    st = bifrost_job_wait(job, 20000, &resp, &err);
    CHECK_ST(st, BIFROST_OK, err);
    CHECK(resp && strstr(resp, "echo: hello http") && strstr(resp, "\"key_id\":\"oai#0\""), "response %s", resp);
    t_clear(&resp);
    bifrost_job_free(job);

    /* Provider error: the HTTP status is in the message. */
    CHECK_ST(bifrost_submit(gw, REQ("oai/gpt-4o~fail_status=503", ""), &job, &err), BIFROST_OK, err);
    st = bifrost_job_wait(job, 20000, &resp, &err);
    CHECK_ST(st, BIFROST_PROVIDER, err);
    CHECK(err && strstr(err, "503") && strstr(err, "oai"), "message %s", err);
    t_clear(&err);
    bifrost_job_free(job);

    /* Wrong key: 401. */
    CHECK_ST(bifrost_submit(gw, REQ("badkey/gpt-4o", ""), &job, &err), BIFROST_OK, err);
    st = bifrost_job_wait(job, 20000, &resp, &err);
    CHECK_ST(st, BIFROST_PROVIDER, err);
    CHECK(err && strstr(err, "401"), "message %s", err);
    t_clear(&err);
    bifrost_job_free(job);

    /* Nothing listening: NETWORK. */
    CHECK_ST(bifrost_submit(gw, REQ("down/gpt-4o", ""), &job, &err), BIFROST_OK, err);
    st = bifrost_job_wait(job, 20000, &resp, &err);
    CHECK_ST(st, BIFROST_NETWORK, err);
    t_clear(&err);
    bifrost_job_free(job);

    /* Deadline while the server is slow; cancel of a slow HTTP call. */
    CHECK_ST(bifrost_submit(gw, REQ("oai/gpt-4o~latency_ms=3000", ", \"timeout_ms\": 100"), &job, &err),
             BIFROST_OK, err);
    CHECK_ST(bifrost_job_wait(job, 20000, &resp, &err), BIFROST_TIMEOUT, err);
    t_clear(&err);
    bifrost_job_free(job);
    CHECK_ST(bifrost_submit(gw, REQ("oai/gpt-4o~latency_ms=3000", ""), &job, &err), BIFROST_OK, err);
    CHECK_ST(bifrost_job_wait(job, 30, &resp, &err), BIFROST_PENDING, err);
    bool cancelled = false;
    bifrost_job_cancel(job, &cancelled);
    CHECK(cancelled, "cancelled");
    CHECK_ST(bifrost_job_wait(job, 20000, &resp, &err), BIFROST_CANCELLED, err);
    t_clear(&err);
    bifrost_job_free(job);

    /* Callback over HTTP. */
    CHECK_ST(bifrost_submit_cb(gw, REQ("oai/gpt-4o", ""), on_done, NULL, &err), BIFROST_OK, err);
    for (int i = 0; i < 2000 && atomic_load(&cb_calls) < 1; i++) t_sleep_ms(10);
    CHECK(atomic_load(&cb_calls) == 1, "called once");
    CHECK_ST(cb_status, BIFROST_OK, cb_text);
    CHECK(strstr(cb_text, "echo: hello http") != NULL, "callback response %s", cb_text);

    /* Stream: chunks, then OK + NULL. */
    bifrost_stream *s = NULL;
    CHECK_ST(bifrost_stream_open(gw, REQ("oai/gpt-4o~chunks=3", ""), &s, &err), BIFROST_OK, err);
    int n = 0;
    char text[512] = "";
    while ((st = bifrost_stream_next(s, &chunk, &err)) == BIFROST_OK && chunk) {
        CHECK(strstr(chunk, "chat.completion.chunk") != NULL, "chunk %s", chunk);
        n++;
        t_clear(&chunk);
    }
    CHECK_ST(st, BIFROST_OK, err);
    CHECK(n >= 3, "chunks %d", n);
    (void)text;
    bifrost_stream_free(s);

    /* A stream cut off by the server is an error, never a silent end. */
    CHECK_ST(bifrost_stream_open(gw, REQ("oai/gpt-4o~chunks=6&truncate_after=2", ""), &s, &err), BIFROST_OK, err);
    while ((st = bifrost_stream_next(s, &chunk, &err)) == BIFROST_OK && chunk) t_clear(&chunk);
    CHECK(st != BIFROST_OK, "truncated stream ends with an error, got %s", bifrost_status_name(st));
    CHECK(err != NULL, "with a message");
    t_clear(&err);
    bifrost_stream_free(s);

    /* Collecting: a cut stream with a fallback restarts there (a marker,
       then the whole answer), and the accumulated answer holds only it. */
    CHECK_ST(bifrost_stream_open(gw, REQ("oai/gpt-4o~chunks=6&truncate_after=2", ", \"fallbacks\": [\"oai/gpt-4o\"]"), &s, &err),
             BIFROST_OK, err);
    st = bifrost_stream_collect(s, &resp, &err);
    CHECK_ST(st, BIFROST_OK, err);
    CHECK(resp && strstr(resp, "\"content\":\"echo: hello http\"") && strstr(resp, "\"restarts\":1")
              && strstr(resp, "\"object\":\"chat.completion\""),
          "collected %s", resp);
    t_clear(&resp);
    /* Collected already: an empty answer, no error. */
    CHECK_ST(bifrost_stream_collect(s, &resp, &err), BIFROST_OK, err);
    CHECK(resp && strstr(resp, "\"choices\":[]"), "empty %s", resp);
    t_clear(&resp);
    bifrost_stream_free(s);
    /* With nothing to recover with, the error comes with the answer so far. */
    CHECK_ST(bifrost_stream_open(gw, REQ("oai/gpt-4o~chunks=6&truncate_after=2", ""), &s, &err), BIFROST_OK, err);
    st = bifrost_stream_collect(s, &resp, &err);
    CHECK(st == BIFROST_PROTOCOL, "cut stream: %s", bifrost_status_name(st));
    CHECK(err && strstr(err, "characters of the answer"), "message %s", err);
    CHECK(resp && strstr(resp, "\"content\":\"echo") && !strstr(resp, "echo: hello http"), "partial %s", resp);
    t_clear(&resp);
    t_clear(&err);
    bifrost_stream_free(s);
    CHECK_ST(bifrost_stream_collect(NULL, &resp, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);

    /* Stream refused by the provider. */
    s = NULL;
    CHECK_ST(bifrost_stream_open(gw, REQ("oai/gpt-4o~fail_status=429", ""), &s, &err), BIFROST_PROVIDER, err);
    CHECK(err && strstr(err, "429"), "message %s", err);
    CHECK(s == NULL, "no stream");
    t_clear(&err);

    char *stats = NULL;
    CHECK_ST(bifrost_stats_json(gw, &stats), BIFROST_OK, NULL);
    t_check_invariant(stats, "oai");
    t_clear(&stats);
    CHECK_ST(bifrost_gateway_shutdown(gw, 5000, NULL), BIFROST_OK, NULL);
    bifrost_gateway_free(gw);
    /* Aborted stream readers and the HTTP client's connection tasks are
     * dropped by the runtime's threads moments after the calls above return;
     * under valgrind "moments" can be long. Let them finish before exit so
     * valgrind sees no object still in use (the runtime itself lives on). */
    t_sleep_ms(1000);
    return t_finish("test_http");
}
