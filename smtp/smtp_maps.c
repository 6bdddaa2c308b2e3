/*
 * smtp_maps - the delivery agent's lookup table lists (smtp_tls_policy_maps,
 * smtp_sasl_password_maps): opened once, before the privilege drop, so that
 * root-only tables can be read, and searched in order.
 */
#include <string.h>

#include "mail/dict.h"
#include "mail/mail_conf.h"
#include "smtp.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* smtp_maps_open - every table of a list value; NULL with why on failure */
SMTP_MAPS *smtp_maps_open(const char *param, const char *value, VSTR *why)
{
    ARGV *specs = mail_conf_split_list(value);
    SMTP_MAPS *maps = mycalloc(1, sizeof(*maps));

    maps->param = param;
    maps->dict = mycalloc(specs->argc ? specs->argc : 1, sizeof(DICT *));
    for (size_t i = 0; i < specs->argc; i++) {
        VSTR *err = vstr_alloc(64);

        if ((maps->dict[maps->count] = dict_open(specs->argv[i], DICT_FLAG_FOLD_FIX, err)) ==
            NULL) {
            vstr_sprintf(why, "%s: %s", param, vstr_str(err));
            vstr_free(err);
            argv_free(specs);
            smtp_maps_free(maps);
            return NULL;
        }
        maps->count++;
        vstr_free(err);
    }
    argv_free(specs);
    return maps;
}

/* smtp_maps_free - close the tables */
void smtp_maps_free(SMTP_MAPS *maps)
{
    if (maps == NULL)
        return;
    for (size_t i = 0; i < maps->count; i++)
        dict_close(maps->dict[i]);
    myfree(maps->dict);
    myfree(maps);
}

/* smtp_maps_find - the first table's value for key; NULL with *error set to
   0 (not found) or -1 (a table failed: defer) */
const char *smtp_maps_find(SMTP_MAPS *maps, const char *key, int *error)
{
    *error = 0;
    for (size_t i = 0; maps != NULL && i < maps->count; i++) {
        const char *v = dict_get(maps->dict[i], key);

        if (v != NULL)
            return v;
        if (maps->dict[i]->error != DICT_ERR_NONE) {
            msg_warn("%s: lookup of \"%s\" in %s:%s failed", maps->param, key, maps->dict[i]->type,
                     maps->dict[i]->name);
            *error = -1;
            return NULL;
        }
    }
    return NULL;
}
