/* bifrost from C: 8 threads submit requests with callbacks to two mock
 * providers (one of them flaky), the main thread shows progress, then
 * prints the per-provider stats and the full stats JSON.
 *
 *   bash examples/c/run.sh            # builds libbifrost (release) and this demo
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bifrost.h"

#define THREADS 8
#define PER_THREAD 1000

static const char *CONFIG =
    "{\"providers\": {"
    " \"fast\": {\"kind\": \"mock\", \"mock\": {\"latency_ms\": 2, \"jitter_ms\": 2},"
    "          \"concurrency_and_buffer_size\": {\"concurrency\": 64, \"buffer_size\": 512}},"
    " \"flaky\": {\"kind\": \"mock\", \"mock\": {\"latency_ms\": 10, \"jitter_ms\": 5, \"failure_rate\": 0.05},"
    "          \"concurrency_and_buffer_size\": {\"concurrency\": 32, \"buffer_size\": 256}}}}";

static bifrost_gateway *gw;
static atomic_int outcomes[BIFROST_PENDING + 1];
static atomic_int done, accepted;

/* Runs on a bifrost runtime thread: count and return, never block. */
static void on_done(void *user_data, bifrost_status status, const char *response_json, const char *error) {
    (void)user_data;
    (void)response_json;
    (void)error;
    atomic_fetch_add(&outcomes[status], 1);
    atomic_fetch_add(&done, 1);
}

static void *submitter(void *arg) {
    int t = (int)(intptr_t)arg;
    char req[256];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(req, sizeof req,
                 "{\"model\": \"%s/demo\", \"messages\": [{\"role\": \"user\", \"content\": \"thread %d request %d\"}]}",
                 i % 4 == 0 ? "flaky" : "fast", t, i);
        char *err = NULL;
        bifrost_status st = bifrost_submit_cb(gw, req, on_done, NULL, &err);
        if (st == BIFROST_OK) {
            atomic_fetch_add(&accepted, 1);
        } else {
            fprintf(stderr, "submit refused: %s: %s\n", bifrost_status_name(st), err);
            bifrost_string_free(err);
        }
    }
    return NULL;
}

static long long num(const char *obj, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(obj, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

int main(void) {
    char *err = NULL;
    if (bifrost_gateway_new(CONFIG, &gw, &err) != BIFROST_OK) {
        fprintf(stderr, "bifrost_gateway_new: %s\n", err);
        bifrost_string_free(err);
        return 1;
    }
    printf("bifrost %s: %d threads x %d requests with callbacks\n", bifrost_version(), THREADS, PER_THREAD);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, submitter, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    while (atomic_load(&done) < atomic_load(&accepted)) {
        printf("\r  %6d / %d done", atomic_load(&done), atomic_load(&accepted));
        fflush(stdout);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("\r  %6d / %d done in %.2f s (%.0f req/s)\n", atomic_load(&done), atomic_load(&accepted), secs,
           atomic_load(&done) / secs);
    for (int s = 0; s <= BIFROST_PENDING; s++)
        if (atomic_load(&outcomes[s])) printf("  %-16s %6d\n", bifrost_status_name(s), atomic_load(&outcomes[s]));

    char *stats = NULL;
    bifrost_stats_json(gw, &stats);
    printf("\n  %-8s %9s %9s %7s %7s %11s %11s\n", "provider", "submitted", "completed", "failed", "workers",
           "p50 proc us", "p99 proc us");
    const char *names[] = {"fast", "flaky"};
    for (int i = 0; i < 2; i++) {
        char key[32];
        snprintf(key, sizeof key, "\"%s\":{", names[i]);
        const char *prov = strstr(stats, key);
        const char *jobs = prov ? strstr(prov, "\"jobs\":{") : NULL;
        const char *workers = prov ? strstr(prov, "\"workers\":{") : NULL;
        const char *proc = prov ? strstr(prov, "\"processing\":{") : NULL;
        if (!jobs || !workers || !proc) continue;
        printf("  %-8s %9lld %9lld %7lld %7lld %11lld %11lld\n", names[i], num(jobs, "submitted"),
               num(jobs, "completed"), num(jobs, "failed"), num(workers, "total"), num(proc, "p50"), num(proc, "p99"));
    }
    printf("\nstats JSON:\n%s\n", stats);
    bifrost_string_free(stats);

    char *report = NULL;
    bifrost_gateway_shutdown(gw, 5000, &report);
    printf("\nshutdown: %s\n", report);
    bifrost_string_free(report);
    bifrost_gateway_free(gw);
    return 0;
}
