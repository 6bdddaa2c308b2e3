/*
 * mail_params - the one parameter table: every main.cf parameter the suite
 * knows, with its type, its default and its bounds.
 *
 * Names and defaults are Postfix's (postconf(5)) wherever the feature is the
 * same, adapted to Postern's paths and user names and to the behaviour that
 * Postfix reaches with compatibility_level 3.6 and later (relay_domains empty,
 * mynetworks_style host, smtputf8_enable yes). A TIME entry's unit is the
 * unit of a bare number, as in Postfix: "maximal_queue_lifetime = 5" means
 * five days. Parameters that depend on the host (myhostname, mydomain,
 * mynetworks) are computed when first asked for.
 *
 * The table is sorted by name (strcmp order) so that lookups can bisect it;
 * mail_param_find verifies the order once and panics on a broken table.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_version.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

#ifndef DEF_CONFIG_DIR
#define DEF_CONFIG_DIR "/etc/postern"
#endif
#ifndef DEF_DAEMON_DIR
#define DEF_DAEMON_DIR "/usr/local/libexec/postern"
#endif
#ifndef DEF_COMMAND_DIR
#define DEF_COMMAND_DIR "/usr/local/sbin"
#endif

#define MAIL_PARAM_HOST_MAX 255    /* RFC 1035 section 2.3.4: names up to 255 octets */
#define MAIL_PARAM_HOSTS_LINE 4096 /* longest /etc/hosts line considered */
#define MAIL_PARAM_DEF_DOMAIN "localdomain"

static const char *mail_param_myhostname(void);
static const char *mail_param_mydomain(void);
static const char *mail_param_mynetworks(void);

#define P_STR(n, d)                                                                                \
    {                                                                                              \
        (n), PARAM_STR, (d), NULL, 0, 0, 0                                                         \
    }
#define P_RAW(n, d)                                                                                \
    {                                                                                              \
        (n), PARAM_RAW, (d), NULL, 0, 0, 0                                                         \
    }
#define P_LIST(n, d)                                                                               \
    {                                                                                              \
        (n), PARAM_LIST, (d), NULL, 0, 0, 0                                                        \
    }
#define P_BOOL(n, d)                                                                               \
    {                                                                                              \
        (n), PARAM_BOOL, (d), NULL, 0, 1, 0                                                        \
    }
#define P_INT(n, d, lo, hi)                                                                        \
    {                                                                                              \
        (n), PARAM_INT, (d), NULL, (lo), (hi), 0                                                   \
    }
#define P_TIME(n, d, unit, lo)                                                                     \
    {                                                                                              \
        (n), PARAM_TIME, (d), NULL, (lo), INT_MAX, (unit)                                          \
    }
#define P_COMPUTED(n, t, fn)                                                                       \
    {                                                                                              \
        (n), (t), NULL, (fn), 0, 0, 0                                                              \
    }

/*
 * Not here on purpose: Postfix parameters of services Postern does not have
 * (postscreen, tlsproxy, qmqpd, milters, postmulti, the verify and flush
 * services, the connection cache, the LMTP mirror of every smtp_ parameter)
 * and Postfix's backwards-compatibility names. main.cf may still set them;
 * postconf then warns that they are unused.
 */
