/*
 * sasl_policy - which mechanisms may be offered: the security properties
 * of each mechanism, smtpd_sasl_security_options (and the TLS variant),
 * and smtpd_sasl_mechanism_filter.
 *
 * Security options take Postfix's (Cyrus SASL's) words. noplaintext,
 * noactive, nodictionary and noanonymous drop mechanisms that are open to
 * that weakness; mutual_auth and forward_secrecy keep only mechanisms that
 * provide it. Postern's own mechanisms are classified as Cyrus SASL
 * classifies its plugins (PLAIN and LOGIN send the password; CRAM-MD5 and
 * SCRAM-SHA-256 are open to dictionary attacks on a captured exchange,
 * CRAM-MD5 also to active ones; only SCRAM authenticates the server).
 * Dovecot's mechanisms keep the flags Dovecot announces, as in Postfix.
 *
 * The filter is Postfix's smtpd_sasl_mechanism_filter: a list of names,
 * "!name", "type:table" (the mechanism name in lower case is the key; any
 * value matches) and "/file/name" (more items), tried in order. The first
 * item that matches decides; a negated one drops the mechanism; when none
 * matches, the mechanism is dropped. The default "!external, static:rest"
 * thus drops EXTERNAL and keeps the rest: static: answers every key.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "mail/dict.h"
#include "mail/mail_conf.h"
#include "sasl/sasl_impl.h"
#include "util/argv.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

/* ---- Properties and security options ---- */

static const struct {
    const char *name;
    unsigned props;
} sasl_known_mechs[] = {
    {"PLAIN", SASL_SEC_PLAINTEXT | SASL_SEC_ACTIVE | SASL_SEC_DICTIONARY},
    {"LOGIN", SASL_SEC_PLAINTEXT | SASL_SEC_ACTIVE | SASL_SEC_DICTIONARY},
    {"CRAM-MD5", SASL_SEC_ACTIVE | SASL_SEC_DICTIONARY},
    {"SCRAM-SHA-256", SASL_SEC_DICTIONARY | SASL_SEC_MUTUAL_AUTH},
    {"ANONYMOUS", SASL_SEC_ANONYMOUS | SASL_SEC_ACTIVE | SASL_SEC_DICTIONARY},
};

/* sasl_mech_props - Postern's classification of a mechanism */
unsigned sasl_mech_props(const char *name)
{
    for (size_t i = 0; i < sizeof(sasl_known_mechs) / sizeof(sasl_known_mechs[0]); i++)
        if (strcasecmp(name, sasl_known_mechs[i].name) == 0)
            return sasl_known_mechs[i].props;
    return 0;
}

/* sasl_mech_props_word - Dovecot's MECH flag words */
unsigned sasl_mech_props_word(const char *word)
{
    static const struct {
        const char *word;
        unsigned bit;
    } words[] = {
        {"plaintext", SASL_SEC_PLAINTEXT},
        {"active", SASL_SEC_ACTIVE},
        {"dictionary", SASL_SEC_DICTIONARY},
        {"anonymous", SASL_SEC_ANONYMOUS},
        {"forward-secrecy", SASL_SEC_FWD_SECRECY},
        {"mutual-auth", SASL_SEC_MUTUAL_AUTH},
        {"private", SASL_SEC_PRIVATE},
    };

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(word, words[i].word) == 0)
            return words[i].bit;
    return 0;
}

/* sasl_secopts_parse - the option words as property masks */
int sasl_secopts_parse(const char *value, unsigned *must_not, unsigned *must, VSTR *why)
{
    static const struct {
        const char *word;
        unsigned bit;
        int positive;
    } words[] = {
        {"noplaintext", SASL_SEC_PLAINTEXT, 0},       {"noactive", SASL_SEC_ACTIVE, 0},
        {"nodictionary", SASL_SEC_DICTIONARY, 0},     {"noanonymous", SASL_SEC_ANONYMOUS, 0},
        {"forward_secrecy", SASL_SEC_FWD_SECRECY, 1}, {"mutual_auth", SASL_SEC_MUTUAL_AUTH, 1},
    };
    ARGV *av = argv_split(value != NULL ? value : "", ", \t\r\n");
    int ret = 0;

    *must_not = 0;
    *must = 0;
    for (size_t i = 0; i < av->argc && ret == 0; i++) {
        size_t k;

        for (k = 0; k < sizeof(words) / sizeof(words[0]); k++)
            if (strcasecmp(av->argv[i], words[k].word) == 0)
                break;
        if (k == sizeof(words) / sizeof(words[0])) {
            vstr_sprintf(why,
                         "unknown SASL security option \"%s\" (use noplaintext, noactive, "
                         "nodictionary, noanonymous, mutual_auth, forward_secrecy)",
                         av->argv[i]);
            ret = -1;
        } else if (words[k].positive) {
            *must |= words[k].bit;
        } else {
            *must_not |= words[k].bit;
        }
    }
    argv_free(av);
    return ret;
}

/* sasl_secopts_allow - a mechanism passes when it has no forbidden weakness
   and every demanded property */
int sasl_secopts_allow(unsigned props, unsigned must_not, unsigned must)
{
    if (props & SASL_SEC_PRIVATE)
        return 0;
    return (props & must_not) == 0 && (props & must) == must;
}

/* ---- smtpd_sasl_mechanism_filter ---- */

enum sasl_filter_kind { SASL_FILTER_NAME, SASL_FILTER_TABLE };

typedef struct SASL_FILTER_ITEM {
    enum sasl_filter_kind kind;
    int negate;
    char *name;
    DICT *dict;
} SASL_FILTER_ITEM;

