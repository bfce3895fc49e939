/* C stream cells of issue 20's benchmark: bifrost through the C API
 * (bifrost_stream_open / bifrost_stream_next, each blocking) against a
 * running bifrost-mock: N threads, each opening streams of 200 chunks back
 * to back for the measured seconds, every stream it starts read to its end.
 *
 *   stream --base http://127.0.0.1:PORT [--streams 256,1024]
 *          [--chunk-delay-ms 0,10] [--seconds 3] [--chunks 200]
 *
 * CPU is the process's user + system time (getrusage) over the measured
 * part, per content chunk. One JSON object per cell on stdout with the
 * fields of core/examples/bench_stream.rs; a summary line on stderr. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bifrost.h"
#include "clock.h"

/* A growable array of doubles. */
typedef struct {
    double *v;
    size_t n, cap;
} vec;

static void push(vec *a, double x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) abort();
    }
    a->v[a->n++] = x;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A chunk with text content: `"content":"` followed by something other than the closing quote. */
static int has_content(const char *json) {
    const char *p = strstr(json, "\"content\":\"");
    return p && p[11] != '"';
}

struct lane {
    const bifrost_gateway *gw;
    const char *request;
    int64_t stop_ns; /* 0: one stream only (warm-up) */
    vec ttfc, gaps;
    long counts_min, counts_max, chunks, streams_done, errors;
};

static void *run_lane(void *arg) {
    struct lane *l = arg;
    l->counts_min = -1;
    do {
        int64_t started = now_ns(), last = 0;
        long n = 0;
        bifrost_stream *s = NULL;
        if (bifrost_stream_open(l->gw, l->request, &s, NULL) != BIFROST_OK) {
            l->errors++;
            continue;
        }
        for (;;) {
            char *chunk = NULL;
            if (bifrost_stream_next(s, &chunk, NULL) != BIFROST_OK) {
                l->errors++;
                break;
            }
            if (!chunk) break;
            if (has_content(chunk)) {
                int64_t t = now_ns();
                if (n == 0) push(&l->ttfc, (double)(t - started) / 1e6);
                else push(&l->gaps, (double)(t - last) / 1e6);
                last = t;
                n++;
            }
            bifrost_string_free(chunk);
        }
        bifrost_stream_free(s);
        l->chunks += n;
        l->streams_done++;
        if (l->counts_min < 0 || n < l->counts_min) l->counts_min = n;
        if (n > l->counts_max) l->counts_max = n;
    } while (l->stop_ns && now_ns() < l->stop_ns);
    return NULL;
}

static void run_lanes(struct lane *lanes, int n) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    if (!t) abort();
    for (int i = 0; i < n; i++) {
        if (pthread_create(&t[i], &attr, run_lane, &lanes[i]) != 0) {
            fprintf(stderr, "pthread_create failed at %d threads\n", i);
            exit(1);
        }
    }
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    free(t);
    pthread_attr_destroy(&attr);
}

