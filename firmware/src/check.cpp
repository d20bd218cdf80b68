#include "anju/firmware/check.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/timex.h>
#include <sys/un.h>
#include <unistd.h>

#include <mqtt/async_client.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "anju/bridge/outbox.hpp"
#include "anju/edge/mqtt.hpp"
#include "anju/firmware/daemon.hpp"

namespace anju::firmware {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::int64_t kMiB = 1024 * 1024;

CheckResult result(std::string check, CheckStatus status, std::string message,
                   std::string fix = {}) {
  return {std::move(check), status, std::move(message), std::move(fix)};
}

std::string local_time(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Unix seconds as "YYYY-MM-DD HH:MM UTC", in 64-bit arithmetic (a 32-bit time_t, as on armhf,
// would wrap for certificates valid past 2038).
std::string utc_date(std::int64_t s) {
  std::int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
  const std::int64_t rem = s - days * 86400;
  // Howard Hinnant's civil_from_days.
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const std::int64_t doe = days - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[96];  // room for any int64 the compiler imagines
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld %02lld:%02lld UTC",
                static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                static_cast<long long>(rem / 3600), static_cast<long long>(rem % 3600 / 60));
  return buf;
}

// 42 s, 17 min, 3.5 h, 12 days.
std::string span(double seconds) {
  char buf[32];
  if (seconds < 120)
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  else if (seconds < 7200)
    std::snprintf(buf, sizeof buf, "%.0f min", seconds / 60);
  else if (seconds < 2 * 86400)
    std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
  else
    std::snprintf(buf, sizeof buf, "%.0f days", seconds / 86400);
  return buf;
}

std::string octal_mode(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::int64_t num(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<std::int64_t>();
}

std::string str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return {};
  return j[key].get<std::string>();
}

bool flag(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_boolean() && j[key].get<bool>();
}

// A name list for one line: the first `max` and how many more.
std::string joined(const std::vector<std::string>& items, std::size_t max = 12) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < max; ++i) out += (i ? "; " : "") + items[i];
  if (items.size() > max) out += "; and " + std::to_string(items.size() - max) + " more";
  return out;
}

}  // namespace

std::string_view to_string(CheckStatus s) {
  switch (s) {
    case CheckStatus::ok:
      return "ok";
    case CheckStatus::warn:
      return "warn";
    case CheckStatus::fail:
      return "FAIL";
  }
  return "?";
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
  return buf;
}

std::string render_check_text(const std::vector<CheckResult>& results) {
  std::size_t width = 0;
  for (const auto& r : results) width = std::max(width, r.check.size());
  std::string out;
  int fails = 0, warns = 0, oks = 0;
  for (const auto& r : results) {
    std::string line(to_string(r.status));
    line.resize(6, ' ');
    line += r.check;
    line.resize(6 + width + 2, ' ');
    line += r.message;
    if (!r.fix.empty() && r.status != CheckStatus::ok) line += " -- fix: " + r.fix;
    out += line + "\n";
    (r.status == CheckStatus::fail ? fails : r.status == CheckStatus::warn ? warns : oks)++;
  }
  out += std::to_string(fails) + " FAIL, " + std::to_string(warns) + " warn, " +
         std::to_string(oks) + " ok\n";
  return out;
}

nlohmann::ordered_json check_results_json(const std::vector<CheckResult>& results) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : results) {
    nlohmann::ordered_json j;
    j["check"] = r.check;
    j["status"] = r.status == CheckStatus::fail ? "fail" : std::string(to_string(r.status));
    j["message"] = r.message;
    j["fix"] = r.fix;
    out.push_back(std::move(j));
  }
  return out;
}

int check_exit_code(const std::vector<CheckResult>& results) {
  return std::any_of(results.begin(), results.end(),
                     [](const CheckResult& r) { return r.status == CheckStatus::fail; })
             ? 1
             : 0;
}

// --- Pure decisions ------------------------------------------------------------------------------

CheckResult evaluate_config(const std::string& path, const ConfigResult& loaded) {
  if (loaded.config)
    return result("config", CheckStatus::ok,
                  path + " is valid (site " + loaded.config->site.id + ")");
  std::vector<std::string> errors;
  for (const auto& e : loaded.errors) errors.push_back(e.to_string());
  std::error_code ec;
  const std::string fix =
      fs::exists(path, ec)
          ? "correct " + path +
                " (each error names the line and the key; every key is described in "
                "/usr/share/anju/anju.example.yaml), then run anju check again"
          : "pass --config FILE, or install the gateway's config as " + path +
                " (every key is described in /usr/share/anju/anju.example.yaml)";
  return result("config", CheckStatus::fail,
                errors.empty() ? path + " could not be loaded" : joined(errors, 50), fix);
}

CheckResult evaluate_clock(const ClockReading& c) {
  if (!c.error.empty())
    return result("clock", CheckStatus::warn, "cannot read the clock's state: " + c.error,
                  "run anju check on the gateway itself (adjtimex must be allowed)");
  const bool synced = c.state != TIME_ERROR && (c.status & STA_UNSYNC) == 0;
  if (synced)
    return result("clock", CheckStatus::ok,
                  "synchronised (estimated error up to " +
                      std::to_string(std::max(0L, c.max_error_us) / 1000) + " ms)");
  return result("clock", CheckStatus::warn,
                "not synchronised: anjud runs and marks its events clock_synced=false until it is",
                "enable time synchronisation (timedatectl set-ntp true, or chrony) and make sure "
                "an NTP server is reachable from the gateway");
}

CheckResult evaluate_disk(const std::string& dir, const DiskSpace& d, std::int64_t journal_bytes,
                          std::int64_t journal_max_bytes) {
  if (d.total_bytes == 0)
    return result("disk", CheckStatus::fail, "the file system of " + dir + " reports no size",
                  "check that " + dir + " is on a mounted, writable disk");
  const double pct =
      100.0 * static_cast<double>(d.avail_bytes) / static_cast<double>(d.total_bytes);
  char pct_text[16];
  std::snprintf(pct_text, sizeof pct_text, "%.0f %%", std::floor(pct));
  const std::string free_text = format_bytes(static_cast<double>(d.avail_bytes)) + " free of " +
                                format_bytes(static_cast<double>(d.total_bytes)) + " (" + pct_text +
                                ") on the file system of " + dir;
  const std::string fix =
      "free space on that file system (old logs, core dumps, other data), lower "
      "journal.max_bytes or journal.retention_days, or move data_dir to a larger disk";
  if (d.avail_bytes < static_cast<std::uint64_t>(100 * kMiB) || pct < 5)
    return result("disk", CheckStatus::fail,
                  "only " + free_text + ": below 5 % or 100 MiB the journal can no longer grow",
                  fix);
  if (pct < 15) return result("disk", CheckStatus::warn, "only " + free_text, fix);
  if (journal_max_bytes > journal_bytes &&
      static_cast<std::uint64_t>(journal_max_bytes - journal_bytes) > d.avail_bytes)
    return result("disk", CheckStatus::warn,
                  free_text + ": less than the journal may grow to (journal.max_bytes " +
                      format_bytes(static_cast<double>(journal_max_bytes)) + "; now " +
                      format_bytes(static_cast<double>(journal_bytes)) + ")",
                  "lower journal.max_bytes below the free space, or free space");
  return result("disk", CheckStatus::ok, free_text);
}

