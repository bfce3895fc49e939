/* C cells of issue 8's benchmark: bifrost through the C API (libbifrost)
 * against a running bifrost-mock over HTTP, with bifrost_submit_cb
 * callbacks so no thread ever blocks on a job.
 *
 *   http --base http://127.0.0.1:PORT --latency-ms 50 [--rates 1000,3000]
 *        [--closed 64,256,1024] [--seconds 5] [--warmup 1] [--mock-pid PID]
 *
 * Open loop (--rates): the main thread sleeps (clock_nanosleep, absolute
 * deadlines) until each send time t0 + i/rate and submits request i,
 * whatever the completions do; the callback stamps the completion. Latency
 * runs from the *scheduled* send time, minus the mock's configured latency
 * (--latency-ms): "added" µs; "lag" is how late the submit call started.
 * Requests scheduled during the warm-up are sent but not counted; after the
 * last send, stragglers get 2 s + 2 x latency, the rest are "unfinished".
 *
 * Closed loop (--closed N): N lanes, each resubmitting from its completion
 * callback (bifrost_submit_cb is allowed there) until the measured seconds
 * are over; requests/s and latency of the requests that ended in the
 * measured window.
 *
 * CPU is the process's user + system time (getrusage) over the measured
 * part, per completed request (and the mock's, with --mock-pid). One JSON
 * object per cell on stdout, the same fields as
 * core/examples/bench_openloop.rs. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bifrost.h"
#include "clock.h"

static const char *REQUEST =
    "{\"model\": \"openai/gpt-4o-mini\", \"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]}";

/* CPU seconds (user + system) of the mock (--mock-pid), from /proc; -1 without. */
static const char *mock_pid;

static double mock_cpu_s(void) {
    if (!mock_pid) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", mock_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / 100.0;
}

