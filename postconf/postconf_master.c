/*
 * postconf_master - postconf's master.cf part: -M, -F and -P output.
 *
 * -M prints each entry on one line with the columns aligned as Postfix
 * aligns them (a field that overflows its column pushes the rest right by
 * one space), the command and its arguments normalised: "-o name=value",
 * and "{...}" around words that hold white space. With -f the -o options
 * go on continuation lines. -F prints "service/type/field = value" and -P
 * "service/type/parameter = value" for each -o parameter.
 */
#include <stdio.h>
#include <string.h>

#include "mail/mail_conf.h"
#include "mail/master_cf.h"
#include "postconf.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* Where each of the first eight columns starts in -M output. */
static const size_t pcf_column_pos[8] = {0, 11, 17, 25, 33, 41, 49, 57};

static const char *const pcf_field_names[8] = {
    "service", "type", "private", "unprivileged", "chroot", "wakeup", "process_limit", "command",
};

/* pcf_master_line - the normalised text of one entry */
static void pcf_master_line(const PCF_OPTS *opts, const MASTER_ENT *ent, VSTR *line)
{
    vstr_reset(line);
    for (int i = 0; i < 7; i++) {
        if (i > 0) {
            do
                vstr_addch(line, ' ');
            while (vstr_len(line) < pcf_column_pos[i]);
        }
        vstr_cat(line, ent->column[i]);
    }
    do
        vstr_addch(line, ' ');
    while (vstr_len(line) < pcf_column_pos[7]);
    vstr_cat(line, ent->words->argv[0]);
    for (size_t i = 1; i < ent->words->argc; i++) {
        const char *w = ent->words->argv[i];

        if (opts->fold && strcmp(w, "-o") == 0 && i + 1 < ent->words->argc) {
            vstr_sprintf_append(line, "\n    -o %s", ent->words->argv[++i]);
            continue;
        }
        vstr_addch(line, ' ');
        vstr_cat(line, w);
    }
}

/* pcf_command_text - the command and arguments on one line */
static void pcf_command_text(const MASTER_ENT *ent, VSTR *text)
{
    vstr_reset(text);
    for (size_t i = 0; i < ent->words->argc; i++) {
        if (i > 0)
            vstr_addch(text, ' ');
        vstr_cat(text, ent->words->argv[i]);
    }
}

/* pcf_select - does the request "service[/type[/name]]" select this entry */
static int pcf_select(const char *req, const MASTER_ENT *ent, const char **rest)
{
    size_t slen = strlen(ent->service), tlen = strlen(ent->type);

    *rest = NULL;
    if (strncmp(req, ent->service, slen) != 0)
        return 0;
    if (req[slen] == 0)
        return 1;
    if (req[slen] != '/' || strncmp(req + slen + 1, ent->type, tlen) != 0)
        return 0;
    req += slen + 1 + tlen;
    if (*req == 0)
        return 1;
    if (*req != '/' || req[1] == 0)
        return 0;
    *rest = req + 1;
    return 1;
}

/* pcf_show_entry - everything one selected entry contributes */
static int pcf_show_entry(const PCF_OPTS *opts, const MASTER_ENT *ent, const char *only, VSTR *buf,
                          VSTR *name)
{
    int shown = 0;

    switch (opts->mode) {
    case PCF_MODE_MASTER:
        if (only != NULL)
            return 0;
        pcf_master_line(opts, ent, buf);
        printf("%s\n", vstr_str(buf));
        return 1;
    case PCF_MODE_FIELDS:
        for (int i = 0; i < 8; i++) {
            if (only != NULL && strcmp(only, pcf_field_names[i]) != 0)
                continue;
            if (i < 7)
                vstr_cpy(buf, ent->column[i]);
            else
                pcf_command_text(ent, buf);
            vstr_sprintf(name, "%s/%s/%s", ent->service, ent->type, pcf_field_names[i]);
            pcf_print(opts, vstr_str(name), vstr_str(buf));
            shown = 1;
        }
        return shown;
    case PCF_MODE_PARAMS:
        for (size_t i = 0; i < ent->overrides->argc; i++) {
            const char *ov = ent->overrides->argv[i];
            const char *eq = strchr(ov, '=');
            size_t nlen = eq ? (size_t)(eq - ov) : strlen(ov);

            if (only != NULL && (strlen(only) != nlen || strncmp(only, ov, nlen) != 0))
                continue;
            vstr_sprintf(name, "%s/%s/%.*s", ent->service, ent->type, (int)nlen, ov);
            pcf_print(opts, vstr_str(name), eq ? eq + 1 : "");
            shown = 1;
        }
        return shown;
    default: return 0;
    }
}

/* pcf_show_master - -M, -F, -P */
void pcf_show_master(const PCF_OPTS *opts, char **names)
{
    static VSTR *why; /* static: reachable when msg_fatal exits */
    VSTR *path;

    /* main.cf gives the process limit that "-" stands for. */
    mail_conf_read(opts->config_dir);
    int maxproc = (int)var_int("default_process_limit");

    if (why == NULL)
        why = vstr_alloc(128);
    path = vstr_alloc(256);
    vstr_sprintf(path, "%s/master.cf", opts->config_dir);
    MASTER_CF *cf = master_cf_read(vstr_str(path), maxproc, why);

    vstr_free(path);
    if (cf == NULL)
        msg_fatal("%s", vstr_str(why));
    VSTR *buf = vstr_alloc(256);
    VSTR *name = vstr_alloc(128);

    if (*names == NULL) {
        for (size_t i = 0; i < cf->count; i++)
            pcf_show_entry(opts, cf->ents[i], NULL, buf, name);
    }
    for (; *names; names++) {
        int matched = 0;

        for (size_t i = 0; i < cf->count; i++) {
            const char *rest;

            if (pcf_select(*names, cf->ents[i], &rest))
                matched |= pcf_show_entry(opts, cf->ents[i], rest, buf, name);
        }
        if (!matched)
            msg_warn("unmatched request: \"%s\"", *names);
    }
    master_cf_free(cf);
    vstr_free(buf);
    vstr_free(name);
}