CheckResult evaluate_flash_wear(const std::optional<WriteSample>& sample,
                                const std::string& why_not, std::uint64_t fs_total_bytes) {
  if (!sample)
    return result("flash_wear", CheckStatus::warn, "not measured: " + why_not,
                  "run anju check as root while anjud runs");
  const auto& s = *sample;
  const std::string pid = std::to_string(s.pid);
  std::string msg = "anjud (pid " + pid + ") wrote " +
                    format_bytes(static_cast<double>(s.write_bytes)) + " in " + span(s.uptime_s) +
                    " (/proc/" + pid + "/io write_bytes over its uptime)";
  if (s.uptime_s < 600)
    return result("flash_wear", CheckStatus::ok,
                  msg +
                      "; too early to project a daily volume: run anju check again when anjud "
                      "has run 10 minutes or more");
  const double per_day = static_cast<double>(s.write_bytes) / s.uptime_s * 86400.0;
  msg += ": about " + format_bytes(per_day) + " per day";
  if (per_day <= 0 || fs_total_bytes == 0) return result("flash_wear", CheckStatus::ok, msg);
  // A whole-device write per `days`; 3,000 program/erase cycles per cell (MLC eMMC; TLC is
  // lower), no write amplification: an optimistic figure, which is why the bar is 5 years.
  const double days_per_fill = static_cast<double>(fs_total_bytes) / per_day;
  const double years = days_per_fill * 3000.0 / 365.0;
  char buf[160];
  if (years >= 100)
    std::snprintf(buf, sizeof buf,
                  ", %.2f %% of the file system's size; flash rated for 3,000 write cycles would "
                  "last more than 100 years at this rate",
                  100.0 / days_per_fill);
  else
    std::snprintf(buf, sizeof buf,
                  ", %.2f %% of the file system's size; flash rated for 3,000 write cycles would "
                  "last about %.1f years at this rate",
                  100.0 / days_per_fill, years);
  msg += buf;
  if (years < 5)
    return result("flash_wear", CheckStatus::warn, msg,
                  "write less: fewer uplink.event_kinds, a longer journal.commit_window_ms, "
                  "journal.synchronous: normal (the last commits may be lost on power loss), or "
                  "industrial flash with a higher endurance");
  return result("flash_wear", CheckStatus::ok, msg);
}

std::optional<std::int64_t> parse_proc_io_write_bytes(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    constexpr std::string_view key = "write_bytes:";
    if (line.substr(0, key.size()) == key) {
      try {
        std::size_t used = 0;
        const std::string value(line.substr(key.size()));
        const long long v = std::stoll(value, &used);
        if (v >= 0) return v;
      } catch (...) {
      }
      return std::nullopt;
    }
    pos = end + 1;
  }
  return std::nullopt;
}

