// The gateway's configuration: parsed and validated once (YAML file, then
// command-line flags on top) into this immutable struct. Every key and its
// default is documented in docs/configuration.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace sgw::app {

enum class Transport { kUdp, kTcp, kTls };

struct ListenAddress {
  Transport transport = Transport::kUdp;
  std::string address;  // literal IPv4/IPv6 address ("::1" without brackets)
  std::uint16_t port = 5060;
  std::string to_string() const;  // "udp:127.0.0.1:5060", "tcp:[::1]:5060", "tls:127.0.0.1:5061"
};

struct Config {
  // node.*
  std::string node_name;           // default: the host name
  std::string region = "local";

  // sip.*
  std::vector<ListenAddress> listen;  // default: udp+tcp on 127.0.0.1:5060
  std::uint32_t max_sessions = 10000;
  std::uint32_t retry_after_s = 30;   // Retry-After on 503
  std::uint32_t max_message_bytes = 4 * 1024 * 1024;  // also bounds one TCP read (sofia)
  std::uint32_t udp_receive_buffer_bytes = 4 * 1024 * 1024;  // SO_RCVBUF of SIP UDP sockets
  std::uint32_t answer_delay_ms = 0;  // delay before the final answer to INVITE (tests, pacing)
  std::uint32_t tcp_idle_timeout_s = 300;    // idle TCP connection without dialogs closed; 0 = never
  std::uint32_t tcp_message_timeout_s = 30;  // incomplete TCP message dropped with its connection; 0 = never
  std::uint32_t max_connections_per_source = 128;  // TCP connections per source address; 0 = unlimited
  std::uint32_t min_session_expires_s = 90;  // RFC 4028 Min-SE: shorter Session-Expires get 422
  // Per-source limits (docs/security.md).
  std::vector<std::string> allowed_sources;        // CIDR list; empty: everyone
  std::uint32_t invite_rate_per_source = 0;        // INVITEs per second per source (token bucket); 0 = off
  std::uint32_t invite_burst_per_source = 100;     // bucket size
  std::uint32_t max_sessions_per_source = 0;       // concurrent sessions per source address; 0 = unlimited
  std::uint32_t max_streams_per_session = 16;      // m-lines in one offer; more: 488

  // media.*
  std::string media_address = "127.0.0.1";
  std::uint16_t rtp_port_min = 10000;
  std::uint16_t rtp_port_max = 20000;
  std::uint32_t media_workers = 0;     // 0: one per core
  std::uint32_t media_timeout_s = 60;
  std::uint32_t max_paused_s = 7200;   // every stream paused/held this long: BYE (0: never)
  std::string latch = "address_port";  // address_port | address: RTP source check after the first packet
  std::vector<std::string> codecs{"PCMA", "PCMU", "G722", "opus", "G729"};  // preference order
  std::string srtp = "off";  // off | allow | require: SDES-SRTP (RTP/SAVP) offers (docs/security.md "SRTP")
  std::uint32_t reorder_window_ms = 60;

  // recording.*
  std::string recordings_dir = "var/recordings";
  std::string spool_dir = "var/spool";
  std::string recording_format = "wav";  // wav | wav-ulaw | wav-alaw | flac | ogg-opus
  std::string key_template = "{yyyy}/{mm}/{dd}/{conversation_id}/{recording_id}";
  std::uint32_t fsync_interval_ms = 1000;
  std::string spool_sync = "filesystem";  // filesystem (one syncfs per pass) | file (fdatasync each)
  std::string caller_channel = "left";   // left | right (two-party stereo files)
  std::string multi_stream_mode = "multichannel";  // multichannel | mono-files
  bool keep_spool = false;               // keep the spool file after finalisation
  std::uint32_t finalize_workers = 1;     // finalisations at once (each holds one recording's tracks)
  std::uint32_t finalize_queue = 4096;    // finalisations queued at most; beyond, the rescan finds them
  std::uint32_t finalize_rescan_s = 30;   // spool folder listed for spools nobody queued
  std::uint32_t silence_warning_s = 10;   // a stream silent (not paused) this long gets a warning
  std::uint32_t min_free_mb = 64;         // spool filesystem below this: 503 to new sessions (0: off)
  std::uint32_t segment_s = 5;            // in-call shipping of spool partials to S3 (0: off; docs/failover.md)

  // storage.* (docs/storage.md)
  std::string queue_dir;                     // empty: <recording.spool_dir>/../deliveries
  std::uint32_t local_retention_days = 30;   // local copy kept this long after verified delivery
  std::uint32_t max_backlog_age_s = 0;       // undelivered recording older: 503 to new sessions (0: off)

