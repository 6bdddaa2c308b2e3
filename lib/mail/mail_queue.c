/*
 * mail_queue - queue names, file paths, hash subdirectories, durable moves and scans.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mail_queue.h"
#include "mail/queue_id.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

/* The message queues, in the order mail_queue_exists_any() looks. */
static const char *const mail_queue_names[] = {
    MAIL_QUEUE_INCOMING, MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,     MAIL_QUEUE_DEFERRED,
    MAIL_QUEUE_HOLD,     MAIL_QUEUE_CORRUPT,   MAIL_QUEUE_MAILDROP, NULL,
};

/* Postfix queue names that have no Postern directory (Postern keeps deferral
   logs in the queue file); main.cf may still list them for hashing. */
static const char *const mail_queue_foreign[] = {
    "defer", "bounce", "trace", "flush", "saved", "active", NULL,
};

static char *mail_queue_dir;      /* queue_directory */
static int mail_queue_depth;      /* hash levels */
static unsigned mail_queue_hmask; /* bit i: mail_queue_names[i] is hashed */

/* mail_queue_index - position in mail_queue_names, -1 if unknown */
static int mail_queue_index(const char *name)
{
    for (int i = 0; mail_queue_names[i]; i++)
        if (strcmp(name, mail_queue_names[i]) == 0)
            return i;
    return -1;
}

/* mail_queue_init - settings */
int mail_queue_init(const char *queue_directory, int hash_depth, const char *hash_names, VSTR *why)
{
    unsigned mask = 0;
    ARGV *names;
    int ok = 1;

    if (queue_directory == NULL || *queue_directory == 0) {
        if (why)
            vstr_cpy(why, "queue_directory is empty");
        return -1;
    }
    if (hash_depth < 0 || hash_depth > MAIL_QUEUE_HASH_DEPTH_MAX) {
        if (why)
            vstr_sprintf(why, "hash_queue_depth %d is not in 0..%d", hash_depth,
                         MAIL_QUEUE_HASH_DEPTH_MAX);
        return -1;
    }
    names = argv_split(hash_names ? hash_names : "", ", \t\r\n");
    for (size_t i = 0; ok && i < names->argc; i++) {
        int idx = mail_queue_index(names->argv[i]);

        if (idx >= 0) {
            mask |= 1u << idx;
            continue;
        }
        int foreign = 0;

        for (int j = 0; mail_queue_foreign[j]; j++)
            foreign |= strcmp(names->argv[i], mail_queue_foreign[j]) == 0;
        if (!foreign) {
            if (why)
                vstr_sprintf(why, "hash_queue_names: unknown queue name \"%s\"", names->argv[i]);
            ok = 0;
        }
    }
    argv_free(names);
    if (!ok)
        return -1;
    myfree(mail_queue_dir);
    mail_queue_dir = mystrdup(queue_directory);
    /* Keep "/var/spool/postern/" from producing "//" in every path. */
    for (size_t len = strlen(mail_queue_dir); len > 1 && mail_queue_dir[len - 1] == '/'; len--)
        mail_queue_dir[len - 1] = 0;
    mail_queue_depth = hash_depth;
    mail_queue_hmask = hash_depth > 0 ? mask : 0;
    return 0;
}

/* mail_queue_directory - the configured queue_directory */
const char *mail_queue_directory(void)
{
    if (mail_queue_dir == NULL)
        msg_panic("mail_queue: mail_queue_init was not called");
    return mail_queue_dir;
}

/* mail_queue_name_ok - a message queue this module knows */
int mail_queue_name_ok(const char *queue_name)
{
    return queue_name != NULL && mail_queue_index(queue_name) >= 0;
}

/* mail_queue_check - panic on a name or id that could escape the queue tree */
static int mail_queue_check(const char *queue_name, const char *id)
{
    int idx = queue_name ? mail_queue_index(queue_name) : -1;

    if (idx < 0)
        msg_panic("mail_queue: bad queue name \"%s\"", queue_name ? queue_name : "(null)");
    if (id != NULL && !queue_id_valid(id))
        msg_panic("mail_queue: bad queue id \"%s\"", id);
    (void)mail_queue_directory();
    return idx;
}

/* mail_queue_hashed - files of this queue live in hash subdirectories */
int mail_queue_hashed(const char *queue_name)
{
    int idx = mail_queue_check(queue_name, NULL);

    return (mail_queue_hmask >> idx) & 1u;
}

/* mail_queue_file_dir - the directory that holds the file */
const char *mail_queue_file_dir(VSTR *buf, const char *queue_name, const char *id)
{
    int idx = mail_queue_check(queue_name, id);

    vstr_sprintf(buf, "%s/%s", mail_queue_dir, queue_name);
    if ((mail_queue_hmask >> idx) & 1u)
        for (int level = 0; level < mail_queue_depth; level++)
            vstr_sprintf_append(buf, "/%c", queue_id_hash_char(id, level));
    return vstr_str(buf);
}

