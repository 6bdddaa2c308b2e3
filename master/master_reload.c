/*
 * master_reload - SIGHUP: read main.cf and master.cf again and replace the
 * services without dropping a connection.
 *
 * The new configuration is checked completely before anything changes; a
 * broken one is reported and the running configuration stays. Services
 * whose name and type are unchanged keep their listening sockets (clients
 * queued in the backlog are not lost); all old processes are retired, so
 * every process that accepts a client from now on runs with the new
 * configuration, while sessions already open finish in the old ones.
 */
#include <event2/event.h>
#include <string.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_version.h"
#include "mail/master_cf.h"
#include "master.h"
#include "util/msg.h"
#include "util/mymalloc.h"

/* master_reload_read - new parameters and services, or -1 with why */
static int master_reload_read(MASTER *m, MASTER_CONF *conf, MASTER_SERV **services, VSTR *why)
{
    VSTR *path = vstr_alloc(128);
    MASTER_CF *cf;
    int ret = -1;

    /* A load that fails leaves the table as it was; only a good file replaces it. */
    vstr_sprintf(path, "%s/main.cf", m->conf.config_dir);
    if (mail_conf_load(vstr_str(path), why) < 0)
        goto done;
    mail_conf_reset();
    if (mail_conf_load(vstr_str(path), why) < 0)
        goto done;
    mail_conf_update("config_directory", m->conf.config_dir);
    if (master_conf_load(conf, m->conf.config_dir, why) < 0) {
        master_conf_free(conf);
        goto done;
    }
    vstr_sprintf(path, "%s/master.cf", m->conf.config_dir);
    if ((cf = master_cf_read(vstr_str(path), (int)var_int("default_process_limit"), why)) == NULL) {
        master_conf_free(conf);
        goto done;
    }
    ret = master_services_build(m, conf, cf, services, why);
    master_cf_free(cf);
    if (ret < 0)
        master_conf_free(conf);
done:
    vstr_free(path);
    return ret;
}

/* master_reload - apply a changed configuration */
void master_reload(MASTER *m)
{
    VSTR *why = vstr_alloc(256);
    MASTER_CONF conf;
    MASTER_SERV *fresh, *old, *serv, **tail;

    msg_info("reload -- version %s, configuration %s", MAIL_VERSION, m->conf.config_dir);
    if (master_reload_read(m, &conf, &fresh, why) < 0) {
        msg_error("reload failed: %s -- keeping the running configuration", vstr_str(why));
        vstr_free(why);
        return;
    }
    if (strcmp(conf.queue_dir, m->conf.queue_dir) != 0)
        msg_warn("queue_directory changed to %s: that takes a stop and start; the running "
                 "master keeps %s",
                 conf.queue_dir, m->conf.queue_dir);
    myfree(conf.queue_dir);
    conf.queue_dir = mystrdup(m->conf.queue_dir);
    master_conf_free(&m->conf);
    m->conf = conf;
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), var_str("maillog_file"));

    /* Listeners move from old services to their unchanged successors. */
    for (serv = fresh; serv; serv = serv->next) {
        for (old = m->services; old; old = old->next) {
            if (old->listen_count > 0 && master_serv_same_listener(old, serv)) {
                memcpy(serv->listen_fds, old->listen_fds, sizeof(old->listen_fds));
                serv->listen_count = old->listen_count;
                master_serv_retire(m, old);
                old->listen_count = 0;
                break;
            }
        }
    }
    while ((old = m->services) != NULL) {
        m->services = old->next;
        master_serv_retire(m, old);
        if (old->listen_count > 0 && old->sock_path)
            unlink(old->sock_path);
        master_listen_close(old);
        master_serv_free(old);
    }

    /* New services open their listeners; one that cannot is left out. */
    tail = &m->services;
    while ((serv = fresh) != NULL) {
        fresh = serv->next;
        serv->next = NULL;
        if (serv->listen_count == 0 && master_listen_open(m, serv, why) < 0) {
            msg_error("service \"%s\" (%s): %s -- not started", serv->name, serv->type_name,
                      vstr_str(why));
            master_serv_free(serv);
            continue;
        }
        *tail = serv;
        tail = &serv->next;
        master_serv_start(m, serv);
        master_wakeup_start(m, serv);
    }
    vstr_free(why);
}
