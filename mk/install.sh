#!/bin/sh
# install.sh - copy built programs, manual pages and default configuration.
#
# usage: install.sh DESTDIR BUILD SBINDIR DAEMONDIR MANDIR SYSCONFDIR SHAREDIR
#
# Commands people type go to SBINDIR; the daemons master starts go to
# DAEMONDIR (daemon_directory). Existing main.cf and master.cf are never
# overwritten: new defaults are installed beside them as *.default.
set -eu
destdir=$1 build=$2 sbindir=$3 daemondir=$4 mandir=$5 sysconfdir=$6 sharedir=$7

COMMANDS="postern postconf postmap postalias postsuper sendmail"
# Commands any user runs that must reach the public/ sockets (mode 0710,
# group setgid_group): installed set-group-id SETGID_GROUP (default
# postdrop) when that group exists and we run as root; see INSTALL.
SETGID_COMMANDS="postdrop postqueue"
SETGID_GROUP=${SETGID_GROUP:-postdrop}

mkdir -p "$destdir$sbindir" "$destdir$daemondir" "$destdir$sysconfdir" "$destdir$sharedir"
for bin in "$build"/bin/*; do
    [ -f "$bin" ] || continue
    name=$(basename "$bin")
    case " $COMMANDS " in
    *" $name "*) install -m 0755 "$bin" "$destdir$sbindir/$name" ;;
    *)
        case " $SETGID_COMMANDS " in
        *" $name "*)
            install -m 0755 "$bin" "$destdir$sbindir/$name"
            # Never set-user-id; set-group-id only to the unprivileged group.
            if [ "$(id -u)" = 0 ] && getent group "$SETGID_GROUP" >/dev/null 2>&1; then
                chgrp "$SETGID_GROUP" "$destdir$sbindir/$name"
                chmod 2755 "$destdir$sbindir/$name"
            else
                echo "note: $sbindir/$name is not set-group-id $SETGID_GROUP yet (see INSTALL)"
            fi
            ;;
        *) install -m 0755 "$bin" "$destdir$daemondir/$name" ;;
        esac
        ;;
    esac
done
# sendmail answers to mailq and newaliases by its name.
if [ -f "$destdir$sbindir/sendmail" ]; then
    ln -sf sendmail "$destdir$sbindir/mailq"
    ln -sf sendmail "$destdir$sbindir/newaliases"
fi

for page in man/*.[1-8]; do
    [ -f "$page" ] || continue
    section=${page##*.}
    mkdir -p "$destdir$mandir/man$section"
    install -m 0644 "$page" "$destdir$mandir/man$section/"
done

for f in main.cf master.cf; do
    [ -f "conf/$f" ] || continue
    if [ -f "$destdir$sysconfdir/$f" ]; then
        install -m 0644 "conf/$f" "$destdir$sysconfdir/$f.default"
    else
        install -m 0644 "conf/$f" "$destdir$sysconfdir/$f"
    fi
done
[ -f conf/postern.service ] && install -m 0644 conf/postern.service "$destdir$sharedir/postern.service"
echo "installed into ${destdir:-/}: commands in $sbindir, daemons in $daemondir, configuration in $sysconfdir"