std::optional<std::int64_t> parse_proc_stat_start_ticks(std::string_view text) {
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::istringstream in{std::string(text.substr(close + 1))};
  std::string field;
  // After the command: field 3 (state) is the first; starttime is field 22.
  for (int i = 3; i <= 22; ++i)
    if (!(in >> field)) return std::nullopt;
  try {
    std::size_t used = 0;
    const long long v = std::stoll(field, &used);
    if (used != field.size() || v < 0) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<BrokerAddress> parse_broker_address(const std::string& uri) {
  const auto sep = uri.find("://");
  if (sep == std::string::npos) return std::nullopt;
  BrokerAddress a;
  a.scheme = uri.substr(0, sep);
  a.tls = a.scheme == "ssl" || a.scheme == "mqtts" || a.scheme == "wss";
  a.websocket = a.scheme == "ws" || a.scheme == "wss";
  if (!a.tls && !a.websocket && a.scheme != "tcp" && a.scheme != "mqtt") return std::nullopt;
  a.port = a.scheme == "ws" ? 80 : a.scheme == "wss" ? 443 : a.tls ? 8883 : 1883;
  std::string rest = uri.substr(sep + 3);
  if (const auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  std::string port_text;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return std::nullopt;
    a.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return std::nullopt;
      port_text = rest.substr(close + 2);
    }
  } else {
    const auto colon = rest.rfind(':');
    a.host = rest.substr(0, colon);
    if (colon != std::string::npos) port_text = rest.substr(colon + 1);
  }
  if (!port_text.empty() || rest.find(':') != std::string::npos) {
    if (port_text.empty() || port_text.find_first_not_of("0123456789") != std::string::npos ||
        port_text.size() > 5)
      return std::nullopt;
    a.port = std::stoi(port_text);
  }
  if (a.host.empty() || a.port <= 0 || a.port > 65535) return std::nullopt;
  return a;
}

CheckResult evaluate_local_broker(const BrokerConfig& broker, const std::string& config_path,
                                  const LocalBrokerProbe& p) {
  const std::string uri = broker.uri;
  if (!p.tcp_ok)
    return result("local_broker", CheckStatus::fail,
                  "cannot reach the local broker " + uri + ": " + p.tcp_error,
                  "start the compound's Mosquitto (systemctl start mosquitto; journalctl -u "
                  "mosquitto says why it stopped), or correct local_broker.uri in " +
                      config_path);
  if (!p.connected) {
    std::string fix;
    if (broker.username_file.empty())
      fix = "the broker wants a login: set local_broker.username_file and password_file in " +
            config_path + " (anju broker-config writes them and the broker's password file)";
    else
      fix = "check local_broker.username_file (" + broker.username_file + ") and password_file (" +
            broker.password_file +
            ") against the broker's password file: run anju broker-config and reload mosquitto";
    return result(
        "local_broker", CheckStatus::fail,
        "the local broker " + uri + " did not accept the gateway's connection: " + p.connect_error,
        fix);
  }
  const std::string acl_fix =
      "the broker's ACL must let the gateway read anju/<site>/cmd/# and read and write "
      "anju/<site>/#: run anju broker-config --config " +
      config_path + " and reload mosquitto (systemctl reload mosquitto)";
  if (!p.subscribed)
    return result("local_broker", CheckStatus::fail,
                  "connected to " + uri + ", but the broker refused the subscription to " +
                      p.topic + ": " + p.subscribe_error,
                  acl_fix);
  if (!p.loopback)
    return result("local_broker", CheckStatus::fail,
                  "connected to " + uri + " and subscribed to " + p.topic +
                      ", but a test message the gateway published on " + p.probe_topic +
                      " did not come back: " + p.loopback_error,
                  acl_fix);
  return result("local_broker", CheckStatus::ok,
                uri + ": connected" +
                    (broker.username_file.empty() ? std::string(" (anonymous)")
                                                  : std::string(" with the gateway's login")) +
                    ", subscribed to " + p.topic + ", a test message on " + p.probe_topic +
                    " came back");
}

CheckResult evaluate_city_broker(const UplinkConfig& uplink, const std::string& config_path,
                                 const TlsProbe& p) {
  const std::string name = "city_broker";
  if (!uplink.enabled)
    return result(name, CheckStatus::ok,
                  "uplink disabled in the config: nothing is sent to the city");
  const std::string uri = uplink.broker.uri;
  const auto& tls = uplink.broker.tls;
  if (!p.tcp_ok)
    return result(name, CheckStatus::fail,
                  "cannot reach the city broker " + uri + ": " + p.tcp_error,
                  "check the gateway's network route and DNS to " + p.address +
                      " and that the firewall lets it out; a wrong address is corrected in "
                      "uplink.uri in " +
                      config_path);
  if (!p.tls)
    return result(name, CheckStatus::warn,
                  uri + " is reachable over plain TCP: messages to the city are not encrypted",
                  "use the city's TLS address (ssl://HOST:8883) with uplink.tls.enabled: true and "
                  "uplink.tls.ca_file");
  if (!p.setup_error.empty())
    return result(name, CheckStatus::fail,
                  "cannot use the TLS files for " + uri + ": " + p.setup_error,
                  "check uplink.tls.ca_file, cert_file and key_file in " + config_path +
                      ": the files exist, are PEM, and the certificate and key belong together");
  if (!p.handshake_ok)
    return result(name, CheckStatus::fail,
                  "TLS handshake with " + uri + " failed: " + p.handshake_error,
                  "if the city broker wants a client certificate, set uplink.tls.cert_file and "
                  "key_file to the one the city issued; otherwise check that " +
                      uri + " is the city's TLS port");
  if (p.verify_code != X509_V_OK) {
    std::string msg =
        "the city broker's certificate at " + uri + " is not trusted: " + p.verify_error;
    std::string fix;
    switch (p.verify_code) {
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        msg += " (issued by " + p.issuer + "; ca_file " + tls.ca_file + ")";
        fix = "uplink.tls.ca_file (" + tls.ca_file +
              ") does not hold the CA that issued the city broker's certificate: put the city's "
              "CA bundle there";
        break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
        if (p.not_after_s) msg += " (expired " + utc_date(*p.not_after_s) + ")";
        fix =
            "the city must renew its broker's certificate; if that date looks wrong, the "
            "gateway's clock is (see clock)";
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        fix = "the gateway's clock is probably wrong (see clock): set it and run anju check again";
        break;
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        msg += " (" + p.address + " is not a name in the certificate of " + p.subject + ")";
        fix =
            "put in uplink.uri the host name the certificate names, or have the city issue one "
            "for this address";
        break;
      default:
        fix = "see OpenSSL's reason; the CA bundle is uplink.tls.ca_file (" + tls.ca_file + ")";
    }
    return result(name, CheckStatus::fail, msg, fix);
  }
  if (!p.hostname_checked)
    return result(name, CheckStatus::warn,
                  uri + ": TLS chain verified against " + tls.ca_file +
                      ", but the host name is not checked (uplink.tls.verify_hostname: false)",
                  "set uplink.tls.verify_hostname: true unless the city's certificate cannot "
                  "name this address");
  return result(
      name, CheckStatus::ok,
      uri + ": TLS verified against " + tls.ca_file + " (" + p.subject + ", host name checked)");
}

CheckResult evaluate_cert_expiry(const std::string& check, const std::string& what,
                                 std::int64_t not_after_s, std::int64_t now_s,
                                 const std::string& renew) {
  const std::int64_t left = not_after_s - now_s;
  if (left <= 0)
    return result(check, CheckStatus::fail,
                  what + " expired on " + utc_date(not_after_s) + " (" +
                      span(static_cast<double>(-left)) + " ago)",
                  renew);
  const std::string until = utc_date(not_after_s) + " (" + span(static_cast<double>(left)) + ")";
  if (left < 30 * 86400)
    return result(check, CheckStatus::warn, what + " expires on " + until, renew);
  return result(check, CheckStatus::ok, what + " is valid until " + until);
}

CheckResult evaluate_key_file_mode(const std::string& check, const std::string& key,
                                   const std::string& path, unsigned mode) {
  if ((mode & 077) != 0)
    return result(check, CheckStatus::fail,
                  key + " " + path + " has mode " + octal_mode(mode) +
                      ": the private key is open to group or others",
                  "chmod 600 " + path + " (owned by the user anjud runs as)");
  return result(check, CheckStatus::ok, key + " " + path + " has mode " + octal_mode(mode));
}

CheckResult evaluate_anjud(const std::optional<json>& status, const std::string& socket_path) {
  if (!status)
    return result("anjud", CheckStatus::fail,
                  "anjud is not running (no answer on " + socket_path + ")",
                  "start it: systemctl start anjud (journalctl -u anjud says why it stopped)");
  const auto& s = *status;
  if (s.contains("error"))
    return result("anjud", CheckStatus::fail,
                  "anjud answers, but its status failed: " + str(s, "error"),
                  "look at journalctl -u anjud; restart anjud if it persists");
  const std::string pid = std::to_string(num(s, "pid"));
  const json pipeline = s.value("pipeline", json::object());
  const json bus = s.value("local_bus", json::object());
  std::string msg = "running (pid " + pid + "), " + std::to_string(num(pipeline, "committed")) +
                    " events committed since it started";
  if (!flag(bus, "connected"))
    return result("anjud", CheckStatus::fail, msg + ", but NOT connected to the local broker",
                  "see local_broker; anjud reconnects by itself once the broker lets it in");
  if (num(pipeline, "commit_failures") > 0)
    return result("anjud", CheckStatus::warn,
                  msg + ", " + std::to_string(num(pipeline, "commit_failures")) + " commits failed",
                  "see journalctl -u anjud: a full disk (see disk) or I/O errors");
  return result("anjud", CheckStatus::ok, msg + ", local bus connected");
}

CheckResult evaluate_uplink(const Config& config, const std::optional<json>& status) {
  if (!config.uplink.enabled) return result("uplink", CheckStatus::ok, "disabled in the config");
  if (!status)
    return result("uplink", CheckStatus::warn, "not checked: anjud is not running",
                  "start anjud, then run anju check again");
  const json u = status->value("uplink", json::object());
  if (!u.contains("connected"))
    return result("uplink", CheckStatus::warn,
                  "anjud runs with the uplink disabled, unlike " + config.source_file,
                  "restart anjud so that it reads this config");
  if (flag(u, "connected"))
    return result("uplink", CheckStatus::ok,
                  "anjud is connected to the city broker (" + std::to_string(num(u, "acked")) +
                      " messages acknowledged, " + std::to_string(num(u, "inflight")) +
                      " in flight)");
  const std::string err = str(u, "last_error");
  return result("uplink", CheckStatus::fail,
                "anjud is NOT connected to the city broker (" +
                    std::to_string(num(u, "connect_failures")) + " failed attempts" +
                    (err.empty() ? std::string() : "; last error: " + err) +
                    "); messages wait in the outbox (anju outbox)",
                "see city_broker; anjud retries on its own with backoff");
}

DeviceIntervals device_intervals(const Config& config) {
  const auto s = rule_settings(config);
  return {s.heartbeat_timeout_ms, s.heartbeat_overrides};
}

std::vector<std::string> configured_devices(const Config& config) {
  std::vector<std::string> out;
  for (const auto& [id, d] : config.zigbee2mqtt.devices) out.push_back(id);
  for (const auto& [eui, d] : config.chirpstack.devices) {
    std::string id = eui;
    for (char& ch : id)
      if (ch >= 'A' && ch <= 'F') ch = static_cast<char>(ch - 'A' + 'a');
    out.push_back(id);
  }
  for (const auto& [id, d] : config.generic_mqtt.devices) out.push_back(id);
  for (const auto& d : config.modbus.devices) out.push_back(d.id);
  return out;
}

std::vector<SilentDevice> silent_devices(const std::vector<edge::DeviceRecord>& registry,
                                         const DeviceIntervals& intervals,
                                         const std::vector<std::string>& configured,
                                         std::int64_t now_ms, std::int64_t since_ms) {
  auto interval_of = [&](const edge::DeviceRef& d) {
    if (auto it = intervals.overrides_ms.find(d.id); it != intervals.overrides_ms.end())
      return it->second;
    if (auto it = intervals.overrides_ms.find(d.name); it != intervals.overrides_ms.end())
      return it->second;
    return intervals.default_ms;
  };
  std::vector<SilentDevice> out;
  std::set<std::string> known;
  for (const auto& r : registry) {
    known.insert(r.device.id);
    if (!r.device.name.empty()) known.insert(r.device.name);
    const std::int64_t interval = interval_of(r.device);
    const bool offline = r.state == "offline";
    const std::int64_t from = std::max(r.last_seen_ms, since_ms);
    const bool late = interval > 0 && now_ms - from > interval;
    if (offline || late || r.last_seen_ms <= 0)
      out.push_back({r.device.id, r.device.name, r.last_seen_ms, interval, offline});
  }
  for (const auto& id : configured)
    if (!known.count(id)) out.push_back({id, {}, 0, intervals.default_ms, false});
  return out;
}

CheckResult evaluate_devices(const std::vector<edge::DeviceRecord>& registry,
                             const DeviceIntervals& intervals,
                             const std::vector<std::string>& configured, std::int64_t now_ms,
                             std::int64_t since_ms) {
  const auto silent = silent_devices(registry, intervals, configured, now_ms, since_ms);
  std::size_t never = 0;
  for (const auto& s : silent) never += s.last_seen_ms <= 0 ? 1 : 0;
  const std::size_t total = registry.size() + never;
  if (total == 0) return result("devices", CheckStatus::ok, "none configured or heard from yet");
  if (silent.empty()) {
    std::size_t unsupervised = 0;
    for (const auto& r : registry) {
      auto it = intervals.overrides_ms.find(r.device.id);
      if (it == intervals.overrides_ms.end()) it = intervals.overrides_ms.find(r.device.name);
      const std::int64_t interval =
          it != intervals.overrides_ms.end() ? it->second : intervals.default_ms;
      unsupervised += interval <= 0 ? 1 : 0;
    }
    std::string msg = std::to_string(total) + " devices, each heard from within its interval";
    if (unsupervised > 0)
      msg += " (" + std::to_string(unsupervised) +
             " without an interval: heartbeat_timeout_s 0, only checked for being seen)";
    return result("devices", CheckStatus::ok, msg);
  }
  std::vector<std::string> items;
  for (const auto& s : silent) {
    std::string who = s.name.empty() || s.name == s.id ? s.id : s.name + " (" + s.id + ")";
    if (s.last_seen_ms <= 0) {
      items.push_back(who + ": never seen");
      continue;
    }
    std::string item = who + ": " + (s.reported_offline ? "reported offline, " : "") +
                       "last seen " + local_time(s.last_seen_ms) + ", " +
                       span(static_cast<double>(now_ms - s.last_seen_ms) / 1000.0) + " ago";
    if (s.interval_ms > 0)
      item += ", expected every " + span(static_cast<double>(s.interval_ms) / 1000.0);
    items.push_back(item);
  }
  return result("devices", CheckStatus::fail,
                std::to_string(silent.size()) + " of " + std::to_string(total) +
                    " devices silent: " + joined(items),
                "look at each one (battery, power, radio range, pairing in zigbee2mqtt, wiring); "
                "trigger it to prove it reports; anju devices lists them all. A device that "
                "reports less often needs its own heartbeat_timeout_s in the config");
}

CheckResult evaluate_cameras(const Config& config, const std::optional<json>& status) {
  const auto configured = config.cameras.streams.size();
  if (status && status->contains("cameras") && (*status)["cameras"].is_array()) {
    const auto& cams = (*status)["cameras"];
    if (cams.empty()) return result("cameras", CheckStatus::ok, "none configured");
    std::vector<std::string> bad;
    for (const auto& c : cams) {
      const std::string id = str(c, "id");
      if (!flag(c, "online"))
        bad.push_back(id + ": offline" +
                      (str(c, "last_error").empty() ? "" : " (" + str(c, "last_error") + ")"));
      else if (num(c, "frames_read") <= 0)
        bad.push_back(id + ": connected but no frame yet");
    }
    if (bad.empty())
      return result("cameras", CheckStatus::ok,
                    std::to_string(cams.size()) + " cameras online and delivering frames");
    return result("cameras", CheckStatus::fail,
                  std::to_string(bad.size()) + " of " + std::to_string(cams.size()) +
                      " cameras not delivering frames: " + joined(bad),
                  "check each camera's power, network and stream URL (cameras.streams[].url; "
                  "try it with ffprobe), and its user name and password");
  }
  if (configured == 0) return result("cameras", CheckStatus::ok, "none configured");
  if (!status)
    return result("cameras", CheckStatus::warn,
                  std::to_string(configured) + " configured; not checked: anjud is not running",
                  "start anjud, then run anju check again");
  return result("cameras", CheckStatus::warn,
                std::to_string(configured) +
                    " configured; this anjud does not report its cameras on its status socket, "
                    "so frames cannot be checked here",
                "update anjud; meanwhile look at the cameras' events with anju events --kind "
                "camera_tamper");
}

CheckResult evaluate_readers(const Config& config, const std::optional<json>& status) {
  std::size_t configured = 0;
  for (const auto& bus : config.access.osdp) configured += bus.readers.size();
  if (configured == 0) return result("readers", CheckStatus::ok, "none configured");
  if (!status)
    return result("readers", CheckStatus::warn,
                  std::to_string(configured) + " configured; not checked: anjud is not running",
                  "start anjud, then run anju check again");
  if (!status->contains("osdp") || !(*status)["osdp"].is_array())
    return result("readers", CheckStatus::fail,
                  std::to_string(configured) + " configured, but anjud reports no OSDP bus",
                  "restart anjud so that it reads this config, and look at journalctl -u anjud");
  std::vector<std::string> bad;
  std::size_t seen = 0;
  for (const auto& bus : (*status)["osdp"]) {
    if (!bus.contains("readers") || !bus["readers"].is_array()) continue;
    for (const auto& r : bus["readers"]) {
      ++seen;
      if (flag(r, "online")) continue;
      bad.push_back(str(r, "id") + " (bus " + str(bus, "name") + ", address " +
                    std::to_string(num(r, "address")) + ")" +
                    (str(r, "last_error").empty() ? "" : ": " + str(r, "last_error")));
    }
  }
  if (bad.empty())
    return result("readers", CheckStatus::ok, std::to_string(seen) + " readers answering");
  return result("readers", CheckStatus::fail,
                std::to_string(bad.size()) + " of " + std::to_string(seen) +
                    " readers not answering: " + joined(bad),
                "check each reader's power, RS-485 wiring (A/B, termination) or address, baud "
                "rate and, with Secure Channel, its key file");
}

CheckResult evaluate_gpio_doors(const Config& config, const std::optional<json>& status) {
  const std::size_t configured = config.access.gpio_doors.size();
  if (configured == 0) return result("gpio_doors", CheckStatus::ok, "none configured");
  if (!status)
    return result("gpio_doors", CheckStatus::warn,
                  std::to_string(configured) + " configured; not checked: anjud is not running",
                  "start anjud, then run anju check again");
  if (!status->contains("gpio_doors") || !(*status)["gpio_doors"].is_array())
    return result("gpio_doors", CheckStatus::fail,
                  std::to_string(configured) + " configured, but anjud reports no GPIO door",
                  "restart anjud so that it reads this config, and look at journalctl -u anjud");
  std::vector<std::string> bad;
  std::size_t seen = 0;
  for (const auto& d : (*status)["gpio_doors"]) {
    ++seen;
    if (flag(d, "watched")) continue;
    bad.push_back(str(d, "door") + " (" + str(d, "chip") + ")" +
                  (str(d, "last_error").empty() ? "" : ": " + str(d, "last_error")));
  }
  if (bad.empty())
    return result("gpio_doors", CheckStatus::ok, std::to_string(seen) + " doors watched");
  return result("gpio_doors", CheckStatus::fail,
                std::to_string(bad.size()) + " of " + std::to_string(seen) +
                    " doors not watched: " + joined(bad),
                "check the chip name (gpiodetect lists them), the line offsets (gpioinfo) and "
                "that no other program holds the lines");
}

// --- anju outbox -------------------------------------------------------------------------------

OutboxView outbox_view(const json& status) {
  OutboxView v;
  v.from_status = true;
  const json u = status.value("uplink", json::object());
  v.uplink_enabled = u.contains("connected");
  v.connected = flag(u, "connected");
  v.inflight = num(u, "inflight");
  v.acked = num(u, "acked");
  v.last_error = str(u, "last_error");
  if (status.contains("outbox") && status["outbox"].is_object())
    for (const auto& [cls, c] : status["outbox"].items())
      v.classes.push_back(
          {cls, num(c, "rows"), num(c, "bytes"), num(c, "evicted"), num(c, "sent"), {}});
  // The status JSON's object is sorted by name; the outbox sends in priority order.
  static const std::vector<std::string> order{"alert", "status", "summary", "event"};
  auto rank = [&](const std::string& c) {
    return std::find(order.begin(), order.end(), c) - order.begin();
  };
  std::stable_sort(v.classes.begin(), v.classes.end(),
                   [&](const auto& a, const auto& b) { return rank(a.cls) < rank(b.cls); });
  return v;
}

std::string outbox_summary(const OutboxView& v) {
  // Name order, as `anju status` has always printed it.
  auto classes = v.classes;
  std::sort(classes.begin(), classes.end(),
            [](const auto& a, const auto& b) { return a.cls < b.cls; });
  std::string out;
  for (const auto& c : classes)
    out += c.cls + " " + std::to_string(c.rows) + " (" + std::to_string(c.bytes) + " B, evicted " +
           std::to_string(c.evicted) + ")  ";
  return out;
}

namespace {
std::string link_text(const OutboxView& v) {
  if (!v.from_status) return "unknown: anjud is not running (figures read from the journal)";
  if (!v.uplink_enabled) return "disabled in the config";
  if (v.connected)
    return "connected, " + std::to_string(v.inflight) + " in flight, " + std::to_string(v.acked) +
           " acknowledged since anjud started";
  return "DISCONNECTED" +
         (v.last_error.empty() ? std::string() : " (last error: " + v.last_error + ")");
}
}  // namespace

std::string render_outbox_text(const OutboxView& v, std::int64_t now_ms) {
  std::string out = "city link: " + link_text(v) + "\n";
  char line[160];
  std::snprintf(line, sizeof line, "%-8s %8s %11s %14s %9s %9s\n", "class", "messages", "bytes",
                "oldest", "evicted", "sent");
  out += line;
  std::int64_t rows = 0, bytes = 0;
  for (const auto& c : v.classes) {
    const std::string oldest =
        c.oldest_ms
            ? span(static_cast<double>(std::max<std::int64_t>(0, now_ms - *c.oldest_ms)) / 1000.0) +
                  " ago"
            : "-";
    std::snprintf(line, sizeof line, "%-8s %8lld %11s %14s %9lld %9s\n", c.cls.c_str(),
                  static_cast<long long>(c.rows),
                  format_bytes(static_cast<double>(c.bytes)).c_str(), oldest.c_str(),
                  static_cast<long long>(c.evicted),
                  v.from_status ? std::to_string(c.sent).c_str() : "-");
    out += line;
    rows += c.rows;
    bytes += c.bytes;
  }
  out += std::to_string(rows) + " messages (" + format_bytes(static_cast<double>(bytes)) +
         ") waiting for the city\n";
  return out;
}

json outbox_json(const OutboxView& v, std::int64_t now_ms) {
  json classes = json::array();
  for (const auto& c : v.classes) {
    json j{
        {"class", c.cls},
        {"messages", c.rows},
        {"bytes", c.bytes},
        {"evicted", c.evicted},
        {"oldest_ms", c.oldest_ms ? json(*c.oldest_ms) : json(nullptr)},
        {"oldest_age_s", c.oldest_ms ? json(std::max<std::int64_t>(0, now_ms - *c.oldest_ms) / 1000)
                                     : json(nullptr)}};
    j["sent"] = v.from_status ? json(c.sent) : json(nullptr);
    classes.push_back(std::move(j));
  }
  json link{{"anjud_running", v.from_status}};
  if (v.from_status) {
    link["enabled"] = v.uplink_enabled;
    link["connected"] = v.connected;
    link["inflight"] = v.inflight;
    link["acked"] = v.acked;
    link["last_error"] = v.last_error;
  }
  return {{"link", link}, {"classes", classes}};
}

// --- Probes ------------------------------------------------------------------------------------

std::optional<std::string> read_status_socket(const std::string& path,
                                              std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return std::nullopt;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    ::close(fd);
    return std::nullopt;
  }
  // Ask, and say so by shutting down our side (a client that sends nothing gets the status too,
  // but only after anjud has waited 300 ms for a request).
  static constexpr std::string_view kRequest = R"({"cmd":"status"})";
  (void)!::send(fd, kRequest.data(), kRequest.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) out.clear();  // timed out: no answer
    break;
  }
  ::close(fd);
  if (out.empty()) return std::nullopt;
  return out;
}

