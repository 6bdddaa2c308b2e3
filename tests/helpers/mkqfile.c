/*
 * mkqfile - write a queue file with chosen contents, for the tests of
 * postqueue, showq and postsuper, through the queue file library.
 *
 *   mkqfile -c config_dir [-u user] [-q queue] [-i queue_id] [-t arrival]
 *           [-b] [-s sender] [-z size | -f file] [-w mtime]
 *           -r address [-r address ...]
 *           [-d "index|time|next|dsn|reason" ...] [-m "index|status" ...]
 *
 *   -q  the queue the file ends up in (default deferred)
 *   -i  the queue id to use instead of a fresh one (fixed ids give golden
 *       files); -t the arrival time in seconds; -b class bulk
 *   -z  content of exactly size bytes (a Subject: header and lines of x);
 *       -f the content of a file
 *   -d  a deferral record for a recipient (index from 0): attempt time, next
 *       attempt time, DSN status, reason; -m sets a recipient status byte
 *       (P, R, D or B)
 *   -w  the file's modification time (qmgr's next-attempt time for
 *       deferred/); default: the earliest next attempt, or now
 *   -u  as root, become that user first (the queue's owner)
 *   -M  write a local submission into maildrop/ in postdrop's format
 *       (lib/mail/maildrop.h) instead: SUBMITTER is the caller, the sender
 *       only when -s is given, -t sets the file's time; -q, -d, -m, -w, -b
 *       do not apply
 *
 * The file is built and committed in a private directory inside the target
 * queue (a dot name that queue scans skip), given its final id and records
 * there, and only then renamed into the queue, so that a running queue
 * manager never sees it half made or in the wrong queue. Prints the id.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/maildrop.h"
#include "mail/priv.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "mail/user_acl.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define MK_LINE 70                                             /* x's per content line */
#define MK_ID_OFFSET (QFILE_HEADER_LEN + QFILE_REC_HEADER_LEN) /* QUEUE_ID payload */

static const char *const mk_subdirs[] = {MAIL_QUEUE_INCOMING, MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,
                                         NULL};

/* mk_content - exactly size bytes of a small message, or a file's content */
static VSTR *mk_content(long size, const char *path)
{
    static const char head[] = "Subject: test message\n\n";
    VSTR *buf = vstr_alloc((size_t)size + 1);

    if (path) {
        size_t len;
        char *text = file_read_all(path, 64 * 1024 * 1024, &len);

        if (text == NULL)
            msg_fatal("read %s: %m", path);
        vstr_ncpy(buf, text, len);
        myfree(text);
        return buf;
    }
    vstr_ncat(buf, head, (size_t)size < sizeof(head) - 1 ? (size_t)size : sizeof(head) - 1);
    size -= (long)vstr_len(buf);
    while (size > 0) {
        long n = size > MK_LINE + 1 ? MK_LINE + 1 : size;

        for (long i = 0; i < n - 1; i++)
            vstr_addch(buf, 'x');
        vstr_addch(buf, '\n');
        size -= n;
    }
    return buf;
}

/* mk_maildrop - a local submission in maildrop/ as postdrop writes it
   (lib/mail/maildrop.h), named id; the arrival time becomes its mtime */