static void print_mock_cpu(double before, size_t n) {
    double after = mock_cpu_s();
    if (before < 0 || after < 0 || n == 0)
        printf(", \"mock_cpu_us_per_req\": null");
    else
        printf(", \"mock_cpu_us_per_req\": %.1f", (after - before) * 1e6 / (double)n);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(const int64_t *sorted, size_t n, double p) {
    return n ? sorted[(size_t)((double)(n - 1) * p)] : 0;
}

static bifrost_gateway *new_gateway(const char *base, int concurrency) {
    char cfg[1024];
    int buffer = concurrency * 16 > 16384 ? concurrency * 16 : 16384;
    snprintf(cfg, sizeof cfg,
             "{\"providers\": {\"openai\": {\"kind\": \"openai\", \"keys\": [{\"value\": \"mock-key\", \"models\": [\"*\"]}],"
             " \"network_config\": {\"base_url\": \"%s/v1\", \"max_retries\": 0},"
             " \"concurrency_and_buffer_size\": {\"concurrency\": %d, \"buffer_size\": %d}}}}",
             base, concurrency, buffer);
    bifrost_gateway *gw = NULL;
    char *err = NULL;
    if (bifrost_gateway_new(cfg, &gw, &err) != BIFROST_OK) {
        fprintf(stderr, "bifrost_gateway_new: %s\n", err ? err : "?");
        exit(1);
    }
    return gw;
}

static void close_gateway(bifrost_gateway *gw) {
    bifrost_gateway_shutdown(gw, 5000, NULL);
    bifrost_gateway_free(gw);
}

/* First error message of a cell (copied: the callback's string is borrowed). */
static char first_error[256];
static atomic_flag first_error_set = ATOMIC_FLAG_INIT;

static void note_error(enum bifrost_status st, const char *msg) {
    if (!atomic_flag_test_and_set(&first_error_set))
        snprintf(first_error, sizeof first_error, "%s: %s", bifrost_status_name(st), msg ? msg : "");
}

static void print_first_error(void) {
    if (!first_error[0]) {
        printf("null");
        return;
    }
    putchar('"');
    for (const char *p = first_error; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar((unsigned char)*p < 0x20 ? ' ' : *p);
    }
    putchar('"');
}

static void reset_error(void) {
    first_error[0] = 0;
    atomic_flag_clear(&first_error_set);
}

static int response_ok(enum bifrost_status st, const char *resp) {
    return st == BIFROST_OK && resp && strstr(resp, "\"choices\"") != NULL;
}

/* ------------------------------------------------------------ open loop */

static _Atomic int64_t *done_ns; /* completion, ns after t0; -1 = not yet */
static _Atomic int *failed;
static int64_t ol_t0;

static void open_cb(void *user, enum bifrost_status st, const char *resp, const char *error) {
    size_t i = (size_t)(uintptr_t)user;
    if (!response_ok(st, resp)) {
        atomic_store_explicit(&failed[i], 1, memory_order_relaxed);
        note_error(st, error ? error : "response without choices");
    }
    atomic_store_explicit(&done_ns[i], now_ns() - ol_t0, memory_order_release);
}

static void open_loop(const char *base, double rate, int latency_ms, double seconds, double warmup) {
    size_t total = (size_t)((warmup + seconds) * rate + 0.5), first = (size_t)(warmup * rate + 0.5);
    double interval = 1e9 / rate;
    bifrost_gateway *gw = new_gateway(base, 1024);
    done_ns = malloc(total * sizeof *done_ns);
    failed = calloc(total, sizeof *failed);
    int64_t *lag = malloc(total * sizeof *lag);
    int64_t *added = malloc(total * sizeof *added);
    for (size_t i = 0; i < total; i++) atomic_init(&done_ns[i], -1);
    reset_error();
    ol_t0 = now_ns() + 20000000; /* start 20 ms ahead so the first sends are not late */
    double cpu0 = 0, mock0 = -1;
    size_t submit_errors = 0;
    for (size_t i = 0; i < total; i++) {
        int64_t sched = ol_t0 + (int64_t)((double)i * interval);
        struct timespec ts = {.tv_sec = sched / 1000000000LL, .tv_nsec = sched % 1000000000LL};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
        }
        if (i == first) {
            cpu0 = cpu_us();
            mock0 = mock_cpu_s();
        }
        int64_t s = now_ns();
        lag[i] = (s - sched) / 1000;
        char *err = NULL;
        enum bifrost_status st = bifrost_submit_cb(gw, REQUEST, open_cb, (void *)(uintptr_t)i, &err);
        if (st != BIFROST_OK) { /* the callback will not run: count it here */
            note_error(st, err);
            bifrost_string_free(err);
            atomic_store(&failed[i], 1);
            atomic_store(&done_ns[i], now_ns() - ol_t0);
            submit_errors++;
        }
    }
    int64_t deadline = now_ns() + 2000000000LL + 2LL * latency_ms * 1000000LL;
    for (;;) {
        int pending = 0;
        for (size_t i = first; i < total && !pending; i++)
            pending = atomic_load_explicit(&done_ns[i], memory_order_acquire) < 0;
        if (!pending || now_ns() > deadline) break;
        struct timespec ms = {0, 2000000};
        nanosleep(&ms, NULL);
    }
    double cpu = cpu_us() - cpu0;
    int64_t win_lo = (int64_t)((double)first * interval), last_done = win_lo;
    size_t n = 0, nlag = 0, errors = 0, unfinished = 0;
    for (size_t i = first; i < total; i++) {
        int64_t sched = (int64_t)((double)i * interval), d = atomic_load(&done_ns[i]);
        if (d < 0) {
            unfinished++;
        } else if (atomic_load(&failed[i])) {
            errors++;
        } else {
            if (d > last_done) last_done = d;
            int64_t a = (d - sched) / 1000 - (int64_t)latency_ms * 1000;
            added[n++] = a < 0 ? 0 : a;
            lag[nlag++] = lag[i] < 0 ? 0 : lag[i];
        }
    }
    qsort(added, n, sizeof *added, cmp_i64);
    qsort(lag, nlag, sizeof *lag, cmp_i64);
    /* Rate achieved: measured requests completed, over the time from the window's start to
     * the last completion less the mock's latency (at least --seconds: a client that keeps
     * up shows the target rate). */
    double span = (double)(last_done - win_lo) / 1e9 - latency_ms / 1e3;
    double achieved = (double)n / (span > seconds ? span : seconds);
    printf("{\"mode\": \"open\", \"client\": \"c: bifrost_submit_cb\", \"lang\": \"C\", \"rate\": %.0f, \"latency_ms\": %d, "
           "\"seconds\": %.1f, \"warmup_s\": %.1f, \"scheduled\": %zu, \"completed\": %zu, \"errors\": %zu, \"unfinished\": %zu, "
           "\"achieved_rps\": %.1f, \"kept_up\": %s, \"added_p50_us\": %lld, \"added_p99_us\": %lld, \"added_max_us\": %lld, "
           "\"lag_p50_us\": %lld, \"lag_p99_us\": %lld, \"lag_max_us\": %lld, \"cpu_us_per_req\": %.1f, \"submit_errors\": %zu, "
           "\"first_error\": ",
           rate, latency_ms, seconds, warmup, total - first, n, errors, unfinished, achieved,
           (unfinished == 0 && errors == 0 && achieved >= 0.95 * rate) ? "true" : "false",
           (long long)pct(added, n, 0.5), (long long)pct(added, n, 0.99), (long long)pct(added, n, 1.0),
           (long long)pct(lag, nlag, 0.5), (long long)pct(lag, nlag, 0.99), (long long)pct(lag, nlag, 1.0),
           n ? cpu / (double)n : 0.0, submit_errors);
    print_first_error();
    print_mock_cpu(mock0, n);
    printf("}\n");
    fflush(stdout);
    close_gateway(gw); /* unfinished jobs end BIFROST_SHUTDOWN and their callbacks fire */
    for (int k = 0; k < 500; k++) { /* let every callback land before the arrays go */
        size_t i = 0;
        while (i < total && atomic_load(&done_ns[i]) >= 0) i++;
        if (i == total) break;
        struct timespec ms = {0, 2000000};
        nanosleep(&ms, NULL);
    }
    free(done_ns);
    free((void *)failed);
    free(lag);
    free(added);
}

