/*
 * test_alias_parse - aliases(5) source lines and destination lists:
 * splitting, quoting, comments, classification, limits and malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/alias_parse.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* parse - alias_list_parse on a C string, fail the test on an error */
static ALIAS_LIST *parse(const char *text, int flags)
{
    VSTR *why = vstr_alloc(64);
    ALIAS_LIST *list = alias_list_parse(text, strlen(text), flags, 1000, why);

    if (list == NULL)
        fail_msg("unexpected error for [%s]: %s", text, vstr_str(why));
    vstr_free(why);
    return list;
}

/* expect - the list holds exactly these (type, value) pairs */
static void expect(const ALIAS_LIST *list, size_t n, const enum alias_dest_type *types,
                   const char *const *values)
{
    assert_int_equal(list->count, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list->dest[i].type, types[i]);
        assert_string_equal(list->dest[i].value, values[i]);
    }
}

static void test_simple_list(void **state)
{
    (void)state;
    ALIAS_LIST *l = parse("alice, bob@example.com,carol , \tdave", 0);
    enum alias_dest_type t[] = {ALIAS_DEST_ADDRESS, ALIAS_DEST_ADDRESS, ALIAS_DEST_ADDRESS,
                                ALIAS_DEST_ADDRESS};
    const char *v[] = {"alice", "bob@example.com", "carol", "dave"};

    expect(l, 4, t, v);
    alias_list_free(l);
}

static void test_classification(void **state)
{
    (void)state;
    ALIAS_LIST *l = parse("|/usr/bin/vacation joe, /var/log/mail.copy, :include:/etc/list, "
                          "\\joe, /home/joe/Maildir/, :INCLUDE: /etc/other",
                          0);
    enum alias_dest_type t[] = {ALIAS_DEST_COMMAND, ALIAS_DEST_FILE, ALIAS_DEST_INCLUDE,
                                ALIAS_DEST_MAILBOX, ALIAS_DEST_FILE, ALIAS_DEST_INCLUDE};
    const char *v[] = {"/usr/bin/vacation joe", "/var/log/mail.copy", "/etc/list", "joe",
                       "/home/joe/Maildir/",    "/etc/other"};

    expect(l, 6, t, v);
    alias_list_free(l);
}

static void test_quoting(void **state)
{
    (void)state;
    /* Commas inside quotes do not split; whole-quoted items keep their text. */
    ALIAS_LIST *l = parse("\"|/bin/prog -a, -b 'x y'\", \"/tmp/a, b\", \"john doe\"@example.com, "
                          "\"\\\\joe\"",
                          0);
    enum alias_dest_type t[] = {ALIAS_DEST_COMMAND, ALIAS_DEST_FILE, ALIAS_DEST_ADDRESS,
                                ALIAS_DEST_MAILBOX};
    const char *v[] = {"/bin/prog -a, -b 'x y'", "/tmp/a, b", "john doe@example.com", "joe"};

    expect(l, 4, t, v);
    alias_list_free(l);
}

static void test_command_keeps_shell_syntax(void **state)
{
    (void)state;
    /* Unquoted: taken as written, parentheses and quotes included. */
    ALIAS_LIST *l = parse("|sh -c \"echo $SENDER (x) <y>\" , other", 0);
    enum alias_dest_type t[] = {ALIAS_DEST_COMMAND, ALIAS_DEST_ADDRESS};
    const char *v[] = {"sh -c \"echo $SENDER (x) <y>\"", "other"};

    expect(l, 2, t, v);
    alias_list_free(l);
}

static void test_comments_and_angles(void **state)
{
    (void)state;
    ALIAS_LIST *l = parse("Joe User <joe@example.com>, bob (the builder), (lead) amy", 0);
    enum alias_dest_type t[] = {ALIAS_DEST_ADDRESS, ALIAS_DEST_ADDRESS, ALIAS_DEST_ADDRESS};
    const char *v[] = {"joe@example.com", "bob", "amy"};

    expect(l, 3, t, v);
    alias_list_free(l);
}

static void test_file_comments_and_lines(void **state)
{
    (void)state;
    /* .forward style: line ends separate, '#' lines are comments. */
    ALIAS_LIST *l = parse("# forward file\n  # indented comment\njoe\n\n|cat, /tmp/x\n#last",
                          ALIAS_PARSE_COMMENTS);
    enum alias_dest_type t[] = {ALIAS_DEST_ADDRESS, ALIAS_DEST_COMMAND, ALIAS_DEST_FILE};
    const char *v[] = {"joe", "cat", "/tmp/x"};

    expect(l, 3, t, v);
    alias_list_free(l);

    /* Without the flag '#' is data. */
    l = parse("#joe", 0);
    assert_int_equal(l->count, 1);
    assert_string_equal(l->dest[0].value, "#joe");
    alias_list_free(l);
}

static void test_empty_items(void **state)
{
    (void)state;
    ALIAS_LIST *l = parse(",, a,,b, ,\"\",", 0);
    enum alias_dest_type t[] = {ALIAS_DEST_ADDRESS, ALIAS_DEST_ADDRESS};
    const char *v[] = {"a", "b"};

    expect(l, 2, t, v);
    alias_list_free(l);
    l = parse("", 0);
    assert_int_equal(l->count, 0);
    alias_list_free(l);
    l = parse("|", 0);
    assert_int_equal(l->count, 0);
    alias_list_free(l);
}

