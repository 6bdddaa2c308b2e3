/*
 * dict_pcre - the pcre: table (pcre_table(5)), with PCRE2.
 *
 *   /regex/flags result       !/regex/flags result
 *   if /regex/flags  ...  endif      if !/regex/flags ... endif  (nest)
 *
 * Flags toggle PCRE2 options; i (caseless) and s (dotall) are on by
 * default. Results may use $1..$99, ${n} or $(n) for captured text and $$
 * for a '$'. As in Postfix, a rule that does not parse or compile is
 * reported as "pcre map FILE, line N: ..." and skipped, and the table still
 * opens; one deliberate difference: an "if" whose pattern is broken makes
 * its block match nothing, rather than silently making the rules inside it
 * unconditional.
 *
 * Every match runs under a match limit and a heap limit, so no key (a
 * header line from a peer, say) can make a pattern backtrack for minutes;
 * hitting a limit fails the lookup with DICT_ERR_RETRY.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mail/dict.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define DICT_PCRE_MAX_SUB 99          /* highest $number */
#define DICT_PCRE_MATCH_LIMIT 1000000 /* backtracking steps per match */
#define DICT_PCRE_HEAP_LIMIT_KB 20480 /* interpreter backtracking memory */
#define DICT_PCRE_JIT_STACK_MIN (32 * 1024)
#define DICT_PCRE_JIT_STACK_MAX (1024 * 1024)
#define DICT_PCRE_ERRBUF 256

enum dict_pcre_op { PCRE_OP_MATCH, PCRE_OP_IF, PCRE_OP_ENDIF };

typedef struct DICT_PCRE_RULE {
    enum dict_pcre_op op;
    int lineno;
    int negate;     /* "!/re/": the rule applies when re does not match */
    pcre2_code *re; /* NULL for ENDIF and for a broken IF */
    char *result;   /* MATCH: result text; with max_sub 0 already literal */
    int max_sub;    /* largest $number in result */
    size_t skip;    /* IF: index of its ENDIF (count when missing) */
} DICT_PCRE_RULE;

typedef struct DICT_PCRE {
    DICT_PCRE_RULE *rules;
    size_t count;
    size_t cap;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    VSTR *expansion;
} DICT_PCRE;

/* dict_pcre_add - append a rule; returns it */
static DICT_PCRE_RULE *dict_pcre_add(DICT_PCRE *dp, enum dict_pcre_op op, int lineno)
{
    if (dp->count == dp->cap) {
        dp->cap = dp->cap ? size_mul(dp->cap, 2) : 16;
        dp->rules = myrealloc(dp->rules, size_mul(dp->cap, sizeof(*dp->rules)));
    }
    DICT_PCRE_RULE *r = &dp->rules[dp->count++];

    memset(r, 0, sizeof(*r));
    r->op = op;
    r->lineno = lineno;
    return r;
}

/* What happens to a rule that cannot be used, for the warning. */
#define DICT_PCRE_SKIP "skipping this rule"
#define DICT_PCRE_SKIP_IF "the rules up to its \"endif\" will never match"

/* dict_pcre_get_pattern - "[!]<d>regex<d>flags": the regex is cut out of
   the line in place; 0, or -1 after a warning that ends with action */
static int dict_pcre_get_pattern(DICT *d, int lineno, char **pp, char **regex, uint32_t *options,
                                 int *negate, const char *action)
{
    char *p = *pp;
    char delim;

    *negate = 0;
    while (*p == '!') {
        *negate = !*negate;
        p++;
        while (isspace((unsigned char)*p))
            p++;
    }
    if (*p == 0) {
        msg_warn("pcre map %s, line %d: no regexp: %s", d->name, lineno, action);
        return -1;
    }
    delim = *p++;
    if (isalnum((unsigned char)delim) || delim == '\\') {
        msg_warn("pcre map %s, line %d: bad regexp delimiter \"%c\": %s", d->name, lineno, delim,
                 action);
        return -1;
    }
    *regex = p;
    /* A backslash protects the delimiter; it stays in the regex, where it
       is harmless (PCRE reads "\/" as "/"). */
    while (*p && *p != delim) {
        if (*p == '\\' && p[1])
            p++;
        p++;
    }
    if (*p == 0) {
        msg_warn("pcre map %s, line %d: no closing regexp delimiter \"%c\": %s", d->name, lineno,
                 delim, action);
        return -1;
    }
    *p++ = 0;
    *options = PCRE2_CASELESS | PCRE2_DOTALL;
    for (; *p && !isspace((unsigned char)*p); p++) {
        switch (*p) {
        case 'i': *options ^= PCRE2_CASELESS; break;
        case 'm': *options ^= PCRE2_MULTILINE; break;
        case 's': *options ^= PCRE2_DOTALL; break;
        case 'x': *options ^= PCRE2_EXTENDED; break;
        case 'A': *options ^= PCRE2_ANCHORED; break;
        case 'E': *options ^= PCRE2_DOLLAR_ENDONLY; break;
        case 'U': *options ^= PCRE2_UNGREEDY; break;
        case 'X': break; /* PCRE2 always rejects unknown escapes */
        default:
            msg_warn("pcre map %s, line %d: unknown regexp option \"%c\": %s", d->name, lineno, *p,
                     action);
            return -1;
        }
    }
    while (isspace((unsigned char)*p))
        p++;
    *pp = p;
    return 0;
}

