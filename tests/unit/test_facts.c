/* test_facts: a snapshot's user.savefs.* facts are computed one at a time, as they are asked
 * for: asking for a cheap one (vm) or listing them reads the manifest once and decides no trust;
 * trust is decided when "trust" is asked for, once while the manifest and local.json stay as
 * they are, and again once local.json changed. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "facts.h"
#include "localdef.h"
#include "manifest.h"
#include "manifest_fixture.h"
#include "trust.h"

static char dir[] = "/tmp/test_facts.XXXXXX";

/* Fact NAME's value, "" if there is none; the counts after asking into C. */
static char *fact(struct facts_cache *fc, const char *store, const char *name,
                  struct facts_counts *c)
{
    char *v = NULL;
    int rc = facts_value(fc, store, "vm1", "S", name, &v);

    CHECK(rc == 0 || rc == -ENODATA, "%s: %s", name, strerror(-rc));
    facts_cache_counts(fc, c);
    return v ? v : strdup("");
}

static void test_one_fact_at_a_time(const char *store, struct trust *t)
{
    struct facts_cache *fc;
    struct facts_counts c;
    char *v, *names, digest[TRUST_DIGEST_MAX], err[512], path[512], text[256];
    size_t len;

    CHECK(facts_cache_new(&fc, t) == 0, "facts_cache_new");
    v = fact(fc, store, FACTS_XATTR_PREFIX "vm", &c);
    CHECK(strcmp(v, "vm1") == 0, "vm: %s", v);
    CHECK(c.manifests_read == 1 && c.trust_decided == 0, "vm: read %lu, decided %lu",
          c.manifests_read, c.trust_decided);
    free(v);
    CHECK(facts_names(fc, store, "vm1", "S", &names, &len) == 0, "names");
    CHECK(len > 0 && memmem(names, len, FACTS_XATTR_PREFIX "trust", 18), "trust not listed");
    CHECK(!memmem(names, len, "keep_running", 12), "keep_running listed without disks");
    free(names);
    v = fact(fc, store, FACTS_XATTR_PREFIX "digest", &c);
    snprintf(digest, sizeof(digest), "%s", v);
    CHECK(strncmp(v, "sha256:", 7) == 0, "digest: %s", v);
    free(v);
    v = fact(fc, store, FACTS_XATTR_PREFIX "ram_size", &c);
    CHECK(strcmp(v, "536870912") == 0, "ram_size: %s", v);
    free(v);
    CHECK(c.manifests_read == 1 && c.trust_decided == 0, "cheap facts: read %lu, decided %lu",
          c.manifests_read, c.trust_decided);
    free(fact(fc, store, FACTS_XATTR_PREFIX "keep_running", &c));
    v = fact(fc, store, FACTS_XATTR_PREFIX "trust", &c);
    CHECK(strncmp(v, "refused", 7) == 0, "trust: %s", v);
    free(v);
    free(fact(fc, store, FACTS_XATTR_PREFIX "trust", &c));
    CHECK(c.manifests_read == 1 && c.trust_decided == 1, "trust twice: read %lu, decided %lu",
          c.manifests_read, c.trust_decided);
    /* Accepting the digest changes this host's local.json@HOST: trust is decided again, and
     * says so. */
    CHECK(localdef_accept(store, "vm1", digest, err, sizeof(err)) == 0, "accept: %s", err);
    v = fact(fc, store, FACTS_XATTR_PREFIX "trust", &c);
    CHECK(strncmp(v, "ok: accepted", 12) == 0 && strstr(v, "/local.json@"),
          "trust once accepted: %s", v);
    free(v);
    CHECK(c.manifests_read == 2 && c.trust_decided == 2, "accepted: read %lu, decided %lu",
          c.manifests_read, c.trust_decided);
    /* So does the shared local.json, which a host without its own reads. */
    snprintf(path, sizeof(path), "%s/vm1/%s@%s", store, LOCALDEF_NAME, store_host());
    CHECK(unlink(path) == 0, "unlink %s", path);
    snprintf(path, sizeof(path), "%s/vm1/%s", store, LOCALDEF_NAME);
    snprintf(text, sizeof(text), "{\"accept\": [\"%s\"]}", digest);
    write_text(path, text, 0600);
    v = fact(fc, store, FACTS_XATTR_PREFIX "trust", &c);
    CHECK(strncmp(v, "ok: accepted", 12) == 0 && strstr(v, "/local.json as"),
          "trust accepted by the shared local.json: %s", v);
    free(v);
    CHECK(c.trust_decided == 3, "the shared local.json: decided %lu", c.trust_decided);
    unlink(path);
    facts_cache_free(fc);
}

