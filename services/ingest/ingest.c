/* evpipe-ingest: one-shot replay, folder watching, --wait (see ingest.h). */
#include "ingest.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "evpipe/buf.h"
#include "evpipe/log.h"
#include "evpipe/publisher.h"
#include "evpipe/sig.h"
#include "ingest_commit.h"
#include "ingest_file.h"
#include "ingest_heads.h"
#include "ingest_ledger.h"
#include "ingest_metrics.h"
#include "ingest_progress.h"
#include "ingest_repair.h"
#include "ingest_watch.h"

/* How long the publisher may take to hand its last messages to the bus. */
#define LINGER_MS 5000
/* How long --wait lets commits stand still short of what was published
 * before it publishes what is missing again. */
#define WAIT_RESEND_MS 15000
/* How often watch mode looks for sources fully committed. */
#define FORGET_CHECK_MS 5000
/* ...and at most this seldom while the database cannot be reached. */
#define FORGET_BACKOFF_MAX_MS 60000
/* Missing (source, partition) lines printed by --wait-timeout, at most. */
#define MISSING_LINES_MAX 50
/* /healthz: the loops beat at least every 100 ms (a file being read every
 * 1024 rows), so this long without a beat is a fault; in watch mode a
 * checkpoint query's connection attempt (POSTGRES_CONNECT_TIMEOUT) is added. */
#define HEALTH_MAX_AGE_S 5.0

struct ingest_t {
    const evp_config_t *cfg;     /* settings (not owned) */
    ingest_opts_t opts;          /* command line */
    evp_publisher_t *publisher;  /* the bus */
    ingest_ledger_t *ledger;     /* finished files */
    ingest_repair_t *repair;     /* the repair server, or NULL */
    ingest_heads_t *heads;       /* what was published and is not known committed */
    ingest_metrics_t *metrics;   /* counters and /healthz on METRICS_PORT */
    ingest_progress_t *progress; /* the file being read, on the terminal or in the log */
    char reject_dir[EVP_PATH_MAX + 16]; /* STATE_DIR/rejects */
    uint64_t resent;             /* events published again by --wait (s_resend) */
};

/* ---- Life cycle ---- */

ingest_t *ingest_new(const evp_config_t *cfg, const ingest_opts_t *opts, char *why, size_t whylen)
{
    ingest_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    self->opts = *opts;
    snprintf(self->reject_dir, sizeof self->reject_dir, "%s/rejects", cfg->state_dir);
    self->heads = ingest_heads_new(cfg->partitions);
    self->ledger = ingest_ledger_new(cfg->state_dir, why, whylen);
    if (!self->heads || !self->ledger) {
        if (!self->heads)
            snprintf(why, whylen, "out of memory");
        ingest_destroy(&self);
        return NULL;
    }
    self->publisher = evp_publisher_new(cfg, why, whylen);
    self->metrics = ingest_metrics_new();
    self->progress = ingest_progress_new(opts->progress);
    if (!self->publisher || !self->metrics || !self->progress) {
        if (self->publisher)
            snprintf(why, whylen, "out of memory");
        ingest_destroy(&self);
        return NULL;
    }
    evp_gauge_t *bus = evp_publisher_metrics(self->publisher, ingest_metrics_registry(self->metrics));
    bool watching = cfg->ingest_watch_dir[0] != '\0';
    double max_age = HEALTH_MAX_AGE_S + (watching ? cfg->postgres_connect_timeout : 0);
    if (ingest_metrics_serve(self->metrics, cfg->metrics_port, bus, watching, max_age, why, whylen) != 0) {
        ingest_destroy(&self);
        return NULL;
    }
    return self;
}

void ingest_destroy(ingest_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_t *self = *self_p;
    /* The HTTP thread first: it reads the publisher's gauge. */
    ingest_metrics_destroy(&self->metrics);
    ingest_repair_destroy(&self->repair);
    evp_publisher_destroy(&self->publisher, LINGER_MS);
    ingest_progress_destroy(&self->progress);
    ingest_ledger_destroy(&self->ledger);
    ingest_heads_destroy(&self->heads);
    free(self);
    *self_p = NULL;
}