  // drain.* (docs/failover.md)
  std::uint32_t drain_max_s = 0;  // drain: sessions still open after this get BYE (0: at once)

  // s3.* (the S3 sink; off while s3.bucket is empty)
  std::string s3_bucket;
  std::string s3_endpoint;  // empty: https://s3.<region>.amazonaws.com
  std::string s3_region = "us-east-1";
  bool s3_path_style = false;
  std::string s3_prefix;  // prepended to every key ("recs" -> "recs/...")
  std::string s3_key_template = "{region}/{yyyy}/{mm}/{dd}/{conversation_id}/{recording_id}";
  std::string s3_retention_mode;  // "" (none), COMPLIANCE, GOVERNANCE
  std::uint32_t s3_retention_days = 0;
  std::uint32_t s3_retention_years = 0;
  bool s3_legal_hold = false;
  std::string s3_sse;  // "" (none), AES256, aws:kms
  std::string s3_kms_key_id;
  std::map<std::string, std::string> s3_tags;
  std::uint32_t s3_multipart_threshold_mb = 16;
  std::uint32_t s3_part_size_mb = 8;
  std::uint32_t s3_parallel_uploads = 4;
  std::uint32_t s3_max_backoff_s = 300;
  std::string s3_access_key;  // optional; else AWS_* environment, else the shared credentials file
  std::string s3_secret_key;
  std::string s3_session_token;
  std::string s3_profile;  // shared credentials file profile (else AWS_PROFILE, else default)
  std::string s3_ca_file;
  std::string s3_partials_bucket;  // partials (no Object Lock); empty: s3.bucket when it has no retention_mode
  // Residency (docs/failover.md): the primary bucket's zone, the fallback
  // buckets (same endpoint and credentials; each in the same zone), and how
  // long the primary must fail before deliveries go to a fallback.
  struct S3FallbackBucket {
    std::string bucket;
    std::string zone;
    bool operator==(const S3FallbackBucket&) const = default;
  };
  std::string s3_zone;
  std::vector<S3FallbackBucket> s3_fallback_buckets;
  std::uint32_t s3_fallback_after_s = 300;

  // recovery.* (orphan adoption, docs/failover.md)
  bool recovery_adopt = false;              // adopt other nodes' orphaned partials periodically
  std::uint32_t recovery_orphan_after_s = 60;  // a recording whose partials stopped this long is orphaned
  std::uint32_t recovery_interval_s = 30;      // adoption pass cadence

  // metadata.*
  std::uint32_t metadata_max_bytes = 256 * 1024;
  std::uint32_t metadata_max_depth = 32;
  std::vector<std::string> conversation_id_rules{
      "header:X-GenesysConversationID", "header:X-Genesys-Conversation-ID",
      "header:X-Conversation-ID", "extension:session:GenesysConversationID",
      "extension:group:GenesysConversationID", "extension:any:ConversationID",
      "metadata:session_id"};

  // tls.* (SIP over TLS on the tls: listen addresses; docs/security.md "TLS")
  std::string tls_cert_file;  // PEM chain: our certificate first, then intermediates
  std::string tls_key_file;   // PEM private key
  std::string tls_ca_file;    // PEM CAs for client certificates (mutual TLS)
  bool tls_verify_client = false;                 // require a client certificate chaining to tls.ca_file
  std::vector<std::string> tls_allowed_subjects;  // CN/SAN globs; others get 403 (needs verify_client)
  std::string tls_ciphers;                        // TLS 1.2 cipher list; empty: OpenSSL default
  std::string tls_min_version = "1.2";            // 1.2 | 1.3
  std::uint32_t tls_handshake_timeout_ms = 10000;

  // stream.* (live audio over WebSocket, docs/integrations.md "Live audio")
  std::string stream_url;                      // ws:// or wss://; empty: no streaming
  std::string stream_protocol = "audiohook";   // audiohook | plain
  std::string stream_ca_file;                  // wss://: CAs to verify the server; empty: system store
  std::string stream_api_key;                  // sent as X-API-KEY
  std::string stream_organization_id;          // AudioHook organizationId
  std::uint32_t stream_queue_packets = 256;    // per call: RTP packets waiting for the streaming thread
  std::uint32_t stream_max_queued_frames = 50; // per call: 20 ms frames waiting for the socket
  std::uint32_t stream_delay_ms = 60;          // how late a packet may be and still be in its frame
  std::uint32_t stream_ping_interval_s = 5;    // AudioHook ping; 0: none

