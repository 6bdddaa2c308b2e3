/*
 * mail_version - the release and the versions of on-disk and wire formats.
 */
#ifndef POSTERN_MAIL_VERSION_H
#define POSTERN_MAIL_VERSION_H

#define MAIL_VERSION "0.1.0"
#define MAIL_NAME "Postern"

#endif
