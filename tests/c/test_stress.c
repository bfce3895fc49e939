/* Concurrency: 8 pthreads x N submits (N = $STRESS_N, default 2000) on
 * three mock providers with latency, failures and panics, half through
 * bifrost_submit_cb and half through job handles that are randomly
 * cancelled, freed unfinished, or waited on; the gateway is shut down while
 * the threads are still submitting. Asserts: every accepted callback submit
 * gets exactly one callback, every waited handle resolves to one final
 * status (stable on a second wait), and every pool satisfies
 * submitted = queued + running + completed + failed + dropped + rejected +
 * timed_out + cancelled. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#include "testutil.h"

#define THREADS 8

static const char *CONFIG =
    "{\"initial_pool_size\": 8, \"providers\": {"
    " \"sblock\": {\"kind\": \"mock\", \"mock\": {\"latency_ms\": 1, \"jitter_ms\": 2, \"failure_rate\": 0.1,"
    "   \"panic_rate\": 0.02}, \"concurrency_and_buffer_size\": {\"concurrency\": 8, \"buffer_size\": 64}},"
    " \"serror\": {\"kind\": \"mock\", \"mock\": {\"latency_ms\": 2, \"failure_rate\": 0.1},"
    "   \"concurrency_and_buffer_size\": {\"concurrency\": 2, \"buffer_size\": 8}, \"queue\": {\"policy\": \"error\"}},"
    " \"sdrop\": {\"kind\": \"mock\", \"mock\": {\"latency_ms\": 2, \"panic_rate\": 0.05},"
    "   \"concurrency_and_buffer_size\": {\"concurrency\": 2, \"buffer_size\": 8},"
    "   \"queue\": {\"policy\": \"drop_oldest\"}}}}";

static const char *PROVIDERS[] = {"sblock", "serror", "sdrop"};

static bifrost_gateway *gw;
static int per_thread;
static atomic_int *slots;          /* callback count per callback submit */
static atomic_int cb_accepted;     /* bifrost_submit_cb returned OK */
static atomic_int cb_calls;
static atomic_int cb_bad;          /* callbacks with inconsistent arguments */
static atomic_int submitted_total; /* all submits that returned OK */
static atomic_int shutdown_seen;   /* submits refused with SHUTDOWN */
static atomic_int waited, unresolved, unstable, other_errors;
static atomic_int progress;

static void on_done(void *user_data, bifrost_status status, const char *response_json, const char *error) {
    atomic_int *slot = user_data;
    int ok = (status == BIFROST_OK) ? (response_json != NULL && error == NULL)
                                    : (response_json == NULL && error != NULL && status != BIFROST_PENDING);
    if (!ok) atomic_fetch_add(&cb_bad, 1);
    atomic_fetch_add(slot, 1);
    atomic_fetch_add(&cb_calls, 1);
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    unsigned seed = 12345u + (unsigned)t * 7919u;
    char req[256];
    for (int i = 0; i < per_thread; i++) {
        int r = rand_r(&seed);
        const char *prov = PROVIDERS[r % 3];
        snprintf(req, sizeof req,
                 "{\"model\": \"%s/m\", \"messages\": [{\"role\": \"user\", \"content\": \"t%d i%d\"}]}", prov, t, i);
        char *err = NULL;
        int mode = (r >> 4) % 8;
        if (mode < 4) {
            atomic_int *slot = &slots[t * per_thread + i];
            bifrost_status st = bifrost_submit_cb(gw, req, on_done, slot, &err);
            if (st == BIFROST_OK) {
                atomic_fetch_add(&cb_accepted, 1);
                atomic_fetch_add(&submitted_total, 1);
            } else {
                atomic_store(slot, -1000); /* never called: must stay below 0 */
                if (st == BIFROST_SHUTDOWN) atomic_fetch_add(&shutdown_seen, 1);
                else if (st != BIFROST_QUEUE_FULL && st != BIFROST_QUEUE_TIMEOUT) atomic_fetch_add(&other_errors, 1);
            }
        } else {
            bifrost_job *job = NULL;
            bifrost_status st = bifrost_submit(gw, req, &job, &err);
            if (st != BIFROST_OK) {
                if (st == BIFROST_SHUTDOWN) atomic_fetch_add(&shutdown_seen, 1);
                else if (st != BIFROST_QUEUE_FULL && st != BIFROST_QUEUE_TIMEOUT) atomic_fetch_add(&other_errors, 1);
            } else {
                atomic_fetch_add(&submitted_total, 1);
                if (mode == 4) {
                    bifrost_job_free(job); /* unfinished: cancelled */
                    job = NULL;
                } else {
                    if (mode == 5) bifrost_job_cancel(job, NULL);
                    if (mode == 6) {
                        char *resp = NULL, *e2 = NULL;
                        bifrost_job_wait(job, 0, &resp, &e2); /* PENDING or final */
                        bifrost_string_free(resp);
                        bifrost_string_free(e2);
                    }
                    char *resp = NULL, *e2 = NULL;
                    bifrost_status fin = bifrost_job_wait(job, 30000, &resp, &e2);
                    atomic_fetch_add(&waited, 1);
                    if (fin == BIFROST_PENDING) atomic_fetch_add(&unresolved, 1);
                    if ((fin == BIFROST_OK) != (resp != NULL)) atomic_fetch_add(&unstable, 1);
                    bifrost_string_free(resp);
                    bifrost_string_free(e2);
                    resp = e2 = NULL;
                    if (bifrost_job_wait(job, 0, &resp, &e2) != fin || bifrost_job_poll(job) != fin)
                        atomic_fetch_add(&unstable, 1);
                    bifrost_string_free(resp);
                    bifrost_string_free(e2);
                    bifrost_job_free(job);
                }
            }
        }
        bifrost_string_free(err);
        atomic_fetch_add(&progress, 1);
    }
    return NULL;
}

