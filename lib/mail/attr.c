/*
 * attr - encoding and decoding of attribute messages in memory.
 *
 * This is the one place that knows the wire format described in attr.h and
 * docs/ipc.md. attr_frame finds message boundaries and enforces every limit
 * while the bytes arrive; attr_decode and attr_msg_decode then read a whole,
 * already framed message; attr_encode writes one. The blocking streams
 * (attr_stream.c) and the client and server helpers are built on these.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "mail/attr.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

_Static_assert(sizeof(long long) == ATTR_NUM_SIZE, "long long must be 64 bits");

const ATTR_LIMITS attr_limits_default = {
    .name_max = ATTR_NAME_MAX,
    .value_max = ATTR_VALUE_MAX,
    .msg_max = ATTR_MSG_MAX,
    .count_max = ATTR_COUNT_MAX,
};

/* One record of a message that attr_frame has accepted. */
typedef struct ATTR_REC {
    int type;
    const char *name;
    size_t name_len;
    const unsigned char *value;
    size_t value_len;
} ATTR_REC;

/* attr_fail - set why and errno; returns -1 */
static int MSG_FMT(3, 4) attr_fail(VSTR *why, int err, const char *fmt, ...)
{
    if (why) {
        va_list ap;

        vstr_reset(why);
        va_start(ap, fmt);
        vstr_vsprintf_append(why, fmt, ap);
        va_end(ap);
    }
    errno = err;
    return -1;
}

/* attr_type_name - for error messages */
static const char *attr_type_name(int type)
{
    switch (type) {
    case ATTR_TYPE_STR: return "string";
    case ATTR_TYPE_INT: return "signed number";
    case ATTR_TYPE_UINT: return "unsigned number";
    case ATTR_TYPE_BIN: return "binary";
    default: return "unknown";
    }
}

/* attr_name_char - may this byte appear in a name */
static int attr_name_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

/* attr_name_ok - length within name_max and only name characters */
static int attr_name_ok(const char *name, size_t len, size_t name_max)
{
    if (len == 0 || len > name_max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!attr_name_char((unsigned char)name[i]))
            return 0;
    return 1;
}

