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

#endif