ClockReading probe_clock() {
  ClockReading c;
  timex tx{};
  c.state = ::adjtimex(&tx);
  if (c.state < 0) {
    c.error = std::strerror(errno);
    return c;
  }
  c.status = tx.status;
  c.max_error_us = tx.maxerror;
  return c;
}

std::optional<DiskSpace> probe_disk(const std::string& dir, std::string* error) {
  fs::path p = fs::absolute(dir);
  std::error_code ec;
  while (!fs::exists(p, ec) && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  struct statvfs st {};
  if (::statvfs(p.c_str(), &st) != 0) {
    if (error) *error = "statvfs " + p.string() + ": " + std::strerror(errno);
    return std::nullopt;
  }
  return DiskSpace{static_cast<std::uint64_t>(st.f_frsize) * st.f_blocks,
                   static_cast<std::uint64_t>(st.f_frsize) * st.f_bavail};
}

std::optional<WriteSample> probe_write_rate(std::int64_t pid, std::string* why_not) {
  const std::string base = "/proc/" + std::to_string(pid);
  const auto io = slurp(base + "/io");
  auto fail = [&](const std::string& why) -> std::optional<WriteSample> {
    if (why_not) *why_not = why;
    return std::nullopt;
  };
  if (!io || io->empty())
    return fail("cannot read " + base + "/io: run anju check as root or as anjud's user");
  const auto written = parse_proc_io_write_bytes(*io);
  const auto stat = slurp(base + "/stat");
  const auto start = stat ? parse_proc_stat_start_ticks(*stat) : std::nullopt;
  const auto uptime = slurp("/proc/uptime");
  if (!written || !start || !uptime) return fail("cannot parse " + base + "/io or /stat");
  double up = 0;
  try {
    up = std::stod(*uptime);
  } catch (...) {
    return fail("cannot parse /proc/uptime");
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  WriteSample s;
  s.pid = pid;
  s.write_bytes = *written;
  s.uptime_s = up - static_cast<double>(*start) / static_cast<double>(ticks > 0 ? ticks : 100);
  if (s.uptime_s <= 0) s.uptime_s = 0.001;
  return s;
}

namespace {

// A TCP connection to host:port within `timeout`; the descriptor (blocking) or an error text.
int tcp_connect(const std::string& host, int port, std::chrono::milliseconds timeout,
                std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) {
    error = "cannot resolve " + host + ": " + ::gai_strerror(gai);
    return -1;
  }
  int fd = -1;
  error.clear();
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
      if (rc == 0) {
        error = "no answer within " + std::to_string(timeout.count()) + " ms";
        rc = -1;
      } else if (rc > 0) {
        int so = 0;
        socklen_t len = sizeof so;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
        if (so != 0) {
          error = std::strerror(so);
          rc = -1;
        } else {
          rc = 0;
        }
      } else {
        error = std::strerror(errno);
      }
    } else if (rc != 0) {
      error = std::strerror(errno);
    }
    if (rc == 0) {
      const int flags = ::fcntl(fd, F_GETFL);
      ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
      break;
    }
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0 && error.empty()) error = "no usable address";
  return fd;
}

