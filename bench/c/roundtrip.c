/* C side of the round-trip bench: submit -> wait on the zero-latency mock,
 * through the C API (JSON request in, JSON response out, strings freed).
 * Prints one line: "c <threads> <round trips> <ns per round trip>".
 * Usage: roundtrip THREADS ROUND_TRIPS_PER_THREAD */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bifrost.h"

static const char *CONFIG =
    "{\"providers\": {\"mock\": {\"kind\": \"mock\","
    " \"concurrency_and_buffer_size\": {\"concurrency\": 64, \"buffer_size\": 4096}}}}";
static const char *REQUEST = "{\"model\": \"mock/m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";

static bifrost_gateway *gw;
static long per_thread;

static void *loop(void *arg) {
    (void)arg;
    for (long i = 0; i < per_thread; i++) {
        bifrost_job *job = NULL;
        char *resp = NULL, *err = NULL;
        if (bifrost_submit(gw, REQUEST, &job, &err) != BIFROST_OK ||
            bifrost_job_wait(job, BIFROST_WAIT_FOREVER, &resp, &err) != BIFROST_OK) {
            fprintf(stderr, "round trip failed: %s\n", err);
            exit(1);
        }
        bifrost_string_free(resp);
        bifrost_job_free(job);
    }
    return NULL;
}

static double run(int threads) {
    struct timespec a, b;
    pthread_t th[64];
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int t = 0; t < threads; t++) pthread_create(&th[t], NULL, loop, NULL);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec));
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    long n = argc > 2 ? atol(argv[2]) : 20000;
    if (threads < 1 || threads > 64) threads = 1;
    char *err = NULL;
    if (bifrost_gateway_new(CONFIG, &gw, &err) != BIFROST_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    per_thread = n / 10 + 1; /* warm-up */
    run(threads);
    per_thread = n;
    double ns = run(threads);
    printf("c %d %ld %.0f\n", threads, n * threads, ns / (double)(n * threads));
    bifrost_gateway_shutdown(gw, 1000, NULL);
    bifrost_gateway_free(gw);
    return 0;
}
