/*
 * smtp_nexthop - parsing the SMTP/LMTP client's destination forms (see
 * smtp_nexthop.h).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "mail/dns.h"
#include "mail/smtp_nexthop.h"
#include "util/argv.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define SMTP_PORT_MAX 65535
#define SMTP_PATH_MAX 108 /* sun_path */

/* smtp_port_known - look name up in a known_tcp_ports value */
static int smtp_port_known(const char *name, const char *known_ports, unsigned *port)
{
    ARGV *list;
    int found = 0;

    if (known_ports == NULL)
        return 0;
    list = argv_split(known_ports, ", \t\r\n");
    /* Each entry: name=name=...=number. */
    for (size_t i = 0; i < list->argc && !found; i++) {
        ARGV *parts = argv_split(list->argv[i], "=");
        long num;

        if (parts->argc >= 2 &&
            parse_long(parts->argv[parts->argc - 1], 1, SMTP_PORT_MAX, &num) == 0)
            for (size_t j = 0; j + 1 < parts->argc; j++)
                if (strcasecmp(parts->argv[j], name) == 0) {
                    *port = (unsigned)num;
                    found = 1;
                }
        argv_free(parts);
    }
    argv_free(list);
    return found;
}

/* smtp_port_parse - a port number or service name */
int smtp_port_parse(const char *text, const char *known_ports, unsigned *port)
{
    struct servent *se;
    long num;

    if (*text == 0)
        return -1;
    if (alldig(text)) {
        if (parse_long(text, 1, SMTP_PORT_MAX, &num) < 0)
            return -1;
        *port = (unsigned)num;
        return 0;
    }
    if (smtp_port_known(text, known_ports, port))
        return 0;
    if (strlen(text) > 64 || (se = getservbyname(text, "tcp")) == NULL)
        return -1;
    *port = ntohs((unsigned short)se->s_port);
    return 0;
}

/* smtp_nexthop_free - release */
void smtp_nexthop_free(SMTP_NEXTHOP *nh)
{
    myfree(nh->host);
    nh->host = NULL;
}

/* smtp_nexthop_parse - one destination */
int smtp_nexthop_parse(const char *text, const char *known_ports, SMTP_NEXTHOP *nh, VSTR *why)
{
    unsigned char addr[sizeof(struct in6_addr)];
    const char *port = NULL, *end;
    VSTR *host = vstr_alloc(64);

    memset(nh, 0, sizeof(*nh));
    if (strlen(text) > SMTP_NEXTHOP_MAX || str_has_ctl(text)) {
        vstr_sprintf(why, "malformed next-hop destination");
        goto fail;
    }
    if (strncasecmp(text, "unix:", 5) == 0) {
        if (text[5] != '/' || strlen(text + 5) >= SMTP_PATH_MAX) {
            vstr_sprintf(why, "bad UNIX-domain socket destination \"%s\"", text);
            goto fail;
        }
        nh->host = mystrdup(text + 5);
        nh->is_unix = 1;
        nh->no_mx = 1;
        vstr_free(host);
        return 0;
    }
    if (strncasecmp(text, "inet:", 5) == 0)
        text += 5;
    if (text[0] == '[') {
        if ((end = strchr(text, ']')) == NULL || (end[1] != 0 && end[1] != ':')) {
            vstr_sprintf(why, "malformed next-hop destination \"%s\"", text);
            goto fail;
        }
        vstr_ncpy(host, text + 1, (size_t)(end - text - 1));
        if (end[1] == ':')
            port = end + 2;
        nh->no_mx = 1;
        if (strncasecmp(vstr_str(host), "ipv6:", 5) == 0) {
            VSTR *tmp = vstr_alloc(64);

            vstr_cpy(tmp, vstr_str(host) + 5);
            vstr_cpy(host, vstr_str(tmp));
            vstr_free(tmp);
            if (inet_pton(AF_INET6, vstr_str(host), addr) != 1) {
                vstr_sprintf(why, "bad IPv6 address in next-hop destination \"%s\"", text);
                goto fail;
            }
        }
        if (inet_pton(AF_INET, vstr_str(host), addr) == 1 ||
            inet_pton(AF_INET6, vstr_str(host), addr) == 1)
            nh->is_addr = 1;
    } else {
        /* domain or domain:port; a bare IPv6 address would be ambiguous. */
        if ((end = strchr(text, ':')) != NULL) {
            if (strchr(end + 1, ':') != NULL) {
                vstr_sprintf(why,
                             "malformed next-hop destination \"%s\": write IPv6 "
                             "addresses as [ipv6:address]",
                             text);
                goto fail;
            }
            vstr_ncpy(host, text, (size_t)(end - text));
            port = end + 1;
        } else {
            vstr_cpy(host, text);
        }
        if (inet_pton(AF_INET, vstr_str(host), addr) == 1)
            nh->is_addr = 1;
    }
    if (!nh->is_addr && !dns_hostname_valid(vstr_str(host))) {
        vstr_sprintf(why, "bad host or domain name in next-hop destination \"%s\"", text);
        goto fail;
    }
    if (port != NULL && smtp_port_parse(port, known_ports, &nh->port) < 0) {
        vstr_sprintf(why, "bad port in next-hop destination \"%s\"", text);
        goto fail;
    }
    /* A trailing dot names the same host: drop it for lookups and keys. */
    if (vstr_len(host) > 0 && vstr_str(host)[vstr_len(host) - 1] == '.')
        vstr_truncate(host, vstr_len(host) - 1);
    vstr_lower(host);
    nh->host = vstr_export(host);
    return 0;
fail:
    vstr_free(host);
    return -1;
}
