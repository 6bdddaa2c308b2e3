/*
 * sasl_probe - drive lib/sasl from the command line, for tests against a
 * real backend (Dovecot's auth socket, a password table).
 *
 * usage: sasl_probe [options] [MECH [INITIAL]]
 *   -T type      postern or dovecot (default dovecot)
 *   -p path      dovecot socket, or the password table list for postern
 *   -M mechs     smtpd_sasl_postern_mechanisms (postern)
 *   -s opts      smtpd_sasl_security_options (default "noanonymous")
 *   -S opts      smtpd_sasl_tls_security_options (default: as -s)
 *   -f filter    smtpd_sasl_mechanism_filter (default "!external, static:rest")
 *   -t           the client uses TLS (Dovecot is told "secured")
 *   -a addr -P port   client address and port (default 127.0.0.1 54321)
 *   -w secs      backend timeout (default 10)
 *   -l octets    response limit (default 12288)
 *
 * Output, one line each, flushed at once: first "MECHS list"; without
 * MECH that is all. Then every result: "CONTINUE base64", "OK user",
 * "FAIL text", "TEMPFAIL text", "BADPROT text". After CONTINUE the next
 * response (base64, one line) is read from standard input; at its end
 * "EOF" is printed. INITIAL "=" is an empty initial response.
 * Exit status: 0 OK, 1 FAIL, 2 TEMPFAIL, 3 EOF, 4 BADPROT, 5 mechanism
 * not offered, 6 bad settings.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "sasl/sasl_server.h"
#include "util/msg.h"
#include "util/vstr.h"

#define PROBE_LINE_MAX 65536 /* longest response read from stdin */

static struct event_base *probe_base;
static SASL_SESS *probe_sess;
static int probe_status = -1;

/* probe_done - print a result; read and send the next response */
static void probe_done(void *context, enum sasl_result result, const char *text)
{
    static const char *const names[] = {"CONTINUE", "OK", "FAIL", "TEMPFAIL", "BADPROT"};
    static const int codes[] = {-1, 0, 1, 2, 4};
    static char line[PROBE_LINE_MAX];
    size_t len;

    (void)context;
    printf("%s %s\n", names[result], text);
    fflush(stdout);
    if (result != SASL_CONTINUE) {
        probe_status = codes[result];
        event_base_loopbreak(probe_base);
        return;
    }
    if (fgets(line, sizeof(line), stdin) == NULL) {
        printf("EOF\n");
        fflush(stdout);
        probe_status = 3;
        event_base_loopbreak(probe_base);
        return;
    }
    len = strcspn(line, "\r\n");
    line[len] = 0;
    sasl_sess_step(probe_sess, line, len);
}

int main(int argc, char **argv)
{
    SASL_SERVER_ARGS args = {0};
    SASL_CLIENT_INFO info = {"127.0.0.1", "54321", "127.0.0.1", "587", 0};
    const char *tls_security = NULL;
    VSTR *why = vstr_alloc(100);
    SASL_SERVER *srv = NULL;
    const char *initial = NULL;
    int status;
    int ch;

    msg_init("sasl_probe");
    signal(SIGPIPE, SIG_IGN);
    args.type = "dovecot";
    args.security = "noanonymous";
    args.filter = "!external, static:rest";
    args.service = "smtp";
    args.timeout = 10;
    args.response_limit = 12288;
    while ((ch = getopt(argc, argv, "T:p:M:s:S:f:ta:P:w:l:")) != -1) {
        switch (ch) {
        case 'T': args.type = optarg; break;
        case 'p': args.path = optarg; break;
        case 'M': args.mechanisms = optarg; break;
        case 's': args.security = optarg; break;
        case 'S': tls_security = optarg; break;
        case 'f': args.filter = optarg; break;
        case 't': info.tls_active = 1; break;
        case 'a': info.client_addr = optarg; break;
        case 'P': info.client_port = optarg; break;
        case 'w': args.timeout = atol(optarg); break;
        case 'l': args.response_limit = atol(optarg); break;
        default:
            fprintf(stderr, "usage: sasl_probe [-T type] [-p path] [-M mechs] [-s opts] "
                            "[-S opts] [-f filter] [-t] [-a addr] [-P port] [-w secs] "
                            "[-l octets] [MECH [INITIAL]]\n");
            return 6;
        }
    }
    args.tls_security = tls_security ? tls_security : args.security;
    probe_base = event_base_new();
    args.base = probe_base;
    if ((srv = sasl_server_create(&args, why)) == NULL) {
        printf("ERROR %s\n", vstr_str(why));
        status = 6;
        goto done;
    }
    printf("MECHS %s\n", sasl_server_mechs(srv, info.tls_active));
    fflush(stdout);
    if (optind >= argc) {
        status = 0;
        goto done;
    }
    if (optind + 1 < argc)
        initial = strcmp(argv[optind + 1], "=") == 0 ? "" : argv[optind + 1];
    probe_sess = sasl_sess_start(srv, argv[optind], initial, &info, probe_done, NULL, why);
    if (probe_sess == NULL) {
        printf("NOMECH %s\n", vstr_str(why));
        status = 5;
        goto done;
    }
    event_base_dispatch(probe_base);
    status = probe_status < 0 ? 2 : probe_status;

done:
    sasl_sess_free(probe_sess);
    sasl_server_free(srv);
    event_base_free(probe_base);
    vstr_free(why);
    return status;
}
