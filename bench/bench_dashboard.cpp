// bench_dashboard: the dashboard served by the built anjud, over loopback, with 10 logged-in
// browser sessions each holding an open Server-Sent-Events stream (/api/stream):
//  (a) anjud's RSS added by the 10 open streams, beside anjud's RSS with the 10 sessions logged in
//      and no stream open;
//  (b) GET /api/alerts throughput (20 open alerts, 4 keep-alive clients), beside a bare
//      cpp-httplib server in this process answering the same bytes to the same clients;
//  (c) latency from a zigbee2mqtt alarm message to its "raised" alert frame in each of the 10
//      streams: 900 new alerts (180 devices x 5 alarm kinds) paced at 100/s, beside the bare
//      broker round trip (publisher → mosquitto → subscriber) at the same pace.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <iostream>
#include <map>

#include "anju/firmware/users.hpp"
#include "bench_util.hpp"

#ifndef ANJU_BENCH_ANJUD
#error "ANJU_BENCH_ANJUD (the path of the built anjud) must be defined"
#endif

namespace {
using namespace anju;
using bench::SteadyClock;
using nlohmann::json;

constexpr int kSessions = 10;
// (c): each message raises a new alert: one of 5 alarm kinds on one of 180 devices. (Not 2,000
// devices: anjud caps zigbee2mqtt's bridge/devices list at 64 KiB, about 300 small entries.)
const std::vector<std::string> kKinds{"water_leak", "smoke", "gas", "tamper", "battery_low"};
constexpr int kLatDevices = 180;
constexpr int kAlerts = kLatDevices * 5;  // one per device and kind
constexpr int kRate = 100;                // (c): alerts/s
constexpr int kBareCount = 1'000;         // (c) baseline: the same pace
constexpr int kOpenAlerts = 20;           // (b): open alerts in the /api/alerts answer
constexpr int kHttpClients = 4;           // (b)
constexpr int kRequestsPerClient = 1'000;
constexpr int kMqttVersion = 3;
const std::string kUser = "bench-op";
const std::string kPassword = "bench-password-1";

std::string latency_device(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "lb%03d", i);
  return buf;
}
std::string open_device(int i) {
  return "ob" + bench::two_digits(i);
}

std::string devices_list() {
  json list = json::array();
  list.push_back({{"ieee_address", "0x00124b0000000000"},
                  {"type", "Coordinator"},
                  {"friendly_name", "Coordinator"},
                  {"definition", nullptr}});
  auto add = [&](const std::string& name, int n, bool all_kinds) {
    json exposes = json::array();
    for (std::size_t k = 0; k < (all_kinds ? kKinds.size() : 1); ++k)
      exposes.push_back({{"type", "binary"}, {"property", kKinds[k]}});
    char ieee[32];
    std::snprintf(ieee, sizeof ieee, "0x00158d0003%06x", n);
    list.push_back({{"ieee_address", ieee},
                    {"type", "EndDevice"},
                    {"friendly_name", name},
                    {"definition", {{"model", "b"}, {"vendor", "a"}, {"exposes", exposes}}}});
  };
  for (int i = 0; i < kLatDevices; ++i) add(latency_device(i), i, true);
  for (int i = 0; i < kOpenAlerts; ++i) add(open_device(i), kLatDevices + i, false);
  return list.dump();
}
constexpr int kKnownDevices = kLatDevices + kOpenAlerts;

std::string config_yaml(const std::string& local_uri, int dashboard_port) {
  return "site:\n  id: " + std::string(bench::kSite) +
         "\n  name: Anju dashboard bench\n  grid_code: \"" + bench::kGridCode +
         "\"\nlocal_broker:\n  uri: " + local_uri +
         "\nuplink:\n  enabled: false\nrules:\n  heartbeat_timeout_s: 0\n"
         "zigbee2mqtt:\n  base_topic: zigbee2mqtt\ndashboard:\n  enabled: true\n"
         "  listen: 127.0.0.1:" +
         std::to_string(dashboard_port) + "\n";
}

