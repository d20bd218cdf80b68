// Shared helpers of the benchmark programs: temp dirs, a private mosquitto on a free loopback
// port, child processes, /proc readers, percentiles, a bounded MQTT publisher and the result
// table. Header-only; nothing here is used by the gateway itself.
//
// Every benchmark is bounded in time: a Watchdog kills what the program started (by PID), removes
// its temp dirs and exits if the run takes longer than its limit.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/mqtt.hpp"
#include "anju/edge/uuid.hpp"

extern char** environ;

namespace anju::bench {

using SteadyClock = std::chrono::steady_clock;

inline double seconds_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
inline double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// ---------------------------------------------------------------------------------------------
// What to undo if the watchdog fires: child PIDs and temp dirs.

struct CleanupRegistry {
  std::mutex mu;
  std::vector<pid_t> pids;
  std::vector<std::string> dirs;
};
inline CleanupRegistry& cleanup_registry() {
  static CleanupRegistry r;
  return r;
}
inline void register_pid(pid_t p) {
  std::lock_guard lock(cleanup_registry().mu);
  cleanup_registry().pids.push_back(p);
}
inline void unregister_pid(pid_t p) {
  std::lock_guard lock(cleanup_registry().mu);
  auto& v = cleanup_registry().pids;
  v.erase(std::remove(v.begin(), v.end(), p), v.end());
}
inline void register_dir(const std::string& d) {
  std::lock_guard lock(cleanup_registry().mu);
  cleanup_registry().dirs.push_back(d);
}
inline void unregister_dir(const std::string& d) {
  std::lock_guard lock(cleanup_registry().mu);
  auto& v = cleanup_registry().dirs;
  v.erase(std::remove(v.begin(), v.end(), d), v.end());
}
// Kills every registered child (by its PID) and removes every registered temp dir.
inline void emergency_cleanup() {
  std::lock_guard lock(cleanup_registry().mu);
  for (pid_t p : cleanup_registry().pids) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  for (const auto& d : cleanup_registry().dirs) {
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
  }
  cleanup_registry().pids.clear();
  cleanup_registry().dirs.clear();
}

// Ends the program (after cleaning up) if it is still running after `limit`.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit) {
    thread_ = std::thread([this, limit] {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
      std::fprintf(stderr, "\nbench: time limit of %llds reached; stopping what was started\n",
                   static_cast<long long>(limit.count()));
      std::fflush(stdout);
      emergency_cleanup();
      std::_Exit(3);
    });
  }
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------