static void test_unreadable(const char *store, struct trust *t)
{
    struct facts_cache *fc;
    struct facts_counts c;
    char path[512], *names, *v;
    size_t len;
    FILE *f;

    snprintf(path, sizeof(path), "%s/vm1/snapshots/S/%s", store, MANIFEST_NAME);
    CHECK((f = fopen(path, "w")) && fputs("{\"vm\":", f) >= 0 && fclose(f) == 0, "%s", path);
    CHECK(facts_cache_new(&fc, t) == 0, "facts_cache_new");
    CHECK(facts_value(fc, store, "vm1", "S", FACTS_XATTR_PREFIX "vm", &v) == -ENODATA,
          "vm of an unreadable manifest");
    CHECK(facts_names(fc, store, "vm1", "S", &names, &len) == 0 && len == 0 && !names,
          "names of an unreadable manifest");
    facts_cache_counts(fc, &c);
    CHECK(c.manifests_read == 1 && c.trust_decided == 0, "unreadable: read %lu, decided %lu",
          c.manifests_read, c.trust_decided);
    facts_cache_free(fc);
}

/* Readers ask while the manifest is rewritten (entries replaced under them): every answer is
 * the fact or none, and nothing leaks or is used once freed (valgrind's run of this test). */
struct reader {
    struct facts_cache *fc;
    const char *store;
    pthread_t thread;
    int bad, asked;
};

static atomic_int rewritten; /* the readers stop once the manifest was rewritten */

static void *read_facts(void *arg)
{
    static const char *const names[] = {"vm", "trust", "digest", "ram_size", "keep_running"};
    struct reader *r = arg;
    char name[64], *v, *list;
    struct facts f;
    size_t len;

    for (int i = 0; !atomic_load(&rewritten); i++, r->asked++) {
        snprintf(name, sizeof(name), FACTS_XATTR_PREFIX "%s", names[i % 5]);
        int rc = facts_value(r->fc, r->store, "vm1", "S", name, &v);
        r->bad += rc != 0 && rc != -ENODATA;
        r->bad += rc == 0 && i % 5 == 0 && strcmp(v, "vm1") != 0;
        free(v);
        if (facts_names(r->fc, r->store, "vm1", "S", &list, &len) == 0)
            free(list);
        else
            r->bad++;
        if (facts_get(r->fc, r->store, "vm1", "S", &f) == 0)
            facts_free(&f);
        else
            r->bad++;
    }
    return NULL;
}

static void test_concurrent(const char *store, struct trust *t)
{
    char *argv[] = {"qemu-system-x86_64", "-m", "64", "-smp", "2", NULL};
    struct reader r[4] = {0};
    struct facts_cache *fc;

    CHECK(facts_cache_new(&fc, t) == 0, "facts_cache_new");
    for (int i = 0; i < 4; i++) {
        r[i] = (struct reader){fc, store, 0, 0, 0};
        CHECK(pthread_create(&r[i].thread, NULL, read_facts, &r[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 12; i++) /* more versions than the cache has slots */
        make_manifest(store, argv, 1 + i % 5, NULL);
    atomic_store(&rewritten, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(r[i].thread, NULL);
        CHECK(r[i].bad == 0, "reader %d: %d wrong answers of %d", i, r[i].bad, r[i].asked);
    }
    facts_cache_free(fc);
}

int main(void)
{
    char store[300], qmp[300], cmd[300], err[512];
    char *qemu[] = {"/bin/sh"}, *argv[] = {"qemu-system-x86_64", "-m", "64", NULL};
    struct trust *t = NULL;

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(store, sizeof(store), "%s/store", dir);
    snprintf(qmp, sizeof(qmp), "%s/qmp", dir);
    make_manifest(store, argv, 3, NULL);
    struct trust_config cfg = {store, NULL, qemu, 1, NULL, qmp};
    CHECK(trust_new(&t, &cfg, err, sizeof(err)) == 0, "trust_new: %s", err);
    if (t) {
        test_one_fact_at_a_time(store, t);
        test_unreadable(store, t);
        test_concurrent(store, t);
    }
    trust_free(t);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        check_failures++;
    return check_result("test_facts");
}
