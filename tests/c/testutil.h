/* Tiny test harness for the bifrost C tests: CHECK counts, a closing
 * "N passed, N failed" line, and a JSON number lookup good enough for the
 * flat objects of the stats schema. */
#ifndef BIFROST_TESTUTIL_H
#define BIFROST_TESTUTIL_H


#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bifrost.h"

static atomic_int t_passed;
static atomic_int t_failed;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (cond) {                                                           \
            atomic_fetch_add(&t_passed, 1);                                   \
        } else {                                                              \
            atomic_fetch_add(&t_failed, 1);                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

static inline const char *t_or_dash(const char *s) { return s ? s : "-"; }

/* Status equality with both names in the failure message. */
#define CHECK_ST(got, want, err)                                              \
    CHECK((got) == (want), "got %s, want %s (%s)", bifrost_status_name(got),  \
          bifrost_status_name(want), t_or_dash(err))

static inline int t_finish(const char *suite) {
    int p = atomic_load(&t_passed), f = atomic_load(&t_failed);
    printf("%s: %d passed, %d failed\n", suite, p, f);
    return f == 0 ? 0 : 1;
}

static inline void t_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline double t_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Frees and clears an error string. */
static inline void t_clear(char **s) {
    bifrost_string_free(*s);
    *s = NULL;
}

/* Finds the object value of "key" inside [start, end): returns a pointer
 * just past its opening brace, or NULL. */
static inline const char *t_find_obj(const char *start, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":{", key);
    const char *p = strstr(start, pat);
    return p ? p + strlen(pat) : NULL;
}

/* The number after "key": in the flat object that starts at obj (up to
 * its closing brace); -1 if missing. */
static inline long long t_num(const char *obj, const char *key) {
    const char *end = strchr(obj, '}');
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(obj, pat);
    if (!p || (end && p > end)) return -1;
    return strtoll(p + strlen(pat), NULL, 10);
}

/* Checks submitted = queued + running + completed + failed + dropped +
 * rejected + timed_out + cancelled + rate_limited for one provider of a stats JSON.
 * Returns submitted (or -1). */
static inline long long t_check_invariant(const char *stats, const char *provider) {
    const char *prov = t_find_obj(stats, provider);
    CHECK(prov != NULL, "provider %s in stats", provider);
    if (!prov) return -1;
    const char *jobs = t_find_obj(prov, "jobs");
    CHECK(jobs != NULL, "jobs of %s", provider);
    if (!jobs) return -1;
    long long s = t_num(jobs, "submitted");
    long long sum = t_num(jobs, "queued") + t_num(jobs, "running") + t_num(jobs, "completed") +
                    t_num(jobs, "failed") + t_num(jobs, "dropped") + t_num(jobs, "rejected") +
                    t_num(jobs, "timed_out") + t_num(jobs, "cancelled") + t_num(jobs, "rate_limited");
    CHECK(s >= 0 && s == sum, "%s: submitted=%lld but queued+running+completed+failed+dropped+"
          "rejected+timed_out+cancelled+rate_limited=%lld", provider, s, sum);
    return s;
}

/* Waits (up to 60 s) until no provider of `gw` has a job queued or
 * running, so a stats snapshot that follows sees settled counters however
 * busy the machine is; 1 once idle, 0 if the time ran out. */
static inline int t_wait_idle(const bifrost_gateway *gw) {
    for (int i = 0; i < 6000; i++) {
        char *stats = NULL;
        if (bifrost_stats_json(gw, &stats) != BIFROST_OK) return 0;
        int busy = 0;
        for (const char *p = stats; (p = strstr(p, "\"jobs\":{")) != NULL; p++) {
            const char *jobs = p + strlen("\"jobs\":{");
            if (t_num(jobs, "queued") != 0 || t_num(jobs, "running") != 0) busy = 1;
        }
        bifrost_string_free(stats);
        if (!busy) return 1;
        t_sleep_ms(10);
    }
    return 0;
}

#endif