  // http.*
  std::string http_listen;  // "ADDR:PORT"; empty: no HTTP server

  // log.*
  std::string log_level = "info";
  bool redact_personal_data = false;  // log.redact (or log.redact_personal_data)
  std::string log_format = "text";   // "text" | "json"

  // hooks.* (call-control hook, docs/integrations.md)
  std::string hooks_invite_url;       // empty: no hook
  std::string hooks_update_url;       // empty: re-INVITE metadata updates are not sent
  std::uint32_t hooks_timeout_ms = 300;
  std::string hooks_on_error = "record";  // record | reject (480)

  // events.* (event webhooks, docs/integrations.md)
  std::string events_url;                  // empty: no events
  std::string events_secret;               // HMAC-SHA256 key of X-Siprec-Signature
  std::uint32_t events_timeout_ms = 5000;  // one POST
  std::uint32_t events_max_backoff_s = 60;
};

// The embedded default (what `siprecd` with no arguments runs): node_name is
// gethostname() (or "siprecd" if that is unusable), everything else as above.
Config default_config();

// Command-line overrides collected by the CLI (empty/unset fields are not applied).
struct CliOverrides {
  std::vector<std::string> listen;
  std::string media_address;
  std::string rtp_ports;  // "MIN-MAX"
  std::string recordings_dir;
  std::string spool_dir;
  std::string http_listen;
  std::string log_level;
  // S3 quick start
  std::string s3_bucket;
  std::string s3_endpoint;
  std::string s3_region;
  bool s3_path_style = false;
  std::string s3_prefix;
  std::string retention_mode;
  std::string retention_days;  // decimal
};

// File descriptors the daemon may need at once: one per RTP/RTCP port of
// media.rtp_ports, one spool file per session up to sip.max_sessions (and
// kPartialsInFlight more per session while partials are shipped), and
// kDescriptorHeadroom for SIP/HTTP connections, storage and libraries.
constexpr std::uint64_t kDescriptorHeadroom = 4096;
std::uint64_t descriptors_needed(const Config& config);
// Partials cut and not yet uploaded, at most (SegmentShipperOptions::max_in_flight).
inline constexpr std::uint64_t kPartialsInFlight = 2;
// The part without which the daemon cannot run at all: the RTP range plus the headroom.
std::uint64_t descriptors_required(const Config& config);

// Where partials go (docs/failover.md): s3.partials_bucket, else s3.bucket when
// it has no Object Lock (s3.retention_mode unset), else "" (shipping off).
std::string partials_bucket(const Config& config);

// The delivery queue folder: storage.queue_dir, or <spool_dir>/../deliveries.
std::string delivery_queue_dir(const Config& config);

// Loads a YAML file over the defaults and validates the result. An error names
// the file, the line and the key (e.g. "siprecd.yaml:12: media.rtp_ports:
// expected MIN-MAX with MIN < MAX, got '20000-10000'"); unknown keys are
// errors. Start-up plane: yaml-cpp's exceptions are caught and converted.
common::Result<Config> load_config_file(const std::string& path);

// As load_config_file, for YAML text already in memory; `source` names it in
// error messages (a file name, or "<string>").
common::Result<Config> load_config_text(const std::string& text,
                                        const std::string& source = "<string>");

// Applies flag overrides (non-empty fields only; a non-empty `listen` replaces
// the whole list) and validates the result. Errors name the flag
// ("--rtp-ports: expected MIN-MAX ..."); cross-field errors name the key.
common::Result<Config> apply_overrides(Config config, const CliOverrides& cli);

// Checks every field and the cross-field rules (port ranges, addresses are
// literals, listen non-empty without duplicates, dirs non-empty and distinct,
// codec names canonical, ...). The error names the dotted key.
common::Status validate(const Config& config);

// "udp:127.0.0.1:5060" / "tcp:[::1]:5060" / "udp:0.0.0.0:5080". The address
// must be a literal (IPv6 in brackets); it is stored in canonical form
// (inet_ntop), so "[::0001]" and "[::1]" compare equal. Port 1-65535.
common::Result<ListenAddress> parse_listen(const std::string& text);

// An address and port, as in http.listen.
struct HostPort {
  std::string address;  // literal IPv4/IPv6 address, canonical form, no brackets
  std::uint16_t port = 0;
};

// "127.0.0.1:8080" / "[::1]:8080"; port 1-65535.
common::Result<HostPort> parse_host_port(const std::string& text);

}  // namespace sgw::app