static void test_malformed(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(64);
    ALIAS_LIST *l;

    /* Unterminated quote, comment and bracket run to the end of the item. */
    l = parse("\"open quote, still quoted", 0);
    assert_int_equal(l->count, 1);
    assert_string_equal(l->dest[0].value, "open quote, still quoted");
    alias_list_free(l);
    l = parse("a (comment, b", 0);
    assert_int_equal(l->count, 1);
    assert_string_equal(l->dest[0].value, "a");
    alias_list_free(l);
    l = parse("x <y@z, w", 0);
    assert_int_equal(l->count, 1);
    assert_string_equal(l->dest[0].value, "y@z, w");
    alias_list_free(l);
    /* A line end closes whatever was left open. */
    l = parse("\"a\nb", ALIAS_PARSE_COMMENTS);
    assert_int_equal(l->count, 2);
    alias_list_free(l);
    /* Stray closing characters are kept as data, never crash. */
    l = parse(") > \\", 0);
    assert_int_equal(l->count, 1);
    alias_list_free(l);

    /* NUL bytes are refused. */
    assert_null(alias_list_parse("a\0b", 3, 0, 10, why));
    assert_non_null(strstr(vstr_str(why), "NUL"));
    /* Too many items. */
    assert_null(alias_list_parse("a,b,c", 5, 0, 2, why));
    assert_non_null(strstr(vstr_str(why), "more than 2"));
    /* An item that is too long. */
    {
        size_t n = ALIAS_ITEM_MAX + 10;
        char *big = mymalloc(n);

        memset(big, 'x', n);
        assert_null(alias_list_parse(big, n, 0, 10, why));
        assert_non_null(strstr(vstr_str(why), "longer"));
        myfree(big);
    }
    vstr_free(why);
}

static void test_every_byte(void **state)
{
    (void)state;
    /* Every single byte and every pair of bytes from a troublesome set
       parses without error or crash (NUL excepted) and never yields an
       empty value. */
    const char set[] = "\"\\(),<>:|/ \n\t#a@";
    VSTR *why = vstr_alloc(64);
    char buf[4];

    for (size_t i = 0; i < sizeof(set) - 1; i++) {
        for (size_t j = 0; j < sizeof(set) - 1; j++) {
            for (size_t k = 0; k < sizeof(set) - 1; k++) {
                buf[0] = set[i];
                buf[1] = set[j];
                buf[2] = set[k];
                for (int flags = 0; flags < 2; flags++) {
                    ALIAS_LIST *l = alias_list_parse(buf, 3, flags, 100, why);

                    assert_non_null(l);
                    for (size_t m = 0; m < l->count; m++)
                        assert_true(l->dest[m].value[0] != 0);
                    alias_list_free(l);
                }
            }
        }
    }
    vstr_free(why);
}

static void test_parse_line(void **state)
{
    (void)state;
    char *name, *value;
    const char *why;
    char l1[] = "postmaster:  root, alice  ";
    char l2[] = "\"odd name: yes\" : x";
    char l3[] = "name with space :value";
    char l4[] = "  lead:\tv";

    assert_int_equal(alias_parse_line(l1, &name, &value, &why), 0);
    assert_string_equal(name, "postmaster");
    assert_string_equal(value, "root, alice");
    assert_int_equal(alias_parse_line(l2, &name, &value, &why), 0);
    assert_string_equal(name, "odd name: yes");
    assert_string_equal(value, "x");
    assert_int_equal(alias_parse_line(l3, &name, &value, &why), 0);
    assert_string_equal(name, "name with space");
    assert_string_equal(value, "value");
    assert_int_equal(alias_parse_line(l4, &name, &value, &why), 0);
    assert_string_equal(name, "lead");
    assert_string_equal(value, "v");
}

static void test_parse_line_malformed(void **state)
{
    (void)state;
    char *name, *value;
    const char *why;
    char l1[] = "no colon here";
    char l2[] = ": value";
    char l3[] = "name:   ";
    char l4[] = "\"unterminated: x";
    char l5[] = "\"quoted\" no colon";
    char l6[] = "";
    char *big = mymalloc(ALIAS_NAME_MAX + 10);

    assert_int_equal(alias_parse_line(l1, &name, &value, &why), -1);
    assert_string_equal(why, "need name:value pair");
    assert_int_equal(alias_parse_line(l2, &name, &value, &why), -1);
    assert_string_equal(why, "empty alias name");
    assert_int_equal(alias_parse_line(l3, &name, &value, &why), -1);
    assert_string_equal(why, "empty alias value");
    assert_int_equal(alias_parse_line(l4, &name, &value, &why), -1);
    assert_int_equal(alias_parse_line(l5, &name, &value, &why), -1);
    assert_int_equal(alias_parse_line(l6, &name, &value, &why), -1);
    memset(big, 'n', ALIAS_NAME_MAX + 2);
    strcpy(big + ALIAS_NAME_MAX + 2, ":v");
    assert_int_equal(alias_parse_line(big, &name, &value, &why), -1);
    assert_string_equal(why, "alias name too long");
    myfree(big);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(alias_dest_type_name(ALIAS_DEST_COMMAND), "command");
    assert_string_equal(alias_dest_type_name(ALIAS_DEST_INCLUDE), "include");
    assert_string_equal(alias_dest_type_name((enum alias_dest_type)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_list),
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_command_keeps_shell_syntax),
        cmocka_unit_test(test_comments_and_angles),
        cmocka_unit_test(test_file_comments_and_lines),
        cmocka_unit_test(test_empty_items),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_parse_line),
        cmocka_unit_test(test_parse_line_malformed),
        cmocka_unit_test(test_type_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
