// anju: the installer's and operator's CLI. Reads the data directory (SQLite, read-only, beside a
// running anjud thanks to WAL) and anjud's status socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "anju/edge/journal.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/daemon.hpp"

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
  CLI11_PARSE(app, argc, argv);

  if (data_dir.empty()) {
    if (!config_path.empty()) {
      auto r = anju::firmware::load_config(config_path);
      if (!r.config) {
        for (const auto& e : r.errors) std::cerr << e.to_string() << "\n";
        return 2;
      }
      data_dir = r.config->data_dir;
    } else {
      data_dir = "/var/lib/anju";
    }
  }
  const std::string db_path = anju::firmware::journal_path(data_dir);

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