std::string host_port(const BrokerAddress& a) {
  return (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" +
         std::to_string(a.port);
}

// OpenSSL's most recent error as its reason text ("sslv3 alert handshake failure"), emptying the
// queue.
std::string openssl_error(const std::string& fallback) {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    out = reason ? reason : std::to_string(e);
  }
  return out.empty() ? fallback : out;
}

std::string one_line_name(X509_NAME* name) {
  if (name == nullptr) return "?";
  char buf[512];
  X509_NAME_oneline(name, buf, sizeof buf);
  return buf;
}

// notAfter as Unix seconds: its distance from now (ASN1_TIME_diff) added to now, so that no
// 32-bit time_t is involved.
std::optional<std::int64_t> not_after_of(const X509* cert) {
  const ASN1_TIME* t = X509_get0_notAfter(cert);
  int days = 0, secs = 0;
  if (t == nullptr || ASN1_TIME_diff(&days, &secs, nullptr, t) != 1) return std::nullopt;
  const std::int64_t now_s = wall_ms() / 1000;
  return now_s + static_cast<std::int64_t>(days) * 86400 + secs;
}

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

}  // namespace

LocalBrokerProbe probe_local_broker(const Config& config, std::chrono::milliseconds timeout) {
  LocalBrokerProbe p;
  const auto& b = config.local_broker;
  p.topic = "anju/" + config.site.id + "/cmd/alert/+";
  p.probe_topic = "anju/" + config.site.id + "/check/anju-check-" + std::to_string(::getpid());
  const auto addr = parse_broker_address(b.uri);
  if (!addr) {
    p.tcp_error = "not a broker address";
    return p;
  }
  p.address = host_port(*addr);
  if (!addr->websocket) {
    const int fd = tcp_connect(addr->host, addr->port, timeout, p.tcp_error);
    if (fd < 0) return p;
    ::close(fd);
  }
  p.tcp_ok = true;

  edge::MqttEndpoint ep = endpoint(b);
  ep.client_id = "anju-check-" + std::to_string(::getpid());  // anjud's session is left alone
  const int seconds = static_cast<int>(std::max<std::int64_t>(1, timeout.count() / 1000));
  std::mutex tls_mu;
  std::string tls_error;
  try {
    mqtt::async_client client(edge::paho_uri(ep.uri), ep.client_id, edge::make_create_options(ep));
    client.start_consuming();
    auto opts = edge::make_connect_options(ep, true, std::nullopt);
    opts.set_connect_timeout(seconds);
    if (ep.tls || addr->tls) {
      mqtt::ssl_options ssl = opts.get_ssl_options();
      ssl.set_error_handler([&](const std::string& m) {
        std::lock_guard lock(tls_mu);
        tls_error = m;
      });
      opts.set_ssl(std::move(ssl));
    }
    try {
      auto tok = client.connect(opts);
      if (!tok->wait_for(timeout + std::chrono::seconds(1))) {
        p.connect_error = "no CONNACK within " + std::to_string(seconds) + " s";
        return p;
      }
    } catch (const mqtt::exception& e) {
      std::lock_guard lock(tls_mu);
      // MQTT 5 reason codes (0x80 and up) come as either; 4 and 5 are MQTT 3.1.1's.
      const int rc = e.get_reason_code() >= 0x80 ? e.get_reason_code() : e.get_return_code();
      if (!tls_error.empty())
        p.connect_error = "TLS: " + tls_error;
      else if (rc == 0x86 || rc == 4)
        p.connect_error = "bad user name or password";
      else if (rc == 0x87 || rc == 5)
        p.connect_error = "not authorized";
      else if (rc == 0x85 || rc == 2)
        p.connect_error = "client identifier not valid";
      else if (rc == 0x88 || rc == 3)
        p.connect_error = "server unavailable";
      else
        p.connect_error = e.what();
      return p;
    }
    p.connected = true;
    const auto wait = timeout + std::chrono::seconds(1);
    auto subscribe = [&](const std::string& topic, std::string& error) {
      try {
        auto tok = client.subscribe(topic, 1);
        if (!tok->wait_for(wait)) {
          error = "no SUBACK within " + std::to_string(seconds) + " s";
          return false;
        }
        const auto codes = tok->get_subscribe_response().get_reason_codes();
        if (!codes.empty() && codes.front() >= 0x80) {
          error = codes.front() == 0x87
                      ? "not authorized"
                      : "refused (reason code " + std::to_string(codes.front()) + ")";
          return false;
        }
        return true;
      } catch (const mqtt::exception& e) {
        error = e.get_reason_code() == 0x87 ? "not authorized" : e.what();
        return false;
      }
    };
    p.subscribed = subscribe(p.topic, p.subscribe_error);
    // Mosquitto's ACL file grants every subscription and only filters what it delivers, so a
    // granted SUBACK proves little: a message of our own on anju/<site>/check/<client id> must
    // come back, which needs both write and read access to the gateway's tree.
    if (p.subscribed) {
      std::string error;
      if (!subscribe(p.probe_topic, error)) {
        p.loopback_error = "the subscription to it was refused: " + error;
      } else {
        try {
          const std::string payload = json{
              {"check", "anju check"},
              {"client_id", ep.client_id},
              {"ts_ms", wall_ms()}}.dump();
          auto tok = client.publish(p.probe_topic, payload.data(), payload.size(), 1, false);
          if (!tok->wait_for(wait)) {
            p.loopback_error = "no PUBACK within " + std::to_string(seconds) + " s";
          } else {
            const auto deadline = std::chrono::steady_clock::now() + timeout;
            mqtt::const_message_ptr m;
            while (!p.loopback) {
              const auto left = deadline - std::chrono::steady_clock::now();
              if (left <= std::chrono::steady_clock::duration::zero() ||
                  !client.try_consume_message_for(&m, left))
                break;
              p.loopback = m && m->get_topic() == p.probe_topic && m->get_payload_str() == payload;
            }
            if (!p.loopback)
              p.loopback_error = "the broker accepted it but did not deliver it back within " +
                                 std::to_string(seconds) + " s";
          }
        } catch (const mqtt::exception& e) {
          p.loopback_error = e.get_reason_code() == 0x87 ? "the broker refused it: not authorized"
                                                         : std::string(e.what());
        }
      }
    }
    try {
      client.disconnect()->wait_for(timeout);
    } catch (const mqtt::exception&) {
    }
  } catch (const std::exception& e) {
    p.connect_error = e.what();  // e.g. a credentials file that cannot be read
  }
  return p;
}