/* dict_pcre_compile - compile; NULL after a warning that ends with action */
static pcre2_code *dict_pcre_compile(DICT *d, int lineno, const char *regex, uint32_t options,
                                     const char *action)
{
    int errcode;
    PCRE2_SIZE erroffset;
    pcre2_code *re;

    re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, options, &errcode, &erroffset,
                       NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[DICT_PCRE_ERRBUF];

        pcre2_get_error_message(errcode, msg, sizeof(msg));
        msg_warn("pcre map %s, line %d: error in regex at offset %zu: %s: %s", d->name, lineno,
                 (size_t)erroffset, (const char *)msg, action);
        return NULL;
    }
    /* JIT is an optimisation only: without it the interpreter runs. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

/*
 * dict_pcre_scan - walk a result template. With out == NULL only check it
 * and find the largest $number (0 or -1 with why); otherwise expand it with
 * the captures of the last match.
 */
static int dict_pcre_scan(const char *tmpl, int *max_sub, const char **why, VSTR *out,
                          const char *subject, PCRE2_SIZE *ovector, int pairs)
{
    const char *p = tmpl;

    *max_sub = 0;
    while (*p) {
        if (*p != '$') {
            size_t n = strcspn(p, "$");

            if (out)
                vstr_ncat(out, p, n);
            p += n;
            continue;
        }
        p++;
        if (*p == '$') {
            if (out)
                vstr_addch(out, '$');
            p++;
            continue;
        }
        const char *num = p;
        char close = 0;

        if (*p == '{' || *p == '(') {
            close = *p == '{' ? '}' : ')';
            num = ++p;
        } else if (!isalnum((unsigned char)*p) && *p != '_') {
            if (out) /* a lone '$' is itself */
                vstr_addch(out, '$');
            continue;
        }
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        size_t len = (size_t)(p - num);

        if (close) {
            if (*p != close) {
                *why = "bad replacement syntax";
                return -1;
            }
            p++;
        }
        if (len == 0 || strspn(num, "0123456789") < len) {
            *why = "non-numeric replacement index";
            return -1;
        }
        if (len > 2) {
            *why = "out of range replacement index";
            return -1;
        }
        int idx = atoi(num); /* at most two digits */

        if (idx < 1) {
            *why = "out of range replacement index";
            return -1;
        }
        if (idx > *max_sub)
            *max_sub = idx;
        if (out && idx < pairs && ovector[2 * idx] != PCRE2_UNSET)
            vstr_ncat(out, subject + ovector[2 * idx], ovector[2 * idx + 1] - ovector[2 * idx]);
    }
    return 0;
}

/* dict_pcre_literal - result without $number: resolve $$ once, now */
static char *dict_pcre_literal(const char *tmpl)
{
    VSTR *out = vstr_alloc(strlen(tmpl) + 1);
    const char *why;
    int max_sub;

    dict_pcre_scan(tmpl, &max_sub, &why, out, "", NULL, 0);
    return vstr_export(out);
}

