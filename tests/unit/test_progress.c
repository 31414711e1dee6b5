/* test_progress: a save's progress from query-migrate answers (a table): the RAM scanned of the
 * RAM's total, whatever share of it is zero pages; no figures while the migration sets up. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>

#include "check.h"
#include "progress.h"

static const struct {
    const char *answer;
    int rc;
    uint64_t done, total;
} cases[] = {
    {"{\"status\": \"setup\"}", -ENODATA, 0, 0},
    {"{\"status\": \"active\", \"ram\": {\"total\": 1000, \"remaining\": 1000, \"transferred\": "
     "0}}",
     0, 0, 1000},
    /* 270 of 1000 written, but all scanned: the old report stopped at 27%. */
    {"{\"status\": \"active\", \"ram\": {\"total\": 1000, \"remaining\": 0, \"transferred\": 270}}",
     0, 1000, 1000},
    {"{\"status\": \"active\", \"ram\": {\"total\": 1000, \"remaining\": 250}}", 0, 750, 1000},
    {"{\"status\": \"active\", \"ram\": {\"total\": 1000, \"remaining\": 5000}}", 0, 0, 1000},
    {"{\"status\": \"active\", \"ram\": {\"total\": 0, \"remaining\": 0}}", -ENODATA, 0, 0},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *ret = json_loads(cases[i].answer, 0, NULL);
        uint64_t done = 0, total = 0;
        int rc = progress_from_migrate(ret, &done, &total);

        CHECK(rc == cases[i].rc, "%s: rc %d", cases[i].answer, rc);
        CHECK(rc || (done == cases[i].done && total == cases[i].total), "%s: %llu of %llu",
              cases[i].answer, (unsigned long long)done, (unsigned long long)total);
        json_decref(ret);
    }
    return check_result("test_progress");
}
