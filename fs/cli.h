/* cli: `savefs save VM [WORDS...]` and `savefs restore VM SNAPSHOT`, thin clients of a savefs
 * mount: they write the words to MOUNT/VM/save or rename MOUNT/VM/snapshots/S into
 * MOUNT/VM/restore/, show the job's progress and exit with a status per errno. */
#ifndef SAVEFS_CLI_H
#define SAVEFS_CLI_H

#include <stdio.h>

/* Runs the command; ARGV[0] is "save" or "restore". Returns the exit status. */
int cli_main(int argc, char **argv);

/* The commands' synopsis and their exit statuses, for --help. */
void cli_usage(FILE *out);

#endif
