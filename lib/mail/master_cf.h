/*
 * master_cf - master.cf parsing: Postfix's 8 columns.
 *
 *   service type private unpriv chroot wakeup maxproc command + args
 *
 * Continuation lines start with white space; '#' starts a comment line.
 * "-" in columns 3..7 means the default: private y, unpriv y, chroot n
 * (as in Postfix 3.0 and later), wakeup 0, maxproc $default_process_limit.
 * A wakeup ending in '?' wakes only a service that is in use.
 * Options "-o name=value" and "-o { name = value with spaces }" are taken
 * out of the arguments into overrides.
 */
#ifndef POSTERN_MASTER_CF_H
#define POSTERN_MASTER_CF_H

#include <stddef.h>

#include "util/argv.h"
#include "util/vstr.h"

typedef struct MASTER_ENT {
    char *service;      /* "smtp", "127.0.0.1:2525", "[::1]:25", "cleanup" */
    char *type;         /* inet, unix, unix-dgram, fifo, pass */
    int private_;       /* 1 = private/ (unix), 0 = public/ */
    int unpriv;         /* 1 = run as mail_owner */
    int chroot;         /* 1 = chroot to queue_directory */
    int wakeup;         /* seconds between wakeups, 0 none */
    int wakeup_if_used; /* wakeup ended in '?' */
    int maxproc;        /* processes at most; 0 = no limit */
    char *command;      /* program name (in daemon_directory unless absolute) */
    ARGV *args;         /* remaining arguments, -o removed */
    ARGV *overrides;    /* "name=value" strings from -o */
    int lineno;         /* first line of the entry in the file */
    /* Added for display (postconf -M/-F): the text as written, normalised. */
    char *column[7]; /* columns 1..7 as written, "-" kept */
    ARGV *words;     /* command and all arguments, -o included, in master.cf
                        syntax: "{...}" around words holding white space */
} MASTER_ENT;

typedef struct MASTER_CF {
    MASTER_ENT **ents;
    size_t count;
} MASTER_CF;

/* master_cf_read - parse a master.cf; NULL with "file, line N: reason" in why.
   default_maxproc replaces "-" in the maxproc column. */
MASTER_CF *master_cf_read(const char *path, int default_maxproc, VSTR *why);
/* master_cf_parse - the same from text in memory (name is used in messages) */
MASTER_CF *master_cf_parse(const char *text, const char *name, int default_maxproc, VSTR *why);
void master_cf_free(MASTER_CF *cf);

#define MASTER_CF_FILE_MAX (4 * 1024 * 1024) /* largest master.cf read */
#define MASTER_CF_LINE_MAX (64 * 1024)       /* longest logical line */
#define MASTER_CF_NAME_MAX 100               /* longest service name */
#define MASTER_CF_MAXPROC_MAX 100000         /* largest process limit */
#define MASTER_CF_WAKEUP_MAX (365 * 86400)   /* longest wakeup interval, seconds */

/* master_cf_find - entry by service name and type, NULL if absent */
MASTER_ENT *master_cf_find(const MASTER_CF *cf, const char *service, const char *type);
/* master_cf_inet_split - split an inet service name into host (NULL when
   absent, brackets removed) and port; new strings, myfree them; -1 if malformed */
int master_cf_inet_split(const char *service, char **host, char **port);

#endif
