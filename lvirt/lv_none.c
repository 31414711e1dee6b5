/* lv_none: lvirt in a savefs built without libvirt: no domain, ever. */
#include "lvirt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int lv_built(void)
{
    return 0;
}

int lv_open(struct lv **out, const char *uri, void (*log)(const char *msg))
{
    (void)uri;
    (void)log;
    *out = NULL;
    return -ENOTSUP;
}

void lv_close(struct lv *lv)
{
    (void)lv;
}

char **lv_list(struct lv *lv)
{
    (void)lv;
    return calloc(1, sizeof(char *));
}

int lv_running(struct lv *lv, const char *name)
{
    (void)lv;
    (void)name;
    return 0;
}

static int none(char *err, size_t errlen)
{
    snprintf(err, errlen, "savefs was built without libvirt");
    return -ENOTSUP;
}

int lv_qmp_open(struct lv *lv, const char *name, struct qmp **out, char *err, size_t errlen)
{
    (void)lv;
    (void)name;
    *out = NULL;
    return none(err, errlen);
}

int lv_domain_xml(struct lv *lv, const char *name, char **xml, int *persistent, char *err,
                  size_t errlen)
{
    (void)lv;
    (void)name;
    (void)persistent;
    *xml = NULL;
    return none(err, errlen);
}

int lv_mark_saved(struct lv *lv, const char *name, const char *snapshot, const char *store,
                  const char *at, char *err, size_t errlen)
{
    (void)lv;
    (void)name;
    (void)snapshot;
    (void)store;
    (void)at;
    return none(err, errlen);
}

int lv_saved_mark(struct lv *lv, const char *name, char *snap, size_t size)
{
    (void)lv;
    (void)name;
    (void)snap;
    (void)size;
    return 0;
}

int lv_clear_mark(struct lv *lv, const char *name, char *err, size_t errlen)
{
    (void)lv;
    (void)name;
    (void)err;
    (void)errlen;
    return 0;
}

int lv_start_incoming(struct lv *lv, const char *name, const char *xml, char *err, size_t errlen)
{
    (void)lv;
    (void)name;
    (void)xml;
    return none(err, errlen);
}

int lv_resume(struct lv *lv, const char *name, char *err, size_t errlen)
{
    (void)lv;
    (void)name;
    return none(err, errlen);
}

int lv_destroy(struct lv *lv, const char *name, char *err, size_t errlen)
{
    (void)lv;
    (void)name;
    return none(err, errlen);
}