/* ---- Files ---- */

static int s_path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void s_list_add(char ***list, size_t *count, size_t *cap, char *path)
{
    if (*count == *cap) {
        size_t n = *cap ? *cap * 2 : 16;
        char **l = realloc(*list, n * sizeof *l);
        if (!l)
            abort();
        *list = l;
        *cap = n;
    }
    (*list)[(*count)++] = path;
}

int ingest_expand(const char *arg, char ***list, size_t *count, size_t *cap, char *why, size_t whylen)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        char *p = strdup(arg);
        if (!p)
            abort();
        s_list_add(list, count, cap, p);
        return 1;
    }
    DIR *d = opendir(arg);
    if (!d) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    size_t first = *count;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!ingest_watch_wanted(de->d_name))
            continue;
        char *p;
        if (asprintf(&p, "%s/%s", arg, de->d_name) < 0)
            abort();
        s_list_add(list, count, cap, p);
    }
    closedir(d);
    if (*count > first)
        qsort(*list + first, *count - first, sizeof **list, s_path_cmp);
    return (int)(*count - first);
}

/* ---- Summary ---- */

void ingest_summary_format(const ingest_summary_t *s, const char *reject_dir, char *out, size_t cap)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ev_buf_printf(&b, "ingest: %" PRIu64 " file%s, %" PRIu64 " rows read, %" PRIu64 " published, %" PRIu64
                      " rejected",
                  s->files, s->files == 1 ? "" : "s", s->rows, s->published, s->rejected);
    if (s->rejected)
        ev_buf_printf(&b, " (see %s)", reject_dir);
    if (s->skipped)
        ev_buf_printf(&b, ", %" PRIu64 " skipped (already ingested)", s->skipped);
    if (s->failed)
        ev_buf_printf(&b, ", %" PRIu64 " failed", s->failed);
    if (s->stopped)
        ev_buf_puts(&b, ", interrupted");
    ev_buf_printf(&b, ", %.1f s", s->seconds);
    if (s->seconds > 0 && s->rows)
        ev_buf_printf(&b, ", %.0f rows/s", (double)s->rows / s->seconds);
    snprintf(out, cap, "%s", b.data);
    ev_buf_free(&b);
}

static void s_print_summary(const ingest_t *self, const ingest_summary_t *s)
{
    evp_info("summary", "files=%" PRIu64 " skipped=%" PRIu64 " failed=%" PRIu64 " rows=%" PRIu64
             " published=%" PRIu64 " rejected=%" PRIu64 " seconds=%.3f rows_per_s=%.0f interrupted=%s"
             " reject_dir=\"%s\"",
             s->files, s->skipped, s->failed, s->rows, s->published, s->rejected, s->seconds,
             s->seconds > 0 ? (double)s->rows / s->seconds : 0.0, s->stopped ? "true" : "false", self->reject_dir);
    char line[1024];
    ingest_summary_format(s, self->reject_dir, line, sizeof line);
    printf("%s\n", line);
    fflush(stdout);
}

/* Replays one file unless the ledger has it; adds to the summary. Returns
 * false when the service is stopping. */
static bool s_one_file(ingest_t *self, const char *path, ingest_summary_t *sum, int bus_timeout_ms)
{
    char real[EVP_PATH_MAX];
    struct stat st;
    if (realpath(path, real) && stat(real, &st) == 0 && S_ISREG(st.st_mode)) {
        int64_t mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        ingest_ledger_entry_t was;
        bool known = ingest_ledger_find_path(self->ledger, real, &was);
        if (known && was.size == st.st_size && was.mtime_ns == mtime_ns && !self->opts.force) {
            evp_info("already ingested", "file=\"%s\" source=%s finished_rows=%" PRIu64, real, was.sources,
                     was.rows);
            sum->skipped++;
            return true;
        }
        if (known && (was.size != st.st_size || was.mtime_ns != mtime_ns))
            evp_warn("file changed since it was ingested; it is read again", "file=\"%s\" size=%lld was=%lld",
                     real, (long long)st.st_size, (long long)was.size);
    }
    ingest_file_ctx_t ctx = {.cfg = self->cfg,
                             .publisher = self->publisher,
                             .ledger = self->ledger,
                             .bus_timeout_ms = bus_timeout_ms,
                             .metrics = self->metrics,
                             .progress = self->progress};
    ingest_file_result_t res;
    ingest_file_replay(&ctx, path, self->heads, &res);
    sum->rows += res.rows;
    sum->published += res.published;
    sum->rejected += res.rejected;
    sum->seconds += res.seconds;
    if (res.status == INGEST_FILE_DONE)
        sum->files++;
    else if (res.status != INGEST_FILE_STOPPED)
        sum->failed++;
    return res.status != INGEST_FILE_STOPPED && !evp_stopping();
}

