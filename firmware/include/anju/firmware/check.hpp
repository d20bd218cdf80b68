// `anju check`, the installer's self-check, and `anju outbox`.
//
// Every check ends in one line: ok, warn or FAIL, what was found and, when it is not ok, how to fix
// it. The decisions are pure functions of what was measured (evaluate_*, silent_devices,
// outbox_view), unit-tested on their own; the probes that measure (statvfs, adjtimex, /proc, the
// status socket, a Paho connection to the local broker, a TCP + OpenSSL handshake with the city
// broker) are thin and only gather numbers and error texts. run_checks() runs them all in order.
// Thread: everything here runs on the caller's thread (the CLI's main thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anju/edge/journal.hpp"
#include "anju/firmware/config.hpp"

namespace anju::firmware {

enum class CheckStatus { ok, warn, fail };
std::string_view to_string(CheckStatus s);  // "ok", "warn", "FAIL"

struct CheckResult {
  std::string check;  // short name: config, clock, disk, flash_wear, local_broker, ...
  CheckStatus status = CheckStatus::ok;
  std::string message;  // what was found, in words a person reads
  std::string fix;      // how to fix it; empty when ok
};

// One line per check ("FAIL  local_broker  <message> -- fix: <fix>") and a count at the end.
std::string render_check_text(const std::vector<CheckResult>& results);
// [{"check","status":"ok"|"warn"|"fail","message","fix"}], keys in that order.
nlohmann::ordered_json check_results_json(const std::vector<CheckResult>& results);
// 1 when any check failed, else 0 (warnings do not fail).
int check_exit_code(const std::vector<CheckResult>& results);

// --- Pure decisions ------------------------------------------------------------------------------

// The config loader's verdict; its errors are reported verbatim.
CheckResult evaluate_config(const std::string& path, const ConfigResult& loaded);

// What adjtimex(2) said: its return value (TIME_ERROR = 5 when unsynchronised) and status bits.
struct ClockReading {
  int state = 0;
  int status = 0;  // STA_* bits; STA_UNSYNC = 0x40
  long max_error_us = 0;
  std::string error;  // adjtimex itself failed
};
CheckResult evaluate_clock(const ClockReading& c);

// statvfs of the data dir, as bytes (f_frsize * f_blocks, f_frsize * f_bavail).
struct DiskSpace {
  std::uint64_t total_bytes = 0;
  std::uint64_t avail_bytes = 0;
};
// FAIL below 5 % or 100 MiB free, warn below 15 %, and warn when the journal (db + WAL, now
// `journal_bytes`) could grow to journal.max_bytes but the disk has no room for it.
CheckResult evaluate_disk(const std::string& dir, const DiskSpace& d, std::int64_t journal_bytes,
                          std::int64_t journal_max_bytes);

// anjud's own writes: /proc/<pid>/io write_bytes (bytes it caused to be written to storage:
// journal, WAL, inbox, everything) over its uptime.
struct WriteSample {
  std::int64_t pid = 0;
  std::int64_t write_bytes = 0;
  double uptime_s = 0;
};
// The projected bytes written per day and, from the file system's size, how long flash rated
// for 3,000 write cycles per cell would last at that rate (no write amplification counted):
// warn below 5 years. Too short an uptime (< 10 min) only reports what was measured so far.
// `why_not`: why there is no sample (anjud not running, /proc not readable).
CheckResult evaluate_flash_wear(const std::optional<WriteSample>& sample,
                                const std::string& why_not, std::uint64_t fs_total_bytes);
// "write_bytes: N" from /proc/<pid>/io.
std::optional<std::int64_t> parse_proc_io_write_bytes(std::string_view proc_io);
// Field 22 (starttime, clock ticks after boot) of /proc/<pid>/stat; the command name may hold
// spaces and parentheses.
std::optional<std::int64_t> parse_proc_stat_start_ticks(std::string_view proc_stat);

// A broker address: tcp://, mqtt://, ssl://, mqtts://, ws://, wss:// host (or [v6]) and port.
struct BrokerAddress {
  std::string scheme;
  std::string host;
  int port = 0;
  bool tls = false;
  bool websocket = false;
};
std::optional<BrokerAddress> parse_broker_address(const std::string& uri);

// What probe_local_broker() saw.
struct LocalBrokerProbe {
  std::string address;  // host:port
  bool tcp_ok = false;
  std::string tcp_error;  // e.g. "Connection refused"
  bool connected = false;
  std::string connect_error;  // e.g. "bad user name or password"
  std::string topic;          // the command topic subscribed to
  bool subscribed = false;
  std::string subscribe_error;
  std::string probe_topic;  // anju/<site>/check/<client id>: a message of its own sent there...
  bool loopback = false;    // ...came back (write and read access, whatever the SUBACK said)
  std::string loopback_error;
};
CheckResult evaluate_local_broker(const BrokerConfig& broker, const std::string& config_path,
                                  const LocalBrokerProbe& p);

// What probe_tls() saw of the city broker.
struct TlsProbe {
  std::string address;  // host:port
  bool tcp_ok = false;
  std::string tcp_error;
  bool tls = false;         // a TLS handshake was attempted
  std::string setup_error;  // ca_file, cert_file or key_file could not be used
  bool handshake_ok = false;
  std::string handshake_error;  // OpenSSL's reason, e.g. "sslv3 alert handshake failure"
  long verify_code = 0;         // X509_V_OK (0) or X509_V_ERR_*
  std::string verify_error;     // X509_verify_cert_error_string(verify_code)
  bool hostname_checked = false;
  std::string subject, issuer;              // of the broker's certificate (one line each)
  std::optional<std::int64_t> not_after_s;  // the broker's certificate, Unix seconds
};
// The city broker's line: uplink disabled, reachable, TLS verified (chain against ca_file and the
// host name), with the exact OpenSSL verify error when not.
CheckResult evaluate_city_broker(const UplinkConfig& uplink, const std::string& config_path,
                                 const TlsProbe& p);
// A certificate's expiry: FAIL expired, warn under 30 days. `what` names it in the message.
// `renew` is the fix for an expired or expiring one.
CheckResult evaluate_cert_expiry(const std::string& check, const std::string& what,
                                 std::int64_t not_after_s, std::int64_t now_s,
                                 const std::string& renew);
// A private key file must not be readable or writable by group or others.
CheckResult evaluate_key_file_mode(const std::string& check, const std::string& key,
                                   const std::string& path, unsigned mode);

// anjud's status socket: running, its local bus and its commits.
CheckResult evaluate_anjud(const std::optional<nlohmann::json>& status,
                           const std::string& socket_path);
// The uplink link state anjud reports.
CheckResult evaluate_uplink(const Config& config, const std::optional<nlohmann::json>& status);

// A device that has not reported within its expected interval (or never, or that its driver
// reports offline).
struct SilentDevice {
  std::string id;
  std::string name;
  std::int64_t last_seen_ms = 0;  // 0: never seen
  std::int64_t interval_ms = 0;   // its expected interval (heartbeat timeout)
  bool reported_offline = false;
};
// Expected intervals: rules.heartbeat_timeout_s and each device's heartbeat_timeout_s override,
// by device id or name (as the rule engine matches them); 0 = not supervised.
struct DeviceIntervals {
  std::int64_t default_ms = 0;
  std::map<std::string, std::int64_t> overrides_ms;
};
DeviceIntervals device_intervals(const Config& config);
// Device ids (or names) named in the config: zigbee2mqtt, chirpstack (DevEUI, lower case),
// generic_mqtt and modbus devices.
std::vector<std::string> configured_devices(const Config& config);
// Registry devices silent past their interval or reported offline, and configured devices the
// registry has never seen (matched by id or name), in registry order then config order.
// `since_ms` (anjud's start, 0 when unknown): silence is counted from it at the earliest, as the
// rule engine does, so that a gateway that was down does not make every device look silent.
std::vector<SilentDevice> silent_devices(const std::vector<edge::DeviceRecord>& registry,
                                         const DeviceIntervals& intervals,
                                         const std::vector<std::string>& configured,
                                         std::int64_t now_ms, std::int64_t since_ms = 0);
CheckResult evaluate_devices(const std::vector<edge::DeviceRecord>& registry,
                             const DeviceIntervals& intervals,
                             const std::vector<std::string>& configured, std::int64_t now_ms,
                             std::int64_t since_ms = 0);
// Cameras from the status socket's "cameras" ([{id, online, frames_read, last_error}]), when
// anjud reports them.
CheckResult evaluate_cameras(const Config& config, const std::optional<nlohmann::json>& status);
// OSDP readers from the status socket's "osdp" buses.
CheckResult evaluate_readers(const Config& config, const std::optional<nlohmann::json>& status);
// Doors on GPIO lines from the status socket's "gpio_doors" ([{door, chip, watched, last_error}]).
CheckResult evaluate_gpio_doors(const Config& config, const std::optional<nlohmann::json>& status);

// --- anju outbox (and the outbox line of anju status)
// ---------------------------------------------

struct OutboxClassView {
  std::string cls;  // alert, status, summary, event
  std::int64_t rows = 0;
  std::int64_t bytes = 0;
  std::int64_t evicted = 0;
  std::int64_t sent = 0;
  std::optional<std::int64_t> oldest_ms;  // ts_ms of its oldest unsent message
};
struct OutboxView {
  bool from_status = false;  // false: anjud not running, counts read from the journal
  bool uplink_enabled = false;
  bool connected = false;
  std::int64_t inflight = 0;
  std::int64_t acked = 0;
  std::string last_error;
  std::vector<OutboxClassView> classes;
};
// From the status socket's JSON ("outbox" and "uplink").
OutboxView outbox_view(const nlohmann::json& status);
// "alert 0 (0 B, evicted 0)  status 1 (312 B, evicted 0)  ...": the line `anju status` prints.
std::string outbox_summary(const OutboxView& v);
std::string render_outbox_text(const OutboxView& v, std::int64_t now_ms);
nlohmann::json outbox_json(const OutboxView& v, std::int64_t now_ms);

// "1.5 MiB", "312 B".
std::string format_bytes(double bytes);

// --- Probes
// -----------------------------------------------------------------------------------------

// anjud's status socket: its JSON text, or nothing when nobody answers within `timeout`.
std::optional<std::string> read_status_socket(const std::string& path,
                                              std::chrono::milliseconds timeout);
ClockReading probe_clock();
// statvfs of `dir`, or of its nearest existing parent when it does not exist yet.
std::optional<DiskSpace> probe_disk(const std::string& dir, std::string* error);
std::optional<WriteSample> probe_write_rate(std::int64_t pid, std::string* why_not);
// Connects to the local broker as the config says (credentials files, TLS), with a client id of
// its own (anjud's session is left alone), subscribes to anju/<site>/cmd/alert/+, and sends itself
// one message on anju/<site>/check/<client id> (QoS 1, not retained) that must come back.
LocalBrokerProbe probe_local_broker(const Config& config, std::chrono::milliseconds timeout);
// TCP connect and, for a TLS uri, an OpenSSL handshake verifying the chain against tls.ca_file
// and (verify_hostname) the host name; the verdict is read, not enforced, so that the
// certificate can still be looked at.
TlsProbe probe_tls(const BrokerConfig& broker, std::chrono::milliseconds timeout);
// A PEM certificate file's notAfter, Unix seconds.
std::optional<std::int64_t> certificate_not_after(const std::string& pem_path, std::string* error);
// Adds each class's oldest unsent message time from the journal (read-only).
void add_outbox_oldest(OutboxView& v, const std::string& db_path);
// Rows, bytes and evictions from the journal alone (anjud not running).
OutboxView outbox_from_journal(const std::string& db_path);

struct CheckOptions {
  std::string config_path;                  // empty: /etc/anju/anju.yaml
  std::string data_dir;                     // empty: the config's data_dir
  std::chrono::milliseconds timeout{3000};  // each network probe
};
std::vector<CheckResult> run_checks(const CheckOptions& options);

}  // namespace anju::firmware
