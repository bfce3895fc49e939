/* Hostile input at the C boundary (issue "Hardening", docs/architecture.md §13): JSON
 * text that is not exactly one value, duplicate keys, deep nesting, secrets
 * in the wrong place, durations at the ends of their types, and calls made
 * in a fork() child. Each case was accepted, leaked or panicked before. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define SECRET "sk-live-SECRET-0123456789abcdef"
#define REQ "{\"model\": \"m/x\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"

static bifrost_gateway *new_gateway(const char *config) {
    bifrost_gateway *gw = NULL;
    char *err = NULL;
    bifrost_status st = bifrost_gateway_new(config, &gw, &err);
    CHECK_ST(st, BIFROST_OK, err);
    t_clear(&err);
    return gw;
}

static void test_protocol_status(void) {
    CHECK(strcmp(bifrost_status_name(BIFROST_PROTOCOL), "PROTOCOL") == 0, "PROTOCOL name");
    CHECK(BIFROST_PROTOCOL == 15, "PROTOCOL is appended, numbers of the others unchanged");
    CHECK(strcmp(bifrost_status_name(BIFROST_RATE_LIMITED), "RATE_LIMITED") == 0, "RATE_LIMITED name");
    CHECK(BIFROST_RATE_LIMITED == 16, "RATE_LIMITED is appended after PROTOCOL");
}

/* Submits `request` and expects `want`; the message must contain `needle`. */
static void expect_submit(bifrost_gateway *gw, const char *request, bifrost_status want, const char *needle) {
    bifrost_job *job = (bifrost_job *)0x1;
    char *err = NULL;
    bifrost_status st = bifrost_submit(gw, request, &job, &err);
    CHECK_ST(st, want, err);
    if (want != BIFROST_OK) CHECK(job == NULL, "job_out cleared");
    if (needle) CHECK(err && strstr(err, needle), "message has '%s': %s", needle, t_or_dash(err));
    t_clear(&err);
    if (st == BIFROST_OK) bifrost_job_free(job);
}

static char *deep_request(size_t depth) {
    const char *head = "{\"model\": \"m/x\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"params\": {\"p\": ";
    size_t n = strlen(head) + 2 * depth + 3;
    char *s = malloc(n);
    if (!s) return NULL;
    char *p = s + sprintf(s, "%s", head);
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    strcpy(p + 2 * depth, "}}");
    return s;
}

static void test_strict_json(bifrost_gateway *gw) {
    expect_submit(gw, REQ, BIFROST_OK, NULL);
    expect_submit(gw, REQ " trailing", BIFROST_INVALID_REQUEST, "trailing");
    expect_submit(gw, REQ REQ, BIFROST_INVALID_REQUEST, NULL);
    expect_submit(gw, "{\"model\": \"m/x\", \"model\": \"m/y\", \"messages\": []}", BIFROST_INVALID_REQUEST, "duplicate");
    expect_submit(gw,
                  "{\"model\": \"m/x\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
                  " \"params\": {\"a\": {\"b\": 1, \"b\": 2}}}",
                  BIFROST_INVALID_REQUEST, "params.a: duplicate key `b`");
    char *deep = deep_request(200000);
    CHECK(deep != NULL, "malloc");
    if (deep) {
        expect_submit(gw, deep, BIFROST_INVALID_REQUEST, "nest");
        bifrost_stream *s = (bifrost_stream *)0x1;
        char *err = NULL;
        CHECK_ST(bifrost_stream_open(gw, deep, &s, &err), BIFROST_INVALID_REQUEST, err);
        CHECK(s == NULL, "stream_out cleared");
        t_clear(&err);
        free(deep);
    }
    /* Nesting within the bound is fine. */
    deep = deep_request(50);
    if (deep) {
        expect_submit(gw, deep, BIFROST_OK, NULL);
        free(deep);
    }
}

static void expect_config(const char *config, const char *needle) {
    bifrost_gateway *gw = (bifrost_gateway *)0x1;
    char *err = NULL;
    bifrost_status st = bifrost_gateway_new(config, &gw, &err);
    CHECK_ST(st, BIFROST_CONFIG, err);
    CHECK(gw == NULL, "gateway_out cleared");
    CHECK(err != NULL, "a message");
    if (err) {
        CHECK(strstr(err, "SECRET") == NULL, "no secret in: %s", err);
        if (needle) CHECK(strstr(err, needle), "message has '%s': %s", needle, err);
    }
    t_clear(&err);
}