/* ---- Waiting for the writers ---- */

/* Publishes again the events of files that are not committed yet: the
 * writers lost some on the way (a writer restarted) and no repair service
 * has them (it runs with another STATE_DIR, or elsewhere), so without this
 * they would wait for them for ever. Returns false when stopping. */
static bool s_resend(ingest_t *self, ingest_commit_t *commit, char *const *files, size_t nfiles, int bus_ms,
                     int64_t missing)
{
    ingest_heads_t *committed = ingest_heads_new(self->cfg->partitions);
    if (!committed)
        return true;
    char why[EVP_WHY_MAX];
    if (ingest_commit_read(commit, self->heads, committed, why, sizeof why) != 0) {
        evp_warn("cannot read the checkpoints to publish again", "error=\"%s\"", why);
        ingest_heads_destroy(&committed);
        return true;
    }
    evp_warn("commits stalled short of what was published; publishing what is missing again (no repair service "
             "has these files)",
             "missing=%" PRId64 " files=%zu", missing, nfiles);
    ingest_file_ctx_t ctx = {.cfg = self->cfg,
                             .publisher = self->publisher,
                             .ledger = self->ledger,
                             .bus_timeout_ms = bus_ms,
                             .metrics = self->metrics,
                             .committed = committed};
    for (size_t i = 0; i < nfiles && !evp_stopping(); i++) {
        ingest_file_result_t res;
        ingest_heads_t *again = ingest_heads_new(self->cfg->partitions);
        if (!again)
            break;
        ingest_file_replay(&ctx, files[i], again, &res);
        ingest_heads_destroy(&again);
        self->resent += res.published;
    }
    ingest_heads_destroy(&committed);
    evp_publisher_flush(self->publisher);
    return !evp_stopping();
}

/* Returns 0 when everything is committed, 2 at the timeout, 1 when stopped.
 * When commits stop moving short of what was published for WAIT_RESEND_MS,
 * what is missing is published again (s_resend). */
