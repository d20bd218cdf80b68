// anju: the installer's and operator's CLI. Reads the data directory (SQLite, read-only, beside a
// running anjud thanks to WAL) and anjud's status socket.
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "anju/edge/audit_log.hpp"
#include "anju/edge/journal.hpp"
#include "anju/firmware/broker_auth.hpp"
#include "anju/firmware/check.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/control.hpp"
#include "anju/firmware/daemon.hpp"
#include "anju/firmware/provision.hpp"
#include "anju/firmware/users.hpp"

namespace {
using nlohmann::json;

std::optional<std::string> ask_status(const std::string& path) {
  return anju::firmware::read_status_socket(path, std::chrono::seconds(5));
}

std::int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// anju outbox --drain-now: the uplink retries at once, and the drain is followed until what
// waited when it was asked has gone to the city (or the timeout passes).
int drain_now(const std::string& data_dir, int timeout_s, bool as_json) {
  const std::string sock = anju::firmware::status_socket_path(data_dir);
  json answer;
  std::string why;
  if (!anju::firmware::control_call(
          sock, {{"cmd", "drain-now"}}, std::chrono::seconds(5), [&](const json& j) { answer = j; },
          &why)) {
    std::cerr << "anju outbox --drain-now: " << why << "\n";
    return 1;
  }
  if (!answer.value("ok", false)) {
    std::cerr << "anju outbox --drain-now: " << answer.value("error", std::string("refused"))
              << "\n";
    return 1;
  }
  auto sample = [&]() -> std::optional<json> {
    auto raw = ask_status(sock);
    if (!raw) return std::nullopt;
    auto j = json::parse(*raw, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    return j;
  };
  auto total = [](const json& s, const char* field) {
    std::int64_t n = 0;
    auto it = s.find("outbox");
    if (it == s.end() || !it->is_object()) return n;
    for (const auto& c : *it)
      if (c.is_object()) n += c.value(field, std::int64_t{0});
    return n;
  };
  auto first = sample();
  if (!first) {
    std::cerr << "anju outbox --drain-now: anjud stopped answering\n";
    return 1;
  }
  const std::int64_t waiting = total(*first, "rows"), sent0 = total(*first, "sent");
  const std::int64_t start = mono_ms(), deadline = start + std::int64_t{timeout_s} * 1000;
  const bool tty = !as_json && ::isatty(STDOUT_FILENO);
  std::int64_t last_print = 0;
  json last = *first;
  bool drained = waiting == 0;
  while (!drained && mono_ms() < deadline) {
    struct timespec pause {
      0, 250'000'000
    };
    nanosleep(&pause, nullptr);  // polling anjud's counters for the progress line, not a wait
    auto s = sample();
    if (!s) break;
    last = *s;
    const std::int64_t sent = total(last, "sent") - sent0, rows = total(last, "rows");
    drained = sent >= waiting || rows == 0;
    if (!as_json && (tty || mono_ms() - last_print >= 1000)) {
      const auto up = last.value("uplink", json::object());
      const double secs = static_cast<double>(mono_ms() - start) / 1000.0;
      std::ostringstream line;
      line << "draining: " << std::min(sent, waiting) << " of " << waiting << " sent, " << rows
           << " waiting, "
           << (secs > 0 ? static_cast<std::int64_t>(static_cast<double>(sent) / secs) : 0)
           << " msg/s, link "
           << (up.value("connected", false)
                   ? std::string("up")
                   : "down (" + up.value("last_error", std::string("connecting")) + ")");
      std::cout << (tty ? "\r" : "") << line.str() << (tty ? "\x1b[K" : "\n") << std::flush;
      last_print = mono_ms();
    }
  }
  if (tty) std::cout << "\n";
  const std::int64_t sent = total(last, "sent") - sent0;
  const double secs = static_cast<double>(mono_ms() - start) / 1000.0;
  const auto up = last.value("uplink", json::object());
  if (as_json) {
    std::cout << json{{"drained", drained}, {"waiting_at_start", waiting},
                      {"sent", sent},       {"waiting", total(last, "rows")},
                      {"seconds", secs},    {"link", up}}
                     .dump()
              << "\n";
  } else if (drained) {
    std::cout << "drained: " << waiting << " message(s) that were waiting went to the city in "
              << secs << " s\n";
  } else {
    std::cout << "NOT drained after " << timeout_s << " s: " << total(last, "rows")
              << " message(s) still waiting; link "
              << (up.value("connected", false)
                      ? std::string("up")
                      : "down: " + up.value("last_error", std::string("?")))
              << "\n";
  }
  return drained ? 0 : 1;
}

// anju test-event: one marked test event end to end, each hop printed as anjud reports it.
int test_event(const std::string& data_dir, const std::string& target, const std::string& kind,
               int timeout_s, bool as_json) {
  json req{{"cmd", "test-event"}, {"target", target}, {"timeout_ms", timeout_s * 1000}};
  if (!kind.empty()) req["kind"] = kind;
  json hops = json::array();
  bool ok = false;
  std::string error;
  auto fmt_ms = [](const json& j) {
    std::ostringstream o;
    o.setf(std::ios::fixed);
    o.precision(1);
    o << j.value("ms", 0.0) << " ms";
    return o.str();
  };
  auto row = [](const std::string& what, const std::string& detail, const std::string& ms) {
    std::string l = "  " + what;
    l.resize(std::max<std::size_t>(l.size() + 1, 26), ' ');
    l += detail;
    if (!ms.empty()) {
      l.resize(std::max<std::size_t>(l.size() + 1, 70), ' ');
      l += ms;
    }
    return l + "\n";
  };
  std::string why;
  const bool answered = anju::firmware::control_call(
      anju::firmware::status_socket_path(data_dir), req, std::chrono::seconds(timeout_s + 15),
      [&](const json& j) {
        if (j.contains("done") || (j.contains("error") && !j.contains("hop"))) {
          ok = j.value("ok", false);
          error = j.value("error", std::string());
          return;
        }
        hops.push_back(j);
        if (as_json) return;
        const std::string hop = j.value("hop", "");
        if (hop == "submitted")
          std::cout << "test event " << j.value("event_id", "") << " for "
                    << (j.value("name", "").empty()
                            ? j.value("device", "")
                            : j.value("name", "") + " [" + j.value("device", "") + "]")
                    << " (" << j.value("kind", "") << "), flagged test: nobody is dispatched\n";
        else if (hop == "journaled")
          std::cout << row("journaled", "seq " + std::to_string(j.value("seq", 0)), fmt_ms(j));
        else if (hop == "alert")
          std::cout << row("alert raised locally", j.value("local_topic", ""), fmt_ms(j));
        else if (hop == "outbox")
          std::cout << row("queued for the city",
                           "outbox row " + std::to_string(j.value("oid", 0)) + " -> " +
                               j.value("city_topic", ""),
                           fmt_ms(j));
        else if (hop == "waiting")
          std::cout << row("waiting", j.value("why", ""), "");
        else if (hop == "city")
          std::cout << row("city broker PUBACK", "acknowledged", fmt_ms(j));
        else if (hop == "closed")
          std::cout << row(
              "test alert closed",
              j.contains("error") ? "NOT closed: " + j.value("error", "") : j.value("note", ""),
              "");
        std::cout << std::flush;
      },
      &why);
  if (!answered) error = why;
  if (as_json) {
    std::cout << json{{"ok", ok}, {"hops", hops}, {"error", error}}.dump() << "\n";
  } else if (ok) {
    double city = 0;
    for (const auto& h : hops)
      if (h.value("hop", "") == "city") city = h.value("ms", 0.0);
    std::ostringstream o;
    o.setf(std::ios::fixed);
    o.precision(1);
    o << city;
    std::cout << "OK: the test alert reached the city broker in " << o.str() << " ms\n";
  } else {
    std::cout << "FAIL: " << (error.empty() ? std::string("no answer from anjud") : error) << "\n";
  }
  return ok ? 0 : 1;
}

// "10m", "2h", "30s", "1d" → milliseconds.
std::optional<std::int64_t> parse_duration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char unit = s.back();
  std::int64_t mult = 1000;
  std::string num = s;
  if (unit == 's' || unit == 'm' || unit == 'h' || unit == 'd') {
    num.pop_back();
    mult = unit == 's' ? 1000 : unit == 'm' ? 60'000 : unit == 'h' ? 3'600'000 : 86'400'000;
  }
  try {
    size_t used = 0;
    const long long v = std::stoll(num, &used);
    if (used != num.size() || v < 0) return std::nullopt;
    return v * mult;
  } catch (...) {
    return std::nullopt;
  }
}

std::string upper(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

std::string fmt_time(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A password from the terminal (twice, without echo) or, when stdin is not a terminal, the first
// line of stdin (so that scripts can pipe it in).
std::optional<std::string> read_password(const std::string& prompt) {
  auto read_line = [](std::string& out) {
    if (!std::getline(std::cin, out)) return false;
    if (!out.empty() && out.back() == '\r') out.pop_back();
    return true;
  };
  if (!::isatty(STDIN_FILENO)) {
    std::string pw;
    if (!read_line(pw)) return std::nullopt;
    return pw;
  }
  termios old{};
  ::tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  std::string a, b;
  std::cerr << prompt << ": " << std::flush;
  const bool ok_a = read_line(a);
  std::cerr << "\nagain: " << std::flush;
  const bool ok_b = ok_a && read_line(b);
  std::cerr << "\n";
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
  if (!ok_b) return std::nullopt;
  if (a != b) {
    std::cerr << "anju user: the two passwords differ\n";
    return std::nullopt;
  }
  return a;
}

// `anju user add|passwd|del|list`: edits the dashboard's users file under an exclusive lock
// (<file>.lock), atomically (temp file + rename, mode 0600). anjud notices the change by itself.
int user_command(const std::string& users_file, const std::string& action, const std::string& name,
                 const std::string& role_text, bool as_json) {
  namespace fs = std::filesystem;
  using anju::firmware::User;
  const fs::path parent = fs::path(users_file).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  const std::string lock_path = users_file + ".lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX) != 0) {
    std::cerr << "anju user: cannot lock " << lock_path << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock_fd};

  auto loaded = anju::firmware::load_users_file(users_file);
  if (!loaded.users) {
    std::cerr << "anju user: " << loaded.error << "\n";
    return 1;
  }
  auto users = std::move(*loaded.users);
  auto it = std::find_if(users.begin(), users.end(), [&](const User& u) { return u.name == name; });
  if (action == "list") {
    json out = json::array();
    for (const auto& u : users) {
      if (as_json)
        out.push_back({{"name", u.name}, {"role", anju::firmware::to_string(u.role)}});
      else
        std::cout << u.name << "  " << anju::firmware::to_string(u.role) << "\n";
    }
    if (as_json) std::cout << out.dump() << "\n";
    return 0;
  }
  if (auto e = anju::firmware::check_user_name(name); !e.empty()) {
    std::cerr << "anju user: " << e << "\n";
    return 2;
  }
  if (action == "del") {
    if (it == users.end()) {
      std::cerr << "anju user: no user '" << name << "'\n";
      return 1;
    }
    users.erase(it);
    anju::firmware::save_users_file(users_file, users);
    std::cout << "deleted user " << name << "\n";
    return 0;
  }
  std::optional<anju::firmware::Role> role;
  if (!role_text.empty()) {
    role = anju::firmware::role_from_string(role_text);
    if (!role) {
      std::cerr << "anju user: --role must be viewer, operator or admin\n";
      return 2;
    }
  }
  if (action == "add" && it != users.end()) {
    std::cerr << "anju user: '" << name << "' exists (use `anju user passwd`)\n";
    return 1;
  }
  if (action == "passwd" && it == users.end()) {
    std::cerr << "anju user: no user '" << name << "'\n";
    return 1;
  }
  if (action == "add" && !role) {
    std::cerr << "anju user add: --role viewer|operator|admin is required\n";
    return 2;
  }
  auto pw = read_password("password for " + name);
  if (!pw) {
    std::cerr << "anju user: no password given\n";
    return 1;
  }
  if (pw->size() < 8 || pw->size() > 1024) {
    std::cerr << "anju user: the password must be 8 to 1024 bytes\n";
    return 2;
  }
  const std::string hash = anju::firmware::hash_password(*pw);
  if (action == "add") {
    users.push_back({name, *role, hash});
  } else {
    it->password_hash = hash;
    if (role) it->role = *role;
  }
  anju::firmware::save_users_file(users_file, users);
  std::cout << (action == "add" ? "added user " : "changed the password of ") << name << " ("
            << anju::firmware::to_string(action == "add" ? *role : it->role) << ") in "
            << users_file << "\n";
  return 0;
}

// --- anju broker-config ------------------------------------------------------------------------

struct BrokerConfigArgs {
  std::string config_path;
  std::string users_file;  // already defaulted
  std::string out_dir;
  std::vector<std::string> clients;  // USER:ROLE[:PREFIX]
  std::vector<std::string> removes;
  std::string listen;  // HOST:PORT; empty: from local_broker.uri
  std::string owner;   // chown the broker's files to this user when root; empty: leave them
  bool quiet = false;
};

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string first_line(const std::string& text) {
  std::string s = text.substr(0, text.find('\n'));
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Writes `data` to `path` unless it already holds exactly that (then only mode and owner are
// set): a temp file beside it created with `mode`, fsynced, renamed over. Returns whether the
// content changed. Throws with the path and errno text on failure.
bool write_if_changed(const std::string& path, const std::string& data, mode_t mode,
                      std::optional<std::pair<uid_t, gid_t>> owner) {
  auto fix = [&](const std::string& p, int fd) {
    if ((fd >= 0 ? ::fchmod(fd, mode) : ::chmod(p.c_str(), mode)) != 0)
      throw std::runtime_error("chmod " + p + ": " + std::strerror(errno));
    if (owner && (fd >= 0 ? ::fchown(fd, owner->first, owner->second)
                          : ::chown(p.c_str(), owner->first, owner->second)) != 0)
      throw std::runtime_error("chown " + p + ": " + std::strerror(errno));
  };
  if (auto old = slurp(path); old && *old == data) {
    fix(path, -1);
    return false;
  }
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot create " + tmp + ": " + std::strerror(errno));
  bool ok = true;
  std::string why;
  try {
    fix(tmp, fd);
  } catch (const std::exception& e) {
    ok = false;
    why = e.what();
  }
  for (std::size_t done = 0; ok && done < data.size();) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      why = "write " + tmp + ": " + std::strerror(errno);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (ok && ::fsync(fd) != 0) {
    ok = false;
    why = "fsync " + tmp + ": " + std::strerror(errno);
  }
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    why = "rename " + tmp + " to " + path + ": " + std::strerror(errno);
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(why);
  }
  return true;
}

std::optional<std::pair<uid_t, gid_t>> lookup_owner(const std::string& name) {
  const passwd* pw = ::getpwnam(name.c_str());
  if (pw == nullptr) return std::nullopt;
  return std::make_pair(pw->pw_uid, pw->pw_gid);
}

// "tcp://host:port" (also mqtt://, ssl://, mqtts://, [v6]:port) → host and port.
bool split_broker_uri(const std::string& uri, std::string& host, int& port, bool& tls) {
  const auto sep = uri.find("://");
  if (sep == std::string::npos) return false;
  const std::string scheme = uri.substr(0, sep);
  tls = scheme == "ssl" || scheme == "mqtts";
  if (!tls && scheme != "tcp" && scheme != "mqtt") return false;
  std::string rest = uri.substr(sep + 3);
  if (const auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  port = tls ? 8883 : 1883;
  const auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    try {
      std::size_t used = 0;
      port = std::stoi(rest.substr(colon + 1), &used);
      if (used != rest.size() - colon - 1) return false;
    } catch (...) {
      return false;
    }
    rest.resize(colon);
  }
  if (rest.size() >= 2 && rest.front() == '[' && rest.back() == ']')
    rest = rest.substr(1, rest.size() - 2);
  host = rest;
  return !host.empty() && port > 0 && port < 65536;
}

// `anju broker-config`: the local Mosquitto's password file, ACL and a mosquitto.conf snippet,
// from the gateway's own credentials (local_broker.username_file/password_file), the dashboard's
// users (admin/operator → operator, viewer → viewer) and device clients given with --client.
// Passwords and hash salts are remembered in <out>/clients.json (0600), so that running it again
// with nothing changed rewrites nothing. Exit 0 done, 1 I/O or state problem, 2 bad input.
int broker_config_command(const BrokerConfigArgs& a) {
  namespace fs = std::filesystem;
  using anju::firmware::BrokerClient;
  using anju::firmware::BrokerCredential;
  using anju::firmware::BrokerRole;
  const std::string me = "anju broker-config: ";
  if (a.config_path.empty()) {
    std::cerr << me
              << "--config FILE is required (the site id, the local broker and the gateway's "
                 "credentials come from it)\n";
    return 2;
  }
  auto loaded = anju::firmware::load_config(a.config_path);
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
    return 2;
  }
  const auto& cfg = *loaded.config;
  const std::string& site = cfg.site.id;

  // The listener.
  std::string host;
  int port = 0;
  bool tls = false;
  if (!a.listen.empty()) {
    if (!anju::firmware::split_listen(a.listen, host, port)) {
      std::cerr << me << "--listen '" << a.listen << "' is not HOST:PORT\n";
      return 2;
    }
  } else if (!split_broker_uri(cfg.local_broker.uri, host, port, tls)) {
    std::cerr << me << "local_broker.uri '" << cfg.local_broker.uri << "' in " << a.config_path
              << " is not tcp://HOST:PORT (pass --listen HOST:PORT)\n";
    return 2;
  }

  // --client USER:ROLE[:PREFIX]
  std::vector<BrokerClient> cli_clients;
  for (const auto& spec : a.clients) {
    const auto c1 = spec.find(':');
    BrokerClient c;
    c.user = spec.substr(0, c1);
    std::string role = c1 == std::string::npos ? "" : spec.substr(c1 + 1);
    if (const auto c2 = role.find(':'); c2 != std::string::npos) {
      c.prefix = role.substr(c2 + 1);
      role.resize(c2);
    }
    if (c1 == std::string::npos || !anju::firmware::broker_role_from_string(role, c.role) ||
        c.role == BrokerRole::gateway) {
      std::cerr << me << "--client '" << spec
                << "': expected USER:ROLE[:PREFIX] with ROLE zigbee2mqtt, chirpstack, "
                   "bridge (with a PREFIX such as vendor/acme/), operator or viewer\n";
      return 2;
    }
    cli_clients.push_back(std::move(c));
  }

  std::optional<std::pair<uid_t, gid_t>> owner;
  if (!a.owner.empty() && ::geteuid() == 0) {
    owner = lookup_owner(a.owner);
    if (!owner) {
      std::cerr << me << "no system user '" << a.owner
                << "' to own the broker's files (install mosquitto, or pass --owner USER, or "
                   "--owner '' to leave them to root)\n";
      return 2;
    }
  }

  std::error_code ec;
  const fs::path out = fs::absolute(a.out_dir);
  if (!fs::exists(out)) {
    fs::create_directories(out, ec);
    if (ec) {
      std::cerr << me << "cannot create " << out.string() << ": " << ec.message() << "\n";
      return 1;
    }
    // The broker (another user) must reach its files; each file guards itself by its mode.
    fs::permissions(out,
                    fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                        fs::perms::others_read | fs::perms::others_exec,
                    ec);
  } else if (!fs::is_directory(out)) {
    std::cerr << me << out.string() << " is not a directory\n";
    return 2;
  }
  const std::string store_path = (out / "clients.json").string();
  const std::string lock_path = store_path + ".lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX) != 0) {
    std::cerr << me << "cannot lock " << lock_path << ": " << std::strerror(errno) << "\n";
    if (lock_fd >= 0) ::close(lock_fd);
    return 1;
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock_fd};

  std::vector<BrokerCredential> previous;
  if (auto text = slurp(store_path)) {
    auto parsed = anju::firmware::parse_broker_store(*text);
    if (!parsed.error.empty()) {
      std::cerr << me << store_path << ": " << parsed.error
                << " (fix it or move it away: every client then gets a new password)\n";
      return 1;
    }
    previous = std::move(parsed.clients);
  }
  auto find_prev = [&](const std::string& user) -> const BrokerCredential* {
    for (const auto& p : previous)
      if (p.client.user == user) return &p;
    return nullptr;
  };
  std::vector<std::string> created;
  // Keeps the password and salt a user had, so that an unchanged client hashes the same.
  auto credential = [&](BrokerClient c, const std::string& source,
                        const std::optional<std::string>& password) {
    BrokerCredential cred;
    const BrokerCredential* p = find_prev(c.user);
    cred.client = std::move(c);
    cred.source = source;
    cred.password = password ? *password : p ? p->password : anju::firmware::random_password();
    cred.salt = p && p->password == cred.password ? p->salt : anju::firmware::random_salt();
    if (!p) created.push_back(cred.client.user);
    return cred;
  };

  std::vector<BrokerCredential> next;
  // 1. The gateway: its credentials are what anjud will read from local_broker.*_file.
  std::string gw_user_file = cfg.local_broker.username_file;
  std::string gw_pass_file = cfg.local_broker.password_file;
  const bool gw_files_configured = !gw_user_file.empty();
  if (!gw_files_configured) {
    gw_user_file = (out / "gateway.username").string();
    gw_pass_file = (out / "gateway.password").string();
  }
  std::string gw_user = "anjud";
  for (const auto& p : previous)
    if (p.client.role == BrokerRole::gateway) gw_user = p.client.user;
  std::optional<std::string> gw_password;
  if (auto t = slurp(gw_user_file)) gw_user = first_line(*t);
  if (auto t = slurp(gw_pass_file)) gw_password = first_line(*t);
  if (gw_password && gw_password->empty()) {
    std::cerr << me << gw_pass_file << " is empty\n";
    return 2;
  }
  {
    const BrokerCredential* p = find_prev(gw_user);
    if (!gw_password && p == nullptr) gw_password = anju::firmware::random_password();
    next.push_back(credential({gw_user, BrokerRole::gateway, ""}, "config", gw_password));
  }
  // 2. Device clients given now or on an earlier run, less the removed ones.
  auto removed = [&](const std::string& user) {
    return std::find(a.removes.begin(), a.removes.end(), user) != a.removes.end();
  };
  std::vector<BrokerClient> kept;
  for (const auto& p : previous)
    if (p.source == "cli" && !removed(p.client.user)) kept.push_back(p.client);
  for (auto& c : cli_clients) {
    auto it = std::find_if(kept.begin(), kept.end(),
                           [&](const BrokerClient& k) { return k.user == c.user; });
    if (it != kept.end())
      *it = c;
    else
      kept.push_back(c);
  }
  for (auto& c : kept) next.push_back(credential(c, "cli", std::nullopt));
  // 3. The dashboard's users.
  auto users = anju::firmware::load_users_file(a.users_file);
  if (!users.users) {
    std::cerr << me << users.error << "\n";
    return 1;
  }
  for (const auto& u : *users.users) {
    if (removed(u.name)) {
      std::cerr << me << "'" << u.name << "' is a dashboard user: remove it with `anju user del "
                << u.name << "`\n";
      return 2;
    }
    const BrokerRole r =
        u.role == anju::firmware::Role::viewer ? BrokerRole::viewer : BrokerRole::operator_;
    next.push_back(credential({u.name, r, ""}, "users", std::nullopt));
  }
  for (const auto& r : a.removes)
    if (find_prev(r) == nullptr) {
      std::cerr << me << "--remove '" << r << "': no such broker client\n";
      return 2;
    }

  std::vector<BrokerClient> plain;
  for (const auto& c : next) plain.push_back(c.client);
  if (auto errors = anju::firmware::validate(plain); !errors.empty()) {
    for (const auto& e : errors) std::cerr << me << e << "\n";
    std::cerr << me << "nothing written\n";
    return 2;
  }

  const std::string passwd_path = (out / "passwd").string();
  const std::string acl_path = (out / "acl").string();
  const std::string conf_path = (out / "mosquitto.conf").string();
  const std::string conf =
      anju::firmware::mosquitto_conf_snippet(site, host, port, passwd_path, acl_path);
  std::vector<std::pair<std::string, bool>> results;
  try {
    const auto anjud_owner = ::geteuid() == 0 ? lookup_owner("anju") : std::nullopt;
    // The remembered passwords first: a failure after it loses no credential.
    results.emplace_back(
        store_path, write_if_changed(store_path, anju::firmware::render_broker_store(next), 0600,
                                     std::nullopt));
    if (!slurp(gw_user_file))
      results.emplace_back(gw_user_file,
                           write_if_changed(gw_user_file, gw_user + "\n", 0600, anjud_owner));
    if (!slurp(gw_pass_file))
      results.emplace_back(
          gw_pass_file,
          write_if_changed(gw_pass_file, next.front().password + "\n", 0600, anjud_owner));
    results.emplace_back(
        passwd_path,
        write_if_changed(passwd_path, anju::firmware::mosquitto_password_file(next), 0600, owner));
    results.emplace_back(
        acl_path,
        write_if_changed(acl_path, anju::firmware::mosquitto_acl(site, plain), 0640, owner));
    results.emplace_back(conf_path, write_if_changed(conf_path, conf, 0644, std::nullopt));
  } catch (const std::exception& e) {
    std::cerr << me << e.what() << "\n";
    return 1;
  }
  if (a.quiet) return 0;
  std::cout << "site " << site << ", " << next.size() << " broker clients:\n";
  for (const auto& c : next)
    std::cout << "  " << c.client.user << "  " << anju::firmware::to_string(c.client.role)
              << (c.client.prefix.empty() ? "" : " " + c.client.prefix + "#") << "  (" << c.source
              << (std::find(created.begin(), created.end(), c.client.user) != created.end()
                      ? ", new"
                      : "")
              << ")\n";
  for (const auto& [path, changed] : results)
    std::cout << (changed ? "written    " : "unchanged  ") << path << "\n";
  if (!created.empty())
    std::cout << "new clients' passwords are in " << store_path
              << " (readable by root only): give each to its device or person\n";
  if (!gw_files_configured)
    std::cout << "note: " << a.config_path
              << " sets no local_broker.username_file/password_file; add\n"
                 "  local_broker:\n    username_file: "
              << gw_user_file << "\n    password_file: " << gw_pass_file
              << "\nso that anjud logs in to the broker\n";
  const bool broker_files_changed = std::any_of(results.begin(), results.end(), [&](const auto& r) {
    return r.second && (r.first == passwd_path || r.first == acl_path);
  });
  if (broker_files_changed)
    std::cout << "a running mosquitto reads the new files on SIGHUP (systemctl reload mosquitto)\n";
  if (tls)
    std::cout << "note: local_broker.uri uses TLS: add certfile/keyfile (and cafile) to the "
                 "listener below\n";
  std::cout << "mosquitto.conf snippet (" << conf_path << "):\n" << conf;
  return 0;
}

// `anju audit`: the newest entries, then whether the chain holds (exit 1 when it does not).
int audit_command(const std::string& dir, int last, bool as_json) {
  const auto v = anju::edge::verify_audit_log(dir);
  const auto lines = anju::edge::audit_log_tail(dir, static_cast<std::size_t>(last));
  if (as_json) {
    json entries = json::array();
    for (const auto& l : lines) {
      auto j = json::parse(l, nullptr, false);
      if (j.is_object()) entries.push_back(std::move(j));
    }
    std::cout << json{{"dir", dir},
                      {"ok", v.ok},
                      {"files", v.files},
                      {"lines", v.lines},
                      {"first_seq", v.first_seq},
                      {"last_seq", v.last_seq},
                      {"error", v.error},
                      {"entries", entries}}
                     .dump(2)
              << "\n";
    return v.ok ? 0 : 1;
  }
  for (const auto& l : lines) {
    const auto j = json::parse(l, nullptr, false);
    if (!j.is_object() || !j.contains("event") || !j["event"].is_object()) continue;
    const auto& e = j["event"];
    const json attrs = e.contains("attrs") && e["attrs"].is_object() ? e["attrs"] : json::object();
    const std::time_t t = static_cast<std::time_t>(j.value("ts_ms", std::int64_t{0}) / 1000);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    std::cout << when << "  " << attrs.value("user", "?") << "  " << attrs.value("action", "?")
              << " via " << attrs.value("via", e.value("source", std::string("?"))) << "  "
              << (attrs.value("ok", false) ? "ok" : "refused");
    for (const char* k : {"alert_id", "door", "evidence", "request_id", "why", "reason", "detail"})
      if (attrs.contains(k) && attrs[k].is_string())
        std::cout << "  " << k << "=" << attrs[k].get<std::string>();
    std::cout << "\n";
  }
  if (v.ok)
    std::cout << "audit log " << dir << ": " << v.lines << " entries in " << v.files
              << " files (seq " << v.first_seq << ".." << v.last_seq << "), chain intact\n";
  else
    std::cout << "audit log " << dir << ": CHAIN BROKEN at " << v.error << "\n";
  return v.ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"anju - Anju gateway CLI"};
  std::string config_path, data_dir;
  bool as_json = false;
  app.add_option("-c,--config", config_path, "config file (to find the data directory)");
  app.add_option("--data-dir", data_dir,
                 "data directory (default: from the config, /var/lib/anju)");
  app.add_flag("--json", as_json, "machine-readable output");
  app.require_subcommand(1);
  app.fallthrough();  // `anju alerts --json` as well as `anju --json alerts`
  auto* status = app.add_subcommand("status", "queues, outbox, link state, alerts, devices");
  auto* events = app.add_subcommand("events", "events from the journal");
  std::string since = "10m", kind, device;
  int limit = 100;
  events->add_option("--since", since, "how far back (e.g. 30s, 10m, 2h, 1d)");
  events->add_option("--kind", kind, "only this event kind");
  events->add_option("--device", device, "only this device id");
  events->add_option("--limit", limit, "at most this many (newest)");
  auto* alerts = app.add_subcommand("alerts", "open alerts");
  bool all = false;
  alerts->add_flag("--all", all, "closed ones too");
  auto* devices = app.add_subcommand("devices", "every device heard from: state, last seen");
  auto* user = app.add_subcommand("user", "dashboard users: add, passwd, del, list");
  user->require_subcommand(1);
  std::string users_file, user_name, user_role;
  user->add_option("--users-file", users_file,
                   "users file (default: dashboard.users_file, or <data dir>/users.json)");
  auto* user_add = user->add_subcommand(
      "add", "add a user; the password is read from stdin (or asked for, without echo)");
  user_add->add_option("name", user_name, "user name")->required();
  user_add->add_option("--role", user_role, "viewer, operator or admin")->required();
  auto* user_passwd = user->add_subcommand("passwd", "change a user's password (and --role)");
  user_passwd->add_option("name", user_name, "user name")->required();
  user_passwd->add_option("--role", user_role, "new role: viewer, operator or admin");
  auto* user_del = user->add_subcommand("del", "delete a user");
  user_del->add_option("name", user_name, "user name")->required();
  auto* user_list = user->add_subcommand("list", "list the users and their roles");
  auto* broker = app.add_subcommand(
      "broker-config",
      "the local Mosquitto's password file, ACL and mosquitto.conf snippet, by role");
  BrokerConfigArgs bc;
  bc.out_dir = "/etc/anju/mosquitto";
  bc.owner = "mosquitto";
  std::string broker_users_file;
  broker
      ->add_option("--out-dir", bc.out_dir,
                   "where to write passwd, acl, mosquitto.conf and clients.json")
      ->capture_default_str();
  broker->add_option("--client", bc.clients,
                     "a device client USER:ROLE[:PREFIX] (zigbee2mqtt, chirpstack, "
                     "bridge:vendor/x/, operator, viewer); kept for later runs");
  broker->add_option("--remove", bc.removes, "drop a client added with --client");
  broker->add_option("--listen", bc.listen,
                     "the listener HOST:PORT (default: from local_broker.uri)");
  broker
      ->add_option("--owner", bc.owner,
                   "when run as root, the user (and its group) that owns passwd and acl: "
                   "mosquitto reads them after dropping root; '' leaves them to root")
      ->capture_default_str();
  broker->add_option("--users-file", broker_users_file,
                     "dashboard users file (default: dashboard.users_file, or "
                     "<data dir>/users.json)");
  broker->add_flag("-q,--quiet", bc.quiet, "print nothing on success");
  auto* check = app.add_subcommand(
      "check",
      "self-check: config, clock, disk, brokers, TLS, anjud, devices; exit 1 when anything fails");
  int check_timeout_s = 3;
  check->add_option("--timeout", check_timeout_s, "seconds each network probe may take")
      ->capture_default_str();
  auto* outbox = app.add_subcommand(
      "outbox", "what waits for the city: depth per class, bytes, oldest, evictions, link state");
  bool drain = false;
  int drain_timeout_s = 120;
  outbox->add_flag("--drain-now", drain,
                   "reconnect to the city at once (no backoff wait) and follow the drain");
  outbox->add_option("--timeout", drain_timeout_s, "seconds --drain-now waits for the drain")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  auto* audit = app.add_subcommand(
      "audit", "the audit log: who did what and why; checks its chain (exit 1 when broken)");
  int audit_last = 20;
  audit->add_option("--last", audit_last, "show this many of the newest entries")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  auto* test = app.add_subcommand(
      "test-event",
      "fire a test alarm (flagged test: nobody is dispatched) end to end and wait for the city "
      "broker's acknowledgement, printing each hop");
  std::string test_target, test_kind;
  int test_timeout_s = 30;
  test->add_option("target", test_target, "a device id or name, or an alarm kind (e.g. smoke)")
      ->required();
  test->add_option("--kind", test_kind, "the alarm the test stands for (default: the device's)");
  test->add_option("--timeout", test_timeout_s, "seconds to wait for the city's acknowledgement")
      ->capture_default_str()
      ->check(CLI::Range(1, 600));
  anju::firmware::ProvisionCli provision;
  anju::firmware::add_provision_commands(app, provision);
  CLI11_PARSE(app, argc, argv);