/* mail_queue_path - the file's path */
const char *mail_queue_path(VSTR *buf, const char *queue_name, const char *id)
{
    mail_queue_file_dir(buf, queue_name, id);
    vstr_sprintf_append(buf, "/%s", id);
    return vstr_str(buf);
}

/* mail_queue_make_subdirs - create the hash levels for id */
int mail_queue_make_subdirs(const char *queue_name, const char *id)
{
    VSTR *path;
    struct stat st;
    int ret = 0;

    if (!mail_queue_hashed(queue_name) || !queue_id_valid(id))
        return 0;
    path = vstr_alloc(256);
    vstr_sprintf(path, "%s/%s", mail_queue_dir, queue_name);
    for (int level = 0; level < mail_queue_depth; level++) {
        size_t parent_len = vstr_len(path);

        vstr_sprintf_append(path, "/%c", queue_id_hash_char(id, level));
        if (mkdir(vstr_str(path), 0700) == 0) {
            /* The new directory entry must survive a crash before a file is
               renamed into it and acknowledged. */
            vstr_truncate(path, parent_len);
            ret = fsync_dir(vstr_str(path));
            vstr_sprintf_append(path, "/%c", queue_id_hash_char(id, level));
            if (ret < 0)
                break;
        } else if (errno != EEXIST) {
            ret = -1;
            break;
        } else if (lstat(vstr_str(path), &st) < 0) {
            ret = -1;
            break;
        } else if (!S_ISDIR(st.st_mode)) {
            /* Never follow a symbolic link planted where a directory belongs. */
            errno = ENOTDIR;
            ret = -1;
            break;
        }
    }
    int saved = errno;

    vstr_free(path);
    errno = saved;
    return ret;
}

/* mail_queue_exists - a file for id is in queue_name */
int mail_queue_exists(const char *queue_name, const char *id)
{
    VSTR *path = vstr_alloc(256);
    struct stat st;
    int ret;

    ret = lstat(mail_queue_path(path, queue_name, id), &st) == 0 ? 1 : errno == ENOENT ? 0 : -1;
    int saved = errno;

    vstr_free(path);
    errno = saved;
    return ret;
}

/* mail_queue_exists_any - a file for id in any message queue but skip */
int mail_queue_exists_any(const char *id, const char *skip)
{
    for (int i = 0; mail_queue_names[i]; i++) {
        if (skip && strcmp(skip, mail_queue_names[i]) == 0)
            continue;
        if (mail_queue_exists(mail_queue_names[i], id) != 0)
            return 1; /* present, or cannot tell: treat as taken */
    }
    return 0;
}

