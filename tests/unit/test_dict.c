/*
 * test_dict - unit tests for lib/mail/dict*.c and mail_addr_find.c: every
 * table type (found, not found, case folding, malformed sources), the
 * hash/btree writer and reload, and the address lookup orders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/dict.h"
#include "mail/mail_addr_find.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

static char test_dir[256];

/* ---- helpers ---- */

/* path_in - a file name in the test directory (static buffer) */
static const char *path_in(const char *name)
{
    static char buf[512];

    snprintf(buf, sizeof(buf), "%s/%s", test_dir, name);
    return buf;
}

/* write_file - create a file in the test directory; returns its path */
static const char *write_file(const char *name, const char *text)
{
    const char *path = path_in(name);
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    return path;
}

/* open_file_table - dict_open of "type:path-in-test-dir" (why may be NULL) */
static DICT *open_file_table(const char *type, const char *name, int flags, VSTR *why)
{
    char spec[600];

    snprintf(spec, sizeof(spec), "%s:%s", type, path_in(name));
    return dict_open(spec, flags, why);
}

/* must_open - dict_open that the test requires to work */
static DICT *must_open(const char *spec, int flags)
{
    VSTR *why = vstr_alloc(100);
    DICT *d = dict_open(spec, flags, why);

    if (d == NULL)
        fail_msg("dict_open %s: %s", spec, vstr_str(why));
    vstr_free(why);
    return d;
}

/* get_is - dict_get gives value (NULL: not found, without error) */
static void get_is(DICT *d, const char *key, const char *value)
{
    const char *got = dict_get(d, key);

    if (value == NULL) {
        if (got != NULL)
            fail_msg("%s:%s: key \"%s\": expected not found, got \"%s\"", d->type, d->name, key,
                     got);
        assert_int_equal(d->error, DICT_ERR_NONE);
    } else {
        if (got == NULL)
            fail_msg("%s:%s: key \"%s\": expected \"%s\", not found (error %d)", d->type, d->name,
                     key, value, d->error);
        assert_string_equal(got, value);
    }
}

/* build_db - write a hash/btree table from key/value pairs (NULL ends) */
static void build_db(const char *type, const char *name, int flags, ...)
{
    VSTR *why = vstr_alloc(100);
    DICT *d = dict_open_type(type, path_in(name), DICT_MODE_CREATE, flags, why);
    va_list ap;
    const char *k;

    if (d == NULL)
        fail_msg("create %s: %s", name, vstr_str(why));
    va_start(ap, flags);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);

        assert_int_equal(dict_put(d, k, v), 0);
    }
    va_end(ap);
    assert_int_equal(dict_commit(d, why), 0);
    dict_close(d);
    vstr_free(why);
}