static void cell(const bifrost_gateway *gw, const char *request, int streams, int delay, double seconds) {
    int warm = streams < 64 ? streams : 64;
    struct lane *lanes = calloc((size_t)streams, sizeof *lanes);
    if (!lanes) abort();
    for (int i = 0; i < warm; i++) lanes[i] = (struct lane){.gw = gw, .request = request};
    run_lanes(lanes, warm); /* warm-up, unmeasured */
    for (int i = 0; i < warm; i++) {
        free(lanes[i].ttfc.v);
        free(lanes[i].gaps.v);
    }
    double cpu0 = cpu_us();
    int64_t t0 = now_ns();
    for (int i = 0; i < streams; i++)
        lanes[i] = (struct lane){.gw = gw, .request = request, .stop_ns = t0 + (int64_t)(seconds * 1e9)};
    run_lanes(lanes, streams);
    double wall = (double)(now_ns() - t0) / 1e9, cpu = cpu_us() - cpu0;
    vec ttfc = {0}, gaps = {0};
    long chunks = 0, errors = 0, lo = -1, hi = 0;
    for (int i = 0; i < streams; i++) {
        struct lane *l = &lanes[i];
        for (size_t k = 0; k < l->ttfc.n; k++) push(&ttfc, l->ttfc.v[k]);
        for (size_t k = 0; k < l->gaps.n; k++) push(&gaps, l->gaps.v[k]);
        chunks += l->chunks;
        errors += l->errors;
        if (l->counts_min >= 0 && (lo < 0 || l->counts_min < lo)) lo = l->counts_min;
        if (l->counts_max > hi) hi = l->counts_max;
        free(l->ttfc.v);
        free(l->gaps.v);
    }
    free(lanes);
    qsort(ttfc.v, ttfc.n, sizeof *ttfc.v, cmp);
    qsort(gaps.v, gaps.n, sizeof *gaps.v, cmp);
    double ttfc50 = ttfc.n ? ttfc.v[ttfc.n / 2] : -1, gap99 = gaps.n ? gaps.v[(size_t)((double)(gaps.n - 1) * 0.99)] : -1;
    printf("{\"mode\": \"stream\", \"client\": \"c: bifrost_stream_next\", \"lang\": \"C\", \"streams\": %d, "
           "\"chunk_delay_ms\": %d, \"chunks\": %ld, \"chunks_per_s\": %.1f, \"cpu_us_per_chunk\": %.3f, "
           "\"ttfc_p50_ms\": %.3f, \"gap_p99_ms\": %.3f, \"complete\": %s, \"errors\": %ld}\n",
           streams, delay, chunks, (double)chunks / wall, chunks ? cpu / (double)chunks : 0.0, ttfc50, gap99,
           (lo == hi && errors == 0) ? "true" : "false", errors);
    fflush(stdout);
    fprintf(stderr, "# c: bifrost_stream_next        streams=%5d delay=%3dms %9.0f chunks/s %6.1f µs CPU/chunk  ttfc p50 %.1f ms  gap p99 %.1f ms  errors %ld\n",
            streams, delay, (double)chunks / wall, chunks ? cpu / (double)chunks : 0.0, ttfc50, gap99, errors);
    free(ttfc.v);
    free(gaps.v);
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c + 1;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *base = NULL, *streams_arg = "256,1024", *delays_arg = "0,10";
    double seconds = 3;
    int chunks = 200;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--base")) base = argv[i + 1];
        else if (!strcmp(argv[i], "--streams")) streams_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--chunk-delay-ms")) delays_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunks")) chunks = atoi(argv[i + 1]);
    }
    if (!base || chunks < 1 || chunks > 1000) {
        fprintf(stderr, "usage: stream --base http://127.0.0.1:PORT [--streams 256,1024] [--chunk-delay-ms 0,10] [--seconds 3] [--chunks 200]\n");
        return 2;
    }
    char config[1024];
    snprintf(config, sizeof config,
             "{\"providers\": {\"openai\": {\"kind\": \"openai\", \"keys\": [{\"value\": \"mock-key\", \"models\": [\"*\"]}], "
             "\"network_config\": {\"base_url\": \"%s/v1\", \"max_retries\": 0, \"max_conns_per_host\": 4096}, "
             "\"concurrency_and_buffer_size\": {\"concurrency\": 4096, \"buffer_size\": 65536}}}}",
             base);
    bifrost_gateway *gw = NULL;
    char *err = NULL;
    if (bifrost_gateway_new(config, &gw, &err) != BIFROST_OK) {
        fprintf(stderr, "gateway: %s\n", err ? err : "?");
        return 1;
    }
    /* 200 words of 5 characters: the mock splits the echo into `chunks` pieces. */
    static char prompt[8192];
    size_t len = 0;
    for (int i = 0; i < chunks; i++) len += (size_t)snprintf(prompt + len, sizeof prompt - len, "%sw%03d", i ? " " : "", i);
    int streams[16], delays[16];
    int ns = parse_list(streams_arg, streams, 16), nd = parse_list(delays_arg, delays, 16);
    for (int d = 0; d < nd; d++) {
        char request[16384];
        snprintf(request, sizeof request,
                 "{\"model\": \"openai/gpt~chunks=%d&chunk_delay_ms=%d\", \"messages\": [{\"role\": \"user\", \"content\": \"%s\"}]}",
                 chunks, delays[d], prompt);
        for (int s = 0; s < ns; s++) cell(gw, request, streams[s], delays[d], seconds);
    }
    char *report = NULL;
    bifrost_gateway_shutdown(gw, 5000, &report);
    bifrost_string_free(report);
    bifrost_gateway_free(gw);
    return 0;
}