const MAIL_PARAM mail_param_table[] = {
    P_STR("2bounce_notice_recipient", "postmaster"),
    P_INT("access_map_defer_code", "450", 400, 599),
    P_INT("access_map_reject_code", "554", 400, 599),
    P_STR("alias_database", "hash:/etc/aliases"),
    P_LIST("alias_maps", "hash:/etc/aliases"),
    P_LIST("allow_mail_to_commands", "alias, forward"),
    P_LIST("allow_mail_to_files", "alias, forward"),
    P_BOOL("allow_min_user", "no"),
    P_BOOL("allow_percent_hack", "yes"),
    P_BOOL("allow_untrusted_routing", "no"),
    P_LIST("alternate_config_directories", ""),
    P_BOOL("always_add_missing_headers", "no"),
    P_STR("always_bcc", ""),
    P_INT("anvil_client_table_limit", "100000", 1, INT_MAX),
    P_TIME("anvil_rate_time_unit", "60s", 's', 1),
    P_TIME("anvil_status_update_time", "600s", 's', 1),
    P_BOOL("append_at_myorigin", "yes"),
    P_BOOL("append_dot_mydomain", "no"),
    P_TIME("application_event_drain_time", "100s", 's', 0),
    P_LIST("authorized_flush_users", "static:anyone"),
    P_LIST("authorized_mailq_users", "static:anyone"),
    P_LIST("authorized_submit_users", "static:anyone"),
    P_INT("berkeley_db_create_buffer_size", "16777216", 0, LONG_MAX),
    P_INT("berkeley_db_read_buffer_size", "131072", 0, LONG_MAX),
    P_STR("best_mx_transport", ""),
    P_BOOL("biff", "yes"),
    P_LIST("body_checks", ""),
    P_INT("body_checks_size_limit", "51200", 0, LONG_MAX),
    P_STR("bounce_notice_recipient", "postmaster"),
    P_TIME("bounce_queue_lifetime", "5d", 'd', 0),
    P_STR("bounce_service_name", "bounce"),
    P_INT("bounce_size_limit", "50000", 1, INT_MAX),
    P_STR("bounce_template_file", ""),
    P_BOOL("broken_sasl_auth_clients", "no"),
    P_INT("bulk_recipient_threshold", "100", 0, INT_MAX),
    P_LIST("canonical_classes",
           "envelope_sender, envelope_recipient, header_sender, header_recipient"),
    P_LIST("canonical_maps", ""),
    P_BOOL("cleanup_replace_stray_cr_lf", "yes"),
    P_STR("cleanup_service_name", "cleanup"),
    P_STR("command_directory", DEF_COMMAND_DIR),
    P_RAW("command_execution_directory", ""),
    P_RAW("command_expansion_filter",
          "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    P_TIME("command_time_limit", "1000s", 's', 1),
    P_STR("compatibility_level", "3.6"),
    P_STR("config_directory", DEF_CONFIG_DIR),
    P_STR("content_filter", ""),
    P_STR("daemon_directory", DEF_DAEMON_DIR),
    P_BOOL("daemon_table_open_error_is_fatal", "no"),
    P_TIME("daemon_timeout", "18000s", 's', 1),
    P_STR("data_directory", "/var/lib/postern"),
    P_INT("debug_peer_level", "2", 0, INT_MAX),
    P_LIST("debug_peer_list", ""),
    P_RAW("debugger_command", ""),
    P_STR("default_database_type", "hash"),
    P_INT("default_delivery_slot_cost", "5", 1, INT_MAX),
    P_INT("default_delivery_slot_discount", "50", 0, INT_MAX),
    P_INT("default_delivery_slot_loan", "3", 0, INT_MAX),
    P_STR("default_delivery_status_filter", ""),
    P_INT("default_destination_concurrency_failed_cohort_limit", "1", 0, INT_MAX),
    P_INT("default_destination_concurrency_limit", "20", 1, INT_MAX),
    P_STR("default_destination_concurrency_negative_feedback", "1"),
    P_STR("default_destination_concurrency_positive_feedback", "1"),
    P_TIME("default_destination_rate_delay", "0s", 's', 0),
    P_INT("default_destination_recipient_limit", "50", 1, INT_MAX),
    P_INT("default_extra_recipient_limit", "1000", 0, INT_MAX),
    P_STR("default_filter_nexthop", ""),
    P_INT("default_minimum_delivery_slots", "3", 0, INT_MAX),
    P_STR("default_privs", "nobody"),
    P_INT("default_process_limit", "100", 1, INT_MAX),
    P_RAW("default_rbl_reply", "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked "
                               "using $rbl_domain${rbl_reason?; $rbl_reason}"),
    P_INT("default_recipient_limit", "20000", 1, INT_MAX),
    P_TIME("default_recipient_refill_delay", "5s", 's', 0),
    P_INT("default_recipient_refill_limit", "100", 0, INT_MAX),
    P_STR("default_transport", "smtp"),
    P_TIME("default_transport_rate_delay", "0s", 's', 0),
    P_STR("default_verp_delimiters", "+="),
    P_INT("defer_code", "450", 400, 599),
    P_STR("defer_service_name", "defer"),
    P_LIST("defer_transports", ""),
    P_INT("delay_logging_resolution_limit", "2", 0, INT_MAX),
    P_STR("delay_notice_recipient", "postmaster"),
    P_TIME("delay_warning_time", "0h", 'h', 0),
    P_INT("deliver_lock_attempts", "20", 1, INT_MAX),
    P_TIME("deliver_lock_delay", "1s", 's', 0),
    P_BOOL("detect_8bit_encoding_header", "yes"),
    P_BOOL("disable_dns_lookups", "no"),
    P_BOOL("disable_mime_input_processing", "no"),
    P_BOOL("disable_mime_output_conversion", "no"),
    P_BOOL("disable_vrfy_command", "yes"),
    P_LIST("dns_servers", ""),
    P_TIME("dns_timeout", "30s", 's', 1),
    P_INT("dont_remove", "0", 0, INT_MAX),
    P_STR("double_bounce_sender", "double-bounce"),
    P_INT("duplicate_filter_limit", "1000", 1, INT_MAX),
    P_STR("empty_address_default_transport_maps_lookup_key", "<>"),
    P_STR("empty_address_local_login_sender_maps_lookup_key", "<>"),
    P_STR("empty_address_recipient", "MAILER-DAEMON"),
    P_STR("empty_address_relayhost_maps_lookup_key", "<>"),
    P_BOOL("enable_long_queue_ids", "no"),
    P_BOOL("enable_original_recipient", "yes"),
    P_BOOL("enable_threaded_bounces", "no"),
    P_STR("error_notice_recipient", "postmaster"),
    P_STR("error_service_name", "error"),
    P_RAW("execution_directory_expansion_filter",
          "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    P_BOOL("expand_owner_alias", "no"),
    P_LIST("export_environment", "TZ MAIL_CONFIG LANG"),
    P_INT("extract_recipient_limit", "1000", 1, INT_MAX),
    P_STR("fallback_transport", ""),
    P_LIST("fallback_transport_maps", ""),
    P_INT("fork_attempts", "5", 1, INT_MAX),
    P_TIME("fork_delay", "1s", 's', 0),
    P_RAW("forward_expansion_filter",
          "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    P_RAW("forward_path", "$home/.forward${recipient_delimiter}${extension}, $home/.forward"),
    P_INT("hash_queue_depth", "1", 1, 16),
    P_LIST("hash_queue_names", "deferred, defer"),
    P_INT("header_address_token_limit", "10240", 1, INT_MAX),
    P_LIST("header_checks", ""),
    P_INT("header_count_limit", "1000", 1, INT_MAX),
    P_STR("header_from_format", "standard"),
    P_INT("header_size_limit", "102400", 1, INT_MAX),
    P_BOOL("helpful_warnings", "yes"),
    P_STR("home_mailbox", ""),
    P_INT("hopcount_limit", "50", 1, INT_MAX),
    P_BOOL("ignore_mx_lookup_error", "no"),
    P_LIST("import_environment", "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C "
                                 "POSTLOG_SERVICE POSTLOG_HOSTNAME"),
    P_TIME("in_flow_delay", "1s", 's', 0),
    P_LIST("inet_interfaces", "all"),
    P_LIST("inet_protocols", "all"),
    P_STR("info_log_address_format", "external"),
    P_INT("initial_destination_concurrency", "5", 1, INT_MAX),
    P_LIST("internal_mail_filter_classes", ""),
    P_INT("invalid_hostname_reject_code", "501", 400, 599),
    P_TIME("ipc_idle", "5s", 's', 1),
    P_TIME("ipc_timeout", "3600s", 's', 1),
    P_TIME("ipc_ttl", "1000s", 's', 1),
    P_LIST("known_tcp_ports", "lmtp=24, smtp=25, smtps=submissions=465, submission=587"),
    P_INT("line_length_limit", "2048", 1, INT_MAX),
    P_STR("lmtp_tcp_port", "24"),
    P_STR("local_command_shell", ""),
    P_STR("local_delivery_status_filter", "$default_delivery_status_filter"),
    P_INT("local_destination_concurrency_limit", "2", 1, INT_MAX),
    P_INT("local_destination_recipient_limit", "1", 1, INT_MAX),
    P_LIST("local_header_rewrite_clients", "permit_inet_interfaces"),
    P_STR("local_home_directory", ""),
    P_LIST("local_login_sender_maps", "static:*"),
    P_LIST("local_recipient_maps", "unix:passwd.byname $alias_maps"),
    P_STR("local_transport", "local:$myhostname"),
    P_RAW("luser_relay", ""),
    P_STR("mail_name", MAIL_NAME),
    P_STR("mail_owner", "postern"),
    P_STR("mail_spool_directory", "/var/mail"),
    P_STR("mail_version", MAIL_VERSION),
    P_RAW("mailbox_command", ""),
    P_LIST("mailbox_command_maps", ""),
    P_LIST("mailbox_delivery_lock", "fcntl, dotlock"),
    P_INT("mailbox_size_limit", "51200000", 0, LONG_MAX),
    P_STR("mailbox_transport", ""),
    P_LIST("mailbox_transport_maps", ""),
    P_STR("maillog_file", ""),
    P_STR("mailq_path", "$command_directory/mailq"),
    P_LIST("maps_rbl_domains", ""),
    P_INT("maps_rbl_reject_code", "554", 400, 599),
    P_LIST("masquerade_classes", "envelope_sender, header_sender, header_recipient"),
    P_LIST("masquerade_domains", ""),
    P_LIST("masquerade_exceptions", ""),
    P_LIST("master_service_disable", ""),
    P_TIME("max_idle", "100s", 's', 1),
    P_INT("max_use", "100", 1, INT_MAX),
    P_TIME("maximal_backoff_time", "4000s", 's', 1),
    P_TIME("maximal_queue_lifetime", "5d", 'd', 0),
    P_LIST("message_class_maps", ""),
    P_LIST("message_drop_headers", "bcc, content-length, resent-bcc, return-path"),
    P_LIST("message_priority_maps", ""),
    P_STR("message_reject_characters", ""),
    P_INT("message_size_limit", "10240000", 0, LONG_MAX),
    P_STR("message_strip_characters", ""),
    P_STR("meta_directory", "$config_directory"),
    P_INT("mime_boundary_length_limit", "2048", 1, INT_MAX),
    P_LIST("mime_header_checks", "$header_checks"),
    P_INT("mime_nesting_limit", "100", 1, INT_MAX),
    P_TIME("minimal_backoff_time", "300s", 's', 1),
    P_INT("multi_recipient_bounce_reject_code", "550", 400, 599),
    P_LIST("mydestination", "$myhostname, localhost.$mydomain, localhost"),
    P_COMPUTED("mydomain", PARAM_STR, mail_param_mydomain),
    P_COMPUTED("myhostname", PARAM_STR, mail_param_myhostname),
    P_COMPUTED("mynetworks", PARAM_LIST, mail_param_mynetworks),
    P_STR("mynetworks_style", "host"),
    P_STR("myorigin", "$myhostname"),
    P_LIST("nested_header_checks", "$header_checks"),
    P_STR("newaliases_path", "$command_directory/newaliases"),
    P_INT("non_fqdn_reject_code", "504", 400, 599),
    P_LIST("notify_classes", "resource, software, 2bounce"),
    P_BOOL("owner_request_special", "yes"),
    P_LIST("parent_domain_matches_subdomains",
           "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_"
           "authorized_clients,relay_domains,smtpd_access_maps"),
    P_LIST("permit_mx_backup_networks", ""),
    P_STR("pickup_service_name", "pickup"),
    P_STR("pipe_delivery_status_filter", "$default_delivery_status_filter"),
    P_INT("plaintext_reject_code", "450", 400, 599),
    P_LIST("prepend_delivered_header", "command, file, forward"),
    P_STR("process_id_directory", "pid"),
    P_LIST("propagate_unmatched_extensions", "canonical, virtual"),
    P_LIST("proxy_interfaces", ""),
    P_TIME("qmgr_daemon_timeout", "1000s", 's', 1),
    P_TIME("qmgr_delivery_timeout", "$daemon_timeout", 's', 1),
    P_INT("qmgr_fudge_factor", "100", 0, INT_MAX),
    P_INT("qmgr_immediate_bulk_ratio", "10", 1, INT_MAX),
    P_TIME("qmgr_incoming_purge_time", "600s", 's', 0),
    P_TIME("qmgr_ipc_timeout", "60s", 's', 1),
    P_INT("qmgr_message_active_limit", "20000", 1, INT_MAX),
    P_INT("qmgr_message_recipient_limit", "20000", 1, INT_MAX),
    P_INT("qmgr_message_recipient_minimum", "10", 1, INT_MAX),
    P_STR("queue_directory", "/var/spool/postern"),
    P_INT("queue_file_attribute_count_limit", "100", 0, INT_MAX),
    P_INT("queue_minfree", "0", 0, LONG_MAX),
    P_TIME("queue_run_delay", "300s", 's', 1),
    P_STR("queue_service_name", "qmgr"),
    P_LIST("rbl_reply_maps", ""),
    P_LIST("receive_override_options", ""),
    P_LIST("recipient_bcc_maps", ""),
    P_LIST("recipient_canonical_classes", "envelope_recipient, header_recipient"),
    P_LIST("recipient_canonical_maps", ""),
    P_STR("recipient_delimiter", ""),
    P_INT("reject_code", "554", 400, 599),
    P_LIST("relay_clientcerts", ""),
    P_LIST("relay_domains", ""),
    P_INT("relay_domains_reject_code", "554", 400, 599),
    P_LIST("relay_recipient_maps", ""),
    P_STR("relay_transport", "relay"),
    P_STR("relayhost", ""),
    P_LIST("relocated_maps", ""),
    P_STR("remote_header_rewrite_domain", ""),
    P_BOOL("require_home_directory", "no"),
    P_BOOL("reset_owner_alias", "no"),
    P_BOOL("resolve_dequoted_address", "yes"),
    P_BOOL("resolve_null_domain", "no"),
    P_BOOL("resolve_numeric_domain", "no"),
    P_BOOL("respectful_logging", "yes"),
    P_STR("rewrite_service_name", "rewrite"),
    P_BOOL("send_cyrus_sasl_authzid", "no"),
    P_LIST("sender_bcc_maps", ""),
    P_LIST("sender_canonical_classes", "envelope_sender, header_sender"),
    P_LIST("sender_canonical_maps", ""),
    P_LIST("sender_dependent_default_transport_maps", ""),
    P_LIST("sender_dependent_relayhost_maps", ""),
    P_STR("sendmail_fix_line_endings", "always"),
    P_STR("sendmail_path", "$command_directory/sendmail"),
    P_TIME("service_throttle_time", "60s", 's', 1),
    P_STR("setgid_group", "postdrop"),
    P_BOOL("show_user_unknown_table_name", "yes"),
    P_STR("showq_service_name", "showq"),
    P_STR("smtp_address_preference", "any"),
    P_STR("smtp_address_verify_target", "rcpt"),
    P_BOOL("smtp_always_send_ehlo", "yes"),
    P_BOOL("smtp_balance_inet_protocols", "yes"),
    P_STR("smtp_bind_address", ""),
    P_STR("smtp_bind_address6", ""),
    P_BOOL("smtp_bind_address_enforce", "no"),
    P_LIST("smtp_body_checks", ""),
    P_BOOL("smtp_cname_overrides_servername", "no"),
    P_TIME("smtp_connect_timeout", "30s", 's', 1),
    P_LIST("smtp_connection_cache_destinations", ""),
    P_BOOL("smtp_connection_cache_on_demand", "yes"),
    P_TIME("smtp_connection_cache_time_limit", "2s", 's', 0),
    P_INT("smtp_connection_reuse_count_limit", "0", 0, INT_MAX),
    P_TIME("smtp_connection_reuse_time_limit", "300s", 's', 0),
    P_TIME("smtp_data_done_timeout", "600s", 's', 1),
    P_TIME("smtp_data_init_timeout", "120s", 's', 1),
    P_TIME("smtp_data_xfer_timeout", "180s", 's', 1),
    P_BOOL("smtp_defer_if_no_mx_address_found", "no"),
    P_STR("smtp_delivery_status_filter", "$default_delivery_status_filter"),
    P_LIST("smtp_discard_ehlo_keyword_address_maps", ""),
    P_LIST("smtp_discard_ehlo_keywords", ""),
    P_STR("smtp_dns_reply_filter", ""),
    P_LIST("smtp_dns_resolver_options", ""),
    P_STR("smtp_dns_support_level", ""),
    P_LIST("smtp_fallback_relay", ""),
    P_LIST("smtp_generic_maps", ""),
    P_LIST("smtp_header_checks", ""),
    P_STR("smtp_helo_name", "$myhostname"),
    P_TIME("smtp_helo_timeout", "300s", 's', 1),
    P_STR("smtp_host_lookup", "dns"),
    P_INT("smtp_line_length_limit", "998", 0, INT_MAX),
    P_BOOL("smtp_lmtp", "no"),
    P_TIME("smtp_mail_timeout", "300s", 's', 1),
    P_LIST("smtp_mime_header_checks", ""),
    P_INT("smtp_min_data_rate", "500", 0, INT_MAX),
    P_INT("smtp_mx_address_limit", "5", 0, INT_MAX),
    P_INT("smtp_mx_session_limit", "2", 0, INT_MAX),
    P_LIST("smtp_nested_header_checks", ""),
    P_BOOL("smtp_per_request_deadline", "no"),
    P_TIME("smtp_quit_timeout", "300s", 's', 1),
    P_BOOL("smtp_quote_rfc821_envelope", "yes"),
    P_BOOL("smtp_randomize_addresses", "yes"),
    P_TIME("smtp_rcpt_timeout", "300s", 's', 1),
    P_STR("smtp_reply_filter", ""),
    P_TIME("smtp_rset_timeout", "20s", 's', 1),
    P_BOOL("smtp_sasl_auth_enable", "no"),
    P_STR("smtp_sasl_mechanism_filter", ""),
    P_LIST("smtp_sasl_password_maps", ""),
    P_STR("smtp_sasl_path", ""),
    P_LIST("smtp_sasl_security_options", "noplaintext, noanonymous"),
    P_LIST("smtp_sasl_tls_security_options", "noanonymous"),
    P_LIST("smtp_sasl_tls_verified_security_options", "$smtp_sasl_tls_security_options"),
    P_STR("smtp_sasl_type", "cyrus"),
    P_BOOL("smtp_sender_dependent_authentication", "no"),
    P_BOOL("smtp_skip_5xx_greeting", "yes"),
    P_BOOL("smtp_skip_quit_response", "yes"),
    P_TIME("smtp_starttls_timeout", "300s", 's', 1),
    P_STR("smtp_tcp_port", "smtp"),
    P_STR("smtp_tls_CAfile", ""),
    P_STR("smtp_tls_CApath", ""),
    P_BOOL("smtp_tls_block_early_mail_reply", "no"),
    P_STR("smtp_tls_cert_file", ""),
    P_LIST("smtp_tls_chain_files", ""),
    P_STR("smtp_tls_ciphers", "medium"),
    P_BOOL("smtp_tls_connection_reuse", "no"),
    P_STR("smtp_tls_dane_insecure_mx_policy",
          "${{$smtp_tls_security_level} == {dane} ? {dane} : {may}}"),
    P_STR("smtp_tls_dcert_file", ""),
    P_STR("smtp_tls_dkey_file", "$smtp_tls_dcert_file"),
    P_STR("smtp_tls_eccert_file", ""),
    P_STR("smtp_tls_eckey_file", "$smtp_tls_eccert_file"),
    P_STR("smtp_tls_exclude_ciphers", ""),
    P_STR("smtp_tls_fingerprint_cert_match", ""),
    P_STR("smtp_tls_fingerprint_digest", "sha256"),
    P_BOOL("smtp_tls_force_insecure_host_tlsa_lookup", "no"),
    P_STR("smtp_tls_key_file", "$smtp_tls_cert_file"),
    P_INT("smtp_tls_loglevel", "0", 0, INT_MAX),
    P_STR("smtp_tls_mandatory_ciphers", "medium"),
    P_STR("smtp_tls_mandatory_exclude_ciphers", ""),
    P_LIST("smtp_tls_mandatory_protocols", ">=TLSv1"),
    P_BOOL("smtp_tls_note_starttls_offer", "no"),
    P_LIST("smtp_tls_policy_maps", ""),
    P_LIST("smtp_tls_protocols", ">=TLSv1"),
    P_INT("smtp_tls_scert_verifydepth", "9", 0, INT_MAX),
    P_STR("smtp_tls_secure_cert_match", "nexthop, dot-nexthop"),
    P_STR("smtp_tls_security_level", ""),
    P_STR("smtp_tls_servername", ""),
    P_STR("smtp_tls_session_cache_database", ""),
    P_TIME("smtp_tls_session_cache_timeout", "3600s", 's', 0),
    P_STR("smtp_tls_trust_anchor_file", ""),
    P_STR("smtp_tls_verify_cert_match", "hostname"),
    P_BOOL("smtp_tls_wrappermode", "no"),
    P_STR("smtpd_banner", "$myhostname ESMTP $mail_name"),
    P_INT("smtpd_client_auth_failure_limit", "10", 0, INT_MAX),
    P_INT("smtpd_client_auth_rate_limit", "0", 0, INT_MAX),
    P_INT("smtpd_client_connection_count_limit", "50", 0, INT_MAX),
    P_INT("smtpd_client_connection_rate_limit", "0", 0, INT_MAX),
    P_LIST("smtpd_client_event_limit_exceptions", "$mynetworks"),
    P_INT("smtpd_client_message_rate_limit", "0", 0, INT_MAX),
    P_INT("smtpd_client_new_tls_session_rate_limit", "0", 0, INT_MAX),
    P_BOOL("smtpd_client_port_logging", "no"),
    P_INT("smtpd_client_recipient_rate_limit", "0", 0, INT_MAX),
    P_LIST("smtpd_client_restrictions", ""),
    P_STR("smtpd_command_filter", ""),
    P_LIST("smtpd_data_restrictions", ""),
    P_BOOL("smtpd_delay_open_until_valid_rcpt", "yes"),
    P_BOOL("smtpd_delay_reject", "yes"),
    P_LIST("smtpd_discard_ehlo_keyword_address_maps", ""),
    P_LIST("smtpd_discard_ehlo_keywords", ""),
    P_STR("smtpd_dns_reply_filter", ""),
    P_LIST("smtpd_end_of_data_restrictions", ""),
    P_BOOL("smtpd_enforce_tls", "no"),
    P_TIME("smtpd_error_sleep_time", "1s", 's', 0),
    P_LIST("smtpd_etrn_restrictions", ""),
    P_RAW("smtpd_expansion_filter",
          "\\t\\40!\"#$%&'()*+,-./"
          "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"),
    P_STR("smtpd_forbid_bare_newline", "reject"),
    P_LIST("smtpd_forbid_bare_newline_exclusions", "$mynetworks"),
    P_INT("smtpd_forbid_bare_newline_reject_code", "550", 400, 599),
    P_BOOL("smtpd_forbid_unauth_pipelining", "yes"),
    P_LIST("smtpd_forbidden_commands", "CONNECT GET POST"),
    P_INT("smtpd_hard_error_limit", "${stress?{1}:{20}}", 1, INT_MAX),
    P_BOOL("smtpd_helo_required", "no"),
    P_LIST("smtpd_helo_restrictions", ""),
    P_INT("smtpd_history_flush_threshold", "100", 0, INT_MAX),
    P_INT("smtpd_junk_command_limit", "${stress?{1}:{100}}", 0, INT_MAX),
    /* Postern: graceful close after the last reply (smtpd(8)); 0 closes at once. */
    P_TIME("smtpd_linger_time", "2s", 's', 0),
    P_LIST("smtpd_log_access_permit_actions", ""),
    P_INT("smtpd_min_data_rate", "500", 0, INT_MAX),
    P_LIST("smtpd_noop_commands", ""),
    P_STR("smtpd_null_access_lookup_key", "<>"),
    P_BOOL("smtpd_peername_lookup", "yes"),
    P_BOOL("smtpd_per_request_deadline", "${stress?{yes}:{no}}"),
    P_STR("smtpd_policy_service_default_action", "451 4.3.5 Server configuration problem"),
    P_TIME("smtpd_policy_service_max_idle", "300s", 's', 1),
    P_TIME("smtpd_policy_service_max_ttl", "1000s", 's', 1),
    P_INT("smtpd_policy_service_request_limit", "0", 0, INT_MAX),
    P_TIME("smtpd_policy_service_retry_delay", "1s", 's', 0),
    P_TIME("smtpd_policy_service_timeout", "100s", 's', 1),
    P_INT("smtpd_policy_service_try_limit", "2", 1, INT_MAX),
    P_STR("smtpd_proxy_ehlo", "$myhostname"),
    P_STR("smtpd_proxy_filter", ""),
    P_STR("smtpd_proxy_options", ""),
    P_TIME("smtpd_proxy_timeout", "100s", 's', 1),
    P_INT("smtpd_recipient_limit", "1000", 1, INT_MAX),
    P_INT("smtpd_recipient_overshoot_limit", "1000", 0, INT_MAX),
    P_LIST("smtpd_recipient_restrictions", ""),
    P_RAW("smtpd_reject_footer", ""),
    P_LIST("smtpd_reject_footer_maps", ""),
    P_BOOL("smtpd_reject_unlisted_recipient", "yes"),
    P_BOOL("smtpd_reject_unlisted_sender", "no"),
    P_BOOL("smtpd_relay_before_recipient_restrictions", "yes"),
    P_LIST("smtpd_relay_restrictions",
           "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"),
    P_LIST("smtpd_restriction_classes", ""),
    P_BOOL("smtpd_sasl_auth_enable", "no"),
    P_BOOL("smtpd_sasl_auth_required", "no"),
    P_BOOL("smtpd_sasl_authenticated_header", "no"),
    P_TIME("smtpd_sasl_backend_timeout", "10s", 's', 1),
    P_INT("smtpd_sasl_crypt_workers", "2", 1, 64),
    P_LIST("smtpd_sasl_exceptions_networks", ""),
    P_STR("smtpd_sasl_local_domain", ""),
    P_STR("smtpd_sasl_mechanism_filter", "!external, static:rest"),
    P_LIST("smtpd_sasl_password_maps", ""),
    P_STR("smtpd_sasl_path", "smtpd"),
    P_LIST("smtpd_sasl_postern_mechanisms", "PLAIN, LOGIN"),
    P_INT("smtpd_sasl_response_limit", "12288", 0, INT_MAX),
    P_LIST("smtpd_sasl_security_options", "noanonymous"),
    P_STR("smtpd_sasl_service", "smtp"),
    P_LIST("smtpd_sasl_tls_security_options", "$smtpd_sasl_security_options"),
    P_STR("smtpd_sasl_type", "postern"),
    P_LIST("smtpd_sender_login_maps", ""),
    P_LIST("smtpd_sender_restrictions", ""),
    P_TIME("smtpd_session_time_limit", "3600s", 's', 1),
    P_INT("smtpd_soft_error_limit", "10", 0, INT_MAX),
    P_TIME("smtpd_starttls_timeout", "${stress?{10}:{300}}s", 's', 1),
    P_TIME("smtpd_timeout", "${stress?{10}:{300}}s", 's', 1),
    P_STR("smtpd_tls_CAfile", ""),
    P_STR("smtpd_tls_CApath", ""),
    P_BOOL("smtpd_tls_always_issue_session_ids", "yes"),
    P_BOOL("smtpd_tls_ask_ccert", "no"),
    P_BOOL("smtpd_tls_auth_only", "no"),
    P_INT("smtpd_tls_ccert_verifydepth", "9", 0, INT_MAX),
    P_STR("smtpd_tls_cert_file", ""),
    P_LIST("smtpd_tls_chain_files", ""),
    P_STR("smtpd_tls_ciphers", "medium"),
    P_STR("smtpd_tls_dcert_file", ""),
    P_STR("smtpd_tls_dh1024_param_file", ""),
    P_STR("smtpd_tls_dkey_file", "$smtpd_tls_dcert_file"),
    P_STR("smtpd_tls_eccert_file", ""),
    P_STR("smtpd_tls_eckey_file", "$smtpd_tls_eccert_file"),
    P_STR("smtpd_tls_eecdh_grade", "auto"),
    P_STR("smtpd_tls_exclude_ciphers", ""),
    P_STR("smtpd_tls_fingerprint_digest", "sha256"),
    P_STR("smtpd_tls_key_file", "$smtpd_tls_cert_file"),
    P_INT("smtpd_tls_loglevel", "0", 0, INT_MAX),
    P_STR("smtpd_tls_mandatory_ciphers", "medium"),
    P_STR("smtpd_tls_mandatory_exclude_ciphers", ""),
    /* Postern: TLS 1.0 and 1.1 are refused unless main.cf allows them. */
    P_LIST("smtpd_tls_mandatory_protocols", ">=TLSv1.2"),
    P_LIST("smtpd_tls_protocols", ">=TLSv1.2"),
    /* Postern: the Received: header names the TLS protocol and cipher. */
    P_BOOL("smtpd_tls_received_header", "yes"),
    P_BOOL("smtpd_tls_req_ccert", "no"),
    P_STR("smtpd_tls_security_level", ""),
    P_STR("smtpd_tls_session_cache_database", ""),
    P_TIME("smtpd_tls_session_cache_timeout", "3600s", 's', 0),
    P_BOOL("smtpd_tls_wrappermode", "no"),
    P_STR("smtpd_upstream_proxy_protocol", ""),
    P_TIME("smtpd_upstream_proxy_timeout", "5s", 's', 0),
    P_BOOL("smtpd_use_tls", "no"),
    P_LIST("smtputf8_autodetect_classes", "sendmail, verify"),
    P_BOOL("smtputf8_enable", "yes"),
    P_BOOL("soft_bounce", "no"),
    P_TIME("stale_lock_time", "500s", 's', 1),
    P_STR("stress", ""),
    P_BOOL("strict_7bit_headers", "no"),
    P_BOOL("strict_8bitmime", "no"),
    P_BOOL("strict_8bitmime_body", "no"),
    P_BOOL("strict_mailbox_ownership", "yes"),
    P_BOOL("strict_mime_encoding_domain", "no"),
    P_BOOL("strict_rfc821_envelopes", "no"),
    P_BOOL("strict_smtputf8", "no"),
    P_BOOL("swap_bangpath", "yes"),
    P_STR("syslog_facility", "mail"),
    P_STR("syslog_name", "postfix"),
    P_INT("tcp_windowsize", "0", 0, INT_MAX),
    P_BOOL("tls_append_default_CA", "no"),
    P_LIST("tls_dane_digests", "sha512 sha256"),
    P_STR("tls_disable_workarounds", ""),
    P_LIST("tls_eecdh_auto_curves", "X25519 X448 prime256v1 secp521r1 secp384r1"),
    P_STR("tls_eecdh_strong_curve", "prime256v1"),
    P_STR("tls_eecdh_ultra_curve", "secp384r1"),
    P_BOOL("tls_fast_shutdown_enable", "yes"),
    P_STR("tls_high_cipherlist", "aNULL:-aNULL:HIGH:@STRENGTH"),
    P_STR("tls_medium_cipherlist", "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH"),
    /* Postern: the server's cipher order wins. */
    P_BOOL("tls_preempt_cipherlist", "yes"),
    P_LIST("tls_server_sni_maps", ""),
    P_STR("tls_session_ticket_cipher", "aes-256-cbc"),
    P_LIST("tls_ssl_options", ""),
    P_BOOL("tls_wildcard_matches_multiple_labels", "yes"),
    P_STR("trace_service_name", "trace"),
    P_LIST("transport_maps", ""),
    P_TIME("transport_retry_time", "60s", 's', 0),
    P_TIME("trigger_timeout", "10s", 's', 1),
    P_STR("undisclosed_recipients_header", ""),
    P_INT("unknown_address_reject_code", "450", 400, 599),
    P_INT("unknown_client_reject_code", "450", 400, 599),
    P_INT("unknown_hostname_reject_code", "450", 400, 599),
    P_INT("unknown_local_recipient_reject_code", "550", 400, 599),
    P_INT("unknown_relay_recipient_reject_code", "550", 400, 599),
    P_INT("unknown_virtual_alias_reject_code", "550", 400, 599),
    P_INT("unknown_virtual_mailbox_reject_code", "550", 400, 599),
    P_INT("virtual_alias_address_length_limit", "1000", 0, INT_MAX),
    P_LIST("virtual_alias_domains", "$virtual_alias_maps"),
    P_INT("virtual_alias_expansion_limit", "1000", 1, INT_MAX),
    P_LIST("virtual_alias_maps", ""),
    P_INT("virtual_alias_recursion_limit", "1000", 1, INT_MAX),
    P_STR("virtual_delivery_status_filter", "$default_delivery_status_filter"),
    P_LIST("virtual_gid_maps", ""),
    P_STR("virtual_mailbox_base", ""),
    P_LIST("virtual_mailbox_domains", "$virtual_mailbox_maps"),
    P_INT("virtual_mailbox_limit", "51200000", 0, LONG_MAX),
    P_STR("virtual_mailbox_lock", "fcntl, dotlock"),
    P_LIST("virtual_mailbox_maps", ""),
    P_INT("virtual_minimum_uid", "100", 0, INT_MAX),
    P_STR("virtual_transport", "virtual"),
    P_LIST("virtual_uid_maps", ""),
    {NULL, PARAM_STR, NULL, NULL, 0, 0, 0},
};

#define MAIL_PARAM_COUNT (sizeof(mail_param_table) / sizeof(mail_param_table[0]) - 1)

/* mail_param_count - entries in the table, the end marker not counted */
size_t mail_param_count(void)
{
    return MAIL_PARAM_COUNT;
}

/* mail_param_check_order - the bisection below needs a strictly sorted table */
static void mail_param_check_order(void)
{
    static int checked;

    if (checked)
        return;
    for (size_t i = 1; i < MAIL_PARAM_COUNT; i++)
        if (strcmp(mail_param_table[i - 1].name, mail_param_table[i].name) >= 0)
            msg_panic("mail_param_table: \"%s\" is out of order or repeated",
                      mail_param_table[i].name);
    checked = 1;
}

/* mail_param_find - table entry by name, NULL when unknown */
const MAIL_PARAM *mail_param_find(const char *name)
{
    size_t lo = 0, hi = MAIL_PARAM_COUNT;

    mail_param_check_order();
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(name, mail_param_table[mid].name);

        if (cmp == 0)
            return &mail_param_table[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* mail_param_default - the default text; computed defaults are computed now */
const char *mail_param_default(const MAIL_PARAM *p)
{
    if (p->compute)
        return p->compute();
    return p->defval ? p->defval : "";
}

/* mail_param_expand_quiet - expand text, or NULL on error (computed defaults must not die) */
static const char *mail_param_expand_quiet(const char *text, VSTR *buf)
{
    VSTR *why = vstr_alloc(64);
    int r = mail_conf_expand(text, buf, why);

    vstr_free(why);
    return r < 0 ? NULL : vstr_str(buf);
}

/* mail_param_hosts_fqdn - a name "short.domain" that /etc/hosts gives for short */
static int mail_param_hosts_fqdn(const char *shortname, char *out, size_t outlen)
{
    char line[MAIL_PARAM_HOSTS_LINE];
    size_t slen = strlen(shortname);
    int found = 0;
    FILE *fp = fopen("/etc/hosts", "re");

    if (fp == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), fp) != NULL) {
        char *cp = line, *tok;
        int first = 1;

        if (strchr(line, '\n') == NULL && !feof(fp)) {
            /* Overlong line: skip the rest of it rather than misparse it. */
            int ch;

            while ((ch = getc(fp)) != EOF && ch != '\n')
                ;
            continue;
        }
        if ((tok = strchr(line, '#')) != NULL)
            *tok = 0;
        while ((tok = mystrtok(&cp, " \t\r\n")) != NULL) {
            if (first) { /* the address */
                first = 0;
                continue;
            }
            if (strncasecmp(tok, shortname, slen) == 0 && tok[slen] == '.' && tok[slen + 1] &&
                strlen(tok) < outlen) {
                snprintf(out, outlen, "%s", tok);
                found = 1;
                break;
            }
        }
    }
    fclose(fp);
    return found;
}

/*
 * mail_param_myhostname - the host's name, fully qualified if possible: the
 * name from gethostname() when it has a dot, else the first "name.domain"
 * alias that /etc/hosts lists for it, else name.$mydomain when main.cf sets
 * mydomain to a literal, else name.localdomain. No DNS query: a daemon must
 * start the same way with the network down.
 */
static const char *mail_param_myhostname(void)
{
    static char result[MAIL_PARAM_HOST_MAX + 1];
    char host[MAIL_PARAM_HOST_MAX + 1];
    const char *domain;

    if (gethostname(host, sizeof(host)) < 0 || host[0] == 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = 0;
    if (strchr(host, '.') != NULL) {
        snprintf(result, sizeof(result), "%s", host);
    } else if (mail_param_hosts_fqdn(host, result, sizeof(result))) {
        /* result set */
    } else {
        domain = mail_conf_is_set("mydomain") ? mail_conf_raw("mydomain") : NULL;
        if (domain == NULL || *domain == 0 || strchr(domain, '$') != NULL)
            domain = MAIL_PARAM_DEF_DOMAIN;
        int n = snprintf(result, sizeof(result), "%s.%s", host, domain);

        if (n < 0 || (size_t)n >= sizeof(result)) /* too long to be a host name */
            snprintf(result, sizeof(result), "%s", host);
    }
    return result;
}

/*
 * mail_param_mydomain - $myhostname without its first label when at least
 * two labels remain (mail.example.com -> example.com), else "localdomain",
 * as Postfix does.
 */
static const char *mail_param_mydomain(void)
{
    static char result[MAIL_PARAM_HOST_MAX + 1];
    VSTR *buf = vstr_alloc(64);
    const char *host = mail_param_expand_quiet("$myhostname", buf);
    const char *dot;

    if (host != NULL && (dot = strchr(host, '.')) != NULL && strchr(dot + 1, '.') != NULL &&
        strlen(dot + 1) < sizeof(result))
        snprintf(result, sizeof(result), "%s", dot + 1);
    else
        snprintf(result, sizeof(result), "%s", MAIL_PARAM_DEF_DOMAIN);
    vstr_free(buf);
    return result;
}

/* mail_param_net_add - append "addr/len" (IPv6 in brackets) unless already listed */
static void mail_param_net_add(VSTR *list, int family, const void *addr, int prefix)
{
    char text[INET6_ADDRSTRLEN];
    char item[INET6_ADDRSTRLEN + 8];

    if (inet_ntop(family, addr, text, sizeof(text)) == NULL)
        return;
    if (family == AF_INET6)
        snprintf(item, sizeof(item), "[%s]/%d", text, prefix);
    else
        snprintf(item, sizeof(item), "%s/%d", text, prefix);
    /* Duplicates: compare whole white-space separated items. */
    for (const char *cp = vstr_str(list); (cp = strstr(cp, item)) != NULL; cp++) {
        size_t n = strlen(item);

        if ((cp == vstr_str(list) || cp[-1] == ' ') && (cp[n] == 0 || cp[n] == ' '))
            return;
    }
    if (vstr_len(list) > 0)
        vstr_addch(list, ' ');
    vstr_cat(list, item);
}

/* mail_param_mask - clear the host bits past prefix */
static void mail_param_mask(unsigned char *addr, size_t len, int prefix)
{
    for (size_t i = 0; i < len; i++) {
        int bits = prefix - (int)(i * 8);

        if (bits >= 8)
            continue;
        addr[i] &= bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
    }
}

/* mail_param_prefix_len - number of leading one bits in a netmask */
static int mail_param_prefix_len(const unsigned char *mask, size_t len)
{
    int n = 0;

    for (size_t i = 0; i < len; i++)
        for (int b = 7; b >= 0; b--) {
            if (!(mask[i] & (1 << b)))
                return n;
            n++;
        }
    return n;
}

/*
 * mail_param_mynetworks - the trusted networks for $mynetworks_style:
 * "host" trusts the loopback networks and this machine's own addresses,
 * "subnet" the networks of its interfaces, "class" their whole IPv4 class
 * A/B/C networks (IPv6 as subnet). IPv6 link-local networks are left out:
 * without a scope they would match on every interface.
 */
static const char *mail_param_mynetworks(void)
{
    static VSTR *result;
    VSTR *buf = vstr_alloc(16);
    const char *style = mail_param_expand_quiet("$mynetworks_style", buf);
    struct ifaddrs *ifap = NULL;
    struct in_addr lo4;
    struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;

    if (result == NULL)
        result = vstr_alloc(128);
    vstr_reset(result);
    if (style == NULL)
        style = "host";
    inet_pton(AF_INET, "127.0.0.0", &lo4);
    mail_param_net_add(result, AF_INET, &lo4, 8);
    mail_param_net_add(result, AF_INET6, &lo6, 128);
    if (getifaddrs(&ifap) == 0) {
        for (struct ifaddrs *ifa = ifap; ifa != NULL; ifa = ifa->ifa_next) {
            if (ifa->ifa_addr == NULL || !(ifa->ifa_flags & IFF_UP) ||
                (ifa->ifa_flags & IFF_LOOPBACK))
                continue;
            if (ifa->ifa_addr->sa_family == AF_INET) {
                struct in_addr a = ((struct sockaddr_in *)(void *)ifa->ifa_addr)->sin_addr;
                unsigned char *b = (unsigned char *)&a;
                int prefix = 32;

                if (strcasecmp(style, "subnet") == 0 && ifa->ifa_netmask != NULL) {
                    struct in_addr m = ((struct sockaddr_in *)(void *)ifa->ifa_netmask)->sin_addr;

                    prefix = mail_param_prefix_len((unsigned char *)&m, 4);
                } else if (strcasecmp(style, "class") == 0) {
                    prefix = b[0] < 128 ? 8 : b[0] < 192 ? 16 : 24;
                }
                mail_param_mask(b, 4, prefix);
                mail_param_net_add(result, AF_INET, &a, prefix);
            } else if (ifa->ifa_addr->sa_family == AF_INET6) {
                struct in6_addr a = ((struct sockaddr_in6 *)(void *)ifa->ifa_addr)->sin6_addr;
                int prefix = 128;

                if (IN6_IS_ADDR_LINKLOCAL(&a))
                    continue;
                if (strcasecmp(style, "host") != 0 && ifa->ifa_netmask != NULL) {
                    struct in6_addr m =
                        ((struct sockaddr_in6 *)(void *)ifa->ifa_netmask)->sin6_addr;

                    prefix = mail_param_prefix_len(m.s6_addr, 16);
                }
                mail_param_mask(a.s6_addr, 16, prefix);
                mail_param_net_add(result, AF_INET6, &a, prefix);
            }
        }
        freeifaddrs(ifap);
    }
    vstr_free(buf);
    return vstr_str(result);
}