  // Before the config is loaded below: provisioning writes it.
  if (provision.selected()) return anju::firmware::run_provision(provision, config_path, as_json);

  if (*check) {
    // Before the config is loaded below: an invalid config is one of the things it reports.
    anju::firmware::CheckOptions co;
    co.config_path = config_path;
    co.data_dir = data_dir;
    co.timeout = std::chrono::seconds(std::max(1, check_timeout_s));
    try {
      const auto results = anju::firmware::run_checks(co);
      if (as_json)
        std::cout << anju::firmware::check_results_json(results).dump(2) << "\n";
      else
        std::cout << anju::firmware::render_check_text(results);
      return anju::firmware::check_exit_code(results);
    } catch (const std::exception& e) {
      std::cerr << "anju check: " << e.what() << "\n";
      return 1;
    }
  }

  std::string configured_users_file;
  if (!config_path.empty()) {
    auto r = anju::firmware::load_config(config_path);
    if (!r.config) {
      for (const auto& e : r.errors) std::cerr << e.to_string() << "\n";
      return 2;
    }
    if (data_dir.empty()) data_dir = r.config->data_dir;
    configured_users_file = r.config->dashboard.users_file;
  }
  if (data_dir.empty()) data_dir = "/var/lib/anju";
  const std::string db_path = anju::firmware::journal_path(data_dir);