TlsProbe probe_tls(const BrokerConfig& broker, std::chrono::milliseconds timeout) {
  TlsProbe p;
  const auto addr = parse_broker_address(broker.uri);
  if (!addr) {
    p.tcp_error = "not a broker address";
    return p;
  }
  p.address = host_port(*addr);
  const int fd = tcp_connect(addr->host, addr->port, timeout, p.tcp_error);
  if (fd < 0) return p;
  p.tcp_ok = true;
  p.tls = addr->tls || broker.tls.enabled;
  if (!p.tls) {
    ::close(fd);
    return p;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  ERR_clear_error();
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    ::close(fd);
    p.setup_error = openssl_error("SSL_CTX_new failed");
    return p;
  }
  const auto& t = broker.tls;
  if (t.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1)
      p.setup_error = "no tls.ca_file and no system CA store";
  } else if (SSL_CTX_load_verify_locations(ctx.get(), t.ca_file.c_str(), nullptr) != 1) {
    p.setup_error = "ca_file " + t.ca_file + ": " + openssl_error("cannot be loaded");
  }
  if (p.setup_error.empty() && !t.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), t.cert_file.c_str()) != 1)
      p.setup_error = "cert_file " + t.cert_file + ": " + openssl_error("cannot be loaded");
    else if (SSL_CTX_use_PrivateKey_file(ctx.get(), t.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      p.setup_error = "key_file " + t.key_file + ": " + openssl_error("cannot be loaded");
    else if (SSL_CTX_check_private_key(ctx.get()) != 1)
      p.setup_error = "key_file " + t.key_file + " does not belong to cert_file " + t.cert_file;
  }
  if (!p.setup_error.empty()) {
    ::close(fd);
    return p;
  }
  // The verdict is read after the handshake, not enforced by it, so that an untrusted or expired
  // certificate can still be looked at and described.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  in6_addr ip6{};
  in_addr ip4{};
  const bool is_ip = ::inet_pton(AF_INET, addr->host.c_str(), &ip4) == 1 ||
                     ::inet_pton(AF_INET6, addr->host.c_str(), &ip6) == 1;
  if (!is_ip) SSL_set_tlsext_host_name(ssl.get(), addr->host.c_str());
  if (t.verify_hostname) {
    p.hostname_checked = true;
    if (is_ip)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), addr->host.c_str());
    else
      SSL_set1_host(ssl.get(), addr->host.c_str());
  }
  const int rc = SSL_connect(ssl.get());
  if (rc != 1) {
    const int err = SSL_get_error(ssl.get(), rc);
    const int saved_errno = errno;
    p.handshake_error = openssl_error("");
    if (p.handshake_error.empty())
      p.handshake_error =
          err == SSL_ERROR_SYSCALL && saved_errno != 0
              ? (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK
                     ? "no answer within " + std::to_string(timeout.count() / 1000) + " s"
                     : std::string(std::strerror(saved_errno)))
              : "the broker closed the connection during the handshake";
    ::close(fd);
    return p;
  }
  p.handshake_ok = true;
  p.verify_code = SSL_get_verify_result(ssl.get());
  p.verify_error = X509_verify_cert_error_string(p.verify_code);
  std::unique_ptr<X509, X509Free> peer(SSL_get1_peer_certificate(ssl.get()));
  if (peer) {
    p.subject = one_line_name(X509_get_subject_name(peer.get()));
    p.issuer = one_line_name(X509_get_issuer_name(peer.get()));
    p.not_after_s = not_after_of(peer.get());
  }
  SSL_shutdown(ssl.get());
  ::close(fd);
  return p;
}