/* dict_pcre_match_rule - "[!]/re/flags result" */
static void dict_pcre_match_rule(DICT *d, DICT_PCRE *dp, char *line, int lineno)
{
    char *p = line;
    char *regex;
    uint32_t options;
    int negate;
    int max_sub;
    const char *why;
    pcre2_code *re;
    uint32_t captures = 0;

    if (dict_pcre_get_pattern(d, lineno, &p, &regex, &options, &negate, DICT_PCRE_SKIP) < 0)
        goto skip;
    if (*p == 0)
        msg_warn("pcre map %s, line %d: no replacement text: using empty string", d->name, lineno);
    if (dict_pcre_scan(p, &max_sub, &why, NULL, NULL, NULL, 0) < 0) {
        msg_warn("pcre map %s, line %d: %s: skipping this rule", d->name, lineno, why);
        goto skip;
    }
    if (max_sub > 0 && negate) {
        msg_warn("pcre map %s, line %d: $number found in negative match replacement text: "
                 "skipping this rule",
                 d->name, lineno);
        goto skip;
    }
    if (max_sub > 0 && (d->flags & DICT_FLAG_NO_REGSUB)) {
        msg_warn("pcre map %s, line %d: regular expression substitution is not allowed: "
                 "skipping this rule",
                 d->name, lineno);
        goto skip;
    }
    if ((re = dict_pcre_compile(d, lineno, regex, options, DICT_PCRE_SKIP)) == NULL)
        goto skip;
    if (pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &captures) != 0 ||
        (uint32_t)max_sub > captures) {
        msg_warn("pcre map %s, line %d: out of range replacement index \"%d\": "
                 "skipping this rule",
                 d->name, lineno, max_sub);
        pcre2_code_free(re);
        goto skip;
    }
    DICT_PCRE_RULE *r = dict_pcre_add(dp, PCRE_OP_MATCH, lineno);

    r->negate = negate;
    r->re = re;
    r->max_sub = max_sub;
    r->result = max_sub ? mystrdup(p) : dict_pcre_literal(p);
    return;

skip:
    d->warnings++;
}

/* dict_pcre_if_rule - "if [!]/re/flags"; a broken one never matches */
static void dict_pcre_if_rule(DICT *d, DICT_PCRE *dp, char *p, int lineno)
{
    char *regex;
    uint32_t options;
    int negate = 0;
    pcre2_code *re = NULL;

    while (isspace((unsigned char)*p))
        p++;
    if (dict_pcre_get_pattern(d, lineno, &p, &regex, &options, &negate, DICT_PCRE_SKIP_IF) == 0) {
        if (*p) {
            msg_warn("pcre map %s, line %d: ignoring extra text after \"if\" statement: \"%s\"",
                     d->name, lineno, p);
            msg_warn("pcre map %s, line %d: do not prepend whitespace to statements between "
                     "\"if\" and \"endif\"",
                     d->name, lineno);
            d->warnings++;
        }
        re = dict_pcre_compile(d, lineno, regex, options, DICT_PCRE_SKIP_IF);
    }
    if (re == NULL)
        d->warnings++;
    DICT_PCRE_RULE *r = dict_pcre_add(dp, PCRE_OP_IF, lineno);

    r->negate = negate;
    r->re = re;
}

/* dict_pcre_keyword - does the line start with word (then not alnum) */
static int dict_pcre_keyword(const char *line, const char *word)
{
    size_t n = strlen(word);

    return strncasecmp(line, word, n) == 0 && !isalnum((unsigned char)line[n]);
}

static void dict_pcre_free(DICT *d, void *state)
{
    DICT_PCRE *dp = state;

    (void)d;
    for (size_t i = 0; i < dp->count; i++) {
        pcre2_code_free(dp->rules[i].re);
        myfree(dp->rules[i].result);
    }
    myfree(dp->rules);
    pcre2_match_data_free(dp->md);
    pcre2_match_context_free(dp->mctx);
    pcre2_jit_stack_free(dp->jit_stack);
    vstr_free(dp->expansion);
    myfree(dp);
}