/* attr_get_be32 - unsigned 32-bit big-endian */
static uint32_t attr_get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* attr_get_be64 - unsigned 64-bit big-endian */
static uint64_t attr_get_be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* attr_put_be - big-endian bytes of v into p */
static void attr_put_be(unsigned char *p, uint64_t v, int size)
{
    for (int i = size - 1; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

/* attr_limits_valid - within the ceilings and consistent */
int attr_limits_valid(const ATTR_LIMITS *lim)
{
    if (lim->name_max < 1 || lim->name_max > ATTR_NAME_HARD_MAX || lim->msg_max < 1 ||
        lim->msg_max > ATTR_MSG_HARD_MAX || lim->value_max > lim->msg_max ||
        lim->count_max > ATTR_COUNT_HARD_MAX) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* attr_limits - the caller's limits or the defaults; nonsense is a bug */
static const ATTR_LIMITS *attr_limits(const ATTR_LIMITS *lim)
{
    if (lim == NULL)
        return &attr_limits_default;
    if (attr_limits_valid(lim) < 0)
        msg_panic("attr: invalid limits name=%zu value=%zu msg=%zu count=%zu", lim->name_max,
                  lim->value_max, lim->msg_max, lim->count_max);
    return lim;
}

/* attr_list_collect - specs from *ap up to ATTR_END */
size_t attr_list_collect(va_list *ap, const ATTR_SPEC **list)
{
    const ATTR_SPEC *spec;
    size_t n = 0;

    while ((spec = va_arg(*ap, const ATTR_SPEC *)) != ATTR_END) {
        if (n >= ATTR_LIST_MAX)
            msg_panic("attr: more than %d attributes in one argument list", ATTR_LIST_MAX);
        list[n++] = spec;
    }
    list[n] = NULL;
    return n;
}

/* attr_check_list - panic on specs of the wrong direction, or repeated names */
static void attr_check_list(const ATTR_SPEC *const *list, int reader)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        const ATTR_SPEC *spec = list[i];

        if (i >= ATTR_LIST_MAX)
            msg_panic("attr: more than %d attributes in one argument list", ATTR_LIST_MAX);
        int is_reader = spec->mode == ATTR_MODE_GET || spec->mode == ATTR_MODE_OPT;

        if (spec->name == NULL)
            msg_panic("attr: attribute without a name");
        if (spec->type < ATTR_TYPE_STR || spec->type > ATTR_TYPE_BIN)
            msg_panic("attr: attribute \"%s\": bad type %d", spec->name, spec->type);
        if (is_reader != reader || (!reader && spec->mode != ATTR_MODE_PUT))
            msg_panic("attr: attribute \"%s\": %s element given to a %s", spec->name,
                      reader ? "writer" : "reader", reader ? "reader" : "writer");
        if (reader) {
            if (spec->type == ATTR_TYPE_STR || spec->type == ATTR_TYPE_BIN) {
                if (spec->u.vstr_out == NULL)
                    msg_panic("attr: attribute \"%s\": no output buffer", spec->name);
            } else if (spec->u.num_out == NULL) {
                msg_panic("attr: attribute \"%s\": no output number", spec->name);
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(list[j]->name, spec->name) == 0)
                    msg_panic("attr: attribute \"%s\" requested twice", spec->name);
        } else if (spec->type == ATTR_TYPE_STR && spec->u.str == NULL) {
            msg_panic("attr: attribute \"%s\": null string", spec->name);
        } else if (spec->type == ATTR_TYPE_BIN && spec->u.bin.ptr == NULL && spec->u.bin.len > 0) {
            msg_panic("attr: attribute \"%s\": null binary value", spec->name);
        }
    }
}

/*
 * Encoding.
 */

/* attr_encode_cont - append the specs' records (and the end marker) to out */
int attr_encode_cont(VSTR *out, const ATTR_LIMITS *lim, int flags, VSTR *why,
                     const ATTR_SPEC *const *list, size_t prior_len, size_t prior_count)
{
    size_t start = vstr_len(out);
    size_t count = prior_count;

    lim = attr_limits(lim);
    if (prior_len >= lim->msg_max || prior_count > lim->count_max)
        msg_panic("attr_encode: earlier parts (%zu bytes, %zu attributes) past the limits",
                  prior_len, prior_count);
    if (flags & ~ATTR_FLAG_MORE)
        msg_panic("attr_encode: bad flags 0x%x", (unsigned)flags);
    attr_check_list(list, 0);

    for (; *list != NULL; list++) {
        const ATTR_SPEC *spec = *list;
        size_t name_len = strlen(spec->name);
        const void *value;
        size_t value_len;
        unsigned char num[ATTR_NUM_SIZE];
        unsigned char head[ATTR_HEADER_SIZE];

        if (!attr_name_ok(spec->name, name_len, lim->name_max)) {
            attr_fail(why, EINVAL, "bad attribute name (length %zu, limit %zu)", name_len,
                      lim->name_max);
            goto fail;
        }
        switch (spec->type) {
        case ATTR_TYPE_STR:
            value = spec->u.str;
            value_len = strlen(spec->u.str);
            break;
        case ATTR_TYPE_BIN:
            value = spec->u.bin.ptr;
            value_len = spec->u.bin.len;
            break;
        case ATTR_TYPE_INT:
            attr_put_be(num, (uint64_t)spec->u.num, ATTR_NUM_SIZE);
            value = num;
            value_len = sizeof(num);
            break;
        default: /* ATTR_TYPE_UINT, checked by attr_check_list */
            attr_put_be(num, (uint64_t)spec->u.unum, ATTR_NUM_SIZE);
            value = num;
            value_len = sizeof(num);
            break;
        }
        if (value_len > lim->value_max) {
            attr_fail(why, EMSGSIZE, "attribute \"%s\": value length %zu exceeds limit %zu",
                      spec->name, value_len, lim->value_max);
            goto fail;
        }
        if (++count > lim->count_max) {
            attr_fail(why, EMSGSIZE, "more than %zu attributes in one message", lim->count_max);
            goto fail;
        }
        /* The record and the end marker must fit (the bytes so far leave room
           for at least the end marker, so the subtraction cannot wrap). */
        size_t rec_len = ATTR_HEADER_SIZE + name_len + value_len;

        if (rec_len + 1 > lim->msg_max - prior_len - (vstr_len(out) - start)) {
            attr_fail(why, EMSGSIZE, "attribute \"%s\": message exceeds %zu bytes", spec->name,
                      lim->msg_max);
            goto fail;
        }
        head[0] = spec->type;
        head[1] = (unsigned char)name_len;
        if (vstr_ncat(out, head, 2) < 0 || vstr_ncat(out, spec->name, name_len) < 0)
            goto out_full;
        attr_put_be(head, value_len, ATTR_VALUE_LEN_SIZE);
        if (vstr_ncat(out, head, ATTR_VALUE_LEN_SIZE) < 0)
            goto out_full;
        /* An empty binary value may come as a null pointer: no memcpy from it. */
        if (value_len > 0 && vstr_ncat(out, value, value_len) < 0)
            goto out_full;
    }
    if (!(flags & ATTR_FLAG_MORE) && vstr_addch(out, ATTR_TYPE_END) < 0)
        goto out_full;
    return 0;

out_full:
    attr_fail(why, EMSGSIZE, "message exceeds the output buffer limit");
fail:;
    int saved = errno;

    vstr_truncate(out, start);
    errno = saved;
    return -1;
}

/* attr_encode_list - a whole message, or its first part */
int attr_encode_list(VSTR *out, const ATTR_LIMITS *lim, int flags, VSTR *why,
                     const ATTR_SPEC *const *list)
{
    return attr_encode_cont(out, lim, flags, why, list, 0, 0);
}

/* attr_encode - attr_encode_list with a varargs list */
int attr_encode(VSTR *out, const ATTR_LIMITS *lim, int flags, VSTR *why, ...)
{
    const ATTR_SPEC *list[ATTR_LIST_MAX + 1];
    va_list ap;

    va_start(ap, why);
    attr_list_collect(&ap, list);
    va_end(ap);
    return attr_encode_list(out, lim, flags, why, list);
}

/*
 * Framing: everything about a message that can be checked from its length
 * fields, checked as early as the bytes allow. The message size check for
 * each record includes the end marker still to come, so a stream that
 * reports ATTR_MORE always has buffered less than msg_max bytes.
 */

/* attr_frame_have - 1 when need bytes at pos have arrived, ATTR_MORE when
   they may still come, -1 when they would pass msg_max */
static int attr_frame_have(size_t pos, size_t need, size_t len, const ATTR_LIMITS *lim, VSTR *why)
{
    if (need > lim->msg_max - pos)
        return attr_fail(why, EMSGSIZE, "message exceeds %zu bytes", lim->msg_max);
    return len - pos >= need ? 1 : ATTR_MORE;
}

int attr_frame(ATTR_FRAME *fr, const char *buf, size_t len, const ATTR_LIMITS *lim, size_t *msg_len,
               VSTR *why)
{
    const unsigned char *p = (const unsigned char *)buf;

    lim = attr_limits(lim);
    if (fr->pos > len || fr->pos >= lim->msg_max)
        msg_panic("attr_frame: progress %zu past the buffer (%zu bytes)", fr->pos, len);

    for (;;) {
        size_t pos = fr->pos;
        size_t name_len, head_len, value_len;
        const char *name;
        int type, r;

        /* Type byte: the end marker, or the start of a record. */
        if ((r = attr_frame_have(pos, 1, len, lim, why)) != 1)
            return r;
        type = p[pos];
        if (type == ATTR_TYPE_END) {
            *msg_len = pos + 1;
            return 0;
        }
        if (type < ATTR_TYPE_STR || type > ATTR_TYPE_BIN)
            return attr_fail(why, EPROTO, "unknown attribute type 0x%02x at offset %zu", type, pos);
        if (fr->count >= lim->count_max)
            return attr_fail(why, EMSGSIZE, "more than %zu attributes in one message",
                             lim->count_max);

        /* Name length, then the name and the value length together. */
        if ((r = attr_frame_have(pos, 2, len, lim, why)) != 1)
            return r;
        name_len = p[pos + 1];
        if (name_len == 0)
            return attr_fail(why, EPROTO, "empty attribute name at offset %zu", pos);
        if (name_len > lim->name_max)
            return attr_fail(why, EMSGSIZE,
                             "attribute name length %zu at offset %zu exceeds limit %zu", name_len,
                             pos, lim->name_max);
        head_len = ATTR_HEADER_SIZE + name_len;
        if ((r = attr_frame_have(pos, head_len, len, lim, why)) != 1)
            return r;
        name = buf + pos + 2;
        if (!attr_name_ok(name, name_len, lim->name_max))
            return attr_fail(why, EPROTO, "bad character in attribute name at offset %zu", pos);
        value_len = attr_get_be32(p + pos + 2 + name_len);

        /* From here on the name is known to be safe to print. */
        if (type == ATTR_TYPE_INT || type == ATTR_TYPE_UINT) {
            if (value_len != ATTR_NUM_SIZE)
                return attr_fail(why, EPROTO, "attribute \"%.*s\": number of %zu bytes, not %d",
                                 (int)name_len, name, value_len, ATTR_NUM_SIZE);
        } else if (value_len > lim->value_max) {
            return attr_fail(why, EMSGSIZE,
                             "attribute \"%.*s\": value length %zu exceeds limit %zu",
                             (int)name_len, name, value_len, lim->value_max);
        }

        /* The record and the end marker still to come must fit in msg_max;
           say so before waiting for a value that could never be accepted. */
        if ((r = attr_frame_have(pos, head_len + value_len + 1, len, lim, why)) < 0)
            return r;
        if ((r = attr_frame_have(pos, head_len + value_len, len, lim, why)) != 1)
            return r;
        fr->pos = pos + head_len + value_len;
        fr->count++;
    }
}

/* attr_rec_next - the record at *pos of a framed message; 0 at the end marker */
static int attr_rec_next(const char *buf, size_t *pos, ATTR_REC *rec)
{
    const unsigned char *p = (const unsigned char *)buf + *pos;

    if (p[0] == ATTR_TYPE_END)
        return 0;
    rec->type = p[0];
    rec->name_len = p[1];
    rec->name = (const char *)p + 2;
    rec->value_len = attr_get_be32(p + 2 + rec->name_len);
    rec->value = p + ATTR_HEADER_SIZE + rec->name_len;
    *pos += ATTR_HEADER_SIZE + rec->name_len + rec->value_len;
    return 1;
}

/* attr_rec_check - content rules for a record: strings without NUL, and
   without control characters under ATTR_FLAG_PRINTABLE */
static int attr_rec_check(const ATTR_REC *rec, int flags, VSTR *why)
{
    if (rec->type != ATTR_TYPE_STR)
        return 0;
    if (memchr(rec->value, 0, rec->value_len) != NULL)
        return attr_fail(why, EPROTO, "attribute \"%.*s\": NUL byte in string value",
                         (int)rec->name_len, rec->name);
    if (flags & ATTR_FLAG_PRINTABLE) {
        for (size_t i = 0; i < rec->value_len; i++)
            if (rec->value[i] < 0x20 || rec->value[i] == 0x7f)
                return attr_fail(why, EBADMSG,
                                 "attribute \"%.*s\": control character 0x%02x in string value",
                                 (int)rec->name_len, rec->name, rec->value[i]);
    }
    return 0;
}

/* attr_rec_num - the record's number as a signed value; -1 ERANGE */
static int attr_rec_num(const ATTR_REC *rec, long long *out, VSTR *why)
{
    uint64_t v = attr_get_be64(rec->value);

    if (rec->type == ATTR_TYPE_UINT && v > (uint64_t)LLONG_MAX)
        return attr_fail(why, ERANGE, "attribute \"%.*s\": %llu does not fit a signed number",
                         (int)rec->name_len, rec->name, (unsigned long long)v);
    /* Two's complement without implementation-defined conversion. */
    *out = v > (uint64_t)LLONG_MAX ? -(long long)(~v) - 1 : (long long)v;
    return 0;
}

/* attr_rec_unum - the record's number as an unsigned value; -1 ERANGE */
static int attr_rec_unum(const ATTR_REC *rec, unsigned long long *out, VSTR *why)
{
    uint64_t v = attr_get_be64(rec->value);

    if (rec->type == ATTR_TYPE_INT && v > (uint64_t)LLONG_MAX)
        return attr_fail(why, ERANGE, "attribute \"%.*s\": negative value for an unsigned number",
                         (int)rec->name_len, rec->name);
    *out = v;
    return 0;
}

/* attr_type_fits - may a record of type have into a spec of type want */
static int attr_type_fits(int have, int want)
{
    if (want == ATTR_TYPE_INT || want == ATTR_TYPE_UINT)
        return have == ATTR_TYPE_INT || have == ATTR_TYPE_UINT;
    return have == want;
}

/* attr_store - one record into its spec's output */
static int attr_store(const ATTR_REC *rec, const ATTR_SPEC *spec, VSTR *why)
{
    switch (spec->type) {
    case ATTR_TYPE_STR:
    case ATTR_TYPE_BIN:
        if (vstr_ncpy(spec->u.vstr_out, rec->value, rec->value_len) < 0)
            return attr_fail(why, EMSGSIZE,
                             "attribute \"%s\": %zu bytes exceed the receiving buffer's limit",
                             spec->name, rec->value_len);
        return 0;
    case ATTR_TYPE_INT: return attr_rec_num(rec, spec->u.num_out, why);
    default: return attr_rec_unum(rec, spec->u.unum_out, why);
    }
}

/* attr_decode_framed - match the records of a framed message against list */
static int attr_decode_framed(const char *buf, int flags, VSTR *why, const ATTR_SPEC *const *list,
                              size_t nspec)
{
    unsigned char seen[ATTR_LIST_MAX] = {0};
    size_t pos = 0;
    int stored = 0;
    ATTR_REC rec;

    while (attr_rec_next(buf, &pos, &rec)) {
        size_t i;

        if (attr_rec_check(&rec, flags, why) < 0)
            return -1;
        for (i = 0; i < nspec; i++)
            if (strlen(list[i]->name) == rec.name_len &&
                memcmp(list[i]->name, rec.name, rec.name_len) == 0)
                break;
        if (i == nspec) {
            if (flags & ATTR_FLAG_EXTRA)
                return attr_fail(why, EBADMSG, "unexpected attribute \"%.*s\"", (int)rec.name_len,
                                 rec.name);
            continue;
        }
        if (seen[i])
            return attr_fail(why, EBADMSG, "attribute \"%s\" repeated", list[i]->name);
        seen[i] = 1;
        if (!attr_type_fits(rec.type, list[i]->type))
            return attr_fail(why, EBADMSG, "attribute \"%s\": expected %s, received %s",
                             list[i]->name, attr_type_name(list[i]->type),
                             attr_type_name(rec.type));
        if (attr_store(&rec, list[i], why) < 0)
            return -1;
        stored++;
    }
    for (size_t i = 0; i < nspec; i++)
        if (!seen[i] && list[i]->mode == ATTR_MODE_GET)
            return attr_fail(why, EBADMSG, "missing attribute \"%s\"", list[i]->name);
    return stored;
}

/* attr_decode_list - frame, then decode, the message at the start of buf */
int attr_decode_list(const char *buf, size_t len, size_t *used, const ATTR_LIMITS *lim, int flags,
                     VSTR *why, const ATTR_SPEC *const *list)
{
    ATTR_FRAME fr = ATTR_FRAME_INIT;
    size_t msg_len;
    size_t nspec;
    int r;

    if (flags & ~ATTR_FLAG_STRICT)
        msg_panic("attr_decode: bad flags 0x%x", (unsigned)flags);
    attr_check_list(list, 1);
    for (nspec = 0; list[nspec] != NULL; nspec++)
        /* count */;
    *used = 0;
    if ((r = attr_frame(&fr, buf, len, lim, &msg_len, why)) != 0)
        return r;
    *used = msg_len;
    return attr_decode_framed(buf, flags, why, list, nspec);
}

/* attr_decode - attr_decode_list with a varargs list */
int attr_decode(const char *buf, size_t len, size_t *used, const ATTR_LIMITS *lim, int flags,
                VSTR *why, ...)
{
    const ATTR_SPEC *list[ATTR_LIST_MAX + 1];
    va_list ap;

    va_start(ap, why);
    attr_list_collect(&ap, list);
    va_end(ap);
    return attr_decode_list(buf, len, used, lim, flags, why, list);
}

/*
 * Whole messages.
 */

/* attr_msg_decode - frame the message, then copy it into one arena */
int attr_msg_decode(const char *buf, size_t len, size_t *used, const ATTR_LIMITS *lim, int flags,
                    ATTR_MSG **msgp, VSTR *why)
{
    ATTR_FRAME fr = ATTR_FRAME_INIT;
    ATTR_MSG *msg;
    ATTR_REC rec;
    size_t msg_len, pos = 0;
    char *cp;
    int r;

    if (flags & ~ATTR_FLAG_PRINTABLE)
        msg_panic("attr_msg_decode: bad flags 0x%x", (unsigned)flags);
    *used = 0;
    *msgp = NULL;
    if ((r = attr_frame(&fr, buf, len, lim, &msg_len, why)) != 0)
        return r;
    *used = msg_len;
    while (attr_rec_next(buf, &pos, &rec))
        if (attr_rec_check(&rec, flags, why) < 0)
            return -1;

    /*
     * Each record of n name and v value bytes takes n + v + 2 arena bytes
     * (two NULs) but at least n + v + 6 message bytes, so the arena is
     * smaller than the message: the limits bound the allocation.
     */
    msg = mymalloc(sizeof(*msg));
    msg->count = fr.count;
    msg->val = mycalloc(fr.count ? fr.count : 1, sizeof(ATTR_VAL));
    msg->arena = cp = mymalloc(msg_len);
    pos = 0;
    for (size_t i = 0; attr_rec_next(buf, &pos, &rec); i++) {
        ATTR_VAL *val = msg->val + i;

        memcpy(cp, rec.name, rec.name_len);
        cp[rec.name_len] = 0;
        val->name = cp;
        cp += rec.name_len + 1;
        val->type = rec.type;
        if (rec.type == ATTR_TYPE_STR || rec.type == ATTR_TYPE_BIN) {
            memcpy(cp, rec.value, rec.value_len);
            cp[rec.value_len] = 0;
            val->data = cp;
            val->len = rec.value_len;
            cp += rec.value_len + 1;
        } else if (rec.type == ATTR_TYPE_INT) {
            uint64_t v = attr_get_be64(rec.value);

            val->num = v > (uint64_t)LLONG_MAX ? -(long long)(~v) - 1 : (long long)v;
        } else {
            val->unum = attr_get_be64(rec.value);
        }
    }
    *msgp = msg;
    return 0;
}

/* attr_msg_free - release the message */
void attr_msg_free(ATTR_MSG *msg)
{
    if (msg) {
        myfree(msg->arena);
        myfree(msg->val);
        myfree(msg);
    }
}

/* attr_msg_next - iterate over the values named name */
const ATTR_VAL *attr_msg_next(const ATTR_MSG *msg, const char *name, size_t *pos)
{
    for (; *pos < msg->count; (*pos)++)
        if (strcmp(msg->val[*pos].name, name) == 0)
            return msg->val + (*pos)++;
    return NULL;
}

/* attr_msg_one - the only value named name, of a type fitting want */
static const ATTR_VAL *attr_msg_one(const ATTR_MSG *msg, const char *name, int want)
{
    size_t pos = 0;
    const ATTR_VAL *val = attr_msg_next(msg, name, &pos);

    if (val == NULL) {
        errno = ENOENT;
        return NULL;
    }
    if (attr_msg_next(msg, name, &pos) != NULL || !attr_type_fits(val->type, want)) {
        errno = EBADMSG;
        return NULL;
    }
    return val;
}

const char *attr_msg_get_str(const ATTR_MSG *msg, const char *name)
{
    const ATTR_VAL *val = attr_msg_one(msg, name, ATTR_TYPE_STR);

    return val ? val->data : NULL;
}

const char *attr_msg_get_bin(const ATTR_MSG *msg, const char *name, size_t *len)
{
    const ATTR_VAL *val = attr_msg_one(msg, name, ATTR_TYPE_BIN);

    if (val == NULL)
        return NULL;
    *len = val->len;
    return val->data;
}

int attr_msg_get_num(const ATTR_MSG *msg, const char *name, long long *out)
{
    const ATTR_VAL *val = attr_msg_one(msg, name, ATTR_TYPE_INT);

    if (val == NULL)
        return -1;
    if (val->type == ATTR_TYPE_UINT) {
        if (val->unum > (unsigned long long)LLONG_MAX) {
            errno = ERANGE;
            return -1;
        }
        *out = (long long)val->unum;
    } else {
        *out = val->num;
    }
    return 0;
}

int attr_msg_get_unum(const ATTR_MSG *msg, const char *name, unsigned long long *out)
{
    const ATTR_VAL *val = attr_msg_one(msg, name, ATTR_TYPE_UINT);

    if (val == NULL)
        return -1;
    if (val->type == ATTR_TYPE_INT) {
        if (val->num < 0) {
            errno = ERANGE;
            return -1;
        }
        *out = (unsigned long long)val->num;
    } else {
        *out = val->unum;
    }
    return 0;
}