static void mk_maildrop(const char *id, const char *sender, const ARGV *rcpts, VSTR *content,
                        long arrival)
{
    VSTR *path = vstr_alloc(100), *login = vstr_alloc(32);
    MAILDROP_WRITER *w;
    int fd;

    vstr_sprintf(path, "%s/%s/%s", var_str("queue_directory"), MAIL_QUEUE_MAILDROP, id);
    if ((fd = open(vstr_str(path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444)) < 0)
        msg_fatal("create %s: %m", vstr_str(path));
    user_acl_name(getuid(), login);
    w = maildrop_writer_open(fd, vstr_str(path));
    if (maildrop_writer_submitter(w, (unsigned long)getuid(), vstr_str(login)) != 0 ||
        (sender && maildrop_writer_sender(w, sender) != 0))
        msg_fatal("%s", maildrop_writer_why(w));
    for (size_t i = 0; i < rcpts->argc; i++)
        if (maildrop_writer_rcpt(w, rcpts->argv[i], 0) != 0)
            msg_fatal("%s", maildrop_writer_why(w));
    for (char *p = vstr_str(content), *end = vstr_end(content); p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

        if (maildrop_writer_line(w, p, len, nl != NULL) != 0)
            msg_fatal("%s", maildrop_writer_why(w));
        p += len + (nl != NULL);
    }
    if (maildrop_writer_finish(w) != 0 || fsync(fd) < 0)
        msg_fatal("%s", maildrop_writer_why(w));
    maildrop_writer_free(w);
    close(fd);
    if (arrival >= 0) {
        struct timespec ts[2] = {{.tv_sec = arrival}, {.tv_sec = arrival}};

        if (utimensat(AT_FDCWD, vstr_str(path), ts, 0) < 0)
            msg_fatal("utimensat %s: %m", vstr_str(path));
    }
    vstr_free(path);
    vstr_free(login);
}

/* mk_split - "a|b|c..." into at most n fields (the last takes the rest) */
static ARGV *mk_split(const char *arg, int n)
{
    ARGV *out = argv_alloc((size_t)n);
    const char *p = arg;

    for (int i = 0; i < n - 1; i++) {
        const char *bar = strchr(p, '|');

        if (bar == NULL)
            break;
        argv_addn(out, p, (size_t)(bar - p));
        p = bar + 1;
    }
    argv_add(out, p, (char *)NULL);
    return out;
}

/* mk_number - a decimal argument */
static long mk_number(const char *text, const char *what)
{
    long v;

    if (parse_long(text, 0, 1L << 62, &v) < 0)
        msg_fatal("bad %s: \"%s\"", what, text);
    return v;
}

/* mk_rename_id - give the committed file the wanted id */
static void mk_rename_id(const char *queue, const char *old_id, const char *new_id)
{
    VSTR *from = vstr_alloc(100), *to = vstr_alloc(100);
    int fd = open(mail_queue_path(from, queue, old_id), O_RDWR | O_CLOEXEC);

    if (fd < 0)
        msg_fatal("open %s: %m", vstr_str(from));
    if (pwrite(fd, new_id, QUEUE_ID_LEN, MK_ID_OFFSET) != QUEUE_ID_LEN || fsync(fd) < 0)
        msg_fatal("rewrite the queue id of %s: %m", vstr_str(from));
    close(fd);
    if (mail_queue_rename(vstr_str(from), mail_queue_path(to, queue, new_id)) < 0)
        msg_fatal("rename %s: %m", vstr_str(from));
    vstr_free(from);
    vstr_free(to);
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL, *queue = MAIL_QUEUE_DEFERRED, *want_id = NULL;
    const char *sender = "sender@example.org", *content_file = NULL, *user = NULL;
    long arrival = -1, size = 100, mtime = -1;
    int bulk = 0, maildrop = 0, sender_given = 0, ch;
    VSTR *content;
    ARGV *rcpts = argv_alloc(4), *defers = argv_alloc(4), *marks = argv_alloc(4);
    VSTR *why = vstr_alloc(100), *tmp = vstr_alloc(100), *path = vstr_alloc(100);
    char id[QUEUE_ID_SIZE];
    QFILE_WRITER *w;
    QFILE *q;

    msg_init("mkqfile");
    while ((ch = getopt(argc, argv, "bc:d:f:i:Mm:q:r:s:t:u:w:z:")) != -1) {
        switch (ch) {
        case 'b': bulk = 1; break;
        case 'c': config_dir = optarg; break;
        case 'd': argv_add(defers, optarg, (char *)NULL); break;
        case 'f': content_file = optarg; break;
        case 'i': want_id = optarg; break;
        case 'm': argv_add(marks, optarg, (char *)NULL); break;
        case 'q': queue = optarg; break;
        case 'r': argv_add(rcpts, optarg, (char *)NULL); break;
        case 's': sender = optarg, sender_given = 1; break;
        case 'M': maildrop = 1; break;
        case 't': arrival = mk_number(optarg, "arrival time"); break;
        case 'u': user = optarg; break;
        case 'w': mtime = mk_number(optarg, "modification time"); break;
        case 'z': size = mk_number(optarg, "size"); break;
        default: msg_fatal("usage: mkqfile -c config_dir -r address ... (see the source)");
        }
    }
    if (config_dir == NULL || rcpts->argc == 0)
        msg_fatal("usage: mkqfile -c config_dir -r address ... (see the source)");
    if (want_id && !queue_id_valid(want_id))
        msg_fatal("bad queue id \"%s\"", want_id);
    mail_conf_read(config_dir);
    if (user && priv_is_root())
        priv_drop(user, NULL);
    content = mk_content(size, content_file);
    if (maildrop) {
        if (want_id)
            memcpy(id, want_id, QUEUE_ID_SIZE);
        else
            queue_id_new(id, NULL);
        mk_maildrop(id, sender_given ? sender : NULL, rcpts, content, arrival);
        printf("%s\n", id);
        return 0;
    }

    /* A private queue tree inside the target queue. */
    vstr_sprintf(tmp, "%s/%s/.mkqfile.%ld", var_str("queue_directory"), queue, (long)getpid());
    if (mkdir(vstr_str(tmp), 0700) < 0)
        msg_fatal("mkdir %s: %m", vstr_str(tmp));
    for (int i = 0; mk_subdirs[i]; i++) {
        vstr_sprintf(path, "%s/%s", vstr_str(tmp), mk_subdirs[i]);
        if (mkdir(vstr_str(path), 0700) < 0)
            msg_fatal("mkdir %s: %m", vstr_str(path));
    }
    if (mail_queue_init(vstr_str(tmp), 0, "", why) < 0)
        msg_fatal("%s", vstr_str(why));

    if ((w = qfile_writer_create(why)) == NULL)
        msg_fatal("%s", vstr_str(why));
    if (arrival >= 0) {
        struct timeval tv = {.tv_sec = arrival};

        if (qfile_writer_set_arrival(w, &tv) != 0)
            msg_fatal("arrival: %s", qfile_writer_why(w));
    }
    if (bulk && qfile_writer_set_class(w, QFILE_CLASS_BULK, 0) != 0)
        msg_fatal("class: %s", qfile_writer_why(w));
    if (qfile_writer_sender(w, sender) != 0)
        msg_fatal("sender: %s", qfile_writer_why(w));
    for (size_t i = 0; i < rcpts->argc; i++)
        if (qfile_writer_rcpt(w, rcpts->argv[i], NULL, NULL, 0) != 0)
            msg_fatal("recipient: %s", qfile_writer_why(w));
    if (qfile_writer_text(w, vstr_str(content), vstr_len(content)) != 0)
        msg_fatal("content: %s", qfile_writer_why(w));
    if (qfile_writer_commit(w, id) != 0)
        msg_fatal("commit: %s", qfile_writer_why(w));
    qfile_writer_free(w);

    const char *built = qfile_class_queue(bulk ? QFILE_CLASS_BULK : QFILE_CLASS_IMMEDIATE);

    if (want_id) {
        mk_rename_id(built, id, want_id);
        memcpy(id, want_id, QUEUE_ID_SIZE);
    }
    if (qfile_open(built, id, QFILE_OPEN_UPDATE, &q, why) != 0)
        msg_fatal("%s", vstr_str(why));
    for (size_t i = 0; i < defers->argc; i++) {
        ARGV *f = mk_split(defers->argv[i], 5);

        if (f->argc != 5)
            msg_fatal("bad deferral \"%s\": index|time|next|dsn|reason", defers->argv[i]);
        if (qfile_rcpt_defer(
                q, (size_t)mk_number(f->argv[0], "index"), (time_t)mk_number(f->argv[1], "time"),
                (time_t)mk_number(f->argv[2], "next attempt"), f->argv[3], f->argv[4], 0) != 0)
            msg_fatal("%s", qfile_why(q));
        argv_free(f);
    }
    for (size_t i = 0; i < marks->argc; i++) {
        ARGV *f = mk_split(marks->argv[i], 2);

        if (f->argc != 2 || strlen(f->argv[1]) != 1)
            msg_fatal("bad mark \"%s\": index|status", marks->argv[i]);
        if (qfile_rcpt_mark(q, (size_t)mk_number(f->argv[0], "index"), f->argv[1][0], 0) != 0)
            msg_fatal("%s", qfile_why(q));
        argv_free(f);
    }
    if (mtime < 0) {
        mtime = qfile_next_attempt(q);
        if (mtime <= 0)
            mtime = time(NULL);
    }
    qfile_close(q);

    /* Into the real queue, in one rename. */
    mail_queue_path(path, built, id);
    {
        VSTR *from = vstr_alloc(100);
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = mtime}};

        vstr_cpy(from, vstr_str(path));
        if (mail_queue_init(var_str("queue_directory"), (int)var_int("hash_queue_depth"),
                            var_str("hash_queue_names"), why) < 0)
            msg_fatal("%s", vstr_str(why));
        if (utimensat(AT_FDCWD, vstr_str(from), ts, 0) < 0)
            msg_fatal("utimensat %s: %m", vstr_str(from));
        if (mail_queue_make_subdirs(queue, id) < 0)
            msg_fatal("make hash directories: %m");
        if (mail_queue_rename(vstr_str(from), mail_queue_path(path, queue, id)) < 0)
            msg_fatal("rename %s to %s: %m", vstr_str(from), vstr_str(path));
        if (fsync_parent(vstr_str(path)) < 0)
            msg_fatal("fsync: %m");
        vstr_free(from);
    }
    for (int i = 0; mk_subdirs[i]; i++) {
        vstr_sprintf(path, "%s/%s", vstr_str(tmp), mk_subdirs[i]);
        (void)rmdir(vstr_str(path));
    }
    if (rmdir(vstr_str(tmp)) < 0)
        msg_warn("rmdir %s: %m", vstr_str(tmp));
    printf("%s\n", id);
    argv_free(rcpts);
    argv_free(defers);
    argv_free(marks);
    vstr_free(why);
    vstr_free(tmp);
    vstr_free(path);
    vstr_free(content);
    return 0;
}
