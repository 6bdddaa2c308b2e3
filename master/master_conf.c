/*
 * master_conf - master's own parameters from main.cf, and the services of
 * master.cf checked and turned into run-time entries.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/priv.h"
#include "master.h"
#include "util/msg.h"
#include "util/mymalloc.h"

/* master_conf_free - release what master_conf_load stored */
void master_conf_free(MASTER_CONF *conf)
{
    myfree(conf->config_dir);
    myfree(conf->queue_dir);
    myfree(conf->daemon_dir);
    myfree(conf->mail_owner);
    myfree(conf->setgid_group);
    myfree(conf->pid_dir);
    myfree(conf->inet_interfaces);
    myfree(conf->inet_protocols);
    argv_free(conf->env);
    memset(conf, 0, sizeof(*conf));
}

/* master_conf_env - the children's environment: import_environment, MAIL_CONFIG */
static ARGV *master_conf_env(const char *config_dir)
{
    ARGV *env = argv_alloc(8);
    ARGV *names = argv_split(var_str("import_environment"), ", \t\r\n");

    for (size_t i = 0; i < names->argc; i++) {
        const char *item = names->argv[i];
        const char *value;

        if (strncmp(item, "MAIL_CONFIG", 11) == 0 && (item[11] == 0 || item[11] == '='))
            continue; /* always set below, to the directory master uses */
        if (strchr(item, '=')) {
            argv_add(env, item, (char *)NULL);
        } else if ((value = getenv(item)) != NULL) {
            VSTR *pair = vstr_alloc(64);

            vstr_sprintf(pair, "%s=%s", item, value);
            argv_add(env, vstr_str(pair), (char *)NULL);
            vstr_free(pair);
        }
    }
    argv_free(names);

    VSTR *conf = vstr_alloc(64);

    vstr_sprintf(conf, "MAIL_CONFIG=%s", config_dir);
    argv_add(env, vstr_str(conf), (char *)NULL);
    vstr_free(conf);
    return env;
}

/* master_conf_load - copy master's parameters out of the loaded main.cf */
int master_conf_load(MASTER_CONF *conf, const char *config_dir, VSTR *why)
{
    memset(conf, 0, sizeof(*conf));
    conf->config_dir = mystrdup(config_dir);
    conf->queue_dir = mystrdup(var_str("queue_directory"));
    conf->daemon_dir = mystrdup(var_str("daemon_directory"));
    conf->mail_owner = mystrdup(var_str("mail_owner"));
    conf->setgid_group = mystrdup(var_str("setgid_group"));
    conf->pid_dir = mystrdup(var_str("process_id_directory"));
    conf->inet_interfaces = mystrdup(var_str("inet_interfaces"));
    conf->inet_protocols = mystrdup(var_str("inet_protocols"));
    conf->throttle_time = var_time("service_throttle_time");
    conf->env = master_conf_env(config_dir);

    if (*conf->queue_dir != '/') {
        vstr_sprintf(why, "queue_directory \"%s\" is not an absolute path", conf->queue_dir);
        return -1;
    }
    if (*conf->daemon_dir != '/') {
        vstr_sprintf(why, "daemon_directory \"%s\" is not an absolute path", conf->daemon_dir);
        return -1;
    }
    if (!priv_is_root()) {
        conf->owner_uid = geteuid();
        conf->owner_gid = getegid();
        return 0;
    }
    if (priv_lookup(conf->mail_owner, &conf->owner_uid, &conf->owner_gid) < 0) {
        vstr_sprintf(why, "mail_owner user \"%s\" does not exist", conf->mail_owner);
        return -1;
    }
    if (conf->owner_uid == 0) {
        vstr_sprintf(why, "mail_owner \"%s\" has uid 0: it must be an unprivileged user",
                     conf->mail_owner);
        return -1;
    }
    return 0;
}

/* master_serv_free - release a service that owns no listeners, pipes or processes */
void master_serv_free(MASTER_SERV *serv)
{
    if (serv == NULL)
        return;
    myfree(serv->name);
    myfree(serv->command);
    myfree(serv->path);
    argv_free(serv->args);
    argv_free(serv->overrides);
    myfree(serv->sock_path);
    myfree(serv);
}

/* master_serv_same_listener - can b take over a's listening descriptors */
int master_serv_same_listener(const MASTER_SERV *a, const MASTER_SERV *b)
{
    if (a->type != b->type || strcmp(a->name, b->name) != 0)
        return 0;
    return a->type == MASTER_TYPE_INET || a->private_ == b->private_;
}

/* master_type_parse - master.cf column 2 */
static int master_type_parse(const char *name, enum master_type *type)
{
    if (strcmp(name, "inet") == 0)
        *type = MASTER_TYPE_INET;
    else if (strcmp(name, "unix") == 0)
        *type = MASTER_TYPE_UNIX;
    else if (strcmp(name, "fifo") == 0)
        *type = MASTER_TYPE_FIFO;
    else
        return -1;
    return 0;
}