SteadyClock::time_point g_deadline = SteadyClock::now() + std::chrono::seconds(52);
std::chrono::milliseconds capped(std::chrono::milliseconds want) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(g_deadline - SteadyClock::now());
  return std::clamp(left, std::chrono::milliseconds(0), want);
}

bool wait_status(const std::string& sock, const std::function<bool(const json&)>& pred,
                 std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (auto st = bench::query_status(sock)) {
      try {
        if (pred(*st)) return true;
      } catch (const json::exception&) {
      }
    }
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

struct Session {
  std::string cookie;
};

std::optional<Session> login(int port) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(20, 0);
  auto res = cli.Post("/api/login", json{{"user", kUser}, {"password", kPassword}}.dump(),
                      "application/json");
  if (!res || res->status != 200) return std::nullopt;
  const std::string sc = res->get_header_value("Set-Cookie");
  return Session{sc.substr(0, sc.find(';'))};
}

// One browser's live stream: reads /api/stream on its own thread and connection, splits it into
// frames and records when each "raised" alert frame arrived, by device name.
class SseReader {
 public:
  SseReader(int port, const Session& s) : cli_("127.0.0.1", port) {
    cli_.set_read_timeout(60, 0);
    thread_ = std::thread([this, s] {
      cli_.Get("/api/stream", httplib::Headers{{"Cookie", s.cookie}},
               [this](const char* data, std::size_t n) {
                 const auto now = SteadyClock::now();
                 buf_.append(data, n);
                 std::size_t end;
                 while ((end = buf_.find("\n\n")) != std::string::npos) {
                   frame(buf_.substr(0, end), now);
                   buf_.erase(0, end + 2);
                 }
                 return !stop_.load();
               });
    });
  }
  ~SseReader() {
    stop_ = true;
    cli_.stop();
    thread_.join();
  }
  SseReader(const SseReader&) = delete;
  SseReader& operator=(const SseReader&) = delete;

  bool wait(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, pred);
  }
  bool wait_snapshot(std::chrono::milliseconds t) {
    return wait([this] { return snapshot_; }, t);
  }
  bool wait_raised(std::size_t n, std::chrono::milliseconds t) {
    return wait([&] { return raised_.size() >= n; }, t);
  }
  struct Raised {
    SteadyClock::time_point at;
    std::string alert_id;
  };
  std::map<std::string, Raised> raised() const {
    std::lock_guard lock(mu_);
    return raised_;
  }
  std::size_t raised_count() const {
    std::lock_guard lock(mu_);
    return raised_.size();
  }
  void clear() {
    std::lock_guard lock(mu_);
    raised_.clear();
  }

 private:
  void frame(const std::string& text, SteadyClock::time_point now) {
    std::string event, data;
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      const std::string line = text.substr(pos, nl - pos);
      if (line.rfind("event: ", 0) == 0) event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) data += line.substr(6);
      pos = nl + 1;
    }
    {
      std::lock_guard lock(mu_);
      if (event == "snapshot") snapshot_ = true;
      if (event == "alert") {
        auto j = json::parse(data, nullptr, false);
        if (!j.is_discarded() && j.value("change", "") == "raised") {
          const auto& a = j["alert"];
          const std::string name =
              a.contains("device") ? a["device"].value("name", "") : std::string();
          raised_.emplace(name + "/" + a.value("rule", ""), Raised{now, a.value("alert_id", "")});
        }
      }
    }
    cv_.notify_all();
  }

  httplib::Client cli_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::string buf_;  // reader thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool snapshot_ = false;
  std::map<std::string, Raised> raised_;
};

