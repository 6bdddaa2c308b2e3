/*
 * smtp_nexthop - the destination forms the SMTP and LMTP client accept, as
 * in Postfix's smtp(8) and lmtp(8):
 *
 *   domain             MX lookup, then the addresses of the MX hosts;
 *                      without MX records, the domain's own addresses
 *   domain:port        the same, to another port
 *   [host]             no MX lookup: the addresses of host
 *   [host]:port        the same, to another port
 *   [1.2.3.4], [ipv6:2001:db8::1], [2001:db8::1]:2525
 *                      an address literal
 *   inet:...           any of the above (Postfix's LMTP form)
 *   unix:/path         LMTP over a UNIX-domain socket
 *
 * A port is a number or a service name (known_tcp_ports first, then
 * /etc/services). Host names are checked with dns_hostname_valid.
 *
 * Ownership: smtp_nexthop_parse fills a caller's SMTP_NEXTHOP with new
 * strings; smtp_nexthop_free releases them.
 */
#ifndef POSTERN_SMTP_NEXTHOP_H
#define POSTERN_SMTP_NEXTHOP_H

#include "util/vstr.h"

#define SMTP_NEXTHOP_MAX 1024 /* octets of a nexthop string */

typedef struct SMTP_NEXTHOP {
    char *host;    /* domain, host or address (no brackets), or the unix: path */
    unsigned port; /* 0: the transport's default port */
    int no_mx;     /* bracketed: no MX lookup */
    int is_addr;   /* host is an IPv4 or IPv6 address literal */
    int is_unix;   /* unix:/path */
} SMTP_NEXTHOP;

/* smtp_nexthop_parse - text into nh; 0, or -1 with the reason in why */
int smtp_nexthop_parse(const char *text, const char *known_ports, SMTP_NEXTHOP *nh, VSTR *why);
/* smtp_nexthop_free - release the strings of nh */
void smtp_nexthop_free(SMTP_NEXTHOP *nh);
/* smtp_port_parse - "25", "smtp" (known_ports: "lmtp=24, smtp=25, smtps=submissions=465"
   as in known_tcp_ports, may be NULL; then /etc/services) into *port; 0 or -1 */
int smtp_port_parse(const char *text, const char *known_ports, unsigned *port);

#endif