static void *dict_pcre_open(DICT *d, int mode, struct stat *st, VSTR *why)
{
    FILE *fp;
    DICT_READER *rd;
    const char *line;
    int lineno = 0;
    int rc;
    size_t *stack = NULL;
    size_t depth = 0;
    size_t stack_cap = 0;

    (void)mode;
    if ((fp = dict_text_source(d->name, st, why)) == NULL)
        return NULL;
    DICT_PCRE *dp = mycalloc(1, sizeof(*dp));
    VSTR *buf = vstr_alloc(256);

    rd = dict_reader_new(fp, d->name);
    while ((rc = dict_reader_next(rd, &line, &lineno)) > 0) {
        vstr_cpy(buf, line);
        char *p = vstr_str(buf);

        if (!isalnum((unsigned char)*p)) {
            dict_pcre_match_rule(d, dp, p, lineno);
        } else if (dict_pcre_keyword(p, "if")) {
            dict_pcre_if_rule(d, dp, p + 2, lineno);
            if (depth == stack_cap) {
                stack_cap = stack_cap ? size_mul(stack_cap, 2) : 8;
                stack = myrealloc(stack, size_mul(stack_cap, sizeof(*stack)));
            }
            stack[depth++] = dp->count - 1;
        } else if (dict_pcre_keyword(p, "endif")) {
            if (depth == 0) {
                msg_warn("pcre map %s, line %d: ignoring \"endif\" without matching \"if\"",
                         d->name, lineno);
                d->warnings++;
                continue;
            }
            char *rest = p + 5;

            while (isspace((unsigned char)*rest))
                rest++;
            if (*rest) {
                msg_warn("pcre map %s, line %d: ignoring extra text after \"endif\"", d->name,
                         lineno);
                d->warnings++;
            }
            dict_pcre_add(dp, PCRE_OP_ENDIF, lineno);
            dp->rules[stack[--depth]].skip = dp->count - 1;
        } else {
            msg_warn("pcre map %s, line %d: ignoring unrecognized request", d->name, lineno);
            d->warnings++;
        }
    }
    int saved = errno;

    d->warnings += dict_reader_warnings(rd);
    dict_reader_free(rd);
    fclose(fp);
    vstr_free(buf);
    /* As in Postfix, an "if" left open runs to the end of the table. */
    while (depth > 0) {
        DICT_PCRE_RULE *r = &dp->rules[stack[--depth]];

        msg_warn("pcre map %s, line %d: \"if\" has no matching \"endif\"", d->name, r->lineno);
        r->skip = dp->count;
        d->warnings++;
    }
    myfree(stack);
    if (rc < 0) {
        vstr_sprintf(why, "read %s: %s", d->name, strerror(saved));
        dict_pcre_free(d, dp);
        return NULL;
    }
    dp->md = pcre2_match_data_create(DICT_PCRE_MAX_SUB + 1, NULL);
    dp->mctx = pcre2_match_context_create(NULL);
    if (dp->md == NULL || dp->mctx == NULL)
        msg_fatal("pcre map %s: out of memory", d->name);
    pcre2_set_match_limit(dp->mctx, DICT_PCRE_MATCH_LIMIT);
    pcre2_set_heap_limit(dp->mctx, DICT_PCRE_HEAP_LIMIT_KB);
    dp->jit_stack = pcre2_jit_stack_create(DICT_PCRE_JIT_STACK_MIN, DICT_PCRE_JIT_STACK_MAX, NULL);
    if (dp->jit_stack)
        pcre2_jit_stack_assign(dp->mctx, NULL, dp->jit_stack);
    dp->expansion = vstr_alloc(100);
    return dp;
}

/* dict_pcre_exec - 1 match, 0 no match, -1 error (logged, d->error set) */
static int dict_pcre_exec(DICT *d, DICT_PCRE *dp, const DICT_PCRE_RULE *r, const char *key,
                          size_t len, int *pairs)
{
    int rc = pcre2_match(r->re, (PCRE2_SPTR)key, len, 0, 0, dp->md, dp->mctx);

    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[DICT_PCRE_ERRBUF];

        pcre2_get_error_message(rc, msg, sizeof(msg));
        msg_warn("pcre map %s, line %d: matching error: %s", d->name, r->lineno, (const char *)msg);
        d->error = DICT_ERR_RETRY;
        return -1;
    }
    /* rc 0: more captures than the ovector holds; $n past it are unset. */
    *pairs = rc == 0 ? DICT_PCRE_MAX_SUB + 1 : rc;
    return 1;
}

static const char *dict_pcre_lookup(DICT *d, const char *key)
{
    DICT_PCRE *dp = d->state;
    size_t len = strlen(key);
    int pairs = 0;
    int m;

    for (size_t i = 0; i < dp->count; i++) {
        const DICT_PCRE_RULE *r = &dp->rules[i];

        switch (r->op) {
        case PCRE_OP_ENDIF: break;
        case PCRE_OP_IF:
            if (r->re == NULL) {
                i = r->skip;
                break;
            }
            if ((m = dict_pcre_exec(d, dp, r, key, len, &pairs)) < 0)
                return NULL;
            if (m == r->negate)
                i = r->skip; /* the loop steps past the ENDIF */
            break;
        case PCRE_OP_MATCH:
            if ((m = dict_pcre_exec(d, dp, r, key, len, &pairs)) < 0)
                return NULL;
            if (m == r->negate)
                break;
            if (r->max_sub == 0)
                return r->result;
            int max_sub;
            const char *why;

            vstr_reset(dp->expansion);
            dict_pcre_scan(r->result, &max_sub, &why, dp->expansion, key,
                           pcre2_get_ovector_pointer(dp->md), pairs);
            return vstr_str(dp->expansion);
        }
    }
    return NULL;
}

const DICT_TYPE dict_pcre_type = {
    .type = "pcre",
    .flags = DICT_FLAG_PATTERN,
    .suffix = "",
    .open = dict_pcre_open,
    .lookup = dict_pcre_lookup,
    .free = dict_pcre_free,
};
