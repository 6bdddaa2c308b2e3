/*
 * dict_db - hash: and btree: tables: Berkeley DB 5.3 files NAME.db.
 *
 * Compatible with Postfix's files both ways: keys and values are written
 * with a trailing NUL (Postfix's default on Linux, DICT_FLAG_TRY1NULL);
 * when reading, both forms are tried until one hits, and that form is used
 * from then on. Keys are folded to lower case by the dict layer when the
 * caller asks (DICT_FLAG_FOLD_FIX), as postmap does by default.
 *
 * Readers take a shared flock on the file for each operation, so a writer
 * that updates a file in place under an exclusive lock (Postfix's postmap)
 * is never seen half-done. Our own writers never write the live file: they
 * build NAME.db.tmp.PID (an update starts from a copy of the table), then
 * fsync it and rename it over NAME.db. A flock on the directory keeps two
 * writers from overwriting each other's result.
 *
 * Each handle has a private Berkeley DB environment whose home is the
 * table's directory, so the library never reads a DB_CONFIG file from
 * whatever the current directory happens to be.
 */
#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/dict.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define DICT_DB_READ_CACHE (128 * 1024)         /* bytes of cache when reading */
#define DICT_DB_CREATE_CACHE (16 * 1024 * 1024) /* when building: big tables build fast */
#define DICT_DB_LOCK_WAIT_MS 10000              /* longest wait for a shared lock */
#define DICT_DB_LOCK_STEP_MS 10
#define DICT_DB_SOURCE_SLACK 100 /* seconds a source may be newer without a warning */

typedef struct DICT_DB {
    DB_ENV *env;
    DB *db;
    DBC *cursor;
    int fd;     /* the database file: flock and fstat */
    int nul;    /* DICT_FLAG_TRY1NULL / TRY0NULL: forms still possible */
    char *path; /* NAME.db */
    VSTR *key_buf;
    VSTR *val_buf;
    char *tmp_path; /* writers: the file being built */
    int dir_fd;     /* writers: the directory, flock'ed */
    int committed;
} DICT_DB;

/* dict_db_dbtype - Berkeley DB access method of the table type */
static DBTYPE dict_db_dbtype(const DICT *d)
{
    return d->kind == &dict_btree_type ? DB_BTREE : DB_HASH;
}

/* dict_db_errcall - library messages only matter when debugging; the
   error codes reach our own messages */
static void dict_db_errcall(const DB_ENV *env, const char *prefix, const char *text)
{
    (void)env;
    (void)prefix;
    if (msg_verbose)
        msg_info("Berkeley DB: %s", text);
}

