/*
 * echosvc - a test service on the mail_server skeleton.
 *
 * master.cf:  NAME TYPE - - - - - /path/to/echosvc [multi | single | trigger]
 *
 * multi (default) and single: greets with "220 echosvc pid=N", then answers
 * each line: "id" with the process's credentials as the kernel reports
 * them, "param NAME" with that main.cf parameter's value, "pid", "quit"
 * ("221 bye" and close); anything else comes back unchanged. trigger: logs
 * "trigger: N bytes: TEXT" for each wakeup request.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_server.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define ECHO_LINE_MAX 1024    /* longest request line */
#define ECHO_TIMEOUT_MS 60000 /* single mode: idle client */

/* echo_answer - the reply to one request line; returns 0 to close */
static int echo_answer(const char *line, VSTR *reply)
{
    vstr_reset(reply);
    if (strcmp(line, "quit") == 0) {
        vstr_cpy(reply, "221 bye\r\n");
        return 0;
    }
    if (strcmp(line, "pid") == 0) {
        vstr_sprintf(reply, "%ld\r\n", (long)getpid());
    } else if (strcmp(line, "id") == 0) {
        uid_t ru, eu, su;
        gid_t rg, eg, sg;
        cap_t caps = cap_get_proc();
        char *text = caps ? cap_to_text(caps, NULL) : NULL;

        getresuid(&ru, &eu, &su);
        getresgid(&rg, &eg, &sg);
        vstr_sprintf(reply, "uid=%ld euid=%ld gid=%ld egid=%ld nnp=%d caps=%s\r\n", (long)ru,
                     (long)eu, (long)rg, (long)eg, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
                     text ? text : "?");
        if (text)
            cap_free(text);
        if (caps)
            cap_free(caps);
    } else if (strncmp(line, "param ", 6) == 0) {
        const char *name = line + 6;

        if (mail_param_find(name) == NULL)
            vstr_sprintf(reply, "unknown parameter\r\n");
        else
            vstr_sprintf(reply, "%s = %s\r\n", name, var_str(name));
    } else {
        vstr_sprintf(reply, "%s\r\n", line);
    }
    return 1;
}

/* echo_greeting - first line of every session */
static void echo_greeting(VSTR *reply)
{
    vstr_sprintf(reply, "220 echosvc pid=%ld\r\n", (long)getpid());
}

/* echo_close - end of a multi session */
static void echo_close(struct bufferevent *bev)
{
    bufferevent_free(bev);
    mail_server_session_done();
}

/* echo_drained - multi mode: the goodbye is out; close */
static void echo_drained(struct bufferevent *bev, void *ctx)
{
    (void)ctx;
    echo_close(bev);
}

/* echo_read - multi mode: answer every complete line */
static void echo_read(struct bufferevent *bev, void *ctx)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    VSTR *reply = vstr_alloc(128);
    char *line;
    size_t len;

    (void)ctx;
    while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
        int keep = echo_answer(line, reply);

        free(line);
        bufferevent_write(bev, vstr_str(reply), vstr_len(reply));
        if (!keep) {
            /* Let the reply drain, then close (echo_drained). */
            bufferevent_disable(bev, EV_READ);
            bufferevent_setcb(bev, NULL, echo_drained, NULL, NULL);
            vstr_free(reply);
            return;
        }
    }
    if (evbuffer_get_length(in) > ECHO_LINE_MAX) {
        bufferevent_free(bev);
        mail_server_session_done();
    }
    vstr_free(reply);
}

/* echo_event - multi mode: EOF or error ends the session */
static void echo_event(struct bufferevent *bev, short what, void *ctx)
{
    (void)ctx;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        echo_close(bev);
}

/* echo_multi - one more session on the event loop */
static void echo_multi(const MAIL_SERVER_ARGS *args, int fd)
{
    struct bufferevent *bev = bufferevent_socket_new(args->base, fd, BEV_OPT_CLOSE_ON_FREE);
    VSTR *greeting = vstr_alloc(64);
    struct timeval tv = {.tv_sec = ECHO_TIMEOUT_MS / 1000};

    if (bev == NULL)
        msg_fatal("bufferevent_socket_new failed");
    bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
    bufferevent_set_timeouts(bev, &tv, &tv);
    echo_greeting(greeting);
    bufferevent_write(bev, vstr_str(greeting), vstr_len(greeting));
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    vstr_free(greeting);
}

/* echo_single - one client, blocking, to the end */
static void echo_single(const MAIL_SERVER_ARGS *args, int fd)
{
    VSTR *reply = vstr_alloc(128);
    char buf[ECHO_LINE_MAX + 1];
    size_t len = 0;

    (void)args;
    echo_greeting(reply);
    if (write_full(fd, vstr_str(reply), vstr_len(reply)) < 0)
        goto done;
    for (;;) {
        char *nl = memchr(buf, '\n', len);

        if (nl == NULL) {
            if (len >= ECHO_LINE_MAX)
                break;
            ssize_t n = timed_read(fd, buf + len, ECHO_LINE_MAX - len, ECHO_TIMEOUT_MS);

            if (n <= 0)
                break;
            len += (size_t)n;
            continue;
        }
        *nl = 0;
        if (nl > buf && nl[-1] == '\r')
            nl[-1] = 0;
        int keep = echo_answer(buf, reply);

        if (write_full(fd, vstr_str(reply), vstr_len(reply)) < 0 || !keep)
            break;
        len -= (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, len);
    }
done:
    vstr_free(reply);
}

/* echo_trigger - log each wakeup request */
static void echo_trigger(const MAIL_SERVER_ARGS *args, const char *buf, size_t len)
{
    VSTR *text = vstr_alloc(len + 1);

    for (size_t i = 0; i < len; i++)
        vstr_addch(text, buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?');
    msg_info("%s: trigger: %zu bytes: %s", args->service, len, vstr_str(text));
    vstr_free(text);
}

int main(int argc, char **argv)
{
    MAIL_SERVER_SPEC spec = {.kind = MAIL_SERVER_MULTI,
                             .multi_service = echo_multi,
                             .single_service = echo_single,
                             .trigger_service = echo_trigger};

    /* The flavour is the last argument, after master's options. */
    if (argc > 1 && strcmp(argv[argc - 1], "single") == 0)
        spec.kind = MAIL_SERVER_SINGLE;
    else if (argc > 1 && strcmp(argv[argc - 1], "trigger") == 0)
        spec.kind = MAIL_SERVER_TRIGGER;
    mail_server_main(argc, argv, &spec);
}