/* count_files - entries in the test directory whose name starts with prefix */
static int count_files(const char *prefix)
{
    DIR *dir = opendir(test_dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(dir);
    while ((de = readdir(dir)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(dir);
    return n;
}

/* ---- hash: and btree: ---- */

static void test_hash_lookup(void **state)
{
    (void)state;
    char spec[600];

    build_db("hash", "h2", DICT_FLAG_FOLD_FIX, "Foo@Example.COM", "bar", "k2", "v two", NULL);
    snprintf(spec, sizeof(spec), "hash:%s", path_in("h2"));

    DICT *d = must_open(spec, DICT_FLAG_FOLD_FIX);

    get_is(d, "foo@example.com", "bar");
    get_is(d, "FOO@EXAMPLE.COM", "bar"); /* folded by the table */
    get_is(d, "k2", "v two");
    get_is(d, "nope", NULL);
    dict_close(d);

    /* Without folding, only the stored (lower-case) form is found. */
    d = must_open(spec, 0);
    get_is(d, "foo@example.com", "bar");
    get_is(d, "FOO@EXAMPLE.COM", NULL);
    dict_close(d);
}

static void test_btree_sequence_sorted(void **state)
{
    (void)state;
    char spec[600];
    const char *k;
    const char *v;
    const char *want[] = {"a", "b", "c"};
    int n = 0;

    build_db("btree", "b1", 0, "c", "3", "a", "1", "b", "2", NULL);
    snprintf(spec, sizeof(spec), "btree:%s", path_in("b1"));
    DICT *d = must_open(spec, 0);

    for (int how = DICT_SEQ_FIRST; dict_seq(d, how, &k, &v) == 0; how = DICT_SEQ_NEXT) {
        assert_true(n < 3);
        assert_string_equal(k, want[n]);
        n++;
    }
    assert_int_equal(n, 3);
    get_is(d, "b", "2");
    dict_close(d);

    /* A btree file is not a hash file. */
    VSTR *why = vstr_alloc(100);

    snprintf(spec, sizeof(spec), "hash:%s", path_in("b1"));
    assert_null(dict_open(spec, 0, why));
    assert_non_null(strstr(vstr_str(why), "not a Berkeley DB hash file"));
    vstr_free(why);
}

static void test_db_nul_forms(void **state)
{
    (void)state;
    char spec[600];

    /* Written without the trailing NUL (postmap -n): still readable, but
       not by a reader that insists on the NUL form. */
    build_db("hash", "n0", DICT_FLAG_TRY0NULL, "key", "value", NULL);
    snprintf(spec, sizeof(spec), "hash:%s", path_in("n0"));
    DICT *d = must_open(spec, 0);

    get_is(d, "key", "value");
    get_is(d, "ke", NULL);
    dict_close(d);
    d = must_open(spec, DICT_FLAG_TRY1NULL);
    get_is(d, "key", NULL);
    dict_close(d);

    /* Written with the NUL (the default): the other way round. */
    build_db("hash", "n1", 0, "key", "value", NULL);
    snprintf(spec, sizeof(spec), "hash:%s", path_in("n1"));
    d = must_open(spec, DICT_FLAG_TRY0NULL);
    get_is(d, "key", NULL);
    dict_close(d);
    d = must_open(spec, 0);
    get_is(d, "key", "value");
    dict_close(d);
}

static void test_db_duplicates(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(100);
    DICT *d = dict_open_type("hash", path_in("dup"), DICT_MODE_CREATE, DICT_FLAG_DUP_IGNORE, why);

    assert_non_null(d);
    assert_int_equal(dict_put(d, "k", "first"), 0);
    assert_int_equal(dict_put(d, "k", "second"), 1);
    get_is(d, "k", "first");
    dict_close(d); /* not committed: nothing left behind */
    assert_int_equal(count_files("dup"), 0);

    d = dict_open_type("hash", path_in("dup"), DICT_MODE_CREATE, DICT_FLAG_DUP_REPLACE, why);
    assert_non_null(d);
    assert_int_equal(dict_put(d, "k", "first"), 0);
    assert_int_equal(dict_put(d, "k", "second"), 0);
    get_is(d, "k", "second");
    assert_int_equal(dict_commit(d, why), 0);
    dict_close(d);
    assert_int_equal(count_files("dup"), 1); /* dup.db, no temporary file */
    vstr_free(why);
}

static void test_db_update_and_delete(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(100);
    char spec[600];

    build_db("hash", "u1", 0, "a", "1", "b", "2", NULL);
    chmod(path_in("u1.db"), 0640);
    DICT *d = dict_open_type("hash", path_in("u1"), DICT_MODE_UPDATE, DICT_FLAG_DUP_IGNORE, why);

    assert_non_null(d);
    get_is(d, "a", "1"); /* copied from the live table */
    assert_int_equal(dict_put(d, "c", "3"), 0);
    assert_int_equal(dict_del(d, "a"), 0);
    assert_int_equal(dict_del(d, "zz"), 1);
    assert_int_equal(dict_commit(d, why), 0);
    dict_close(d);

    struct stat st;

    assert_int_equal(stat(path_in("u1.db"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640); /* the replacement keeps the mode */
    snprintf(spec, sizeof(spec), "hash:%s", path_in("u1"));
    d = must_open(spec, 0);
    get_is(d, "a", NULL);
    get_is(d, "b", "2");
    get_is(d, "c", "3");
    dict_close(d);

    /* Read-only types cannot be written; read handles refuse writes. */
    assert_null(dict_open_type("pcre", path_in("u1"), DICT_MODE_CREATE, 0, why));
    assert_non_null(strstr(vstr_str(why), "read-only"));
    d = must_open(spec, 0);
    assert_int_equal(dict_put(d, "x", "y"), -1);
    assert_int_equal(d->error, DICT_ERR_CONFIG);
    assert_int_equal(dict_commit(d, why), -1);
    dict_close(d);
    vstr_free(why);
}

static void test_db_reload_after_rebuild(void **state)
{
    (void)state;
    char spec[600];

    build_db("hash", "r1", 0, "k", "old", NULL);
    snprintf(spec, sizeof(spec), "hash:%s", path_in("r1"));
    DICT *d = must_open(spec, 0);

    get_is(d, "k", "old");
    build_db("hash", "r1", 0, "k", "new", "k2", "added", NULL);
    d->watch_checked = 0; /* as if DICT_CHECK_INTERVAL had passed */
    get_is(d, "k", "new");
    get_is(d, "k2", "added");

    /* Replaced by something unreadable: keep serving the old table. */
    write_file("r1.db", "this is not a database\n");
    d->watch_checked = 0;
    get_is(d, "k", "new");
    dict_close(d);
}

static void test_registry_and_surrogate(void **state)
{
    (void)state;
    char spec[600];
    VSTR *why = vstr_alloc(100);

    build_db("hash", "s1", 0, "k", "v", NULL);
    snprintf(spec, sizeof(spec), "hash:%s", path_in("s1"));
    DICT *a = must_open(spec, DICT_FLAG_FOLD_FIX);
    DICT *b = must_open(spec, DICT_FLAG_FOLD_FIX);
    DICT *c = must_open(spec, 0);

    assert_ptr_equal(a, b); /* same spec, same flags: shared */
    assert_ptr_not_equal(a, c);
    assert_int_equal(a->refcount, 2);
    dict_close(b);
    get_is(a, "K", "v");
    dict_close(a);
    dict_close(c);

    /* A missing table: an error, or with DICT_FLAG_SURROGATE a table whose
       lookups fail with DICT_ERR_RETRY until the file shows up. */
    snprintf(spec, sizeof(spec), "hash:%s", path_in("absent"));
    assert_null(dict_open(spec, 0, why));
    assert_non_null(strstr(vstr_str(why), "No such file or directory"));
    DICT *s = dict_open(spec, DICT_FLAG_SURROGATE, why);

    assert_non_null(s);
    assert_null(dict_get(s, "k"));
    assert_int_equal(s->error, DICT_ERR_RETRY);
    build_db("hash", "absent", 0, "k", "now here", NULL);
    s->retry_at = 0;
    get_is(s, "k", "now here");
    dict_close(s);

    /* Bad specs */
    assert_null(dict_open("no-colon", 0, why));
    assert_null(dict_open("nosuchtype:/x", 0, why));
    assert_non_null(strstr(vstr_str(why), "unsupported dictionary type"));
    assert_null(dict_open("hash:", 0, why));
    vstr_free(why);
}

/* ---- pcre: ---- */

static void test_pcre_basic(void **state)
{
    (void)state;
    write_file("p1", "# comment\n"
                     "/^user@example\\.com$/   OK\n"
                     "/^Case@Sensitive$/i      exact case\n"
                     "!/@example\\.org$/       not org\n"
                     "/^(\\w+)-(\\w+)@/        ${2} $(1) $1$$ [$3]\n");
    /* $3 does not exist: that rule must be skipped, so ... */
    VSTR *why = vstr_alloc(100);
    DICT *d = open_file_table("pcre", "p1", DICT_FLAG_FOLD_FIX, why);

    assert_non_null(d);
    assert_int_equal(d->warnings, 1);
    get_is(d, "USER@EXAMPLE.COM", "OK"); /* case-insensitive by default */
    get_is(d, "Case@Sensitive", "exact case");
    get_is(d, "case@sensitive", "not org"); /* 'i' toggled it off */
    get_is(d, "someone@example.org", NULL);
    dict_close(d);
    vstr_free(why);
}

static void test_pcre_substitution_and_continuation(void **state)
{
    (void)state;
    write_file("p2", "/^(\\w+)-(\\w+)@(x)?/   ${2} $(1) $1$$ [$3]\n"
                     "/^multi$/ first part\n"
                     "  second part\n"
                     "/^dollar$/ cost $ 5 $\n");
    DICT *d = open_file_table("pcre", "p2", 0, NULL);

    assert_non_null(d);
    assert_int_equal(d->warnings, 0);
    get_is(d, "alpha-beta@y", "beta alpha alpha$ []"); /* unset group: empty */
    get_is(d, "alpha-beta@x", "beta alpha alpha$ [x]");
    get_is(d, "multi", "first part  second part");
    get_is(d, "dollar", "cost $ 5 $");
    dict_close(d);
}

static void test_pcre_if_endif(void **state)
{
    (void)state;
    write_file("p3", "if /@example\\.com$/\n"
                     "if !/^admin/\n"
                     "/^(.*)@/  user $1\n"
                     "endif\n"
                     "/^admin/  admin\n"
                     "endif\n"
                     "/./       fallback\n");
    DICT *d = open_file_table("pcre", "p3", 0, NULL);

    assert_non_null(d);
    assert_int_equal(d->warnings, 0);
    get_is(d, "joe@example.com", "user joe");
    get_is(d, "admin@example.com", "admin");
    get_is(d, "joe@other.net", "fallback");
    get_is(d, "", NULL);
    dict_close(d);

    /* The inline form: one rule per { }. */
    DICT *in = must_open("pcre:{ {/^a/ A}, { /^b(.)/ B$1 } }", 0);

    get_is(in, "apple", "A");
    get_is(in, "bx", "Bx");
    get_is(in, "c", NULL);
    dict_close(in);
}

static void test_pcre_broken_rules(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(100);

    write_file("p4", "/unclosed(/      bad regex\n"    /* compile error */
                     "/x/q             unknown flag\n" /* bad flag */
                     "/no-end-delim    missing\n"      /* no closing delimiter */
                     "/(a)/ $0\n"                      /* $0 is out of range */
                     "/(a)/ ${name}\n"                 /* non-numeric */
                     "/(a)/ ${1\n"                     /* unclosed brace */
                     "!/(a)/ neg $1\n"                 /* $n in a negative rule */
                     "bogus line\n"                    /* unrecognized request */
                     "endif\n"                         /* endif without if */
                     " continuation at start?\n"       /* continues "endif": extra text */
                     "/^ok$/ fine\n");
    DICT *d = open_file_table("pcre", "p4", 0, why);

    assert_non_null(d); /* bad rules are skipped, the table works */
    assert_true(d->warnings >= 9);
    get_is(d, "ok", "fine");
    get_is(d, "a", NULL);
    get_is(d, "x", NULL);
    dict_close(d);

    /* A broken "if" disables its block instead of exposing it. */
    write_file("p5", "if /broken(/\n"
                     "/./ inside\n"
                     "endif\n"
                     "/./ outside\n");
    d = open_file_table("pcre", "p5", 0, why);
    assert_non_null(d);
    assert_true(d->warnings >= 1);
    get_is(d, "anything", "outside");
    dict_close(d);

    /* A missing "endif": the block runs to the end of the table. */
    write_file("p6", "if /^a/\n"
                     "/./ in-a\n");
    d = open_file_table("pcre", "p6", 0, why);
    assert_non_null(d);
    assert_int_equal(d->warnings, 1);
    get_is(d, "abc", "in-a");
    get_is(d, "xyz", NULL);
    dict_close(d);

    /* Missing file, and malformed inline forms. */
    assert_null(open_file_table("pcre", "p-none", 0, why));
    assert_non_null(strstr(vstr_str(why), "No such file"));
    assert_null(dict_open("pcre:{ /a/ b }", 0, why));
    assert_null(dict_open("pcre:{ {/a/ b}", 0, why));
    assert_null(dict_open("pcre:{ }", 0, why));
    vstr_free(why);
}

static void test_pcre_match_limit(void **state)
{
    (void)state;
    char key[64];

    /* Catastrophic backtracking: the limit stops it and the lookup fails
       with a temporary error rather than spinning. */
    write_file("p7", "/^(a+)+$/ matched\n"
                     "/^b/ bee\n");
    DICT *d = open_file_table("pcre", "p7", 0, NULL);

    assert_non_null(d);
    memset(key, 'a', sizeof(key) - 2);
    key[sizeof(key) - 2] = 'b';
    key[sizeof(key) - 1] = 0;
    assert_null(dict_get(d, key));
    assert_int_equal(d->error, DICT_ERR_RETRY);
    get_is(d, "aaaa", "matched");
    get_is(d, "bb", "bee");
    dict_close(d);
}

/* ---- cidr: ---- */

static void test_cidr_lookup(void **state)
{
    (void)state;
    write_file("c1", "# client access\n"
                     "192.168.1.1          OK\n"
                     "192.168.0.0/16       REJECT\n"
                     "[10.0.0.0]/8         TEN\n"
                     "2001:db8::1          OK6\n"
                     "2001:DB8::/32        REJECT6\n"
                     "!172.16.0.0/12       NOT-172\n"
                     "0.0.0.0/0            ANY4\n");
    DICT *d = open_file_table("cidr", "c1", 0, NULL);

    assert_non_null(d);
    assert_int_equal(d->warnings, 0);
    get_is(d, "192.168.1.1", "OK"); /* first match wins */
    get_is(d, "192.168.7.7", "REJECT");
    get_is(d, "[10.1.2.3]", "TEN");
    get_is(d, "2001:db8::1", "OK6");
    get_is(d, "2001:0db8:0:0::2", "REJECT6"); /* compared as binary */
    get_is(d, "8.8.8.8", "NOT-172");
    get_is(d, "172.16.5.5", "ANY4");
    get_is(d, "2001:db9::1", NULL); /* a v4 negation never matches v6 */
    get_is(d, "not-an-address", NULL);
    get_is(d, "", NULL);
    get_is(d, "010.1.1.1", NULL); /* leading zero: not read as decimal */
    dict_close(d);
}

static void test_cidr_if_and_errors(void **state)
{
    (void)state;
    write_file("c2", "if 10.0.0.0/8\n"
                     "if !10.1.0.0/16\n"
                     "10.0.0.0/8   ten-not-1\n"
                     "endif\n"
                     "10.1.0.0/16  ten-1\n"
                     "endif\n"
                     "192.168.1.0/24 net\n"
                     "192.168.2.1/24 host-bits\n" /* skipped */
                     "192.168.3.0/33 bad-mask\n"  /* skipped */
                     "192.168.4.0/x  bad-mask\n"  /* skipped */
                     "192.168.5.300  bad-addr\n"  /* skipped */
                     "192.168.6.0/24\n"           /* no result: skipped */
                     "[1.2.3.4       unclosed\n"  /* skipped */
                     "if 1.2.3.4/99\n"            /* broken if: block never matches */
                     "0.0.0.0/0 in-broken-if\n"
                     "endif\n"
                     "endif\n" /* unbalanced: ignored */
                     "::/0 any6\n");
    DICT *d = open_file_table("cidr", "c2", 0, NULL);

    assert_non_null(d);
    assert_int_equal(d->warnings, 8);
    get_is(d, "10.2.3.4", "ten-not-1");
    get_is(d, "10.1.3.4", "ten-1");
    get_is(d, "192.168.1.9", "net");
    get_is(d, "192.168.2.1", NULL);
    get_is(d, "192.168.3.1", NULL);
    get_is(d, "9.9.9.9", NULL);
    get_is(d, "fe80::1", "any6");
    dict_close(d);
}

/* ---- inline:, static:, texthash: ---- */

static void test_inline_and_static(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(100);
    DICT *d = must_open("inline:{ Key1=value1, key2=value2,{ key3 = value with spaces } }",
                        DICT_FLAG_FOLD_FIX);
    const char *k;
    const char *v;
    int n = 0;

    get_is(d, "KEY1", "value1");
    get_is(d, "key2", "value2");
    get_is(d, "key3", "value with spaces");
    get_is(d, "key4", NULL);
    for (int how = DICT_SEQ_FIRST; dict_seq(d, how, &k, &v) == 0; how = DICT_SEQ_NEXT)
        n++;
    assert_int_equal(n, 3);
    dict_close(d);

    const char *bad[] = {
        "inline:key=value",   "inline:{ key=value",     "inline:{ key=value } x", "inline:{ }",
        "inline:{ novalue }", "inline:{ =value }",      "inline:{ key= }",        "inline:{ {a=b }",
        "inline:{ a=b } }",   "inline:{ key = value }",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vstr_reset(why);
        if (dict_open(bad[i], 0, why) != NULL)
            fail_msg("%s: opened", bad[i]);
        assert_true(vstr_len(why) > 0);
    }

    d = must_open("static:OK", 0);
    get_is(d, "anything", "OK");
    get_is(d, "", "OK");
    assert_int_equal(dict_seq(d, DICT_SEQ_FIRST, &k, &v), -1);
    dict_close(d);
    d = must_open("static:{ 550 go away }", 0);
    get_is(d, "x", "550 go away");
    dict_close(d);
    assert_null(dict_open("static:{ unbalanced", 0, why));
    assert_null(dict_open("static:{ a } b", 0, why));
    assert_null(dict_open("static:{ }", 0, why));
    vstr_free(why);
}

static void test_texthash(void **state)
{
    (void)state;
    write_file("t1", "# aliases for the test\n"
                     "Alice@Example.COM   alice@mail\n"
                     "bob  first part\n"
                     "\n"
                     "    # a comment inside does not end the entry\n"
                     "  second part\n"
                     "lonely\n"                       /* no value: warning */
                     "alice@example.com  duplicate\n" /* duplicate: first kept */
                     "\"quoted key\"  q\n");
    DICT *d = open_file_table("texthash", "t1", DICT_FLAG_FOLD_FIX, NULL);
    const char *k;
    const char *v;

    assert_non_null(d);
    assert_int_equal(d->warnings, 2);
    get_is(d, "ALICE@example.com", "alice@mail");
    get_is(d, "bob", "first part  second part");
    get_is(d, "lonely", NULL);
    get_is(d, "\"quoted key\"", "q");
    assert_int_equal(dict_seq(d, DICT_SEQ_FIRST, &k, &v), 0);
    assert_string_equal(k, "alice@example.com"); /* source order */
    dict_close(d);

    /* The first line continuing nothing is dropped with a warning. */
    write_file("t2", "  leading continuation\n"
                     "key value\n"
                     "\"unbalanced value\n");
    d = open_file_table("texthash", "t2", 0, NULL);
    assert_non_null(d);
    assert_int_equal(d->warnings, 2);
    get_is(d, "key", "value");
    dict_close(d);
}

static void test_reader_long_line(void **state)
{
    (void)state;
    size_t n = DICT_LINE_MAX + 100;
    char *big = mymalloc(n + 64);

    memcpy(big, "big ", 4);
    memset(big + 4, 'x', n - 4);
    strcpy(big + n, "\nsmall ok\n");
    write_file("t3", big);
    myfree(big);
    DICT *d = open_file_table("texthash", "t3", 0, NULL);

    assert_non_null(d);
    assert_int_equal(d->warnings, 1);
    get_is(d, "big", NULL);
    get_is(d, "small", "ok");
    dict_close(d);
}

static void test_split_and_braces(void **state)
{
    (void)state;
    char line[] = "key\\ with\\ escapes \t value  ";
    char *k;
    char *v;
    const char *why;

    assert_int_equal(dict_split_kv(line, &k, &v, &why), 0);
    assert_string_equal(k, "key\\ with\\ escapes");
    assert_string_equal(v, "value");
    char only[] = "key   ";

    assert_int_equal(dict_split_kv(only, &k, &v, &why), -1);
    char end[] = "trailing\\";

    assert_int_equal(dict_split_kv(end, &k, &v, &why), -1);

    char *s = dict_unbrace("  { a { b } c }  ", &why);

    assert_non_null(s);
    assert_string_equal(s, "a { b } c");
    myfree(s);
    assert_null(dict_unbrace("{ a", &why));
    assert_null(dict_unbrace("a }", &why));

    char body[] = "a, {b c} ,,d";
    char *cp = body;
    char *t;

    assert_string_equal((t = dict_brace_token(&cp, &why)), "a");
    assert_string_equal((t = dict_brace_token(&cp, &why)), "{b c}");
    assert_string_equal((t = dict_brace_token(&cp, &why)), "d");
    assert_null(dict_brace_token(&cp, &why));
    assert_null(why);
    char bad[] = "a }";

    cp = bad;
    assert_non_null(dict_brace_token(&cp, &why));
    assert_null(dict_brace_token(&cp, &why));
    assert_non_null(why);

    assert_true(dict_type_known("hash"));
    assert_true(dict_type_known("texthash"));
    assert_false(dict_type_known("proxy"));
}

/* ---- mail_addr_find ---- */

static int is_local_example(const char *domain, void *ctx)
{
    (void)ctx;
    return strcmp(domain, "example.com") == 0;
}

/* find_virtual - mail_addr_find on an inline table built from text */
static void find_virtual(const char *table, const char *addr, const char *want,
                         const char *want_ext)
{
    DICT *d = must_open(table, DICT_FLAG_FOLD_FIX);
    VSTR *ext = vstr_alloc(10);
    const char *got = mail_addr_find(d, addr, "+", is_local_example, NULL, ext);

    if (want == NULL) {
        if (got)
            fail_msg("%s in %s: expected nothing, got %s", addr, table, got);
    } else {
        if (got == NULL)
            fail_msg("%s in %s: expected %s, got nothing", addr, table, want);
        assert_string_equal(got, want);
        assert_string_equal(vstr_str(ext), want_ext);
    }
    vstr_free(ext);
    dict_close(d);
}

static void test_mail_addr_find_virtual(void **state)
{
    (void)state;
    const char *all = "inline:{ user+foo@example.com=A, user@example.com=B, user+foo=C, "
                      "user=D, @example.com=E, user+foo@other.net=F, @other.net=G }";

    find_virtual(all, "user+foo@example.com", "A", "");
    find_virtual(all, "USER+foo@Example.COM", "A", ""); /* case does not matter */
    find_virtual("inline:{ user@example.com=B, user+foo=C, @example.com=E }",
                 "user+foo@example.com", "B", "+foo");
    find_virtual("inline:{ user+foo=C, user=D, @example.com=E }", "user+foo@example.com", "C", "");
    find_virtual("inline:{ user=D, @example.com=E }", "user+foo@example.com", "D", "+foo");
    find_virtual("inline:{ @example.com=E }", "user+foo@example.com", "E", "");
    /* user and user+foo apply only to local domains */
    find_virtual("inline:{ user+foo=C, user=D }", "user+foo@other.net", NULL, NULL);
    find_virtual(all, "user+bar@other.net", "G", "");
    find_virtual(all, "user+foo@other.net", "F", "");
    /* no domain: local by definition */
    find_virtual("inline:{ user=D }", "user+foo", "D", "+foo");
    /* no extension splitting without a delimiter, or at position 0 */
    DICT *d = must_open("inline:{ user=D, +x@example.com=P }", DICT_FLAG_FOLD_FIX);

    assert_null(mail_addr_find(d, "user+foo@example.com", "", is_local_example, NULL, NULL));
    assert_string_equal(mail_addr_find(d, "+x@example.com", "+", is_local_example, NULL, NULL),
                        "P");
    dict_close(d);

    /* Pattern tables see only the whole address. */
    d = must_open("pcre:{ {/^user@example\\.com$/ STRIPPED}, {/^@example\\.com$/ AT} }", 0);
    assert_null(mail_addr_find(d, "user+foo@example.com", "+", is_local_example, NULL, NULL));
    assert_int_equal(d->error, DICT_ERR_NONE);
    dict_close(d);

    /* A failing table stops the search with its error. */
    d = dict_open("hash:/nonexistent/dir/table", DICT_FLAG_SURROGATE, NULL);
    assert_non_null(d);
    assert_null(mail_addr_find(d, "user@example.com", "+", is_local_example, NULL, NULL));
    assert_int_equal(d->error, DICT_ERR_RETRY);
    dict_close(d);
}

static void test_mail_addr_find_access(void **state)
{
    (void)state;
    DICT *d = must_open("inline:{ user+foo@example.com=FULL, user@example.com=STRIPPED, "
                        "example.com=DOMAIN, .parent.org=DOTPARENT, parent.org=PARENT, "
                        "user+foo@=LOCALEXT, user@=LOCAL }",
                        DICT_FLAG_FOLD_FIX);

    assert_string_equal(mail_addr_find_access(d, "user+foo@example.com", "+", 0), "FULL");
    assert_string_equal(mail_addr_find_access(d, "user+bar@example.com", "+", 0), "STRIPPED");
    assert_string_equal(mail_addr_find_access(d, "other@example.com", "+", 0), "DOMAIN");
    /* subdomain: ".parent.org" without the parent flag, "parent.org" with it */
    assert_string_equal(mail_addr_find_access(d, "x@a.b.parent.org", "+", 0), "DOTPARENT");
    assert_string_equal(mail_addr_find_access(d, "x@a.b.parent.org", "+", MAIL_ADDR_FIND_PARENT),
                        "PARENT");
    assert_null(mail_addr_find_access(d, "x@sub.example.com", "+", 0));
    assert_string_equal(mail_addr_find_access(d, "x@sub.example.com", "+", MAIL_ADDR_FIND_PARENT),
                        "DOMAIN");
    assert_string_equal(mail_addr_find_access(d, "user+foo@elsewhere.net", "+", 0), "LOCALEXT");
    assert_string_equal(mail_addr_find_access(d, "user+bar@elsewhere.net", "+", 0), "LOCAL");
    assert_string_equal(mail_addr_find_access(d, "USER@ELSEWHERE.NET", "+", 0), "LOCAL");
    assert_null(mail_addr_find_access(d, "nobody@elsewhere.net", "+", 0));
    assert_null(mail_addr_find_access(d, "x@[192.0.2.1]", "+", MAIL_ADDR_FIND_PARENT));
    assert_null(mail_addr_find_access(d, "", "+", 0));
    assert_null(mail_addr_find_access(d, "x@", "+", 0));
    dict_close(d);

    d = must_open("inline:{ example.com=DOMAIN, <>=NULLSENDER }", DICT_FLAG_FOLD_FIX);
    assert_string_equal(mail_addr_find_access(d, "<>", "+", 0), "NULLSENDER");
    assert_string_equal(mail_addr_find_domain(d, "mail.EXAMPLE.com", MAIL_ADDR_FIND_PARENT),
                        "DOMAIN");
    assert_null(mail_addr_find_domain(d, "mail.example.com", 0));
    assert_null(mail_addr_find_domain(d, ".", 0));
    assert_null(mail_addr_find_domain(d, "", 0));
    dict_close(d);

    d = must_open("inline:{ 192.0.2=NET, 10=TEN, 2001:db8=V6, 2001:db8::5=HOST6 }", 0);
    assert_string_equal(mail_addr_find_host_addr(d, "192.0.2.77"), "NET");
    assert_string_equal(mail_addr_find_host_addr(d, "10.9.8.7"), "TEN");
    assert_null(mail_addr_find_host_addr(d, "192.0.3.1"));
    assert_string_equal(mail_addr_find_host_addr(d, "2001:db8::1"), "V6");
    assert_string_equal(mail_addr_find_host_addr(d, "2001:DB8::5"), "HOST6");
    dict_close(d);

    /* cidr tables get the whole address */
    write_file("c3", "192.0.2.0/24 CIDR\n");
    d = open_file_table("cidr", "c3", 0, NULL);
    assert_non_null(d);
    assert_string_equal(mail_addr_find_host_addr(d, "192.0.2.9"), "CIDR");
    dict_close(d);
}

static void test_ext_offset(void **state)
{
    (void)state;
    assert_int_equal(mail_addr_ext_offset("user+foo", 8, "+"), 4);
    assert_int_equal(mail_addr_ext_offset("user-foo+bar", 12, "+-"), 4);
    assert_int_equal(mail_addr_ext_offset("user", 4, "+"), 4);
    assert_int_equal(mail_addr_ext_offset("+foo", 4, "+"), 4);
    assert_int_equal(mail_addr_ext_offset("owner-list", 10, "-"), 10);
    assert_int_equal(mail_addr_ext_offset("list-request", 12, "-"), 12);
    assert_int_equal(mail_addr_ext_offset("MAILER-DAEMON", 13, "-"), 13);
    assert_int_equal(mail_addr_ext_offset("owner-list", 10, "+"), 10); /* '-' no delimiter */
    assert_int_equal(mail_addr_ext_offset("a+b", 3, NULL), 3);
    assert_int_equal(mail_addr_ext_offset("", 0, "+"), 0);
}

/* ---- setup ---- */

static int remove_tree(void)
{
    DIR *dir = opendir(test_dir);
    struct dirent *de;
    char path[600];

    if (dir == NULL)
        return 0;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", test_dir, de->d_name);
        unlink(path);
    }
    closedir(dir);
    return rmdir(test_dir);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_dict.XXXXXX");
    if (mkdtemp(test_dir) == NULL)
        return -1;
    msg_init("test_dict");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return remove_tree();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_lookup),
        cmocka_unit_test(test_btree_sequence_sorted),
        cmocka_unit_test(test_db_nul_forms),
        cmocka_unit_test(test_db_duplicates),
        cmocka_unit_test(test_db_update_and_delete),
        cmocka_unit_test(test_db_reload_after_rebuild),
        cmocka_unit_test(test_registry_and_surrogate),
        cmocka_unit_test(test_pcre_basic),
        cmocka_unit_test(test_pcre_substitution_and_continuation),
        cmocka_unit_test(test_pcre_if_endif),
        cmocka_unit_test(test_pcre_broken_rules),
        cmocka_unit_test(test_pcre_match_limit),
        cmocka_unit_test(test_cidr_lookup),
        cmocka_unit_test(test_cidr_if_and_errors),
        cmocka_unit_test(test_inline_and_static),
        cmocka_unit_test(test_texthash),
        cmocka_unit_test(test_reader_long_line),
        cmocka_unit_test(test_split_and_braces),
        cmocka_unit_test(test_mail_addr_find_virtual),
        cmocka_unit_test(test_mail_addr_find_access),
        cmocka_unit_test(test_ext_offset),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