struct SASL_FILTER {
    SASL_FILTER_ITEM *items;
    size_t count;
    size_t cap;
};

static int sasl_filter_add_text(SASL_FILTER *f, const char *text, int depth, VSTR *why);

/* sasl_filter_item - a new empty item at the end */
static SASL_FILTER_ITEM *sasl_filter_item(SASL_FILTER *f)
{
    if (f->count == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        f->items = myrealloc(f->items, size_mul(f->cap, sizeof(*f->items)));
    }
    memset(&f->items[f->count], 0, sizeof(f->items[0]));
    return &f->items[f->count++];
}

/* sasl_filter_add_file - the items in a file ('#' comment lines) */
static int sasl_filter_add_file(SASL_FILTER *f, const char *path, int depth, VSTR *why)
{
    size_t len;
    char *text;
    char *save;
    char *line;
    VSTR *body;
    int ret;

    if (depth >= SASL_FILTER_DEPTH) {
        vstr_sprintf(why, "%s: filter files nested more than %d deep", path, SASL_FILTER_DEPTH);
        return -1;
    }
    if ((text = file_read_all(path, SASL_FILTER_FILE_MAX, &len)) == NULL) {
        vstr_sprintf(why, "open %s: %s", path, strerror(errno));
        return -1;
    }
    if (memchr(text, 0, len) != NULL) {
        myfree(text);
        vstr_sprintf(why, "%s: NUL byte in filter file", path);
        return -1;
    }
    body = vstr_alloc(len + 1);
    save = text;
    while ((line = mystrtok(&save, "\n")) != NULL) {
        char *cp = line + strspn(line, " \t\r");

        if (*cp == '#' || *cp == 0)
            continue;
        vstr_cat(body, cp);
        vstr_cat(body, " ");
    }
    myfree(text);
    ret = sasl_filter_add_text(f, vstr_str(body), depth + 1, why);
    vstr_free(body);
    return ret;
}

/* sasl_filter_add_item - one list element */
static int sasl_filter_add_item(SASL_FILTER *f, const char *item, int depth, VSTR *why)
{
    int negate = 0;
    SASL_FILTER_ITEM *it;

    while (*item == '!') {
        negate = !negate;
        item++;
    }
    if (*item == 0) {
        vstr_sprintf(why, "smtpd_sasl_mechanism_filter: empty pattern after \"!\"");
        return -1;
    }
    if (*item == '/') {
        if (negate) {
            vstr_sprintf(why, "smtpd_sasl_mechanism_filter: \"!%s\": a file cannot be negated",
                         item);
            return -1;
        }
        return sasl_filter_add_file(f, item, depth, why);
    }
    if (strchr(item, ':') != NULL) {
        VSTR *err = vstr_alloc(100);
        DICT *d = dict_open(item, DICT_FLAG_FOLD_FIX, err);

        if (d == NULL) {
            vstr_sprintf(why, "smtpd_sasl_mechanism_filter: %s", vstr_str(err));
            vstr_free(err);
            return -1;
        }
        vstr_free(err);
        it = sasl_filter_item(f);
        it->kind = SASL_FILTER_TABLE;
        it->dict = d;
        it->negate = negate;
        return 0;
    }
    if (strlen(item) > SASL_MECH_NAME_MAX) {
        vstr_sprintf(why, "smtpd_sasl_mechanism_filter: \"%s\" is not a mechanism name", item);
        return -1;
    }
    it = sasl_filter_item(f);
    it->kind = SASL_FILTER_NAME;
    it->name = mystrdup(item);
    it->negate = negate;
    return 0;
}

/* sasl_filter_add_text - every element of a list value */
static int sasl_filter_add_text(SASL_FILTER *f, const char *text, int depth, VSTR *why)
{
    ARGV *av = mail_conf_split_list(text);
    int ret = 0;

    for (size_t i = 0; i < av->argc && ret == 0; i++)
        ret = sasl_filter_add_item(f, av->argv[i], depth, why);
    argv_free(av);
    return ret;
}

/* sasl_filter_new - parse the filter */
SASL_FILTER *sasl_filter_new(const char *value, VSTR *why)
{
    SASL_FILTER *f = mycalloc(1, sizeof(*f));

    if (value != NULL && sasl_filter_add_text(f, value, 0, why) < 0) {
        sasl_filter_free(f);
        return NULL;
    }
    return f;
}

/* sasl_filter_keep - first matching item decides; no match drops */
int sasl_filter_keep(SASL_FILTER *f, const char *mech)
{
    char key[SASL_MECH_NAME_MAX + 1];

    if (f == NULL || f->count == 0)
        return 1;
    if (strlen(mech) > SASL_MECH_NAME_MAX)
        return 0;
    strcpy(key, mech);
    lowercase(key);
    for (size_t i = 0; i < f->count; i++) {
        SASL_FILTER_ITEM *it = &f->items[i];
        int match;

        if (it->kind == SASL_FILTER_NAME) {
            match = strcasecmp(it->name, mech) == 0;
        } else {
            match = dict_get(it->dict, key) != NULL;
            if (!match && it->dict->error != DICT_ERR_NONE) {
                /* Cannot tell: do not offer what the table might forbid. */
                msg_warn("smtpd_sasl_mechanism_filter: %s:%s: lookup of \"%s\" failed",
                         it->dict->type, it->dict->name, key);
                return 0;
            }
        }
        if (match)
            return !it->negate;
    }
    return 0;
}

/* sasl_filter_free - release the items and tables */
void sasl_filter_free(SASL_FILTER *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->count; i++) {
        myfree(f->items[i].name);
        if (f->items[i].dict != NULL)
            dict_close(f->items[i].dict);
    }
    myfree(f->items);
    myfree(f);
}
