/*
 * user_acl - user name lists that say who may use a command:
 * authorized_mailq_users, authorized_flush_users, authorized_submit_users.
 *
 * PATTERNS (separated by commas or white space; the first that matches decides)
 *   name          the login name of the user, compared exactly (case matters,
 *                 as it does for Unix user names)
 *   !pattern      when pattern matches, the answer is "not allowed"
 *   type:table    a lookup of the login name that finds any value is a match
 *                 ("static:anyone" matches everybody)
 *   /file/name    the patterns in that file, separated by commas or white
 *                 space; '#' starts a comment line; files may name files, at
 *                 most USER_ACL_DEPTH deep
 *   A list that ends without a match does not allow the user, so an empty
 *   list allows nobody. A uid with no passwd entry has the name "unknown".
 *
 * RESULTS
 *   user_acl_check returns USER_ACL_ALLOW, USER_ACL_DENY, or USER_ACL_ERROR
 *   when a table could not be opened or a lookup failed: the caller must
 *   then refuse (a broken table must not open the door), saying why.
 *
 * OWNERSHIP
 *   Tables are opened through dict_open (shared) and closed before the
 *   function returns; name and why are the caller's buffers.
 */
#ifndef POSTERN_USER_ACL_H
#define POSTERN_USER_ACL_H

#include <sys/types.h>

#include "util/vstr.h"

#define USER_ACL_ALLOW 0
#define USER_ACL_DENY 1
#define USER_ACL_ERROR (-1)

#define USER_ACL_DEPTH 10               /* /file/name nesting */
#define USER_ACL_FILE_MAX (1 << 20)     /* largest pattern file read */
#define USER_ACL_NAME_UNKNOWN "unknown" /* a uid without a passwd entry */

/* user_acl_name - the login name of uid into name ("unknown" when there is none) */
void user_acl_name(uid_t uid, VSTR *name);

/* user_acl_match - does the list acl (the parameter's expanded value; param
   names it in messages) allow the user called name; USER_ACL_* with the
   reason in why (may be NULL) for USER_ACL_ERROR */
int user_acl_match(const char *param, const char *acl, const char *name, VSTR *why);

/* user_acl_check - user_acl_match for uid; the user's name goes into name
   (may be NULL) for messages such as "User NAME(UID) is not allowed ..." */
int user_acl_check(const char *param, const char *acl, uid_t uid, VSTR *name, VSTR *why);

#endif
