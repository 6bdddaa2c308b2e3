/*
 * mail_conf - main.cf: reading, $name expansion, typed access, overrides.
 *
 * Every parameter the suite knows sits in one table (mail_params.c) with
 * its type and default. Values come, in rising precedence, from that
 * default, from main.cf, and from overrides (master.cf "-o name=value",
 * command-line -o). Lookups expand $name, ${name}, $(name),
 * ${name?value}, ${name:value} recursively, up to MAIL_CONF_DEPTH levels.
 *
 * Ownership: strings returned by mail_conf_* and var_* are owned by this
 * module and stay valid until the next mail_conf_read/mail_conf_reset or
 * mail_conf_update of that name.
 *
 * The configuration directory: the -c argument of a command, else the
 * MAIL_CONFIG environment variable, else DEF_CONFIG_DIR (/etc/postern).
 */
#ifndef POSTERN_MAIL_CONF_H
#define POSTERN_MAIL_CONF_H

#include "util/vstr.h"

#define MAIL_CONF_DEPTH 100              /* expansion recursion limit */
#define MAIL_CONF_LINE_MAX (1024 * 1024) /* longest logical main.cf line */

enum mail_param_type {
    PARAM_STR,  /* string, $name expanded */
    PARAM_RAW,  /* string, never expanded (e.g. regexps, commands) */
    PARAM_INT,  /* decimal integer within [min, max] */
    PARAM_BOOL, /* yes / no */
    PARAM_TIME, /* number with optional s/m/h/d/w; value in seconds */
    PARAM_LIST, /* comma or white space separated list, $name expanded */
};

typedef struct MAIL_PARAM {
    const char *name;
    enum mail_param_type type;
    const char *defval;           /* NULL when computed */
    const char *(*compute)(void); /* computed default (myhostname ...) */
    long min, max;                /* INT and TIME bounds */
    char time_unit;               /* TIME: unit of a bare number ('s', 'd', ...) */
} MAIL_PARAM;

/* mail_param_table - the one table; ends with a NULL name */
extern const MAIL_PARAM mail_param_table[];
/* mail_param_find - table entry by name, NULL when unknown */
const MAIL_PARAM *mail_param_find(const char *name);
/* mail_param_default - the default's text (computed ones computed), expanded=0 */
const char *mail_param_default(const MAIL_PARAM *p);

/* mail_conf_dir - the configuration directory to use given a -c argument or NULL */
const char *mail_conf_dir(const char *cmdline_dir);

/* mail_conf_read - load DIR/main.cf (fatal with file:line on error) */
void mail_conf_read(const char *config_dir);
/* mail_conf_load - load a main.cf-style file; 0, or -1 with the reason in why */
int mail_conf_load(const char *path, VSTR *why);
/* mail_conf_reset - forget everything loaded and overridden */
void mail_conf_reset(void);
/* mail_conf_update - set (override) a value, e.g. from -o name=value */
void mail_conf_update(const char *name, const char *value);
/* mail_conf_parse_override - "name=value" into mail_conf_update; -1 if malformed */
int mail_conf_parse_override(const char *assignment);

/* mail_conf_raw - unexpanded value (main.cf, override or default); NULL if unknown */
const char *mail_conf_raw(const char *name);
/* mail_conf_is_set - was name set in main.cf or by an override */
int mail_conf_is_set(const char *name);
/* mail_conf_expand - expand $names in text into result; -1 with why on loops or
   bad syntax */
int mail_conf_expand(const char *text, VSTR *result, VSTR *why);

/* Typed access to expanded values. Unknown names, or values that do not
   parse, are fatal: a configuration mistake must not be guessed around. */
const char *var_str(const char *name);
long var_int(const char *name);
long var_time(const char *name);
int var_bool(const char *name);

/* mail_conf_names - every name that main.cf or overrides set (for postconf -n),
   in file order; the array and strings are owned by this module */
const char *const *mail_conf_names(size_t *count);

/* Additions: limits, checks, user-defined names and lists. */

#define MAIL_CONF_FILE_MAX (16 * 1024 * 1024) /* largest main.cf read */
#define MAIL_CONF_NAME_MAX 100                /* longest parameter name */
#define MAIL_CONF_EXPAND_MAX (1024 * 1024)    /* longest expanded value */

#include "util/argv.h"

/* mail_param_count - number of entries in mail_param_table (sorted by name) */
size_t mail_param_count(void);
/* mail_conf_name_ok - letters, digits, '_', '-' and '.', 1..MAIL_CONF_NAME_MAX long */
int mail_conf_name_ok(const char *name);
/* mail_conf_path - the main.cf last given to mail_conf_read/mail_conf_load, or "main.cf" */
const char *mail_conf_path(void);
/* mail_conf_lookup - expanded value of a table parameter or of a name set in main.cf
   or by an override (e.g. a smtpd_restriction_classes member or a per-transport
   "relay_destination_concurrency_limit"); NULL when neither. RAW parameters come back
   unexpanded. Expansion errors are fatal. Same lifetime as var_str. */
const char *mail_conf_lookup(const char *name);
/* mail_conf_check - expand every table parameter and every set name and parse the typed
   ones; 0, or -1 with "parameter NAME: reason" in why (for "postern check", master) */
int mail_conf_check(VSTR *why);
/* mail_conf_split_list - split a list value at commas and white space; a "{...}" group
   stays in one element with its braces (inline:{ a=b, c=d }); new ARGV, argv_free it */
ARGV *mail_conf_split_list(const char *value);
/* var_list - var_str split as by mail_conf_split_list; new ARGV, argv_free it */
ARGV *var_list(const char *name);

#endif