  if (*broker) {
    bc.config_path = config_path;
    bc.users_file = !broker_users_file.empty()       ? broker_users_file
                    : !configured_users_file.empty() ? configured_users_file
                                                     : data_dir + "/users.json";
    try {
      return broker_config_command(bc);
    } catch (const std::exception& e) {
      std::cerr << "anju broker-config: " << e.what() << "\n";
      return 1;
    }
  }

  if (*user) {
    if (users_file.empty())
      users_file = configured_users_file.empty() ? data_dir + "/users.json" : configured_users_file;
    const std::string action = *user_add      ? "add"
                               : *user_passwd ? "passwd"
                               : *user_del    ? "del"
                               : *user_list   ? "list"
                                              : "";
    try {
      return user_command(users_file, action, user_name, user_role, as_json);
    } catch (const std::exception& e) {
      std::cerr << "anju user: " << e.what() << "\n";
      return 1;
    }
  }

  try {
    if (*status) {
      auto live = ask_status(anju::firmware::status_socket_path(data_dir));
      if (as_json) {
        std::cout << (live ? *live
                           : json{{"running", false}, {"data_dir", data_dir}}.dump() + "\n");
        return live ? 0 : 1;
      }
      if (!live) {
        std::cout << "anjud: not running (no answer on "
                  << anju::firmware::status_socket_path(data_dir) << ")\n";
        return 1;
      }
      const auto j = json::parse(*live);
      std::cout << "anjud running (pid " << j["pid"] << "), site " << j["site"].get<std::string>()
                << "\n";
      if (j.contains("config") && j["config"].is_object()) {
        const auto& c = j["config"];
        const std::string source = c.value("source", "file");
        std::cout << "  config         "
                  << (source == "trial" ? "the city's new config, ON TRIAL (request " +
                                              c.value("request_id", "?") +
                                              ", kept if the city broker is reached within " +
                                              std::to_string(c.value("health_timeout_s", 0)) + " s)"
                      : source == "city" ? "the city's (" + c.value("file", "") + ")"
                                         : c.value("file", ""))
                  << "\n";
      }
      const auto& p = j["pipeline"];
      std::cout << "  ingest queue   " << p["queue_depth"] << " / " << p["queue_capacity"]
                << ", committed " << p["committed"] << " events, last seq " << p["last_seq"]
                << ", replayed at start " << p["replayed"] << "\n";
      std::cout << "  open alerts    " << j["alerts_open"] << "\n";
      std::cout << "  local bus      "
                << (j["local_bus"]["connected"].get<bool>() ? "connected" : "DISCONNECTED") << "\n";
      if (j["uplink"].contains("connected"))
        std::cout << "  city uplink    "
                  << (j["uplink"]["connected"].get<bool>() ? "connected" : "DISCONNECTED")
                  << ", in flight " << j["uplink"]["inflight"]
                  << (j["uplink"].value("window", 0) > 0
                          ? " of " + std::to_string(j["uplink"].value("window", 0))
                          : "")
                  << ", acked " << j["uplink"]["acked"]
                  << (j["uplink"]["last_error"].get<std::string>().empty()
                          ? ""
                          : ", last error: " + j["uplink"]["last_error"].get<std::string>())
                  << "\n";
      else
        std::cout << "  city uplink    disabled\n";
      std::cout << "  outbox         "
                << anju::firmware::outbox_summary(anju::firmware::outbox_view(j)) << "\n";
      if (j.contains("zigbee2mqtt")) {
        const auto& z = j["zigbee2mqtt"];
        std::cout << "  zigbee2mqtt    " << z["devices"] << " devices, " << z["messages"]
                  << " messages, " << z["events"] << " events, " << z["parse_errors"]
                  << " parse errors, " << z["unknown_device"] << " from unknown devices\n";
      }
      if (j.contains("cameras") && j["cameras"].is_array()) {
        int online = 0;
        std::string offline;
        for (const auto& c : j["cameras"]) {
          if (c.value("online", false)) {
            ++online;
          } else {
            offline += (offline.empty() ? "" : ", ") + c.value("id", std::string("?"));
            if (!c.value("last_error", std::string()).empty())
              offline += " (" + c.value("last_error", std::string()) + ")";
          }
        }
        std::cout << "  cameras        " << online << " of " << j["cameras"].size() << " online"
                  << (offline.empty() ? "" : "; offline: " + offline) << "\n";
      }
      if (j.contains("evidence") && j["evidence"].value("enabled", false)) {
        const auto& e = j["evidence"];
        std::cout << "  evidence       " << e.value("items", 0) << " clips, "
                  << e.value("bytes", std::int64_t{0}) / (1024 * 1024) << " of "
                  << e.value("budget_bytes", std::int64_t{0}) / (1024 * 1024) << " MB, "
                  << e.value("deleted", 0) << " deleted since start\n";
      }
      if (j.contains("gpio_doors") && j["gpio_doors"].is_array()) {
        int watched = 0;
        std::string open, unwatched;
        for (const auto& d : j["gpio_doors"]) {
          const std::string door = d.value("door", std::string("?"));
          if (!d.value("watched", false)) {
            unwatched += (unwatched.empty() ? "" : ", ") + door + " (" +
                         d.value("last_error", std::string()) + ")";
            continue;
          }
          ++watched;
          if (d.contains("open") && d["open"].is_boolean() && d["open"].get<bool>())
            open += (open.empty() ? "" : ", ") + door;
        }
        std::cout << "  gpio doors     " << watched << " of " << j["gpio_doors"].size()
                  << " watched" << (open.empty() ? "" : "; open: " + open)
                  << (unwatched.empty() ? "" : "; NOT WATCHED: " + unwatched) << "\n";
      }
      if (j.contains("locked_down") && j["locked_down"].is_array() && !j["locked_down"].empty()) {
        std::string groups;
        for (const auto& g : j["locked_down"])
          groups += (groups.empty() ? "" : ", ") + g.get<std::string>();
        std::cout << "  LOCKED DOWN    " << groups << "\n";
      }
      return 0;
    }
    if (*test) return test_event(data_dir, test_target, test_kind, test_timeout_s, as_json);
    if (*outbox && drain) return drain_now(data_dir, drain_timeout_s, as_json);
    if (*audit) return audit_command(data_dir + "/audit", audit_last, as_json);
    if (*outbox) {
      // From the status socket; the oldest message's time from the journal (read-only). With
      // anjud stopped, the journal's counts alone, and exit 1.
      auto live = ask_status(anju::firmware::status_socket_path(data_dir));
      auto j = live ? json::parse(*live, nullptr, false) : json();
      auto view = j.is_object() ? anju::firmware::outbox_view(j)
                                : anju::firmware::outbox_from_journal(db_path);
      anju::firmware::add_outbox_oldest(view, db_path);
      if (as_json)
        std::cout << anju::firmware::outbox_json(view, now_ms()).dump() << "\n";
      else
        std::cout << anju::firmware::render_outbox_text(view, now_ms());
      return view.from_status ? 0 : 1;
    }
    auto db = anju::edge::open_reader(db_path);
    if (*events) {
      auto window = parse_duration(since);
      if (!window) {
        std::cerr << "anju events: --since '" << since << "' is not a duration like 30s, 10m, 2h\n";
        return 2;
      }
      anju::edge::EventQuery q;
      q.since_ms = now_ms() - *window;
      q.limit = limit;
      q.newest_first = true;
      q.device_id = device;
      if (!kind.empty()) {
        q.kind = anju::edge::event_kind_from_string(kind);
        if (!q.kind) {
          std::cerr << "anju events: unknown kind '" << kind << "'\n";
          return 2;
        }
      }
      auto evs = anju::edge::query_events(db, q);
      std::reverse(evs.begin(), evs.end());
      for (const auto& e : evs) {
        if (as_json) {
          std::cout << anju::edge::encode(e) << "\n";
          continue;
        }
        std::cout << fmt_time(e.ts_ms) << "  #" << e.seq << "  " << anju::edge::to_string(e.kind);
        if (e.active) std::cout << (*e.active ? " ON" : " off");
        for (const auto& m : e.values) std::cout << " " << m.value << m.unit;
        std::cout << "  " << (e.device.name.empty() ? e.device.id : e.device.name) << "\n";
      }
      if (!as_json) std::cout << evs.size() << " events\n";
      return 0;
    }
    if (*devices) {
      const auto list = anju::edge::load_devices(db);
      const auto conditions = anju::edge::device_conditions(db);
      const std::int64_t now = now_ms();
      for (const auto& d : list) {
        std::vector<std::string> flags;  // battery_low, signal_weak, tamper (offline: the state)
        if (auto it = conditions.find(d.device.id); it != conditions.end())
          for (const auto& c : it->second)
            if (c != "offline") flags.push_back(c);
        if (as_json) {
          json j{{"device_id", d.device.id},
                 {"kind", d.device.kind},
                 {"name", d.device.name},
                 {"gb28181", d.device.gb28181},
                 {"source", d.source},
                 {"location", anju::edge::to_json(d.location)},
                 {"state", d.state},
                 {"first_seen_ms", d.first_seen_ms},
                 {"last_seen_ms", d.last_seen_ms}};
          j["battery"] = d.battery ? json(*d.battery) : json(nullptr);
          j["signal"] = d.signal ? json(*d.signal) : json(nullptr);
          j["conditions"] = flags;
          std::cout << j.dump() << "\n";
          continue;
        }
        std::cout << (d.state == "offline" ? "OFFLINE" : "online ") << "  "
                  << (d.location.building.empty() ? "-" : d.location.building) << "/"
                  << (d.location.unit.empty() ? "-" : d.location.unit) << "/"
                  << (d.location.room.empty() ? "-" : d.location.room) << "  "
                  << (d.device.name.empty() ? d.device.id : d.device.name) << " (" << d.device.kind
                  << ", " << d.source << ")  last seen "
                  << (d.last_seen_ms > 0
                          ? fmt_time(d.last_seen_ms) + " (" +
                                std::to_string((now - d.last_seen_ms) / 1000) + " s ago)"
                          : std::string("never"));
        if (d.battery) std::cout << "  battery " << *d.battery << " %";
        if (d.signal) std::cout << "  signal " << *d.signal;
        for (const auto& f : flags) std::cout << "  " << upper(f);
        std::cout << "\n";
      }
      if (!as_json) {
        const auto c = anju::edge::device_state_counts(db);
        std::cout << list.size() << " devices: " << c.online << " online, " << c.offline
                  << " offline, " << c.battery_low << " battery low, " << c.signal_weak
                  << " weak signal, " << c.tamper << " tampered\n";
      }
      return 0;
    }
    if (*alerts) {
      auto list = anju::edge::load_alerts(db, !all);
      for (const auto& a : list) {
        if (as_json) {
          std::cout << to_json(a).dump() << "\n";
          continue;
        }
        std::cout << "sev" << a.severity << "  " << a.state
                  << (a.condition_cleared ? " (cleared)" : "")
                  << (a.suppressed ? " (maintenance: not sent to the city)" : "") << "  "
                  << a.message << "  x" << a.count << "  since " << fmt_time(a.first_seen_ms)
                  << "  " << a.alert_id << "\n";
      }
      if (!as_json) std::cout << list.size() << " alerts\n";
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "anju: " << e.what() << " (data dir " << data_dir << ")\n";
    return 1;
  }
  return 0;
}