static int s_wait_committed(ingest_t *self, uint64_t published, char *const *files, size_t nfiles, int bus_ms)
{
    if (ingest_heads_count(self->heads) == 0) {
        printf("committed: all 0 events\n");
        fflush(stdout);
        return 0;
    }
    ingest_commit_t *commit = ingest_commit_new(self->cfg);
    if (!commit)
        return 1;
    int64_t start = zclock_mono();
    int64_t end = self->opts.wait_timeout_s < 0 ? INT64_MAX : start + (int64_t)(self->opts.wait_timeout_s * 1000);
    int64_t next_check = start, next_note = start + 10000, missing = -1, last_missing = -1, moved_at = start;
    ingest_commit_pace_t pace = {0}; /* how often PostgreSQL is asked (one small query on checkpoints) */
    char why[EVP_WHY_MAX], last_why[EVP_WHY_MAX] = "";
    ev_buf_t report;
    ev_buf_init(&report);
    int rc = 1;
    evp_publisher_flush(self->publisher); /* nothing waits in a body while we wait */
    evp_info("waiting until the writers have committed what was published", "events=%" PRIu64, published);
    while (!evp_stopping()) {
        ingest_metrics_beat(self->metrics);
        evp_publisher_tick(self->publisher);
        int64_t now = zclock_mono();
        if (now >= next_check) {
            ev_buf_reset(&report);
            missing = ingest_commit_missing(commit, self->heads, NULL, &report, why, sizeof why);
            next_check = now + ingest_commit_pace(&pace, now, missing);
            if (missing < 0 && strcmp(why, last_why) != 0) {
                evp_warn("cannot read the checkpoints yet", "error=\"%s\"", why);
                snprintf(last_why, sizeof last_why, "%s", why);
            }
            if (missing == 0) {
                evp_info("committed", "events=%" PRIu64 " seconds=%.1f resent=%" PRIu64, published,
                         (double)(now - start) / 1000, self->resent);
                printf("committed: all %" PRIu64 " events\n", published);
                fflush(stdout);
                rc = 0;
                break;
            }
            if (missing > 0 && now >= next_note) {
                next_note = now + 10000;
                evp_info("still waiting for commits", "missing=%" PRId64, missing);
            }
            if (missing != last_missing) {
                last_missing = missing;
                moved_at = now;
            } else if (missing > 0 && now - moved_at >= WAIT_RESEND_MS) {
                if (!s_resend(self, commit, files, nfiles, bus_ms, missing))
                    break;
                moved_at = zclock_mono();
            }
        }
        if (now >= end) {
            evp_error("not everything was committed in time", "missing=%" PRId64 " wait_timeout_s=%g", missing,
                      self->opts.wait_timeout_s);
            if (missing < 0)
                printf("not committed after %g s: the checkpoints could not be read (%s)\n",
                       self->opts.wait_timeout_s, last_why);
            else
                printf("not committed after %g s: %" PRId64 " of %" PRIu64 " events missing:\n",
                       self->opts.wait_timeout_s, missing, published);
            /* The report: one line per (source, partition), the first few. */
            int lines = 0;
            for (const char *p = report.data; missing > 0 && p && *p && lines < MISSING_LINES_MAX; lines++) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                printf("%.*s\n", (int)n, p);
                p = nl ? nl + 1 : NULL;
            }
            fflush(stdout);
            rc = 2;
            break;
        }
        int64_t nap = next_check - zclock_mono();
        zclock_sleep(nap < 1 ? 1 : nap > 50 ? 50 : (int)nap);
    }
    ev_buf_free(&report);
    ingest_commit_destroy(&commit);
    return rc;
}

/* ---- Modes ---- */

static void s_start_repair(ingest_t *self, bool warm)
{
    char why[EVP_WHY_MAX];
    self->repair = ingest_repair_new(self->cfg, self->ledger, warm, self->metrics, why, sizeof why);
    if (!self->repair)
        evp_warn("no repair server in this process (another ingest may serve repairs)", "error=\"%s\"", why);
    ingest_metrics_repair_bound(self->metrics, self->repair != NULL);
}

static int s_one_shot(ingest_t *self)
{
    char **files = NULL;
    size_t count = 0, cap = 0;
    ingest_summary_t sum = {0};
    for (int i = 0; i < self->opts.npaths; i++) {
        char why[EVP_WHY_MAX];
        int n = ingest_expand(self->opts.paths[i], &files, &count, &cap, why, sizeof why);
        if (n < 0) {
            evp_error("file refused", "file=\"%s\" error=\"cannot open: %s\"", self->opts.paths[i], why);
            sum.failed++;
        } else if (n == 0) {
            evp_warn("no CSV files in the folder", "dir=\"%s\"", self->opts.paths[i]);
        }
    }
    int rc = 0;
    int bus_ms = (int)(self->opts.bus_timeout_s * 1000);
    if (count > 0) {
        s_start_repair(self, false);
        if (evp_publisher_wait_bus(self->publisher, bus_ms) != 0) {
            if (evp_stopping())
                evp_error("stopped while waiting for the bus", "%s", "");
            else
                evp_error("the bus did not answer; nothing was published", "endpoint=%s waited_s=%g",
                          self->cfg->bus_publish_endpoint, self->opts.bus_timeout_s);
            rc = 1;
            goto out;
        }
    }
    for (size_t i = 0; i < count; i++)
        if (!s_one_file(self, files[i], &sum, bus_ms))
            break;
    sum.stopped = evp_stopping();
    s_print_summary(self, &sum);
    if (evp_stopping()) {
        rc = 1;
        goto out;
    }
    rc = sum.failed ? 1 : 0;
    if (self->opts.wait) {
        int w = s_wait_committed(self, sum.published, files, count, bus_ms);
        if (w != 0)
            rc = w;
    }
out:
    for (size_t i = 0; i < count; i++)
        free(files[i]);
    free(files);
    ingest_repair_destroy(&self->repair);
    ingest_metrics_repair_bound(self->metrics, false);
    return rc;
}

