/*
 * postconf - shared declarations of the postconf command's parts:
 * postconf.c (options), postconf_main.c (main.cf), postconf_master.c
 * (master.cf).
 */
#ifndef POSTERN_POSTCONF_H
#define POSTERN_POSTCONF_H

#include "util/argv.h"

#define PCF_LINE_FOLD 80 /* -f: fold output lines longer than this */

enum pcf_mode {
    PCF_MODE_MAIN,   /* main.cf parameters (default, -p) */
    PCF_MODE_MASTER, /* -M: master.cf entries */
    PCF_MODE_FIELDS, /* -F: master.cf entry fields */
    PCF_MODE_PARAMS, /* -P: master.cf -o parameters */
};

enum pcf_edit {
    PCF_EDIT_NONE,
    PCF_EDIT_SET,     /* -e or name=value arguments */
    PCF_EDIT_REMOVE,  /* -X */
    PCF_EDIT_COMMENT, /* -# */
};

typedef struct PCF_OPTS {
    const char *config_dir; /* from -c, MAIL_CONFIG or the built-in default */
    enum pcf_mode mode;
    enum pcf_edit edit;
    int defaults;    /* -d */
    int nondefault;  /* -n */
    int hide_name;   /* -h */
    int hide_value;  /* -H */
    int expand;      /* -x */
    int fold;        /* -f */
    ARGV *overrides; /* -o name=value */
} PCF_OPTS;

/* pcf_print - "name = value" (or only one of them), folded with -f */
void pcf_print(const PCF_OPTS *opts, const char *name, const char *value);
/* pcf_flush - flush stdout; fatal on a write error */
void pcf_flush(void);

/* pcf_show_main - print main.cf parameters; names NULL-terminated, or empty for all */
void pcf_show_main(const PCF_OPTS *opts, char **names);
/* pcf_edit_main - -e, -X or -#: rewrite main.cf in place, atomically */
void pcf_edit_main(const PCF_OPTS *opts, char **args);
/* pcf_show_master - -M, -F or -P output for the selected services */
void pcf_show_master(const PCF_OPTS *opts, char **names);

#endif