int main(void) {
    const char *n = getenv("STRESS_N");
    per_thread = n ? atoi(n) : 2000;
    if (per_thread < 10) per_thread = 10;
    slots = calloc((size_t)THREADS * (size_t)per_thread, sizeof *slots);
    char *err = NULL;
    bifrost_status st = bifrost_gateway_new(CONFIG, &gw, &err);
    CHECK_ST(st, BIFROST_OK, err);
    if (st != BIFROST_OK) return t_finish("test_stress");

    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    /* Shut down midway, while submits are still coming. */
    int half = THREADS * per_thread / 2;
    while (atomic_load(&progress) < half) t_sleep_ms(1);
    char *report = NULL;
    st = bifrost_gateway_shutdown(gw, 100, &report);
    CHECK_ST(st, BIFROST_OK, NULL);
    CHECK(report && strstr(report, "\"aborted\":"), "report %s", report);
    bifrost_string_free(report);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);

    /* Every accepted callback submit is called back, exactly once. */
    for (int i = 0; i < 3000 && atomic_load(&cb_calls) < atomic_load(&cb_accepted); i++) t_sleep_ms(10);
    t_sleep_ms(50);
    CHECK(atomic_load(&cb_calls) == atomic_load(&cb_accepted), "callbacks %d for %d accepted submits",
          atomic_load(&cb_calls), atomic_load(&cb_accepted));
    int twice = 0, never = 0, ghost = 0;
    for (int i = 0; i < THREADS * per_thread; i++) {
        int v = atomic_load(&slots[i]);
        if (v > 1) twice++;
        if (v < -1) { if (v != -1000) ghost++; }
    }
    for (int t = 0; t < THREADS; t++) (void)t;
    /* Slots of handle submits stay 0; of callback submits must be 1. Count
       callback slots that stayed 0 via the totals above. */
    CHECK(twice == 0, "%d jobs called back more than once", twice);
    CHECK(ghost == 0, "%d refused submits were called back", ghost);
    (void)never;
    CHECK(atomic_load(&cb_bad) == 0, "%d callbacks with inconsistent arguments", atomic_load(&cb_bad));
    CHECK(atomic_load(&unresolved) == 0, "%d waited jobs never resolved", atomic_load(&unresolved));
    CHECK(atomic_load(&unstable) == 0, "%d jobs changed outcome", atomic_load(&unstable));
    CHECK(atomic_load(&other_errors) == 0, "%d unexpected submit errors", atomic_load(&other_errors));
    CHECK(atomic_load(&shutdown_seen) > 0, "submits after the midway shutdown are refused");

    char *stats = NULL;
    CHECK_ST(bifrost_stats_json(gw, &stats), BIFROST_OK, NULL);
    long long sum_submitted = 0;
    for (int p = 0; p < 3; p++) {
        const char *prov = t_find_obj(stats, PROVIDERS[p]);
        const char *jobs = prov ? t_find_obj(prov, "jobs") : NULL;
        CHECK(jobs && t_num(jobs, "queued") == 0 && t_num(jobs, "running") == 0, "%s idle", PROVIDERS[p]);
        long long s = t_check_invariant(stats, PROVIDERS[p]);
        if (s > 0) sum_submitted += s;
    }
    /* Pools count a submit refused with QUEUE_FULL as submitted+rejected. */
    CHECK(sum_submitted >= atomic_load(&submitted_total), "pools counted %lld, C saw %d accepted",
          sum_submitted, atomic_load(&submitted_total));
    printf("stress: %d threads x %d submits: %d accepted (%d via callback, %d handles waited), %d refused by shutdown\n",
           THREADS, per_thread, atomic_load(&submitted_total), atomic_load(&cb_accepted), atomic_load(&waited),
           atomic_load(&shutdown_seen));
    bifrost_string_free(stats);
    bifrost_gateway_free(gw);
    free(slots);
    return t_finish("test_stress");
}