// `clients` threads, each with one keep-alive connection, `per_client` GETs of `path`.
struct Throughput {
  double rps = NAN;
  std::int64_t ok = 0, failed = 0;
  double seconds = NAN;
};
Throughput hammer(int port, const std::string& path, const std::string& cookie) {
  std::atomic<std::int64_t> ok{0}, failed{0};
  std::vector<std::thread> threads;
  const auto t0 = SteadyClock::now();
  for (int c = 0; c < kHttpClients; ++c)
    threads.emplace_back([&] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_keep_alive(true);
      cli.set_read_timeout(10, 0);
      const httplib::Headers h{{"Cookie", cookie}};
      for (int i = 0; i < kRequestsPerClient; ++i) {
        if (SteadyClock::now() >= g_deadline) break;
        auto res = cli.Get(path, h);
        if (res && res->status == 200 && !res->body.empty())
          ++ok;
        else
          ++failed;
      }
    });
  for (auto& t : threads) t.join();
  Throughput r;
  r.seconds = bench::seconds_between(t0, SteadyClock::now());
  r.ok = ok;
  r.failed = failed;
  r.rps = static_cast<double>(r.ok) / r.seconds;
  return r;
}

struct Latency {
  double p50 = NAN, p99 = NAN, max = NAN;
  std::size_t n = 0, expected = 0;
};
// Missing arrivals count as infinitely late.
Latency summarize(std::vector<double> v, std::size_t expected) {
  Latency l;
  l.n = v.size();
  l.expected = expected;
  if (v.size() < expected) v.resize(expected, INFINITY);
  l.p50 = bench::percentile(v, 50);
  l.p99 = bench::percentile(v, 99);
  l.max = v.empty() ? NAN : *std::max_element(v.begin(), v.end());
  return l;
}

// The bare broker round trip at the same pace: publisher → mosquitto → subscriber.
Latency bare_round_trip(const std::string& uri) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<SteadyClock::time_point> sent(kBareCount), got(kBareCount);
  std::vector<bool> arrived(kBareCount, false);
  std::size_t count = 0;
  bench::Subscriber sub(uri, "bench-dash-rt-sub", kMqttVersion);
  sub.start("bench/dash/#", 1, [&](const mqtt::const_message_ptr& m) {
    const auto now = SteadyClock::now();
    const auto& t = m->get_topic();
    const int i = std::atoi(t.c_str() + t.rfind('/') + 1);
    std::lock_guard lock(mu);
    if (i >= 0 && i < kBareCount && !arrived[static_cast<std::size_t>(i)]) {
      arrived[static_cast<std::size_t>(i)] = true;
      got[static_cast<std::size_t>(i)] = now;
      ++count;
    }
    cv.notify_all();
  });
  bench::WindowedPublisher pub(uri, "bench-dash-rt-pub", kMqttVersion, 1000);
  pub.connect();
  const std::string payload = R"({"water_leak":true,"linkquality":120})";
  const auto start = SteadyClock::now();
  const auto period = std::chrono::nanoseconds(1'000'000'000LL / kRate);
  for (int i = 0; i < kBareCount && SteadyClock::now() < g_deadline; ++i) {
    std::this_thread::sleep_until(start + period * i);
    {
      std::lock_guard lock(mu);
      sent[static_cast<std::size_t>(i)] = SteadyClock::now();
    }
    pub.publish("bench/dash/" + std::to_string(i), payload, 1, false);
  }
  std::unique_lock lock(mu);
  cv.wait_for(lock, capped(std::chrono::seconds(3)),
              [&] { return count >= static_cast<std::size_t>(kBareCount); });
  std::vector<double> v;
  for (std::size_t i = 0; i < arrived.size(); ++i)
    if (arrived[i]) v.push_back(bench::ms_between(sent[i], got[i]));
  return summarize(std::move(v), kBareCount);
}