std::optional<std::int64_t> certificate_not_after(const std::string& pem_path, std::string* error) {
  FILE* f = std::fopen(pem_path.c_str(), "r");
  if (f == nullptr) {
    if (error) *error = "cannot read " + pem_path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::unique_ptr<X509, X509Free> cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!cert) {
    if (error) *error = pem_path + " holds no PEM certificate";
    ERR_clear_error();
    return std::nullopt;
  }
  return not_after_of(cert.get());
}

void add_outbox_oldest(OutboxView& v, const std::string& db_path) {
  if (!fs::exists(db_path)) return;
  try {
    auto db = edge::open_reader(db_path);
    auto st = db.prepare(
        "SELECT class, payload FROM outbox WHERE oid IN (SELECT min(oid) FROM outbox GROUP BY "
        "class)");
    while (st.step()) {
      const auto cls = st.i64(0);
      if (cls < 0 || cls >= bridge::kClasses) continue;
      const std::string name(bridge::to_string(static_cast<bridge::MsgClass>(cls)));
      const auto j = json::parse(st.str(1), nullptr, false);
      if (!j.is_object() || !j.contains("ts_ms") || !j["ts_ms"].is_number()) continue;
      for (auto& c : v.classes)
        if (c.cls == name) c.oldest_ms = j["ts_ms"].get<std::int64_t>();
    }
  } catch (const std::exception&) {
    // No outbox table yet, or a journal being replaced: the ages stay unknown.
  }
}

