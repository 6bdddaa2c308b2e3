/*
 * postsuper_repair - postsuper -s (structure check and repair) and -p
 * (purge of stale temporary files) over the queue directories.
 *
 * -s, in every queue but maildrop/ (whose files belong to postdrop and
 * pickup, which judge them) and incoming/ (files being written):
 *   - a queue file in the wrong hash subdirectory, after hash_queue_depth
 *     or hash_queue_names changed, is moved where the settings want it;
 *     hash subdirectories deeper than wanted are removed once empty;
 *   - a queue file that fails to parse (corrupt or cut short) is moved to
 *     corrupt/, as the queue manager would;
 *   - a regular file whose name is not a queue id is moved to corrupt/
 *     under its own name (names that are not plain printable text are only
 *     reported); anything that is neither a file nor a hash subdirectory
 *     (a symbolic link, a fifo, a socket) is removed, never followed;
 *   - incoming/ files that no writer holds and that are older than
 *     qmgr_incoming_purge_time are removed (never acknowledged, so nothing
 *     is lost).
 * -p removes temporary files ("NAME.tmp.PID", left by a crash during an
 * atomic file replacement) older than a week, and does the incoming/
 * purge as well.
 *
 * Every change is a rename that never replaces a file, or an unlink, each
 * followed by fsync of the directories involved.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "postsuper.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define PS_ALIEN_NAME_MAX 100 /* longest foreign file name moved to corrupt/ */

typedef struct PS_WALK {
    const char *queue;
    int structure, purge;
    int wanted_depth; /* hash levels files of this queue belong at */
    time_t now;
    VSTR *want; /* scratch: where a file belongs */
    VSTR *why;
} PS_WALK;

/* ps_is_hash_dir - a one-character name a hash level could have */
static int ps_is_hash_dir(const char *name)
{
    return name[0] != 0 && name[1] == 0 && queue_id_char_ok((unsigned char)name[0]);
}

/* ps_is_temp - "NAME.tmp.PID", as file_write_atomic and table builders name theirs */
static int ps_is_temp(const char *name)
{
    const char *t = strstr(name, ".tmp.");

    return t != NULL && t[5] != 0 && strspn(t + 5, "0123456789") == strlen(t + 5);
}

/* ps_alien_name_ok - a foreign name that can be kept as it is in corrupt/ */
static int ps_alien_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > PS_ALIEN_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (name[i] <= 0x20 || name[i] >= 0x7f || name[i] == '/')
            return 0;
    return 1;
}

/* ps_sync_both - fsync the directories of two paths after a rename */
static void ps_sync_both(const char *a, const char *b)
{
    if (fsync_parent(a) < 0 || fsync_parent(b) < 0)
        msg_warn("fsync after renaming %s to %s: %m", a, b);
}

/* ps_to_corrupt - move the file at path to corrupt/NAME; 0 or -1 */
static int ps_to_corrupt(PS_WALK *w, const char *path, const char *name)
{
    vstr_sprintf(w->want, "%s/%s/%s", mail_queue_directory(), MAIL_QUEUE_CORRUPT, name);
    if (mail_queue_rename(path, vstr_str(w->want)) < 0) {
        if (errno != ENOENT) {
            msg_warn("cannot move %s to %s/: %m", path, MAIL_QUEUE_CORRUPT);
            ps_stats.errors++;
        }
        return -1;
    }
    ps_sync_both(path, vstr_str(w->want));
    ps_stats.corrupt++;
    return 0;
}

/* ps_check_content - a queue file that does not parse goes to corrupt/; 1 moved */
static int ps_check_content(PS_WALK *w, const char *path, const char *id)
{
    QFILE *q;
    int err = qfile_open_path(path, id, 0, &q, w->why);

    if (err == QFILE_OK) {
        qfile_close(q);
        return 0;
    }
    /* A newer format is not damage, and a read error may pass. */
    if (err != QFILE_ERR_CORRUPT && err != QFILE_ERR_INCOMPLETE && err != QFILE_ERR_LIMIT)
        return 0;
    if (ps_to_corrupt(w, path, id) < 0)
        return 0;
    msg_warn("%s: corrupt queue file in %s/: %s -- moved to %s/", id, w->queue, vstr_str(w->why),
             MAIL_QUEUE_CORRUPT);
    return 1;
}

/* ps_place - a queue file outside its hash subdirectory is moved there */
static void ps_place(PS_WALK *w, const char *path, const char *id)
{
    mail_queue_path(w->want, w->queue, id);
    if (strcmp(path, vstr_str(w->want)) == 0)
        return;
    if (mail_queue_make_subdirs(w->queue, id) < 0 ||
        mail_queue_rename(path, mail_queue_path(w->want, w->queue, id)) < 0) {
        if (errno == EEXIST)
            msg_warn("%s: %s is a second copy of %s -- left for the administrator", id, path,
                     vstr_str(w->want));
        else if (errno != ENOENT)
            msg_warn("%s: cannot move %s to %s: %m", id, path, vstr_str(w->want));
        if (errno != ENOENT)
            ps_stats.errors++;
        return;
    }
    ps_sync_both(path, vstr_str(w->want));
    ps_stats.moved++;
    msg_info("%s: moved from %s to %s", id, path, vstr_str(w->want));
}