/* master_serv_new - one checked master.cf entry; NULL with why */
static MASTER_SERV *master_serv_new(MASTER *m, const MASTER_CONF *conf, const MASTER_ENT *ent,
                                    const char *cf_path, VSTR *why)
{
    MASTER_SERV *serv;
    enum master_type type;

    if (master_type_parse(ent->type, &type) < 0) {
        vstr_sprintf(why,
                     "%s, line %d: service \"%s\": unsupported service type \"%s\" "
                     "(expected inet, unix or fifo)",
                     cf_path, ent->lineno, ent->service, ent->type);
        return NULL;
    }
    if (type != MASTER_TYPE_INET && (strchr(ent->service, '/') || strcmp(ent->service, ".") == 0 ||
                                     strcmp(ent->service, "..") == 0 || *ent->service == 0)) {
        vstr_sprintf(why, "%s, line %d: bad %s service name \"%s\"", cf_path, ent->lineno,
                     ent->type, ent->service);
        return NULL;
    }
    if (*ent->command == 0 || (strchr(ent->command, '/') && *ent->command != '/')) {
        vstr_sprintf(why, "%s, line %d: service \"%s\": bad command \"%s\"", cf_path, ent->lineno,
                     ent->service, ent->command);
        return NULL;
    }
    serv = mycalloc(1, sizeof(*serv));
    serv->master = m;
    serv->name = mystrdup(ent->service);
    serv->type = type;
    serv->type_name = type == MASTER_TYPE_INET   ? "inet"
                      : type == MASTER_TYPE_UNIX ? "unix"
                                                 : "fifo";
    serv->private_ = ent->private_;
    serv->unpriv = ent->unpriv;
    serv->chroot = ent->chroot;
    serv->wakeup = ent->wakeup;
    serv->wakeup_if_used = ent->wakeup_if_used;
    serv->maxproc = ent->maxproc;
    serv->lineno = ent->lineno;
    serv->command = mystrdup(ent->command);
    serv->status_fd[0] = serv->status_fd[1] = -1;

    VSTR *buf = vstr_alloc(128);

    if (*ent->command == '/')
        vstr_cpy(buf, ent->command);
    else
        vstr_sprintf(buf, "%s/%s", conf->daemon_dir, ent->command);
    serv->path = mystrdup(vstr_str(buf));
    serv->args = argv_alloc(ent->args->argc + 1);
    for (size_t i = 0; i < ent->args->argc; i++)
        argv_add(serv->args, ent->args->argv[i], (char *)NULL);
    serv->overrides = argv_alloc(ent->overrides->argc + 1);
    for (size_t i = 0; i < ent->overrides->argc; i++)
        argv_add(serv->overrides, ent->overrides->argv[i], (char *)NULL);
    if (type != MASTER_TYPE_INET) {
        vstr_sprintf(buf, "%s/%s/%s", conf->queue_dir, ent->private_ ? "private" : "public",
                     ent->service);
        if (vstr_len(buf) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            vstr_sprintf(why, "%s, line %d: socket path too long for service \"%s\"", cf_path,
                         ent->lineno, ent->service);
            vstr_free(buf);
            master_serv_free(serv);
            return NULL;
        }
        serv->sock_path = mystrdup(vstr_str(buf));
    } else if (serv->wakeup > 0) {
        msg_warn("%s, line %d: service \"%s\": wakeup is not supported for inet services -- "
                 "ignored",
                 cf_path, ent->lineno, ent->service);
        serv->wakeup = 0;
    }
    vstr_free(buf);
    if (access(serv->path, X_OK) < 0)
        msg_warn("%s, line %d: service \"%s\": command %s: %m", cf_path, ent->lineno, ent->service,
                 serv->path);
    return serv;
}

/* master_services_build - every master.cf entry as a service (no listeners yet); 0 or -1 */
int master_services_build(MASTER *m, const MASTER_CONF *conf, const MASTER_CF *cf,
                          MASTER_SERV **result, VSTR *why)
{
    MASTER_SERV *head = NULL, **tail = &head;
    VSTR *cf_path = vstr_alloc(128);

    vstr_sprintf(cf_path, "%s/master.cf", conf->config_dir);
    for (size_t i = 0; i < cf->count; i++) {
        MASTER_SERV *serv = master_serv_new(m, conf, cf->ents[i], vstr_str(cf_path), why);

        if (serv == NULL)
            goto fail;
        for (MASTER_SERV *prev = head; prev; prev = prev->next) {
            if (prev->type == serv->type && strcmp(prev->name, serv->name) == 0) {
                vstr_sprintf(why,
                             "%s, line %d: duplicate service \"%s\" type %s (first at line "
                             "%d)",
                             vstr_str(cf_path), serv->lineno, serv->name, serv->type_name,
                             prev->lineno);
                master_serv_free(serv);
                goto fail;
            }
        }
        *tail = serv;
        tail = &serv->next;
    }
    vstr_free(cf_path);
    *result = head;
    return 0;

fail:
    while (head) {
        MASTER_SERV *next = head->next;

        master_serv_free(head);
        head = next;
    }
    vstr_free(cf_path);
    *result = NULL;
    return -1;
}