/* mail_queue_rename - rename that never replaces an existing target */
int mail_queue_rename(const char *from_path, const char *to_path)
{
    if (renameat2(AT_FDCWD, from_path, AT_FDCWD, to_path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;

    /*
     * The file system cannot do RENAME_NOREPLACE. link() also refuses to
     * replace, and the extra name that a crash may leave behind points to the
     * same file, which is harmless: the next move or removal deals with it.
     */
    if (link(from_path, to_path) < 0)
        return -1;
    if (unlink(from_path) < 0) {
        int saved = errno;

        (void)unlink(to_path);
        errno = saved;
        return -1;
    }
    return 0;
}

/* mail_queue_move - durable move of id between queues */
int mail_queue_move(const char *from_queue, const char *to_queue, const char *id)
{
    VSTR *src = vstr_alloc(256);
    VSTR *dst = vstr_alloc(256);
    int ret = -1, saved;

    mail_queue_check(from_queue, id);
    mail_queue_check(to_queue, id);
    if (strcmp(from_queue, to_queue) == 0) {
        errno = EINVAL;
        goto done;
    }
    mail_queue_path(src, from_queue, id);
    mail_queue_path(dst, to_queue, id);
    if (mail_queue_rename(vstr_str(src), vstr_str(dst)) < 0) {
        if (errno != ENOENT || !mail_queue_hashed(to_queue))
            goto done;
        /* Perhaps only the target's hash subdirectory is missing. */
        if (mail_queue_make_subdirs(to_queue, id) < 0 ||
            mail_queue_rename(vstr_str(src), vstr_str(dst)) < 0)
            goto done;
    }
    /* The rename is acknowledged only when both directories are on disk. */
    if (fsync_parent(vstr_str(dst)) < 0 || fsync_parent(vstr_str(src)) < 0)
        goto done;
    ret = 0;

done:
    saved = errno;
    vstr_free(src);
    vstr_free(dst);
    errno = saved;
    return ret;
}

/* mail_queue_remove - durable unlink */
int mail_queue_remove(const char *queue_name, const char *id)
{
    VSTR *path = vstr_alloc(256);
    int ret = -1;

    if (unlink(mail_queue_path(path, queue_name, id)) == 0 && fsync_parent(vstr_str(path)) == 0)
        ret = 0;
    int saved = errno;

    vstr_free(path);
    errno = saved;
    return ret;
}

/* mail_queue_is_hash_dir - a one-character name that a hash level could have */
static int mail_queue_is_hash_dir(const char *name)
{
    return name[0] != 0 && name[1] == 0 && queue_id_char_ok((unsigned char)name[0]);
}

/* mail_queue_walk_dir - one directory level of mail_queue_walk */
static int mail_queue_walk_dir(VSTR *path, int depth, MAIL_QUEUE_WALK_FN fn, void *ctx)
{
    DIR *dir = opendir(vstr_str(path));
    struct dirent *ent;
    size_t base_len = vstr_len(path);
    int ret = 0;

    if (dir == NULL)
        return -1;
    while (ret == 0 && (errno = 0, ent = readdir(dir)) != NULL) {
        const char *name = ent->d_name;
        unsigned char type = ent->d_type;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        vstr_truncate(path, base_len);
        vstr_sprintf_append(path, "/%s", name);
        if (type == DT_UNKNOWN) {
            struct stat st;

            if (lstat(vstr_str(path), &st) < 0)
                continue; /* removed meanwhile */
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
        }
        if (type == DT_DIR && depth < MAIL_QUEUE_HASH_DEPTH_MAX && mail_queue_is_hash_dir(name)) {
            /* A subdirectory that cannot be read must not hide the rest. */
            if ((ret = mail_queue_walk_dir(path, depth + 1, fn, ctx)) < 0) {
                msg_warn("cannot scan queue directory %s: %m", vstr_str(path));
                ret = 0;
            }
            continue;
        }
        if (type == DT_REG && queue_id_valid(name)) {
            ret = fn(ctx, name, vstr_str(path));
            continue;
        }
        if (name[0] != '.')
            msg_warn("skipping unexpected entry in the queue: %s", vstr_str(path));
    }
    int saved = errno;

    closedir(dir);
    vstr_truncate(path, base_len);
    if (ret == 0 && saved != 0) {
        errno = saved;
        return -1;
    }
    return ret;
}

/* mail_queue_walk - every queue file in the queue */
int mail_queue_walk(const char *queue_name, MAIL_QUEUE_WALK_FN fn, void *ctx)
{
    VSTR *path = vstr_alloc(256);
    int ret;

    mail_queue_check(queue_name, NULL);
    vstr_sprintf(path, "%s/%s", mail_queue_dir, queue_name);
    ret = mail_queue_walk_dir(path, 0, fn, ctx);
    int saved = errno;

    vstr_free(path);
    errno = saved;
    return ret;
}

typedef struct MAIL_QUEUE_SCAN {
    ARGV *ids;
    size_t start; /* first entry that this scan added */
    size_t limit;
} MAIL_QUEUE_SCAN;

/* mail_queue_cmp - qsort order of ids: strcmp, which is arrival order */
static int mail_queue_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* mail_queue_scan_sort - sort what this scan added; keep the oldest limit */
static void mail_queue_scan_sort(MAIL_QUEUE_SCAN *scan)
{
    size_t count = scan->ids->argc - scan->start;

    qsort(scan->ids->argv + scan->start, count, sizeof(char *), mail_queue_cmp);
    if (scan->limit > 0 && count > scan->limit)
        argv_truncate(scan->ids, scan->start + scan->limit);
}

/* mail_queue_scan_add - walk callback: collect one id */
static int mail_queue_scan_add(void *ctx, const char *id, const char *path)
{
    MAIL_QUEUE_SCAN *scan = ctx;

    (void)path;
    argv_add(scan->ids, id, (char *)NULL);
    /* Trimming at twice the limit keeps memory bounded and the cost linear. */
    if (scan->limit > 0 && scan->ids->argc - scan->start >= 2 * scan->limit)
        mail_queue_scan_sort(scan);
    return 0;
}

/* mail_queue_scan - sorted ids in a queue */
ssize_t mail_queue_scan(const char *queue_name, size_t limit, ARGV *ids)
{
    MAIL_QUEUE_SCAN scan = {ids, ids->argc, limit};

    if (mail_queue_walk(queue_name, mail_queue_scan_add, &scan) < 0) {
        int saved = errno;

        argv_truncate(ids, scan.start);
        errno = saved;
        return -1;
    }
    mail_queue_scan_sort(&scan);
    return (ssize_t)(ids->argc - scan.start);
}
