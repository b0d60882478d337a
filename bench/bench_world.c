/*
 * bench_world.c - requests per second the world answers on loopback:
 * non-streaming chat completions from a libcurl multi client with keep-alive
 * connections, journal on (in memory and as a JSON-lines file). Target:
 * >= 20,000/s on a 2-core machine, client and server sharing it.
 *
 * usage: bench_world [all] [--seconds S] [--connections N] [--no-journal-file]
 *                    [--quick] [--work DIR] [--rebound PATH]
 * Prints one line: requests, seconds, requests/s, errors. bench/run.sh's
 * common options (all, --work, --rebound) are accepted and not needed;
 * --quick runs for 1 s; other options meant for other benches are ignored.
 */
#include "harness/world/world.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char body[] =
    "{\"model\":\"gpt-bench\",\"messages\":[{\"role\":\"system\",\"content\":\"you are a "
    "careful research agent\"},{\"role\":\"user\",\"content\":\"summarise the three "
    "sources on recovery time\"}]}";

struct conn {
    CURL *easy;
    long status;
};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = 3.0, t0, t1;
    int nconn = 16, journal_file = 1, i, running = 0;
    long long done = 0, errors = 0;
    char url[128], jpath[] = "/tmp/bench_world_journal_XXXXXX";
    struct rb_world_config cfg;
    struct rb_world *w = NULL;
    struct rb_error err;
    struct curl_slist *hdrs = NULL;
    struct conn *conns;
    CURLM *multi;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc)
            nconn = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-journal-file") == 0)
            journal_file = 0;
        else if (strcmp(argv[i], "--quick") == 0)
            seconds = 1.0;
        else if ((strcmp(argv[i], "--work") == 0 || strcmp(argv[i], "--rebound") == 0) &&
                 i + 1 < argc)
            i++;
        else if (strcmp(argv[i], "all") != 0)
            fprintf(stderr, "bench_world: ignoring '%s' (not one of its options)\n",
                    argv[i]);
    }
    if (seconds <= 0 || nconn < 1 || nconn > 1000) {
        fprintf(stderr, "bench_world: bad --seconds or --connections\n");
        return 2;
    }

    rb_world_config_init(&cfg);
    cfg.seed = 1;
    if (journal_file) {
        int fd = mkstemp(jpath);
        if (fd < 0) {
            perror("bench_world: mkstemp");
            return 1;
        }
        close(fd);
        cfg.journal_path = strdup(jpath);
    }
    rb_error_init(&err);
    if (rb_world_start(&cfg, &w, &err) != RB_OK) {
        fprintf(stderr, "bench_world: %s\n", err.message);
        return 1;
    }
    snprintf(url, sizeof(url), "%s/v1/chat/completions", rb_world_url(w));

    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    conns = calloc((size_t)nconn, sizeof(*conns));
    if (!multi || !hdrs || !conns) {
        fprintf(stderr, "bench_world: out of memory\n");
        return 1;
    }
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)nconn);
    for (i = 0; i < nconn; i++) {
        CURL *e = curl_easy_init();
        conns[i].easy = e;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &conns[i]);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(multi, e);
    }

    t0 = now_s();
    t1 = t0;
    for (;;) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left))) {
            CURL *e = msg->easy_handle;
            long status = 0;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status != 200)
                errors++;
            done++;
            curl_multi_remove_handle(multi, e);
            t1 = now_s();
            if (t1 - t0 < seconds)
                curl_multi_add_handle(multi, e); /* again, on the kept-alive connection */
        }
        if (t1 - t0 >= seconds && running == 0)
            break;
        if (now_s() - t0 > seconds + 30) {
            fprintf(stderr, "bench_world: hung\n");
            return 1;
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }

    printf("world: %lld requests in %.2f s = %.0f requests/s, %lld errors "
           "(%d keep-alive connections, journal %s, %zu entries)\n",
           done, t1 - t0, (double)done / (t1 - t0), errors, nconn,
           journal_file ? "in memory + file" : "in memory", rb_world_journal_count(w));
    for (i = 0; i < nconn; i++)
        curl_easy_cleanup(conns[i].easy);
    free(conns);
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    rb_world_stop(w);
    rb_world_config_release(&cfg);
    if (journal_file)
        unlink(jpath);
    return errors ? 1 : 0;
}
