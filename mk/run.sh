#!/bin/sh
# run.sh - start a private Postern instance from ./run in the foreground.
#
# usage: run.sh BUILD_DIR
#
# Creates ./run/etc (main.cf, master.cf, aliases) on first use and keeps it
# afterwards, so local edits survive. SMTP listens on 127.0.0.1:2525 and the
# submission port on 127.0.0.1:2587; mail for USER@localhost lands in
# ./run/mail/USER/Maildir. Logs go to the terminal. Ctrl-C stops it.
set -eu
build=$1
top=$(pwd)
run="$top/run"
etc="$run/etc"
user=$(id -un)

mkdir -p "$etc" "$run/queue" "$run/mail"
if [ "$(id -u)" = 0 ]; then
    # Started as root the daemons drop to mail_owner, which must exist.
    getent group postdrop >/dev/null || groupadd --system postdrop
    getent passwd postern >/dev/null || {
        echo "run: creating system user postern (mail_owner)"
        useradd --system --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin --user-group postern
    }
    owner=postern group=postdrop
else
    owner=$user group=$(id -gn)
fi

if [ ! -f "$etc/main.cf" ]; then
    cat > "$etc/main.cf" <<CF
# Private instance for 'make run'. Edit freely; 'make run' keeps this file.
queue_directory = $run/queue
daemon_directory = $top/$build/bin
command_directory = $top/$build/bin
data_directory = $run/data
mail_owner = $owner
setgid_group = $group
maillog_file = /dev/stderr
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = localhost
mydestination = \$myhostname, localhost.localdomain
mynetworks = 127.0.0.0/8
alias_maps = hash:$etc/aliases
alias_database = hash:$etc/aliases
local_home_directory = $run/mail
home_mailbox = Maildir/
CF
fi
if [ ! -f "$etc/master.cf" ]; then
    cat > "$etc/master.cf" <<CF
# service      type  private unpriv chroot wakeup maxproc command + args
127.0.0.1:2525 inet  n       -      n      -      -       smtpd
127.0.0.1:2587 inet  n       -      n      -      -       smtpd
pickup         unix  n       -      n      60     1       pickup
cleanup        unix  n       -      n      -      0       cleanup
qmgr           unix  n       -      n      300    1       qmgr
showq          unix  n       -      n      -      -       showq
local          unix  -       n      n      -      -       local
bounce         unix  -       -      n      -      0       bounce
smtp           unix  -       -      n      -      -       smtp
anvil          unix  -       -      n      -      1       anvil
CF
fi
if [ ! -f "$etc/aliases" ]; then
    printf 'postmaster: %s\nroot: %s\n' "$user" "$user" > "$etc/aliases"
fi
[ -x "$build/bin/postalias" ] && "$build/bin/postalias" -c "$etc" "hash:$etc/aliases"
"$build/bin/postern" -c "$etc" check >/dev/null
echo "run: private instance from $run: SMTP on 127.0.0.1:2525, submission on 127.0.0.1:2587,"
echo "run: mail for $user@localhost goes to $run/mail/$user/Maildir; Ctrl-C stops."
exec "$build/bin/postern" -c "$etc" start-fg
