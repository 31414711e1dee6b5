/* sfs_log: the log (sfs_log.h). systemd says that standard error is the journal by setting
 * JOURNAL_STREAM to its device and inode; there each line is stamped and kept by the journal,
 * and a syslog copy would be a second line in the same journal. Elsewhere (a terminal, a file,
 * /dev/null once daemonized) a line carries its own time and goes to syslog too. */
#include "sfs_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

static int to_journal;

static int stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    return env && sscanf(env, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
           (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void sfs_log_init(void)
{
    to_journal = stderr_is_journal();
}

void sfs_log(const char *msg)
{
    char when[32];
    struct tm tm;
    time_t now;

    if (to_journal) {
        fprintf(stderr, "savefs: %s\n", msg);
        return;
    }
    syslog(LOG_INFO, "%s", msg);
    now = time(NULL);
    localtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s savefs: %s\n", when, msg);
}