/* ps_check_file - one regular file */
static void ps_check_file(PS_WALK *w, const char *path, const char *name, const struct stat *st)
{
    if (ps_is_temp(name)) {
        if (w->purge && w->now - st->st_mtime > PS_TEMP_AGE) {
            if (unlink(path) == 0) {
                msg_info("removed stale temporary file %s", path);
                ps_stats.removed++;
            } else if (errno != ENOENT) {
                msg_warn("remove %s: %m", path);
                ps_stats.errors++;
            }
        }
        return;
    }
    if (!w->structure || strcmp(w->queue, MAIL_QUEUE_MAILDROP) == 0 ||
        strcmp(w->queue, MAIL_QUEUE_INCOMING) == 0)
        return;
    if (!queue_id_valid(name)) {
        if (strcmp(w->queue, MAIL_QUEUE_CORRUPT) == 0 || name[0] == '.')
            return;
        if (!ps_alien_name_ok(name)) {
            msg_warn("unexpected file in the queue, name not shown as it is: %s/...", w->queue);
            return;
        }
        if (ps_to_corrupt(w, path, name) == 0)
            msg_warn("unexpected file %s -- moved to %s/", path, MAIL_QUEUE_CORRUPT);
        return;
    }
    if (strcmp(w->queue, MAIL_QUEUE_CORRUPT) != 0 && ps_check_content(w, path, name))
        return;
    ps_place(w, path, name);
}

/* ps_remove_other - remove what is neither a file nor a directory */
static void ps_remove_other(PS_WALK *w, const char *path, const struct stat *st)
{
    const char *what = S_ISLNK(st->st_mode)    ? "symbolic link"
                       : S_ISFIFO(st->st_mode) ? "fifo"
                       : S_ISSOCK(st->st_mode) ? "socket"
                                               : "special file";

    if (!w->structure)
        return;
    /* unlink never follows a symbolic link: only the link goes. */
    if (unlink(path) == 0) {
        msg_warn("removed unexpected %s %s", what, path);
        ps_stats.removed++;
    } else if (errno != ENOENT) {
        msg_warn("cannot remove unexpected %s %s: %m", what, path);
        ps_stats.errors++;
    }
}

/* ps_list_dir - the names in a directory (read before anything moves) */
static ARGV *ps_list_dir(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *ent;
    ARGV *names;

    if (dir == NULL)
        return NULL;
    names = argv_alloc(64);
    while ((errno = 0, ent = readdir(dir)) != NULL)
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0)
            argv_add(names, ent->d_name, (char *)NULL);
    int saved = errno;

    closedir(dir);
    if (saved != 0) {
        argv_free(names);
        errno = saved;
        return NULL;
    }
    return names;
}

/* ps_walk_dir - one directory level of a queue */
static void ps_walk_dir(PS_WALK *w, VSTR *path, int depth)
{
    ARGV *names = ps_list_dir(vstr_str(path));
    size_t base = vstr_len(path);
    struct stat st;

    if (names == NULL) {
        if (errno != ENOENT || depth == 0) {
            msg_warn("cannot scan queue directory %s: %m", vstr_str(path));
            ps_stats.errors++;
        }
        return;
    }
    for (size_t i = 0; i < names->argc; i++) {
        const char *name = names->argv[i];

        vstr_truncate(path, base);
        vstr_sprintf_append(path, "/%s", name);
        if (lstat(vstr_str(path), &st) < 0)
            continue; /* gone meanwhile */
        if (S_ISREG(st.st_mode)) {
            ps_check_file(w, vstr_str(path), name, &st);
        } else if (S_ISDIR(st.st_mode)) {
            if (strcmp(w->queue, MAIL_QUEUE_MAILDROP) != 0 && ps_is_hash_dir(name) &&
                depth < MAIL_QUEUE_HASH_DEPTH_MAX) {
                ps_walk_dir(w, path, depth + 1);
                /* A level the settings no longer use goes once it is empty. */
                if (w->structure && depth + 1 > w->wanted_depth && rmdir(vstr_str(path)) == 0)
                    msg_info("removed unused queue subdirectory %s", vstr_str(path));
            } else if (w->structure) {
                if (rmdir(vstr_str(path)) == 0)
                    msg_warn("removed unexpected directory %s", vstr_str(path));
                else if (errno != ENOENT)
                    msg_warn("unexpected directory %s: %m -- left alone", vstr_str(path));
            }
        } else {
            ps_remove_other(w, vstr_str(path), &st);
        }
    }
    vstr_truncate(path, base);
    argv_free(names);
}

/* ps_repair - -s and/or -p over the queues */
void ps_repair(const ARGV *queues, int structure, int purge)
{
    VSTR *path = vstr_alloc(256);
    PS_WALK w = {
        .structure = structure,
        .purge = purge,
        .now = time(NULL),
        .want = vstr_alloc(256),
        .why = vstr_alloc(100),
    };
    int incoming = 0;

    for (size_t i = 0; i < queues->argc; i++) {
        w.queue = queues->argv[i];
        w.wanted_depth = mail_queue_hashed(w.queue) ? (int)var_int("hash_queue_depth") : 0;
        incoming |= strcmp(w.queue, MAIL_QUEUE_INCOMING) == 0;
        vstr_sprintf(path, "%s/%s", mail_queue_directory(), w.queue);
        ps_walk_dir(&w, path, 0);
    }
    if (incoming) {
        long n = qfile_purge_incoming(var_time("qmgr_incoming_purge_time"), w.why);

        if (n < 0) {
            msg_warn("%s", vstr_str(w.why));
            ps_stats.errors++;
        } else {
            ps_stats.removed += n;
        }
    }
    vstr_free(path);
    vstr_free(w.want);
    vstr_free(w.why);
}