// A fresh directory under /tmp, removed with everything in it at destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "bench") {
    std::string tmpl = "/tmp/anju-" + tag + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    register_dir(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    unregister_dir(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

// Starts a program (PATH lookup) with stdout and stderr going to `log_path`. Registers the PID for
// the watchdog.
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  register_pid(pid);
  return pid;
}

// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns the wait status (-1: killed).
// Only PIDs this program started and has not reaped yet are signalled (a reaped PID may have been
// reused by someone else's process).
inline int stop_process(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return -1;
  {
    std::lock_guard lock(cleanup_registry().mu);
    const auto& v = cleanup_registry().pids;
    if (std::find(v.begin(), v.end(), pid) == v.end()) return -1;
  }
  ::kill(pid, SIGTERM);
  const auto deadline = SteadyClock::now() + grace;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) {
      status = -1;
      break;
    }
    if (SteadyClock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      status = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  unregister_pid(pid);
  return status;
}

inline bool process_alive(pid_t pid) {
  return ::waitpid(pid, nullptr, WNOHANG) == 0;
}

// A private mosquitto on 127.0.0.1:<free port>, no persistence, no logging; stopped by its PID.
// `extra`: more config lines (e.g. "max_inflight_messages 64\n").
class Mosquitto {
 public:
  explicit Mosquitto(const std::string& dir, const std::string& extra = "") {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_port();
      conf_ = dir + "/mosquitto-" + std::to_string(port_) + ".conf";
      {
        std::ofstream c(conf_);
        c << "listener " << port_ << " 127.0.0.1\n"
          << "allow_anonymous true\n"
          << "persistence false\n"
          << "log_dest none\n"
          << "max_queued_messages 100000\n"
          << "set_tcp_nodelay true\n"
          << extra;
      }
      pid_ =
          spawn({"mosquitto", "-c", conf_}, dir + "/mosquitto-" + std::to_string(port_) + ".log");
      const auto deadline = SteadyClock::now() + std::chrono::seconds(5);
      while (SteadyClock::now() < deadline && process_alive(pid_)) {
        if (port_open(port_)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      stop_process(pid_, std::chrono::milliseconds(500));  // lost a race for the port: retry
      pid_ = -1;
    }
    throw std::runtime_error("mosquitto did not start");
  }
  ~Mosquitto() { stop_process(pid_, std::chrono::milliseconds(2000)); }
  Mosquitto(const Mosquitto&) = delete;
  Mosquitto& operator=(const Mosquitto&) = delete;
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  std::string conf_;
};

// ---------------------------------------------------------------------------------------------
// /proc readers. `who` is "self" or a PID.

struct ProcIo {
  std::int64_t rchar = 0, wchar = 0, read_bytes = 0, write_bytes = 0, cancelled_write_bytes = 0;
};

inline ProcIo read_proc_io(const std::string& who = "self") {
  ProcIo io;
  std::ifstream in("/proc/" + who + "/io");
  std::string key;
  std::int64_t v = 0;
  while (in >> key >> v) {
    if (key == "rchar:") io.rchar = v;
    if (key == "wchar:") io.wchar = v;
    if (key == "read_bytes:") io.read_bytes = v;
    if (key == "write_bytes:") io.write_bytes = v;
    if (key == "cancelled_write_bytes:") io.cancelled_write_bytes = v;
  }
  return io;
}

// A "Vm...:" line of /proc/<who>/status, in kB (-1 if absent).
inline std::int64_t read_status_kb(const std::string& field, const std::string& who = "self") {
  std::ifstream in("/proc/" + who + "/status");
  std::string line;
  const std::string prefix = field + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::atoll(line.c_str() + prefix.size());
  }
  return -1;
}

// Resets VmHWM (peak RSS) of this process to its current RSS (Linux >= 4.0).
inline bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// Nearest-rank percentile, p in [0, 100].
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const std::size_t i = static_cast<std::size_t>(std::clamp(rank, 1.0, double(v.size()))) - 1;
  return v[i];
}

// ---------------------------------------------------------------------------------------------
// MQTT helpers (bare Paho, the baseline's tools and the test drivers' stand-ins).

inline anju::edge::MqttEndpoint bench_endpoint(const std::string& uri, const std::string& id,
                                               int version) {
  anju::edge::MqttEndpoint ep;
  ep.uri = uri;
  ep.client_id = id;
  ep.mqtt_version = version;
  return ep;
}

// A QoS 0/1 publisher that keeps at most `window` messages unacknowledged (blocks beyond) and
// counts completions from the delivery callbacks.
class WindowedPublisher {
 public:
  WindowedPublisher(const std::string& uri, const std::string& client_id, int mqtt_version,
                    int window)
      : ep_(bench_endpoint(uri, client_id, mqtt_version)),
        window_(window),
        listener_(*this),
        client_(uri, client_id, anju::edge::make_create_options(ep_), nullptr) {}
  ~WindowedPublisher() { disconnect(); }

