/*
 * test_user_acl - unit tests for lib/mail/user_acl: names, negation, table
 * lookups, pattern files (nested, commented, hostile), lookup and file
 * errors that must refuse, and uid to name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/user_acl.h"
#include "util/vstr.h"

static char tdir[PATH_MAX];

static int setup(void **state)
{
    (void)state;
    snprintf(tdir, sizeof(tdir), "/tmp/test_user_acl.XXXXXX");
    return mkdtemp(tdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[PATH_MAX + 16];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* write_file - tdir/name with text; returns the path (static buffer per slot) */
static const char *write_file(const char *name, const char *text)
{
    static char paths[4][PATH_MAX + 64];
    static int slot;
    char *path = paths[slot++ % 4];
    FILE *fp;

    snprintf(path, PATH_MAX + 64, "%s/%s", tdir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* match - user_acl_match without a reason buffer */
static int match(const char *acl, const char *name)
{
    VSTR *why = vstr_alloc(10);
    int r = user_acl_match("authorized_mailq_users", acl, name, why);

    vstr_free(why);
    return r;
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(match("root, alice bob", "alice"), USER_ACL_ALLOW);
    assert_int_equal(match("root, alice bob", "bob"), USER_ACL_ALLOW);
    assert_int_equal(match("root, alice bob", "carol"), USER_ACL_DENY);
    /* Case matters for login names. */
    assert_int_equal(match("Alice", "alice"), USER_ACL_DENY);
    assert_int_equal(match("alice", "alic"), USER_ACL_DENY);
    /* An empty list allows nobody. */
    assert_int_equal(match("", "root"), USER_ACL_DENY);
    assert_int_equal(match(NULL, "root"), USER_ACL_DENY);
}

static void test_negation_and_order(void **state)
{
    (void)state;
    assert_int_equal(match("static:anyone", "mallory"), USER_ACL_ALLOW);
    assert_int_equal(match("!mallory, static:anyone", "mallory"), USER_ACL_DENY);
    assert_int_equal(match("!mallory, static:anyone", "alice"), USER_ACL_ALLOW);
    /* The first match decides. */
    assert_int_equal(match("mallory, !mallory", "mallory"), USER_ACL_ALLOW);
    assert_int_equal(match("!!mallory", "mallory"), USER_ACL_ALLOW);
    assert_int_equal(match("!static:anyone, alice", "alice"), USER_ACL_DENY);
}

static void test_tables(void **state)
{
    VSTR *why = vstr_alloc(10);

    (void)state;
    assert_int_equal(match("inline:{ alice=yes, bob=yes }", "bob"), USER_ACL_ALLOW);
    assert_int_equal(match("inline:{ alice=yes, bob=yes }", "carol"), USER_ACL_DENY);
    assert_int_equal(match("!inline:{ bob=x }, static:anyone", "bob"), USER_ACL_DENY);
    /* A table that cannot be opened refuses, with the reason. */
    assert_int_equal(user_acl_match("authorized_mailq_users", "nosuchtype:foo", "root", why),
                     USER_ACL_ERROR);
    assert_non_null(strstr(vstr_str(why), "authorized_mailq_users"));
    assert_int_equal(
        user_acl_match("authorized_mailq_users", "hash:/nonexistent/users", "root", why),
        USER_ACL_ERROR);
    vstr_free(why);
}

static void test_files(void **state)
{
    char acl[PATH_MAX * 2];
    VSTR *why = vstr_alloc(10);

    (void)state;
    const char *inner = write_file("inner", "# staff\n  dave\n\nerin, !frank\n");
    char text[PATH_MAX * 2];

    snprintf(text, sizeof(text), "alice\n%s\n# bob is not here\n", inner);
    const char *outer = write_file("outer", text);

    assert_int_equal(match(outer, "alice"), USER_ACL_ALLOW);
    assert_int_equal(match(outer, "dave"), USER_ACL_ALLOW);
    assert_int_equal(match(outer, "erin"), USER_ACL_ALLOW);
    assert_int_equal(match(outer, "bob"), USER_ACL_DENY);
    snprintf(acl, sizeof(acl), "%s, static:anyone", outer);
    assert_int_equal(match(acl, "frank"), USER_ACL_DENY);
    assert_int_equal(match(acl, "grace"), USER_ACL_ALLOW);
    /* "!/file": every pattern of the file denies. */
    snprintf(acl, sizeof(acl), "!%s, static:anyone", inner);
    assert_int_equal(match(acl, "dave"), USER_ACL_DENY);
    assert_int_equal(match(acl, "frank"), USER_ACL_ALLOW);
    /* A file naming itself ends at the depth limit, as an error. */
    char self[PATH_MAX + 64];

    snprintf(self, sizeof(self), "%s/self", tdir);
    snprintf(text, sizeof(text), "%s\n", self);
    write_file("self", text);
    assert_int_equal(user_acl_match("p", self, "x", why), USER_ACL_ERROR);
    assert_non_null(strstr(vstr_str(why), "nested"));
    /* A missing file, a file with a null byte, "!" alone: errors. */
    snprintf(acl, sizeof(acl), "%s/missing", tdir);
    assert_int_equal(user_acl_match("p", acl, "x", why), USER_ACL_ERROR);
    assert_non_null(strstr(vstr_str(why), "No such file"));
    FILE *fp = fopen(write_file("nul", ""), "w");

    fwrite("a\0b\n", 1, 4, fp);
    fclose(fp);
    snprintf(acl, sizeof(acl), "%s/nul", tdir);
    assert_int_equal(user_acl_match("p", acl, "a", why), USER_ACL_ERROR);
    assert_int_equal(user_acl_match("p", "alice, !", "bob", why), USER_ACL_ERROR);
    vstr_free(why);
}

static void test_uid_names(void **state)
{
    VSTR *name = vstr_alloc(10), *why = vstr_alloc(10);

    (void)state;
    user_acl_name(0, name);
    assert_string_equal(vstr_str(name), "root");
    user_acl_name((uid_t)4000000000U, name);
    assert_string_equal(vstr_str(name), USER_ACL_NAME_UNKNOWN);
    assert_int_equal(user_acl_check("p", "root", 0, name, why), USER_ACL_ALLOW);
    assert_int_equal(user_acl_check("p", "alice", 0, name, why), USER_ACL_DENY);
    assert_string_equal(vstr_str(name), "root");
    assert_int_equal(user_acl_check("p", "unknown", (uid_t)4000000000U, NULL, why), USER_ACL_ALLOW);
    vstr_free(name);
    vstr_free(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),     cmocka_unit_test(test_negation_and_order),
        cmocka_unit_test(test_tables),    cmocka_unit_test(test_files),
        cmocka_unit_test(test_uid_names),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