/* ------------------------------------------------------------ closed loop */

#define MAX_SAMPLES (8u << 20)
static bifrost_gateway *cl_gw;
static int64_t *cl_start;     /* per lane: send time of its current request */
static int64_t *cl_lat;       /* latencies (µs) of requests that ended in the window */
static atomic_size_t cl_n;
static atomic_size_t cl_errors;
static atomic_int cl_active; /* lanes still running */
static int64_t cl_measure_from, cl_stop;

static void closed_cb(void *user, enum bifrost_status st, const char *resp, const char *error);

/* Sends the lane's next request, or ends the lane (time is up, or the
 * submit failed: a callback must not wait and retry). */
static void lane_submit(size_t lane) {
    int64_t now = now_ns();
    if (now < cl_stop) {
        cl_start[lane] = now;
        char *err = NULL;
        enum bifrost_status st = bifrost_submit_cb(cl_gw, REQUEST, closed_cb, (void *)(uintptr_t)lane, &err);
        if (st == BIFROST_OK) return;
        note_error(st, err);
        bifrost_string_free(err);
        atomic_fetch_add(&cl_errors, 1);
    }
    atomic_fetch_sub(&cl_active, 1);
}

static void closed_cb(void *user, enum bifrost_status st, const char *resp, const char *error) {
    size_t lane = (size_t)(uintptr_t)user;
    int64_t end = now_ns();
    if (!response_ok(st, resp)) {
        note_error(st, error ? error : "response without choices");
        atomic_fetch_add(&cl_errors, 1);
    } else if (end >= cl_measure_from && end < cl_stop) {
        size_t k = atomic_fetch_add(&cl_n, 1);
        if (k < MAX_SAMPLES) cl_lat[k] = (end - cl_start[lane]) / 1000;
    }
    lane_submit(lane);
}