OutboxView outbox_from_journal(const std::string& db_path) {
  OutboxView v;
  bridge::OutboxCounters counters;
  if (fs::exists(db_path)) {
    try {
      auto db = edge::open_reader(db_path);
      bridge::load_counters(db, counters);
    } catch (const std::exception&) {
    }
  }
  for (int c = 0; c < bridge::kClasses; ++c)
    v.classes.push_back({std::string(bridge::to_string(static_cast<bridge::MsgClass>(c))),
                         counters.rows[c].load(),
                         counters.bytes[c].load(),
                         counters.evicted[c].load(),
                         0,
                         {}});
  return v;
}

// --- All of it ---------------------------------------------------------------------------------

std::vector<CheckResult> run_checks(const CheckOptions& options) {
  std::vector<CheckResult> out;
  const std::string config_path =
      options.config_path.empty() ? std::string("/etc/anju/anju.yaml") : options.config_path;
  const auto loaded = load_config(config_path);
  out.push_back(evaluate_config(config_path, loaded));
  const Config* cfg = loaded.config ? &*loaded.config : nullptr;
  const std::string data_dir = !options.data_dir.empty() ? options.data_dir
                               : cfg                     ? cfg->data_dir
                                                         : "/var/lib/anju";
  const std::string db_path = journal_path(data_dir);
  const std::int64_t now = wall_ms();

  out.push_back(evaluate_clock(probe_clock()));

  // Disk space, and what anjud writes.
  std::string disk_error;
  const auto disk = probe_disk(data_dir, &disk_error);
  std::int64_t journal_bytes = 0;
  for (const auto& f : {db_path, db_path + "-wal"}) {
    std::error_code ec;
    const auto n = fs::file_size(f, ec);
    if (!ec) journal_bytes += static_cast<std::int64_t>(n);
  }
  if (disk)
    out.push_back(evaluate_disk(data_dir, *disk, journal_bytes,
                                cfg ? cfg->journal.max_bytes : JournalConfig{}.max_bytes));
  else
    out.push_back(result("disk", CheckStatus::fail, disk_error,
                         "check data_dir (" + data_dir + ") in the config"));

  const std::string socket = status_socket_path(data_dir);
  std::optional<json> status;
  if (auto raw = read_status_socket(socket, options.timeout)) {
    auto j = json::parse(*raw, nullptr, false);
    if (j.is_object()) status = std::move(j);
  }
  std::optional<WriteSample> writes;
  std::string why_not = "anjud is not running";
  if (status && num(*status, "pid") > 0) writes = probe_write_rate(num(*status, "pid"), &why_not);
  out.push_back(evaluate_flash_wear(writes, why_not, disk ? disk->total_bytes : 0));

  // Brokers.
  if (cfg) {
    out.push_back(evaluate_local_broker(cfg->local_broker, config_path,
                                        probe_local_broker(*cfg, options.timeout)));
    auto key_mode = [&](const std::string& check, const std::string& key, const std::string& path) {
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0)
        out.push_back(result(check, CheckStatus::fail,
                             key + " " + path + ": " + std::strerror(errno),
                             "install the key there, or correct " + key + " in " + config_path));
      else
        out.push_back(evaluate_key_file_mode(check, key, path, st.st_mode));
    };
    if (cfg->local_broker.tls.enabled && !cfg->local_broker.tls.key_file.empty())
      key_mode("local_client_key", "local_broker.tls.key_file", cfg->local_broker.tls.key_file);

    const auto& up = cfg->uplink;
    TlsProbe tls;
    if (up.enabled) tls = probe_tls(up.broker, options.timeout);
    out.push_back(evaluate_city_broker(up, config_path, tls));
    if (up.enabled && tls.not_after_s)
      out.push_back(evaluate_cert_expiry(
          "city_certificate", "the city broker's certificate (" + tls.subject + ")",
          *tls.not_after_s, now / 1000,
          "the city must renew its broker's certificate (or, if the date looks wrong, the "
          "gateway's clock is: see clock)"));
    if (up.enabled && up.broker.tls.enabled && !up.broker.tls.cert_file.empty()) {
      std::string error;
      if (auto na = certificate_not_after(up.broker.tls.cert_file, &error))
        out.push_back(evaluate_cert_expiry(
            "client_certificate", "the gateway's certificate " + up.broker.tls.cert_file, *na,
            now / 1000,
            "get a new certificate for the gateway from the city's CA and install it as "
            "uplink.tls.cert_file"));
      else
        out.push_back(result("client_certificate", CheckStatus::fail, error,
                             "install the certificate the city issued as uplink.tls.cert_file"));
    }
    if (up.enabled && up.broker.tls.enabled && !up.broker.tls.key_file.empty())
      key_mode("client_key", "uplink.tls.key_file", up.broker.tls.key_file);
  } else {
    for (const char* name : {"local_broker", "city_broker"})
      out.push_back(result(name, CheckStatus::warn, "not checked: the config is not valid",
                           "correct the config (see config)"));
  }

  out.push_back(evaluate_anjud(status, socket));
  if (!cfg) return out;
  out.push_back(evaluate_uplink(*cfg, status));

  // Devices, from the registry anjud keeps in the journal.
  std::vector<edge::DeviceRecord> registry;
  std::string registry_error;
  if (fs::exists(db_path)) {
    try {
      registry = edge::load_devices(edge::open_reader(db_path));
    } catch (const std::exception& e) {
      registry_error = e.what();
    }
  }
  if (!registry_error.empty())
    out.push_back(result("devices", CheckStatus::fail,
                         "cannot read the device registry in " + db_path + ": " + registry_error,
                         "run anju check as root, or as the user anjud runs as"));
  else
    out.push_back(
        evaluate_devices(registry, device_intervals(*cfg), configured_devices(*cfg), now,
                         writes ? now - static_cast<std::int64_t>(writes->uptime_s * 1000) : 0));
  out.push_back(evaluate_cameras(*cfg, status));
  out.push_back(evaluate_readers(*cfg, status));
  out.push_back(evaluate_gpio_doors(*cfg, status));
  return out;
}

}  // namespace anju::firmware