static void test_configs(void) {
    expect_config("{\"providers\": {\"a\": {\"kind\": \"mock\"}, \"a\": {\"kind\": \"mock\"}}}", "duplicate");
    expect_config("{\"providers\": {\"a\": {\"kind\": \"mock\"}}} {}", NULL);
    /* A key without "models" and no "version": Bifrost's versions disagree. */
    expect_config("{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"sk-x\"}]}}}",
                  "providers.openai.keys[0].models: missing");
    /* A key put where it does not belong is never quoted. */
    expect_config("{\"providers\": {\"o\": {\"kind\": \"openai\", \"keys\": \"" SECRET "\"}}}", "keys");
    expect_config("{\"providers\": {\"o\": {\"kind\": \"openai\", \"keys\": [\"" SECRET "\"]}}}", "keys");
    expect_config("{\"providers\": {\"o\": {\"kind\": \"openai\", \"keys\": [{\"value\": \"k-123456\", \"models\": [\"*\"]}],"
                  " \"network_config\": {\"extra_headers\": \"" SECRET "\"}}}}",
                  "extra_headers");
    expect_config("{\"providers\": {\"o\": {\"kind\": \"openai\", \"keys\": [{\"value\": \"k-123456\", \"models\": [\"*\"]}],"
                  " \"network_config\": {\"base_url\": \"" SECRET "\"}}}}",
                  "base_url");
    expect_config("{\"providers\": {\"o\": {\"kind\": \"" SECRET "\"}}}", "kind");
    expect_config("{\"providers\": {\"o\": {\"kind\": \"mock\", \"queue\": {\"policy\": \"" SECRET "\"}}}}", "policy");
}

static void test_extreme_durations(void) {
    bifrost_gateway *gw = new_gateway("{\"providers\": {\"m\": {\"kind\": \"mock\"}}}");
    if (!gw) return;
    bifrost_job *job = NULL;
    char *err = NULL, *resp = NULL;
    CHECK_ST(bifrost_submit(gw, REQ, &job, &err), BIFROST_OK, err);
    t_clear(&err);
    if (job) {
        /* The largest wait is a year, not an overflow. */
        CHECK_ST(bifrost_job_wait(job, INT64_MAX, &resp, &err), BIFROST_OK, err);
        t_clear(&resp);
        t_clear(&err);
        CHECK_ST(bifrost_job_wait(job, INT64_MIN, &resp, &err), BIFROST_OK, err);
        t_clear(&resp);
        t_clear(&err);
        bifrost_job_free(job);
    }
    char *report = NULL;
    CHECK_ST(bifrost_gateway_shutdown(gw, UINT64_MAX, &report), BIFROST_OK, NULL);
    CHECK(report && strstr(report, "\"aborted\":0"), "report %s", t_or_dash(report));
    bifrost_string_free(report);
    bifrost_gateway_free(gw);

    char *sizing = NULL;
    CHECK_ST(bifrost_optimal_concurrency(1e308, 1e308, 0.5, &sizing, &err), BIFROST_OK, err);
    CHECK(sizing && strstr(sizing, "\"concurrency\":10000"), "clamped: %s", t_or_dash(sizing));
    t_clear(&sizing);
    t_clear(&err);
    CHECK_ST(bifrost_optimal_concurrency(NAN, 1.0, 0.0, &sizing, &err), BIFROST_INVALID_REQUEST, err);
    t_clear(&err);
}

static void on_done(void *user_data, bifrost_status status, const char *response_json, const char *error) {
    (void)user_data;
    (void)status;
    (void)response_json;
    (void)error;
}

/* In a fork() child nothing can run (the runtime's threads stayed in the
 * parent): every call that would start work is INTERNAL, none hangs. */
static void test_fork_child(void) {
    /* Under valgrind a fork() child "loses" what only the parent's other
     * threads referenced; run.sh sets this there (the plain and ASan runs
     * cover the fork). */
    if (getenv("BIFROST_C_SKIP_FORK")) {
        printf("test_fork_child: skipped under valgrind\n");
        return;
    }
    bifrost_gateway *gw = new_gateway("{\"providers\": {\"m\": {\"kind\": \"mock\"}}}");
    if (!gw) return;
    expect_submit(gw, REQ, BIFROST_OK, NULL); /* the runtime is up in the parent */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        bifrost_job *job = (bifrost_job *)0x1;
        char *err = NULL;
        if (bifrost_submit(gw, REQ, &job, &err) != BIFROST_INTERNAL || job != NULL || !err || !strstr(err, "fork"))
            bad |= 1;
        bifrost_string_free(err);
        err = NULL;
        if (bifrost_submit_cb(gw, REQ, on_done, NULL, &err) != BIFROST_INTERNAL) bad |= 2;
        bifrost_string_free(err);
        err = NULL;
        bifrost_stream *s = NULL;
        if (bifrost_stream_open(gw, REQ, &s, &err) != BIFROST_INTERNAL || s != NULL) bad |= 4;
        bifrost_string_free(err);
        _exit(bad);
    }
    CHECK(pid > 0, "fork");
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: exit %d (bits: 1 submit, 2 submit_cb, 4 stream_open)",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    /* The parent is unaffected. */
    expect_submit(gw, REQ, BIFROST_OK, NULL);
    char *report = NULL;
    CHECK_ST(bifrost_gateway_shutdown(gw, 5000, &report), BIFROST_OK, NULL);
    bifrost_string_free(report);
    bifrost_gateway_free(gw);
}

int main(void) {
    test_protocol_status();
    bifrost_gateway *gw = new_gateway("{\"providers\": {\"m\": {\"kind\": \"mock\"}}}");
    if (gw) {
        test_strict_json(gw);
        char *report = NULL;
        CHECK_ST(bifrost_gateway_shutdown(gw, 5000, &report), BIFROST_OK, NULL);
        bifrost_string_free(report);
        bifrost_gateway_free(gw);
    }
    test_configs();
    test_extreme_durations();
    test_fork_child();
    return t_finish("test_hardening");
}