std::string mb(std::int64_t kb) {
  return kb < 0 ? "-" : bench::fmt(static_cast<double>(kb) / 1024.0, 1) + " MB";
}
std::string ms(double v) {
  if (std::isnan(v)) return "-";
  return std::isinf(v) ? "not arrived" : bench::fmt(v, v >= 100 ? 0 : 2) + " ms";
}
std::string times(double r) {
  return std::isnan(r) || std::isinf(r) ? "-" : bench::fmt(r, r < 10 ? 1 : 0) + " x";
}

void tail_log(const std::string& path) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > 15) lines.pop_front();
  }
  std::cerr << "--- last lines of " << path << "\n";
  for (const auto& l : lines) std::cerr << l << "\n";
}

int run() {
  bench::TempDir tmp("bench-dashboard");
  bench::Mosquitto local(tmp.path());
  const std::string data = tmp / "data";
  std::filesystem::create_directories(data);
  const std::string sock = data + "/anjud.sock";
  const std::string anjud_log = tmp / "anjud.log";
  const int http_port = bench::free_port();
  {
    std::ofstream(tmp / "anju.yaml") << config_yaml(local.uri(), http_port);
    firmware::save_users_file(data + "/users.json", {{kUser, firmware::Role::operator_,
                                                      firmware::hash_password(kPassword)}});
  }
  // The zigbee2mqtt stand-in's retained device list, before anjud subscribes.
  bench::WindowedPublisher z2m(local.uri(), "bench-dash-z2m", kMqttVersion, 1000);
  z2m.connect();
  const std::string device_list = devices_list();
  const std::size_t device_list_bytes = device_list.size();
  if (device_list_bytes > 65536) throw std::runtime_error("the device list is over 64 KiB");
  z2m.publish("zigbee2mqtt/bridge/devices", device_list, 1, true);
  z2m.wait_all(std::chrono::seconds(5));

  const pid_t anjud = bench::spawn(
      {ANJU_BENCH_ANJUD, "--config", tmp / "anju.yaml", "--data-dir", data}, anjud_log);
  const std::string apid = std::to_string(anjud);
  struct Stopper {
    pid_t a;
    ~Stopper() { bench::stop_process(a, std::chrono::milliseconds(7000)); }
  } stopper{anjud};
  if (!wait_status(
          sock,
          [](const json& s) {
            return s.at("zigbee2mqtt").at("devices").get<int>() == kKnownDevices &&
                   s.at("pipeline").at("queue_depth").get<std::int64_t>() == 0;
          },
          capped(std::chrono::seconds(15))) ||
      !bench::port_open(http_port)) {
    tail_log(anjud_log);
    throw std::runtime_error("anjud did not learn the device list or open the dashboard in 15 s");
  }

  // (a) 10 sessions, then 10 open streams.
  std::vector<Session> sessions;
  for (int i = 0; i < kSessions; ++i) {
    auto s = login(http_port);
    if (!s) {
      tail_log(anjud_log);
      throw std::runtime_error("login failed");
    }
    sessions.push_back(*s);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // settle (no measurement waits)
  const std::int64_t rss_sessions = bench::read_status_kb("VmRSS", apid);
  std::vector<std::unique_ptr<SseReader>> streams;
  for (const auto& s : sessions) streams.push_back(std::make_unique<SseReader>(http_port, s));
  bool all_snap = true;
  for (auto& s : streams) all_snap = s->wait_snapshot(capped(std::chrono::seconds(5))) && all_snap;
  if (!all_snap) throw std::runtime_error("not every stream got its snapshot in 5 s");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::int64_t rss_streams = bench::read_status_kb("VmRSS", apid);

  // (b) 20 open alerts, then /api/alerts from 4 keep-alive clients; the same bytes from a bare
  // cpp-httplib server.
  for (int i = 0; i < kOpenAlerts; ++i)
    z2m.publish("zigbee2mqtt/" + open_device(i), R"({"water_leak":true})", 1, false);
  for (auto& s : streams)
    if (!s->wait_raised(kOpenAlerts, capped(std::chrono::seconds(10))))
      throw std::runtime_error("the open alerts did not reach every stream in 10 s");
  std::string alerts_body;
  {
    httplib::Client cli("127.0.0.1", http_port);
    auto res = cli.Get("/api/alerts", httplib::Headers{{"Cookie", sessions[0].cookie}});
    if (!res || res->status != 200) throw std::runtime_error("GET /api/alerts failed");
    alerts_body = res->body;
  }
  const Throughput anju_http = hammer(http_port, "/api/alerts", sessions[0].cookie);
  Throughput bare_http;
  {
    httplib::Server bare;
    bare.new_task_queue = [] { return new httplib::ThreadPool(32); };
    bare.set_tcp_nodelay(true);
    bare.set_keep_alive_timeout(2);
    bare.Get("/api/alerts", [&](const httplib::Request&, httplib::Response& res) {
      res.set_content(alerts_body, "application/json");
    });
    const int bare_port = bare.bind_to_any_port("127.0.0.1");
    std::thread srv([&] { bare.listen_after_bind(); });
    // Bound and listening already: connections queue until the accept loop runs.
    while (!bare.is_running() && SteadyClock::now() < g_deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    bare_http = hammer(bare_port, "/api/alerts", sessions[0].cookie);
    bare.stop();
    srv.join();
  }

  // (c) 900 new alerts at 100/s; each stream records when each one's "raised" frame arrived.
  for (auto& s : streams) s->clear();
  std::vector<SteadyClock::time_point> sent(kAlerts);
  std::vector<std::string> keys(kAlerts);
  int published = 0;
  {
    const auto period = std::chrono::nanoseconds(1'000'000'000LL / kRate);
    const auto start = SteadyClock::now();
    for (int i = 0; i < kAlerts && SteadyClock::now() + std::chrono::seconds(13) < g_deadline;
         ++i) {
      const std::string device = latency_device(i % kLatDevices);
      const std::string& kind = kKinds[static_cast<std::size_t>(i / kLatDevices)];
      keys[static_cast<std::size_t>(i)] = device + "/" + kind;
      std::this_thread::sleep_until(start + period * i);
      sent[static_cast<std::size_t>(i)] = SteadyClock::now();
      z2m.publish("zigbee2mqtt/" + device, "{\"" + kind + "\":true}", 1, false);
      ++published;
    }
  }
  for (auto& s : streams)
    s->wait_raised(static_cast<std::size_t>(published), capped(std::chrono::seconds(3)));
  std::vector<double> lat;
  std::size_t worst_stream = SIZE_MAX;
  for (auto& s : streams) {
    const auto got = s->raised();
    worst_stream = std::min(worst_stream, got.size());
    for (int i = 0; i < published; ++i) {
      auto it = got.find(keys[static_cast<std::size_t>(i)]);
      if (it != got.end())
        lat.push_back(bench::ms_between(sent[static_cast<std::size_t>(i)], it->second.at));
    }
  }
  if (worst_stream == SIZE_MAX) worst_stream = 0;
  const Latency anju_lat =
      summarize(std::move(lat), static_cast<std::size_t>(published) * streams.size());
  const std::int64_t rss_after = bench::read_status_kb("VmRSS", apid);
  const std::int64_t hwm_after = bench::read_status_kb("VmHWM", apid);
  const auto st = bench::query_status(sock);
  const std::int64_t open_alerts = st ? st->value("alerts_open", std::int64_t{-1}) : -1;
  streams.clear();

  const Latency bare_lat = bare_round_trip(local.uri());

  const bool alive = bench::process_alive(anjud);
  const int exit_status = bench::stop_process(anjud, std::chrono::milliseconds(7000));

  // ---- report
  bench::Table t("bench_dashboard: anjud's dashboard over loopback, " + std::to_string(kSessions) +
                 " logged-in sessions with an open SSE stream each");
  const std::int64_t added = rss_streams - rss_sessions;
  t.add("(a) RSS added by " + std::to_string(kSessions) + " open streams", mb(added),
        mb(rss_sessions) + " (anjud, sessions, no stream)",
        bench::pct(static_cast<double>(added) / static_cast<double>(rss_sessions)), "<= 1 MB",
        bench::met(rss_sessions > 0 && added <= 1024));
  t.add("(a) per open stream", bench::fmt(static_cast<double>(added) / kSessions) + " kB", "-", "-",
        "-", "-");
  const double rr = anju_http.rps / bare_http.rps;
  t.add("(b) GET /api/alerts req/s (" + std::to_string(kOpenAlerts) + " open, " +
            std::to_string(kHttpClients) + " clients)",
        bench::fmt(anju_http.rps), bench::fmt(bare_http.rps) + " (bare httplib, same bytes)",
        bench::pct(rr), ">= 50 % of bare", bench::met(anju_http.failed == 0 && rr >= 0.5));
  t.add("(c) z2m msg -> SSE raised p50, " + std::to_string(kRate) + "/s", ms(anju_lat.p50),
        ms(bare_lat.p50) + " (bare rt)", times(anju_lat.p50 / bare_lat.p50), "-", "-");
  t.add("(c) z2m msg -> SSE raised p99, " + std::to_string(kRate) + "/s", ms(anju_lat.p99),
        ms(bare_lat.p99) + " (bare rt)", times(anju_lat.p99 / bare_lat.p99), "<= 50 ms",
        bench::met(anju_lat.n == anju_lat.expected && anju_lat.p99 <= 50.0));
  t.add("(c) z2m msg -> SSE raised max", ms(anju_lat.max), ms(bare_lat.max) + " (bare rt)", "-",
        "-", "-");
  t.add("RSS after the runs (VmRSS / VmHWM)", mb(rss_after) + " / " + mb(hwm_after), "-", "-", "-",
        "-");
  t.note("(a) VmRSS of anjud 0.5 s after " + std::to_string(kSessions) +
         " logins, and 0.5 s after every stream got its snapshot; " +
         std::to_string(kKnownDevices) + " devices known");
  t.note("(b) " + std::to_string(anju_http.ok) + " answers (" + std::to_string(anju_http.failed) +
         " failed) in " + bench::fmt(anju_http.seconds, 2) + " s, body " +
         bench::fmt(static_cast<double>(alerts_body.size())) + " B; bare " +
         std::to_string(bare_http.ok) + " (" + std::to_string(bare_http.failed) + " failed) in " +
         bench::fmt(bare_http.seconds, 2) + " s; the " + std::to_string(kSessions) +
         " streams stay open meanwhile");
  t.note("(c) " + std::to_string(published) + " of " + std::to_string(kAlerts) +
         " alerts published (" + std::to_string(kLatDevices) +
         " devices x water_leak, smoke, gas, tamper, battery_low true, QoS 1, device list " +
         bench::fmt(static_cast<double>(device_list_bytes)) + " B); raised frames arrived " +
         std::to_string(anju_lat.n) + " of " + std::to_string(anju_lat.expected) + " over " +
         std::to_string(kSessions) + " streams (the worst stream got " +
         std::to_string(worst_stream) +
         "), missing ones count as infinitely late; open alerts at the end: " +
         std::to_string(open_alerts) + "; bare round trip: " + std::to_string(bare_lat.n) + " of " +
         std::to_string(kBareCount) + " at the same pace");
  t.note("anjud " + std::string(alive ? "ran to the end" : "HAD EXITED before the end") +
         "; wait status at SIGTERM " + std::to_string(exit_status));
  t.note("machine: " + bench::machine_line());
  t.print();
  if (!alive) tail_log(anjud_log);
  return 0;
}

}  // namespace

int main() {
  bench::Watchdog watchdog(std::chrono::seconds(58));
  spdlog::set_level(spdlog::level::warn);
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << "bench_dashboard: " << e.what() << "\n";
    return 1;
  }
}
