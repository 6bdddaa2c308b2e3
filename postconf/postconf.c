/*
 * postconf - Postern configuration utility: the command line.
 *
 * SYNOPSIS
 *   postconf [-dfhHnx] [-c config_dir] [-o name=value] [parameter ...]
 *   postconf [-e] [-c config_dir] parameter=value ...
 *   postconf -X|-# [-c config_dir] parameter ...
 *   postconf -M|-F|-P [-fhH] [-c config_dir] [service[/type[/name]] ...]
 *
 * DESCRIPTION
 *   Prints main.cf parameters (every known one, sorted, or those named),
 *   their defaults (-d) or only those set in main.cf (-n); edits main.cf in
 *   place (-e, name=value arguments, -X to remove, -# to comment out),
 *   keeping every other line and comment; prints master.cf entries in one
 *   normalised line each (-M), their fields (-F) or their -o parameters (-P).
 *   Options and messages follow Postfix's postconf(1); see man/postconf.1.
 *
 * DIAGNOSTICS
 *   Problems go to stderr as "postconf: warning: ..." or "postconf: fatal:
 *   ..."; a fatal error or a usage error exits with status 1, as Postfix's.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mail_conf.h"
#include "postconf.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define PCF_USAGE                                                                                  \
    "usage: postconf [-c config_dir] [-d (defaults)] [-e (edit)] [-f (fold lines)] "               \
    "[-F (master.cf fields)] [-h (no names)] [-H (no values)] [-M (master.cf)] "                   \
    "[-n (non-default parameters)] [-o name=value (override)] [-p (main.cf, default)] "            \
    "[-P (master.cf parameters)] [-v (verbose)] [-x (expand values)] [-X (remove)] "               \
    "[-# (comment out)] [name...]"

/* pcf_print - one output line, folded at white space with -f */
void pcf_print(const PCF_OPTS *opts, const char *name, const char *value)
{
    VSTR *line = vstr_alloc(128);

    if (opts->hide_value) {
        printf("%s\n", name);
        vstr_free(line);
        return;
    }
    if (!opts->hide_name)
        vstr_sprintf(line, "%s =", name);
    if (!opts->fold) {
        if (opts->hide_name)
            printf("%s\n", value);
        else
            printf("%s%s%s\n", vstr_str(line), *value ? " " : "", value);
        vstr_free(line);
        return;
    }
    /* Fold: continuation lines start with white space, as main.cf allows. */
    ARGV *words = argv_split(value, " \t");

    for (size_t i = 0; i < words->argc; i++) {
        size_t wlen = strlen(words->argv[i]);

        if (vstr_len(line) == 0) {
            vstr_cpy(line, words->argv[i]);
        } else if (vstr_len(line) + 1 + wlen > PCF_LINE_FOLD) {
            printf("%s\n", vstr_str(line));
            vstr_cpy(line, "    ");
            vstr_cat(line, words->argv[i]);
        } else {
            vstr_addch(line, ' ');
            vstr_cat(line, words->argv[i]);
        }
    }
    printf("%s\n", vstr_str(line));
    argv_free(words);
    vstr_free(line);
}

/* pcf_flush - report output errors (a full disk, a closed pipe) */
void pcf_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        msg_fatal("write error on standard output: %m");
}

/* pcf_usage - the one-line summary; exit status 1 as Postfix */
static _Noreturn void pcf_usage(void)
{
    msg_fatal(PCF_USAGE);
}

/* pcf_set_mode - -M, -F and -P exclude each other */
static void pcf_set_mode(PCF_OPTS *opts, enum pcf_mode mode)
{
    if (opts->mode != PCF_MODE_MAIN && opts->mode != mode)
        msg_fatal("specify one of -M -F -P");
    opts->mode = mode;
}

/* pcf_set_edit - -e, -X and -# exclude each other */
static void pcf_set_edit(PCF_OPTS *opts, enum pcf_edit edit)
{
    if (opts->edit != PCF_EDIT_NONE && opts->edit != edit)
        msg_fatal("specify one of -e -X -#");
    opts->edit = edit;
}

int main(int argc, char **argv)
{
    PCF_OPTS opts = {0};
    const char *cmd_dir = NULL;
    int ch;

    msg_init("postconf");
    opts.overrides = argv_alloc(4);
    opterr = 1;
    while ((ch = getopt(argc, argv, "c:deFfhHMnPo:pvxX#")) != -1) {
        switch (ch) {
        case 'c': cmd_dir = optarg; break;
        case 'd': opts.defaults = 1; break;
        case 'e': pcf_set_edit(&opts, PCF_EDIT_SET); break;
        case 'F': pcf_set_mode(&opts, PCF_MODE_FIELDS); break;
        case 'f': opts.fold = 1; break;
        case 'h': opts.hide_name = 1; break;
        case 'H': opts.hide_value = 1; break;
        case 'M': pcf_set_mode(&opts, PCF_MODE_MASTER); break;
        case 'n': opts.nondefault = 1; break;
        case 'o': argv_add(opts.overrides, optarg, (char *)NULL); break;
        case 'P': pcf_set_mode(&opts, PCF_MODE_PARAMS); break;
        case 'p': break;
        case 'v': msg_verbose++; break;
        case 'x': opts.expand = 1; break;
        case 'X': pcf_set_edit(&opts, PCF_EDIT_REMOVE); break;
        case '#': pcf_set_edit(&opts, PCF_EDIT_COMMENT); break;
        default: pcf_usage();
        }
    }
    char **args = argv + optind;

    if (opts.defaults && opts.nondefault)
        msg_fatal("specify one of -d -n");
    if (opts.hide_name && opts.hide_value)
        msg_fatal("specify one of -h -H");
    opts.config_dir = mail_conf_dir(cmd_dir);

    /* "postconf name=value" means "postconf -e name=value", as in Postfix. */
    if (opts.edit == PCF_EDIT_NONE && opts.mode == PCF_MODE_MAIN)
        for (char **ap = args; *ap; ap++)
            if (strchr(*ap, '=') != NULL) {
                opts.edit = PCF_EDIT_SET;
                break;
            }
    if (opts.edit != PCF_EDIT_NONE) {
        if (opts.mode != PCF_MODE_MAIN)
            msg_fatal("editing master.cf is not supported; edit %s/master.cf by hand",
                      opts.config_dir);
        if (opts.defaults || opts.nondefault || opts.expand)
            msg_fatal("-d, -n and -x cannot be combined with -e, -X or -#");
        if (*args == NULL)
            msg_fatal("%s requires at least one parameter argument",
                      opts.edit == PCF_EDIT_SET      ? "-e"
                      : opts.edit == PCF_EDIT_REMOVE ? "-X"
                                                     : "-#");
        pcf_edit_main(&opts, args);
    } else if (opts.mode == PCF_MODE_MAIN) {
        pcf_show_main(&opts, args);
    } else {
        if (opts.defaults || opts.nondefault)
            msg_fatal("-d and -n apply to main.cf parameters only");
        pcf_show_master(&opts, args);
    }
    pcf_flush();
    argv_free(opts.overrides);
    return 0;
}
