// anju: the installer's and operator's CLI. Reads the data directory (SQLite, read-only, beside a
// running anjud thanks to WAL) and anjud's status socket.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "anju/edge/journal.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/daemon.hpp"
#include "anju/firmware/users.hpp"

namespace {
using nlohmann::json;

std::optional<std::string> ask_status(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
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
  CLI11_PARSE(app, argc, argv);

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
                  << ", in flight " << j["uplink"]["inflight"] << ", acked " << j["uplink"]["acked"]
                  << (j["uplink"]["last_error"].get<std::string>().empty()
                          ? ""
                          : ", last error: " + j["uplink"]["last_error"].get<std::string>())
                  << "\n";
      else
        std::cout << "  city uplink    disabled\n";
      std::cout << "  outbox         ";
      for (auto& [cls, v] : j["outbox"].items())
        std::cout << cls << " " << v["rows"] << " (" << v["bytes"] << " B, evicted " << v["evicted"]
                  << ")  ";
      std::cout << "\n";
      if (j.contains("zigbee2mqtt")) {
        const auto& z = j["zigbee2mqtt"];
        std::cout << "  zigbee2mqtt    " << z["devices"] << " devices, " << z["messages"]
                  << " messages, " << z["events"] << " events, " << z["parse_errors"]
                  << " parse errors, " << z["unknown_device"] << " from unknown devices\n";
      }
      return 0;
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
      const std::int64_t now = now_ms();
      for (const auto& d : list) {
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
        std::cout << "\n";
      }
      if (!as_json) std::cout << list.size() << " devices\n";
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