/* dict_db_lock - flock with a bounded wait; 0 or -1 with errno */
static int dict_db_lock(int fd, int op)
{
    const struct timespec step = {0, DICT_DB_LOCK_STEP_MS * 1000000L};

    for (int waited = 0;; waited += DICT_DB_LOCK_STEP_MS) {
        if (flock(fd, op | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (waited >= DICT_DB_LOCK_WAIT_MS) {
            errno = EWOULDBLOCK;
            return -1;
        }
        nanosleep(&step, NULL);
    }
}

/* dict_db_unlock - release a lock taken by dict_db_lock */
static void dict_db_unlock(int fd)
{
    if (flock(fd, LOCK_UN) < 0)
        msg_warn("unlock database: %s", strerror(errno));
}

/* dict_db_dirname - directory part of path, new string */
static char *dict_db_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return mystrdup(".");
    if (slash == path)
        return mystrdup("/");
    return mystrndup(path, (size_t)(slash - path));
}

/* dict_db_basename - file part of path */
static const char *dict_db_basename(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* dict_db_open_file - environment and handle for path; 0 or -1 with why */
static int dict_db_open_file(const char *path, DBTYPE type, u_int32_t flags, u_int32_t cache,
                             DB_ENV **envp, DB **dbp, VSTR *why)
{
    DB_ENV *env = NULL;
    DB *db = NULL;
    char *dir = dict_db_dirname(path);
    int ret;

    if ((ret = db_env_create(&env, 0)) != 0) {
        vstr_sprintf(why, "create database environment: %s", db_strerror(ret));
        goto fail;
    }
    env->set_errcall(env, dict_db_errcall);
    if ((ret = env->set_cachesize(env, 0, cache, 0)) != 0) {
        vstr_sprintf(why, "set database cache size: %s", db_strerror(ret));
        goto fail;
    }
    if ((ret = env->open(env, dir, DB_CREATE | DB_INIT_MPOOL | DB_PRIVATE, 0)) != 0) {
        vstr_sprintf(why, "open database environment %s: %s", dir, db_strerror(ret));
        goto fail;
    }
    if ((ret = db_create(&db, env, 0)) != 0) {
        vstr_sprintf(why, "create database handle: %s", db_strerror(ret));
        goto fail;
    }
    if ((ret = db->open(db, NULL, dict_db_basename(path), NULL, type, flags, 0644)) != 0) {
        if (ret == EINVAL)
            vstr_sprintf(why, "open database %s: not a Berkeley DB %s file", path,
                         type == DB_BTREE ? "btree" : "hash");
        else
            vstr_sprintf(why, "open database %s: %s", path, db_strerror(ret));
        goto fail;
    }
    myfree(dir);
    *envp = env;
    *dbp = db;
    return 0;

fail:
    if (db)
        db->close(db, 0);
    if (env)
        env->close(env, 0);
    myfree(dir);
    return -1;
}

/* dict_db_free - close everything; an uncommitted build is removed */
static void dict_db_free(DICT *d, void *state)
{
    DICT_DB *st = state;
    int ret;

    if (st->cursor)
        st->cursor->close(st->cursor);
    if (st->db && (ret = st->db->close(st->db, 0)) != 0)
        msg_warn("close database %s: %s", st->path, db_strerror(ret));
    if (st->env)
        st->env->close(st->env, 0);
    if (st->tmp_path && !st->committed && unlink(st->tmp_path) < 0 && errno != ENOENT)
        msg_warn("remove %s: %s", st->tmp_path, strerror(errno));
    if (st->dir_fd >= 0)
        close(st->dir_fd); /* releases the writers' lock */
    (void)d;
    vstr_free(st->key_buf);
    vstr_free(st->val_buf);
    myfree(st->tmp_path);
    myfree(st->path);
    myfree(st);
}

/* dict_db_new - empty state for d */
static DICT_DB *dict_db_new(const DICT *d)
{
    DICT_DB *st = mycalloc(1, sizeof(*st));
    VSTR *path = vstr_alloc(strlen(d->name) + 4);

    vstr_cat(path, d->name);
    vstr_cat(path, ".db");
    st->path = vstr_export(path);
    st->fd = -1;
    st->dir_fd = -1;
    st->key_buf = vstr_alloc(100);
    st->val_buf = vstr_alloc(100);
    st->nul = d->flags & (DICT_FLAG_TRY0NULL | DICT_FLAG_TRY1NULL);
    if (st->nul == 0)
        st->nul = DICT_FLAG_TRY0NULL | DICT_FLAG_TRY1NULL;
    return st;
}

/* dict_db_version_ok - the library we run with is the one we built for */
static int dict_db_version_ok(VSTR *why)
{
    int major;
    int minor;
    int patch;

    (void)db_version(&major, &minor, &patch);
    if (major != DB_VERSION_MAJOR || minor != DB_VERSION_MINOR) {
        vstr_sprintf(why,
                     "incorrect version of Berkeley DB: compiled against %d.%d.%d, "
                     "run-time linked against %d.%d.%d",
                     DB_VERSION_MAJOR, DB_VERSION_MINOR, DB_VERSION_PATCH, major, minor, patch);
        return 0;
    }
    return 1;
}

/* dict_db_open_read - open NAME.db for lookups */
static DICT_DB *dict_db_open_read(DICT *d, struct stat *stp, VSTR *why)
{
    DICT_DB *st = dict_db_new(d);
    struct stat src;
    int lock_fd;

    /* Hold a shared lock while the library reads the file's metadata, so
       a writer working in place is not caught half-way. */
    if ((lock_fd = open(st->path, O_RDONLY | O_CLOEXEC)) < 0) {
        vstr_sprintf(why, "open database %s: %s", st->path, strerror(errno));
        goto fail;
    }
    if (dict_db_lock(lock_fd, LOCK_SH) < 0) {
        vstr_sprintf(why, "lock database %s: %s", st->path, strerror(errno));
        close(lock_fd);
        goto fail;
    }
    int rc = dict_db_open_file(st->path, dict_db_dbtype(d), DB_RDONLY, DICT_DB_READ_CACHE, &st->env,
                               &st->db, why);

    close(lock_fd);
    if (rc < 0)
        goto fail;
    if ((rc = st->db->fd(st->db, &st->fd)) != 0) {
        vstr_sprintf(why, "database %s: get file descriptor: %s", st->path, db_strerror(rc));
        goto fail;
    }
    close_on_exec(st->fd, 1);
    if (fstat(st->fd, stp) < 0) {
        vstr_sprintf(why, "fstat %s: %s", st->path, strerror(errno));
        goto fail;
    }
    if (stat(d->name, &src) == 0 && src.st_mtime > stp->st_mtime &&
        src.st_mtime < time(NULL) - DICT_DB_SOURCE_SLACK)
        msg_warn("database %s is older than source file %s", st->path, d->name);
    return st;

fail:
    dict_db_free(d, st);
    return NULL;
}

/* dict_db_put_raw - store a pair as given; 0, 1 present, -1 error */
static int dict_db_put_raw(DICT_DB *st, const void *key, size_t klen, const void *val, size_t vlen,
                           int replace)
{
    DBT k;
    DBT v;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)key;
    k.size = (u_int32_t)klen;
    v.data = (void *)val;
    v.size = (u_int32_t)vlen;
    int ret = st->db->put(st->db, NULL, &k, &v, replace ? 0 : DB_NOOVERWRITE);

    if (ret == DB_KEYEXIST)
        return 1;
    if (ret != 0) {
        msg_warn("error writing %s: %s", st->tmp_path, db_strerror(ret));
        return -1;
    }
    return 0;
}

/* dict_db_copy - the live table's entries into the one being built; learns
   the live table's NUL convention and file mode. 0, or -1 with why. */
static int dict_db_copy(DICT *d, DICT_DB *st, struct stat *live, VSTR *why)
{
    DICT_DB *src = dict_db_open_read(d, live, why);
    DBC *cur = NULL;
    DBT k;
    DBT v;
    int ret;
    int first = 1;
    int rc = -1;

    if (src == NULL)
        return -1;
    if (dict_db_lock(src->fd, LOCK_SH) < 0) {
        vstr_sprintf(why, "lock database %s: %s", src->path, strerror(errno));
        goto done;
    }
    if ((ret = src->db->cursor(src->db, NULL, &cur, 0)) != 0) {
        vstr_sprintf(why, "read %s: %s", src->path, db_strerror(ret));
        goto unlock;
    }
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    while ((ret = cur->get(cur, &k, &v, DB_NEXT)) == 0) {
        if (first && (d->flags & (DICT_FLAG_TRY0NULL | DICT_FLAG_TRY1NULL)) == 0)
            st->nul = (k.size > 0 && ((char *)k.data)[k.size - 1] == 0) ? DICT_FLAG_TRY1NULL
                                                                        : DICT_FLAG_TRY0NULL;
        first = 0;
        if (dict_db_put_raw(st, k.data, k.size, v.data, v.size, 1) < 0) {
            vstr_sprintf(why, "error writing %s", st->tmp_path);
            goto unlock;
        }
    }
    if (ret != DB_NOTFOUND) {
        vstr_sprintf(why, "read %s: %s", src->path, db_strerror(ret));
        goto unlock;
    }
    rc = 0;
unlock:
    if (cur)
        cur->close(cur);
    dict_db_unlock(src->fd);
done:
    dict_db_free(d, src);
    return rc;
}

/* dict_db_open_write - start building NAME.db in a temporary file */
static DICT_DB *dict_db_open_write(DICT *d, int mode, VSTR *why)
{
    DICT_DB *st = dict_db_new(d);
    char *dir = dict_db_dirname(st->path);
    VSTR *tmp = vstr_alloc(strlen(st->path) + 32);
    struct stat live;
    int ret;

    if ((st->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        vstr_sprintf(why, "open directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    while (flock(st->dir_fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            vstr_sprintf(why, "lock directory %s: %s", dir, strerror(errno));
            goto fail;
        }
    }
    vstr_sprintf(tmp, "%s.tmp.%ld", st->path, (long)getpid());
    st->tmp_path = vstr_export(tmp);
    tmp = NULL;
    /* Holding the writers' lock, any file by this name is a leftover. */
    if (unlink(st->tmp_path) < 0 && errno != ENOENT) {
        vstr_sprintf(why, "remove %s: %s", st->tmp_path, strerror(errno));
        goto fail;
    }
    if (dict_db_open_file(st->tmp_path, dict_db_dbtype(d), DB_CREATE | DB_EXCL,
                          DICT_DB_CREATE_CACHE, &st->env, &st->db, why) < 0)
        goto fail;
    if ((ret = st->db->fd(st->db, &st->fd)) != 0) {
        vstr_sprintf(why, "database %s: get file descriptor: %s", st->tmp_path, db_strerror(ret));
        goto fail;
    }
    close_on_exec(st->fd, 1);
    if (mode == DICT_MODE_UPDATE && stat(st->path, &live) == 0) {
        if (dict_db_copy(d, st, &live, why) < 0)
            goto fail;
        /* The new file replaces the old one: same permissions and owner. */
        if (fchmod(st->fd, live.st_mode & 07777) < 0)
            msg_warn("chmod %s: %s", st->tmp_path, strerror(errno));
        if (geteuid() == 0 && fchown(st->fd, live.st_uid, live.st_gid) < 0)
            msg_warn("chown %s: %s", st->tmp_path, strerror(errno));
    }
    /* Undecided (new table, no -N/-n): write as Postfix does on Linux. */
    if (st->nul == (DICT_FLAG_TRY0NULL | DICT_FLAG_TRY1NULL))
        st->nul = DICT_FLAG_TRY1NULL;
    myfree(dir);
    return st;

fail:
    vstr_free(tmp);
    myfree(dir);
    dict_db_free(d, st);
    return NULL;
}

static void *dict_db_open(DICT *d, int mode, struct stat *stp, VSTR *why)
{
    if (!dict_db_version_ok(why))
        return NULL;
    if (mode == DICT_MODE_READ)
        return dict_db_open_read(d, stp, why);
    return dict_db_open_write(d, mode, why);
}

/* dict_db_text - a stored key or value as a C string in buf */
static const char *dict_db_text(VSTR *buf, const DBT *dbt)
{
    const char *data = dbt->data;
    size_t len = dbt->size;
    const char *nul = memchr(data, 0, len);

    if (nul)
        len = (size_t)(nul - data);
    vstr_ncpy(buf, data, len);
    return vstr_str(buf);
}

/* dict_db_get1 - one form of the key; 0 found, 1 not found, -1 error */
static int dict_db_get1(DICT_DB *st, const char *key, size_t len, DBT *v)
{
    DBT k;

    memset(&k, 0, sizeof(k));
    memset(v, 0, sizeof(*v));
    k.data = (void *)key;
    k.size = (u_int32_t)len;
    int ret = st->db->get(st->db, NULL, &k, v, 0);

    if (ret == 0)
        return 0;
    if (ret == DB_NOTFOUND)
        return 1;
    msg_warn("error reading %s: %s", st->path, db_strerror(ret));
    return -1;
}

static const char *dict_db_lookup(DICT *d, const char *key)
{
    DICT_DB *st = d->state;
    const char *result = NULL;
    size_t len = strlen(key);
    int locked = d->mode == DICT_MODE_READ;
    DBT v;
    int rc = 1;

    if (st->db == NULL) {
        d->error = DICT_ERR_CONFIG;
        return NULL;
    }
    if (locked && dict_db_lock(st->fd, LOCK_SH) < 0) {
        msg_warn("lock database %s: %s", st->path, strerror(errno));
        d->error = DICT_ERR_RETRY;
        return NULL;
    }
    if (st->nul & DICT_FLAG_TRY1NULL) {
        if ((rc = dict_db_get1(st, key, len + 1, &v)) == 0) {
            st->nul = DICT_FLAG_TRY1NULL;
            result = dict_db_text(st->val_buf, &v);
        }
    }
    if (rc == 1 && (st->nul & DICT_FLAG_TRY0NULL)) {
        if ((rc = dict_db_get1(st, key, len, &v)) == 0) {
            st->nul = DICT_FLAG_TRY0NULL;
            result = dict_db_text(st->val_buf, &v);
        }
    }
    if (locked)
        dict_db_unlock(st->fd);
    if (rc < 0)
        d->error = DICT_ERR_RETRY;
    return result;
}

static int dict_db_update(DICT *d, const char *key, const char *value)
{
    DICT_DB *st = d->state;
    size_t extra = st->nul == DICT_FLAG_TRY1NULL ? 1 : 0;

    if (st->db == NULL) {
        d->error = DICT_ERR_CONFIG;
        return -1;
    }
    int rc = dict_db_put_raw(st, key, strlen(key) + extra, value, strlen(value) + extra,
                             (d->flags & DICT_FLAG_DUP_REPLACE) != 0);

    if (rc < 0)
        d->error = DICT_ERR_RETRY;
    return rc;
}

static int dict_db_delete(DICT *d, const char *key)
{
    DICT_DB *st = d->state;
    size_t len = strlen(key);
    DBT k;
    int ret = DB_NOTFOUND;

    if (st->db == NULL) {
        d->error = DICT_ERR_CONFIG;
        return -1;
    }
    /* Try the table's own form first; a table written by others may mix. */
    for (int pass = 0; pass < 2 && ret == DB_NOTFOUND; pass++) {
        int with_nul = (pass == 0) == (st->nul == DICT_FLAG_TRY1NULL);

        memset(&k, 0, sizeof(k));
        k.data = (void *)key;
        k.size = (u_int32_t)(len + (with_nul ? 1 : 0));
        ret = st->db->del(st->db, NULL, &k, 0);
    }
    if (ret == 0)
        return 0;
    if (ret == DB_NOTFOUND)
        return 1;
    msg_warn("error deleting from %s: %s", st->tmp_path, db_strerror(ret));
    d->error = DICT_ERR_RETRY;
    return -1;
}

static int dict_db_seq(DICT *d, int how, const char **key, const char **value)
{
    DICT_DB *st = d->state;
    int locked = d->mode == DICT_MODE_READ;
    DBT k;
    DBT v;
    int ret;

    if (st->db == NULL) {
        d->error = DICT_ERR_CONFIG;
        return -1;
    }
    if (how == DICT_SEQ_FIRST && st->cursor) {
        st->cursor->close(st->cursor);
        st->cursor = NULL;
    }
    if (st->cursor == NULL) {
        if (how != DICT_SEQ_FIRST)
            msg_panic("dict_db_seq: %s: DICT_SEQ_NEXT without DICT_SEQ_FIRST", st->path);
        if ((ret = st->db->cursor(st->db, NULL, &st->cursor, 0)) != 0) {
            msg_warn("read %s: %s", st->path, db_strerror(ret));
            d->error = DICT_ERR_RETRY;
            return -1;
        }
    }
    if (locked && dict_db_lock(st->fd, LOCK_SH) < 0) {
        msg_warn("lock database %s: %s", st->path, strerror(errno));
        d->error = DICT_ERR_RETRY;
        return -1;
    }
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    ret = st->cursor->get(st->cursor, &k, &v, how == DICT_SEQ_FIRST ? DB_FIRST : DB_NEXT);
    if (ret == 0) {
        *key = dict_db_text(st->key_buf, &k);
        *value = dict_db_text(st->val_buf, &v);
    }
    if (locked)
        dict_db_unlock(st->fd);
    if (ret == 0)
        return 0;
    if (ret == DB_NOTFOUND)
        return 1;
    msg_warn("read %s: %s", st->path, db_strerror(ret));
    d->error = DICT_ERR_RETRY;
    return -1;
}

/* dict_db_commit - flush, fsync, rename over NAME.db, fsync the directory */
static int dict_db_commit(DICT *d, VSTR *why)
{
    DICT_DB *st = d->state;
    int ret;
    int fd;

    if (st->db == NULL || st->committed) {
        vstr_sprintf(why, "%s: nothing to commit", st->path);
        d->error = DICT_ERR_CONFIG;
        return -1;
    }
    if (st->cursor) {
        st->cursor->close(st->cursor);
        st->cursor = NULL;
    }
    ret = st->db->close(st->db, 0);
    st->db = NULL;
    st->env->close(st->env, 0);
    st->env = NULL;
    if (ret != 0) {
        vstr_sprintf(why, "close %s: %s", st->tmp_path, db_strerror(ret));
        goto fail;
    }
    /* The library wrote through the page cache; make the data durable
       before the rename makes it the table. */
    if ((fd = open(st->tmp_path, O_RDONLY | O_CLOEXEC)) < 0 || fsync(fd) < 0) {
        vstr_sprintf(why, "fsync %s: %s", st->tmp_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    close(fd);
    if (rename(st->tmp_path, st->path) < 0) {
        vstr_sprintf(why, "rename %s to %s: %s", st->tmp_path, st->path, strerror(errno));
        goto fail;
    }
    st->committed = 1;
    if (fsync_parent(st->path) < 0) {
        vstr_sprintf(why, "fsync directory of %s: %s", st->path, strerror(errno));
        d->error = DICT_ERR_RETRY;
        return -1;
    }
    return 0;

fail:
    d->error = DICT_ERR_RETRY;
    return -1;
}

const DICT_TYPE dict_hash_type = {
    .type = "hash",
    .flags = DICT_FLAG_FIXED,
    .suffix = ".db",
    .open = dict_db_open,
    .lookup = dict_db_lookup,
    .update = dict_db_update,
    .del = dict_db_delete,
    .seq = dict_db_seq,
    .commit = dict_db_commit,
    .free = dict_db_free,
};

const DICT_TYPE dict_btree_type = {
    .type = "btree",
    .flags = DICT_FLAG_FIXED,
    .suffix = ".db",
    .open = dict_db_open,
    .lookup = dict_db_lookup,
    .update = dict_db_update,
    .del = dict_db_delete,
    .seq = dict_db_seq,
    .commit = dict_db_commit,
    .free = dict_db_free,
};