  void connect() {
    auto opts = anju::edge::make_connect_options(ep_, /*clean=*/true, std::nullopt);
    opts.set_max_inflight(window_ + 2);
    client_.connect(opts)->wait_for(std::chrono::seconds(10));
    if (!client_.is_connected())
      throw std::runtime_error("publisher: cannot connect to " + ep_.uri);
  }
  void disconnect() {
    try {
      if (client_.is_connected()) client_.disconnect()->wait_for(std::chrono::seconds(2));
    } catch (const std::exception&) {
    }
  }
  // Blocks while `window` messages are unacknowledged (QoS 1). Returns false on timeout.
  bool publish(const std::string& topic, const std::string& payload, int qos, bool retain,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000)) {
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, timeout, [&] { return inflight_ < window_; })) return false;
      ++inflight_;
      ++published_;
    }
    auto msg = mqtt::make_message(topic, payload, qos, retain);
    try {
      client_.publish(msg, nullptr, listener_);
    } catch (const mqtt::exception&) {
      std::lock_guard lock(mu_);
      --inflight_;
      ++failed_;
      return false;
    }
    return true;
  }
  // Waits until everything published so far has completed.
  bool wait_all(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return inflight_ == 0; });
  }
  std::int64_t completed() const {
    std::lock_guard lock(mu_);
    return completed_;
  }
  std::int64_t failed() const {
    std::lock_guard lock(mu_);
    return failed_;
  }
  SteadyClock::time_point last_completion() const {
    std::lock_guard lock(mu_);
    return last_completion_;
  }

 private:
  class Listener final : public mqtt::iaction_listener {
   public:
    explicit Listener(WindowedPublisher& p) : p_(p) {}
    void on_success(const mqtt::token&) override { p_.done(true); }
    void on_failure(const mqtt::token&) override { p_.done(false); }

   private:
    WindowedPublisher& p_;
  };
  void done(bool ok) {
    {
      std::lock_guard lock(mu_);
      --inflight_;
      if (ok)
        ++completed_;
      else
        ++failed_;
      last_completion_ = SteadyClock::now();
    }
    cv_.notify_all();
  }

  anju::edge::MqttEndpoint ep_;
  int window_;
  Listener listener_;
  mqtt::async_client client_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int inflight_ = 0;
  std::int64_t published_ = 0, completed_ = 0, failed_ = 0;
  SteadyClock::time_point last_completion_{};
};

// A subscriber that hands every message to a callback (on Paho's thread).
class Subscriber {
 public:
  using Handler = std::function<void(const mqtt::const_message_ptr&)>;
  Subscriber(const std::string& uri, const std::string& client_id, int mqtt_version)
      : ep_(bench_endpoint(uri, client_id, mqtt_version)),
        client_(uri, client_id, anju::edge::make_create_options(ep_), nullptr) {}
  ~Subscriber() {
    try {
      if (client_.is_connected()) client_.disconnect()->wait_for(std::chrono::seconds(2));
    } catch (const std::exception&) {
    }
  }
  void start(const std::string& filter, int qos, Handler h) {
    handler_ = std::move(h);
    client_.set_message_callback([this](mqtt::const_message_ptr m) { handler_(m); });
    auto opts = anju::edge::make_connect_options(ep_, /*clean=*/true, std::nullopt);
    client_.connect(opts)->wait_for(std::chrono::seconds(10));
    if (!client_.is_connected()) throw std::runtime_error("subscriber: cannot connect");
    client_.subscribe(filter, qos)->wait_for(std::chrono::seconds(10));
  }

 private:
  anju::edge::MqttEndpoint ep_;
  mqtt::async_client client_;
  Handler handler_;
};

// Counts arrivals and wakes a waiter when a target is reached.
class ArrivalCounter {
 public:
  void add(std::int64_t n = 1) {
    {
      std::lock_guard lock(mu_);
      count_ += n;
      last_ = SteadyClock::now();
    }
    cv_.notify_all();
  }
  bool wait_for_count(std::int64_t target, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= target; });
  }
  std::int64_t count() const {
    std::lock_guard lock(mu_);
    return count_;
  }
  SteadyClock::time_point last() const {
    std::lock_guard lock(mu_);
    return last_;
  }
  void reset() {
    std::lock_guard lock(mu_);
    count_ = 0;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::int64_t count_ = 0;
  SteadyClock::time_point last_{};
};

// ---------------------------------------------------------------------------------------------
// Events as the zigbee2mqtt driver makes them (stamped the same way), for the in-process benches.

inline constexpr const char* kSite = "demo-compound";
inline constexpr const char* kGridCode = "11010500100200300401";

inline std::string two_digits(int n) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%02d", n % 100);
  return buf;
}