/* Stops heartbeating sources the writers have fully committed. Returns
 * false when the checkpoints could not be read. */
static bool s_forget_committed(ingest_t *self, ingest_commit_t *commit)
{
    size_t n = ingest_heads_count(self->heads);
    if (n == 0)
        return true;
    int64_t *per = calloc(n, sizeof *per);
    if (!per)
        return false;
    char why[EVP_WHY_MAX];
    if (ingest_commit_missing(commit, self->heads, per, NULL, why, sizeof why) < 0) {
        evp_debug("cannot read the checkpoints; heartbeats go on", "error=\"%s\"", why);
        free(per);
        return false;
    }
    for (size_t i = n; i-- > 0;) {
        if (per[i] != 0)
            continue;
        const char *s = ingest_heads_source(self->heads, i);
        evp_debug("source fully committed; its heartbeats stop", "source=%s", s);
        ev_str_t name = {s, (uint32_t)strlen(s)};
        evp_publisher_forget_source(self->publisher, name);
        ingest_heads_remove(self->heads, i);
    }
    free(per);
    return true;
}

static int s_watch(ingest_t *self)
{
    char why[EVP_WHY_MAX];
    ingest_watch_t *watch = ingest_watch_new(self->cfg->ingest_watch_dir, self->cfg->ingest_settle_ms, why,
                                             sizeof why);
    if (!watch) {
        evp_error("cannot watch the folder", "error=\"%s\"", why);
        return 1;
    }
    s_start_repair(self, true);
    evp_info("watching", "dir=\"%s\" settle_ms=%d", self->cfg->ingest_watch_dir, self->cfg->ingest_settle_ms);
    if (evp_publisher_wait_bus(self->publisher, -1) != 0) {
        ingest_watch_destroy(&watch);
        return 0; /* stopped while waiting */
    }
    ingest_commit_t *commit = ingest_commit_new(self->cfg);
    int64_t next_forget = zclock_mono() + FORGET_CHECK_MS, backoff = FORGET_CHECK_MS;
    while (!evp_stopping()) {
        ingest_metrics_beat(self->metrics);
        ingest_watch_poll(watch, 100);
        const char *path;
        while (!evp_stopping() && (path = ingest_watch_next(watch)) != NULL) {
            ingest_summary_t sum = {0};
            s_one_file(self, path, &sum, -1);
            if (sum.files || sum.failed)
                s_print_summary(self, &sum);
        }
        evp_publisher_tick(self->publisher);
        if (commit && zclock_mono() >= next_forget) {
            /* A database that does not answer is asked less and less often
             * (a connection attempt can take POSTGRES_CONNECT_TIMEOUT). */
            bool ok = s_forget_committed(self, commit);
            backoff = ok ? FORGET_CHECK_MS : backoff * 2;
            if (backoff > FORGET_BACKOFF_MAX_MS)
                backoff = FORGET_BACKOFF_MAX_MS;
            next_forget = zclock_mono() + backoff;
        }
    }
    evp_info("stopping", "%s", "");
    ingest_commit_destroy(&commit);
    ingest_watch_destroy(&watch);
    return 0;
}

int ingest_run(ingest_t *self)
{
    bool watching = self->cfg->ingest_watch_dir[0] != '\0';
    if (self->opts.npaths == 0 && !watching) {
        evp_error("nothing to ingest: give files or folders, or --watch DIR", "%s", "");
        return 1;
    }
    int rc = 0;
    if (self->opts.npaths > 0)
        rc = s_one_shot(self);
    if (watching && !evp_stopping() && rc == 0) {
        if (self->opts.wait && self->opts.npaths == 0)
            evp_warn("--wait applies to files given as arguments, not to the watched folder", "%s", "");
        rc = s_watch(self);
    }
    return rc;
}