static void closed_loop(const char *base, int inflight, int latency_ms, double seconds, double warmup) {
    cl_gw = new_gateway(base, inflight);
    cl_start = calloc((size_t)inflight, sizeof *cl_start);
    cl_lat = malloc(MAX_SAMPLES * sizeof *cl_lat);
    atomic_store(&cl_n, 0);
    atomic_store(&cl_errors, 0);
    atomic_store(&cl_active, inflight);
    reset_error();
    int64_t t0 = now_ns();
    cl_measure_from = t0 + (int64_t)(warmup * 1e9);
    cl_stop = cl_measure_from + (int64_t)(seconds * 1e9);
    for (int l = 0; l < inflight; l++) lane_submit((size_t)l);
    struct timespec ts = {.tv_sec = cl_measure_from / 1000000000LL, .tv_nsec = cl_measure_from % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
    double cpu0 = cpu_us(), mock0 = mock_cpu_s();
    while (atomic_load(&cl_active) > 0) {
        struct timespec ms = {0, 2000000};
        nanosleep(&ms, NULL);
    }
    double cpu = cpu_us() - cpu0;
    size_t n = atomic_load(&cl_n);
    if (n > MAX_SAMPLES) n = MAX_SAMPLES;
    qsort(cl_lat, n, sizeof *cl_lat, cmp_i64);
    printf("{\"mode\": \"closed\", \"client\": \"c: bifrost_submit_cb\", \"lang\": \"C\", \"inflight\": %d, \"latency_ms\": %d, "
           "\"seconds\": %.1f, \"requests\": %zu, \"errors\": %zu, \"req_s\": %.1f, \"p50_us\": %lld, \"p99_us\": %lld, "
           "\"max_us\": %lld, \"cpu_us_per_req\": %.1f, \"first_error\": ",
           inflight, latency_ms, seconds, n, atomic_load(&cl_errors), (double)n / seconds, (long long)pct(cl_lat, n, 0.5),
           (long long)pct(cl_lat, n, 0.99), (long long)pct(cl_lat, n, 1.0), n ? cpu / (double)n : 0.0);
    print_first_error();
    print_mock_cpu(mock0, n);
    printf("}\n");
    fflush(stdout);
    close_gateway(cl_gw);
    free(cl_start);
    free(cl_lat);
}

/* ------------------------------------------------------------ main */

static const char *arg(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

int main(int argc, char **argv) {
    const char *base = arg(argc, argv, "--base");
    if (!base) {
        fprintf(stderr, "usage: %s --base http://127.0.0.1:PORT [--latency-ms N] [--rates R,R] [--closed N,N] [--seconds S] [--warmup S] [--mock-pid PID]\n", argv[0]);
        return 2;
    }
    const char *v;
    int latency_ms = (v = arg(argc, argv, "--latency-ms")) ? atoi(v) : 0;
    double seconds = (v = arg(argc, argv, "--seconds")) ? atof(v) : 5.0;
    double warmup = (v = arg(argc, argv, "--warmup")) ? atof(v) : 1.0;
    mock_pid = arg(argc, argv, "--mock-pid");
    char buf[256];
    if ((v = arg(argc, argv, "--rates"))) {
        snprintf(buf, sizeof buf, "%s", v);
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            double rate = atof(tok);
            if (rate <= 0) {
                fprintf(stderr, "bad --rates value '%s'\n", tok);
                return 2;
            }
            open_loop(base, rate, latency_ms, seconds, warmup);
        }
    }
    if ((v = arg(argc, argv, "--closed"))) {
        snprintf(buf, sizeof buf, "%s", v);
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int n = atoi(tok);
            if (n < 1) {
                fprintf(stderr, "bad --closed value '%s'\n", tok);
                return 2;
            }
            closed_loop(base, n, latency_ms, seconds, warmup);
        }
    }
    return 0;
}
