/* record: the restored QEMU's original command line. Written after a restore, read by a save. */
#include "record.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu.h"
#include "store.h"

int record_write(const char *store, const char *vm, pid_t pid, const char *binary, const char *cwd,
                 char *const *argv, int argc)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    json_t *args = json_array(), *root;
    int rc = 0, i;

    if (store_vm_host_path(path, store, vm, STORE_QEMU_RECORD) || store_path(tmp, "%s.tmp", path))
        return -ENAMETOOLONG;
    for (i = 0; i < argc; i++)
        json_array_append_new(args, json_string(argv[i]));
    root = json_pack("{s:i, s:s, s:s, s:o}", "pid", (int)pid, "binary", binary, "cwd", cwd, "argv",
                     args);
    if (!root || json_dump_file(root, tmp, JSON_INDENT(2)) < 0 || rename(tmp, path) < 0)
        rc = -EIO;
    json_decref(root);
    return rc;
}

int record_read(const char *store, const char *vm, pid_t pid, char *binary, char *cwd, char ***argv,
                int *argc)
{
    char path[PATH_MAX];
    json_t *root, *args = NULL, *a;
    const char *bin = NULL, *dir = NULL;
    int rpid = 0, rc = -ENOENT;
    size_t i;

    if (store_vm_host_path(path, store, vm, STORE_QEMU_RECORD))
        return -ENAMETOOLONG;
    root = json_load_file(path, 0, NULL);
    if (!root ||
        json_unpack(root, "{s:i, s:s, s:s, s:o}", "pid", &rpid, "binary", &bin, "cwd", &dir, "argv",
                    &args) ||
        rpid != pid || !json_is_array(args))
        goto out;
    *argv = calloc(json_array_size(args) + 1, sizeof(char *));
    if (!*argv) {
        rc = -ENOMEM;
        goto out;
    }
    rc = 0;
    json_array_foreach(args, i, a)
    {
        if (!json_is_string(a) || !((*argv)[i] = strdup(json_string_value(a))))
            rc = -EINVAL;
    }
    *argc = (int)json_array_size(args);
    snprintf(binary, PATH_MAX, "%s", bin);
    snprintf(cwd, PATH_MAX, "%s", dir);
    if (rc) {
        qemu_argv_free(*argv);
        *argv = NULL;
    }
out:
    json_decref(root);
    return rc;
}