// A temperature reading (leak = false) or a water_leak alarm/clear (leak = true) of bench device
// `device` (0..99).
inline anju::edge::Event driver_like_event(const anju::edge::Clock& clock, int device, bool leak,
                                           bool active, double temperature) {
  using anju::edge::EventKind;
  anju::edge::Event e;
  e.id = anju::edge::uuid_v7(clock.wall_ms());
  e.ts_ms = clock.wall_ms();
  e.mono_ns = clock.mono_ns();
  e.boot_id = anju::edge::boot_id();
  e.clock_synced = clock.synced();
  e.site = kSite;
  e.grid_code = kGridCode;
  e.location = {"3", "2", std::to_string(1001 + device)};
  e.device.id = "0x00158d00000200" + two_digits(device);
  e.device.kind = leak ? "water_leak_sensor" : "climate_sensor";
  e.device.name = (leak ? "leak_bench_" : "climate_bench_") + two_digits(device);
  e.source = "zigbee2mqtt";
  e.attrs = {{"linkquality", 120}};
  if (leak) {
    e.kind = EventKind::water_leak;
    e.active = active;
    e.severity = active ? 3 : 4;
  } else {
    e.kind = EventKind::temperature;
    e.severity = 4;
    e.values.push_back({"temperature", temperature, "C"});
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// Formatting and the result table.

inline std::string fmt(double v, int precision = 0) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", precision, v);
  // thousands separators for the integer part (built forwards: GCC 12 warns on insert())
  const std::string s(buf);
  const std::size_t start = (!s.empty() && s[0] == '-') ? 1 : 0;
  std::size_t end = s.find('.');
  if (end == std::string::npos) end = s.size();
  std::string out = s.substr(0, start);
  for (std::size_t i = start; i < end; ++i) {
    out += s[i];
    const std::size_t left = end - i - 1;
    if (left > 0 && left % 3 == 0) out += ',';
  }
  out += s.substr(end);
  return out;
}
inline std::string pct(double ratio) {
  if (std::isnan(ratio) || std::isinf(ratio)) return "-";
  return fmt(ratio * 100.0, 1) + " %";
}
inline std::string met(bool ok) {
  return ok ? "yes" : "NO";
}

class Table {
 public:
  explicit Table(std::string title) : title_(std::move(title)) {}
  void add(std::string metric, std::string anju, std::string baseline, std::string ratio,
           std::string goal, std::string met) {
    rows_.push_back({std::move(metric), std::move(anju), std::move(baseline), std::move(ratio),
                     std::move(goal), std::move(met)});
  }
  void note(std::string n) { notes_.push_back(std::move(n)); }
  void print(std::ostream& out = std::cout) const {
    const std::vector<std::string> head{"metric",        "Anju", "baseline",
                                        "Anju/baseline", "goal", "met"};
    std::vector<std::size_t> w(head.size());
    for (std::size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
    for (const auto& r : rows_)
      for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string>& r) {
      out << "|";
      for (std::size_t i = 0; i < r.size(); ++i) {
        const bool left = i == 0 || i == 4;
        const std::string pad(w[i] - r[i].size(), ' ');
        if (left)
          out << " " << r[i] << pad << " |";
        else
          out << " " << pad << r[i] << " |";
      }
      out << "\n";
    };
    out << "\n" << title_ << "\n\n";
    line(head);
    out << "|";
    for (std::size_t i = 0; i < w.size(); ++i) {
      const bool left = i == 0 || i == 4;
      out << (left ? ":" : "") << std::string(w[i] + 1, '-') << (left ? "" : ":") << "|";
    }
    out << "\n";
    for (const auto& r : rows_) line(r);
    if (!notes_.empty()) out << "\n";
    for (const auto& n : notes_) out << "- " << n << "\n";
    out << std::flush;
  }

 private:
  std::string title_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<std::string> notes_;
};

// A one-line description of the machine the numbers came from.
inline std::string machine_line() {
  std::string model = "?";
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  std::string kernel;
  std::ifstream("/proc/sys/kernel/osrelease") >> kernel;
  return std::to_string(std::thread::hardware_concurrency()) + " CPU(s) (" + model + "), Linux " +
         kernel;
}

// anjud's status socket (anjud.sock): its JSON, or nothing when anjud does not answer.
inline std::optional<nlohmann::json> query_status(const std::string& sock) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string request = R"({"cmd":"status"})";  // then EOF: anjud answers at once
  (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  std::string body;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    body.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

}  // namespace anju::bench
