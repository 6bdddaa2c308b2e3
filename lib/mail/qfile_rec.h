/*
 * qfile_rec - internals of the queue file format shared by its writer and
 * reader: integer encoding, field checks, and a buffered record reader.
 * Only lib/mail/qfile_*.c include this; everyone else uses qfile.h.
 */
#ifndef POSTERN_QFILE_REC_H
#define POSTERN_QFILE_REC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mail/qfile.h"

/* Big-endian integers. */
void qfile_put16(unsigned char *p, uint16_t v);
void qfile_put32(unsigned char *p, uint32_t v);
void qfile_put64(unsigned char *p, uint64_t v);
uint16_t qfile_get16(const unsigned char *p);
uint32_t qfile_get32(const unsigned char *p);
uint64_t qfile_get64(const unsigned char *p);

/* qfile_type_known - a version-1 type */
int qfile_type_known(int type);

/* qfile_type_ancillary - a type readers skip when they do not know it */
int qfile_type_ancillary(int type);

/* qfile_type_max_len - the largest payload the type may have (known types) */
size_t qfile_type_max_len(int type);

/* qfile_addr_ok - address text: no NUL, no control characters, len <= max */
int qfile_addr_ok(const char *s, size_t len, size_t max);

/* qfile_text_ok - one-line text: no NUL, CR or LF, len <= max */
int qfile_text_ok(const char *s, size_t len, size_t max);

/* qfile_attr_name_ok - 1..QFILE_ATTR_NAME_MAX of [A-Za-z0-9_.-] */
int qfile_attr_name_ok(const char *s, size_t len);

/* qfile_notify_ok - a valid NOTIFY combination */
int qfile_notify_ok(int notify);

/* qfile_status_ok - a valid recipient status byte */
int qfile_status_ok(int status);

/* Buffered sequential reader over a file descriptor (pread-based, so the
   descriptor's own offset is never used). */
typedef struct QFILE_RD {
    int fd;
    off_t buf_off;      /* file offset of buf[0] */
    size_t len;         /* valid bytes in buf */
    size_t pos;         /* next unread byte */
    unsigned char *buf; /* QFILE_RD_BUFSIZE bytes */
} QFILE_RD;

#define QFILE_RD_BUFSIZE (2 * (QFILE_REC_MAX + QFILE_REC_HEADER_LEN))

/* Results of the reader functions. */
#define QFILE_RD_OK 0
#define QFILE_RD_EOF 1   /* clean end of file at a record boundary */
#define QFILE_RD_TRUNC 2 /* end of file inside a record */
#define QFILE_RD_ERR 3   /* read error; errno */

void qfile_rd_init(QFILE_RD *rd, int fd, off_t offset);
void qfile_rd_free(QFILE_RD *rd);
/* qfile_rd_tell - file offset of the next unread byte */
off_t qfile_rd_tell(const QFILE_RD *rd);
/* qfile_rd_seek - continue reading at offset */
void qfile_rd_seek(QFILE_RD *rd, off_t offset);
/* qfile_rd_head - next record's type and length; *rec_off is where it starts */
int qfile_rd_head(QFILE_RD *rd, int *type, size_t *len, off_t *rec_off);
/* qfile_rd_body - the payload (len <= QFILE_REC_MAX); valid until the next call */
int qfile_rd_body(QFILE_RD *rd, size_t len, const unsigned char **payload);

#endif
