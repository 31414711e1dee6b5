/* test_status: NAME/status's JSON as users and the e2e tests read it (lib.sh's status_field,
 * jq): the keys and their order for an idle VM asked over QMP, a running save, a failed restore
 * and imports. The one writer of that text is job_status_json; this pins its shape. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "status.h"

static void expect(const struct job_status *st, const char *want, const char *what)
{
    char *text = job_status_json(st);

    CHECK(text && strcmp(text, want) == 0, "%s:\n%s\nwanted:\n%s", what, text, want);
    free(text);
}

static void test_idle(void)
{
    struct job_status st = {.vm = "vm1", .state = "running", .has_pid = 1, .pid = 42};

    snprintf(st.qemu_status, sizeof(st.qemu_status), "running");
    snprintf(st.console, sizeof(st.console), "/run/savefs/vm1.console");
    expect(&st,
           "{\n  \"vm\": \"vm1\",\n  \"pid\": 42,\n  \"console\": \"/run/savefs/vm1.console\",\n"
           "  \"qemu_status\": \"running\",\n  \"state\": \"running\",\n  \"job\": null,\n"
           "  \"last\": null\n}\n",
           "idle");
    st = (struct job_status){.vm = "vm1", .state = "unknown"};
    snprintf(st.note, sizeof(st.note), "monitor busy");
    expect(&st,
           "{\n  \"vm\": \"vm1\",\n  \"note\": \"monitor busy\",\n  \"state\": \"unknown\",\n"
           "  \"job\": null,\n  \"last\": null\n}\n",
           "monitor busy");
}

static void test_save_running(void)
{
    struct job_status st = {.vm = "vm1", .state = "saving", .has_pid = 1, .pid = 7};

    st.has_job = 1;
    st.job.kind = &job_kind_save;
    st.job.phase = "streaming";
    st.job.bytes_done = 500;
    st.job.bytes_total = 1000;
    st.job.bytes_written = 300;
    st.job.words.parallel = 4;
    snprintf(st.job.snapshot, sizeof(st.job.snapshot), "s1");
    st.elapsed_s = 2.0;
    expect(&st,
           "{\n  \"vm\": \"vm1\",\n  \"pid\": 7,\n  \"state\": \"saving\",\n  \"job\": {\n"
           "    \"op\": \"save\",\n    \"phase\": \"streaming\",\n    \"bytes_done\": 500,\n"
           "    \"bytes_total\": 1000,\n    \"rate_bytes_per_s\": 250,\n"
           "    \"elapsed_s\": 2.0,\n    \"snapshot\": \"s1\",\n    \"bytes_written\": 300,\n"
           "    \"bytes_to_write\": null,\n    \"parallel\": 4\n  },\n  \"last\": null\n}\n",
           "save running");
}

static void test_failed_restore_and_imports(void)
{
    struct status_import im[2] = {
        {.snapshot = "a", .phase = "importing", .has_reason = 1, .files_open = 2},
        {.snapshot = "b", .phase = "restored"},
    };
    struct job_status st = {.vm = "vm1", .state = "importing", .imports = im, .nimports = 2};

    snprintf(im[0].reason, sizeof(im[0].reason), "waiting: main is missing");
    st.last = (struct job_result){.valid = 1,
                                  .kind = &job_kind_restore,
                                  .rc = -EINVAL,
                                  .finished = "2026-12-02T10:00:00Z",
                                  .duration_s = 1.5};
    snprintf(st.last.snapshot, sizeof(st.last.snapshot), "b");
    snprintf(st.last.message, sizeof(st.last.message), "vm1: refused");
    st.last.phases.n = 1;
    st.last.phases.at[0].name = "checking";
    st.last.phases.at[0].s = 0.25;
    expect(&st,
           "{\n  \"vm\": \"vm1\",\n  \"state\": \"importing\",\n  \"job\": null,\n"
           "  \"last\": {\n    \"op\": \"restore\",\n    \"result\": \"error\",\n"
           "    \"finished\": \"2026-12-02T10:00:00Z\",\n    \"duration_s\": 1.5,\n"
           "    \"snapshot\": \"b\",\n    \"phases_s\": {\n      \"checking\": 0.25\n    },\n"
           "    \"errno\": \"EINVAL\",\n    \"error\": \"vm1: refused\"\n  },\n"
           "  \"imports\": [\n    {\n      \"snapshot\": \"a\",\n      \"phase\": \"importing\",\n"
           "      \"reason\": \"waiting: main is missing\",\n      \"files_open\": 2\n    },\n"
           "    {\n      \"snapshot\": \"b\",\n      \"phase\": \"restored\"\n    }\n  ]\n}\n",
           "failed restore and imports");
}

/* Who runs the VM in the fleet: another host's lease on a VM stopped here, nobody's, and an
 * alarm, said before anything else of the lease. */
static void test_lease(void)
{
    struct job_status st = {.vm = "vm1", .state = "stopped"};

    st.lease = (struct watch_view){.known = 1, .held = 1};
    st.lease.holder = (struct lease_holder){
        .host = "a", .since = "2026-12-02T10:00:00Z", .pid = 7, .how = "restored"};
    expect(&st,
           "{\n  \"vm\": \"vm1\",\n  \"state\": \"stopped\",\n  \"lease\": {\n"
           "    \"host\": \"a\",\n    \"since\": \"2026-12-02T10:00:00Z\",\n    \"pid\": 7,\n"
           "    \"how\": \"restored\",\n    \"this_host\": false\n  },\n  \"job\": null,\n"
           "  \"last\": null\n}\n",
           "held elsewhere");
    st.lease = (struct watch_view){.known = 1, .fenced = 1};
    snprintf(st.lease.alarm, sizeof(st.lease.alarm), "fenced: why");
    expect(&st,
           "{\n  \"vm\": \"vm1\",\n  \"state\": \"stopped\",\n  \"alarm\": \"fenced: why\",\n"
           "  \"lease\": null,\n  \"job\": null,\n  \"last\": null\n}\n",
           "free, with an alarm");
}

int main(void)
{
    test_lease();
    test_idle();
    test_save_running();
    test_failed_restore_and_imports();
    return check_result("test_status");
}
