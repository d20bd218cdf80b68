// bench_fleet: a fleet of gateways against one city broker on loopback (issue 8). N simulated
// compounds in one process, each with the production uplink stack: its own SQLite outbox file
// (OutboxWriter / OutboxSender) and its own Uplink (client id anjud-<site>, MQTT 5, QoS 1, window
// 64, birth and Last Will, jittered backoff 500 ms .. 60 s as the config defaults). A producer
// thread feeds every gateway a realistic mix of messages built by the real CityBridge encoders.
// A subscriber on anju/v1/# counts what the city broker delivers; the broker is then killed
// (SIGKILL of the PID this program started) and restarted on the same port, and every gateway's
// reconnect is timed. Baseline, in a child process of this program (clean RSS): N bare Paho
// async clients with the same connect options, the same message mix published directly (no
// outbox), and Paho's automatic reconnect (1 s doubling, no jitter) against a broker of its own
// killed and restarted the same way.
#include <dirent.h>
#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include <iostream>
#include <map>
#include <numeric>
#include <queue>
#include <random>

#include "anju/bridge/city_bridge.hpp"
#include "anju/bridge/outbox.hpp"
#include "anju/bridge/uplink.hpp"
#include "anju/edge/alert.hpp"
#include "bench_util.hpp"

namespace {
using namespace anju;
using bench::SteadyClock;
using bridge::MsgClass;
using nlohmann::json;

struct Args {
  int gateways = 1000;
  int seconds = 5;   // steady-state window
  int outage_s = 5;  // broker down this long
  bool child = false;
  std::string out;  // the child's result file
};

// The mix, per gateway (periods in seconds; see README.md). Summaries are compressed in time: one
// every 30 s instead of every 5 min, so that a short run sees them.
constexpr double kEventPeriodS = 10;    // sensor events, each interval jittered ±50 %
constexpr double kStatusPeriodS = 60;   // a device goes offline / online
constexpr double kSummaryPeriodS = 30;  // 5 min in production (10× compressed)
constexpr double kAlertPeriodS = 300;   // an alert change
constexpr double kPeriods[4] = {kAlertPeriodS, kStatusPeriodS, kSummaryPeriodS, kEventPeriodS};
constexpr int kBucketMs = 250;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

int count_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n - 1;  // the directory's own fd
}

std::string site_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "fleet-%05d", i);
  return buf;
}

// RLIMIT_NOFILE raised to its hard limit (each gateway holds ~7 fds; the broker inherits it).
std::pair<rlim_t, rlim_t> raise_nofile() {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  const rlim_t before = r.rlim_cur;
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  return {before, r.rlim_cur};
}

// A mosquitto on a fixed loopback port that can be killed and started again on that port.
class Broker {
 public:
  explicit Broker(std::string dir) : dir_(std::move(dir)) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = bench::free_port();
      if (start()) return;
    }
    throw std::runtime_error("mosquitto did not start");
  }
  ~Broker() { bench::stop_process(pid_, std::chrono::milliseconds(2000)); }
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;
  bool start() {
    const std::string conf = dir_ + "/mosquitto.conf";
    {
      std::ofstream c(conf);
      c << "listener " << port_ << " 127.0.0.1\n"
        << "allow_anonymous true\n"
        << "persistence false\n"
        << "log_dest none\n"
        << "max_queued_messages 100000\n"
        << "set_tcp_nodelay true\n"
        << "max_connections -1\n"
        << "sys_interval 1\n";
    }
    pid_ = bench::spawn({"mosquitto", "-c", conf},
                        dir_ + "/mosquitto-" + std::to_string(++starts_) + ".log");
    const auto deadline = SteadyClock::now() + std::chrono::seconds(5);
    while (SteadyClock::now() < deadline && bench::process_alive(pid_)) {
      if (bench::port_open(port_)) {
        up_at_ = SteadyClock::now();
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    bench::stop_process(pid_, std::chrono::milliseconds(500));
    pid_ = -1;
    return false;
  }
  // SIGKILL of the broker this program started: no clean disconnects, no Last Wills.
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    bench::unregister_pid(pid_);
    pid_ = -1;
  }
  std::int64_t rss_kb() const {
    return pid_ > 0 ? bench::read_status_kb("VmRSS", std::to_string(pid_)) : -1;
  }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  SteadyClock::time_point up_at() const { return up_at_; }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  int starts_ = 0;
  SteadyClock::time_point up_at_{};
};

// ---------------------------------------------------------------------------------------------
// Messages as the CityBridge makes them, per gateway.

struct Msg {
  MsgClass cls = MsgClass::event;
  std::string id, topic, payload;
};

const char* kSummaryExample =
    R"({"schema":1,"id":"5c0e7a1d-3f4b-8a2c-9d1e-6f7a8b9c0d1e","seq":1042,"site":"demo-compound",)"
    R"("grid_code":"11010500100200300401","division_code":"110105001002","ts_ms":1732950300000,)"
    R"("clock_synced":true,"period":{"name":"5m","start_ms":1732950000000,"end_ms":1732950300000},)"
    R"("events":{"total":12,"by_kind":{"temperature":10,"smoke":2}},"alerts":{"opened":1,"open":3},)"
    R"("devices":{"reporting":5,"offline":1,"low_battery":1,"signal_weak":0,"tamper":0,"known":42,)"
    R"("online":41,"changed":[{"device":"0x00158d0001a2b3c4","state":"offline","ts_ms":1732950120000}],)"
    R"("changed_total":1},"scope":"compound"})";

class MixFactory {
 public:
  Msg make(int cls, const std::string& site, std::int64_t seq, std::mt19937& rng) const {
    const int dev = static_cast<int>(rng() % 50);
    Msg m;
    m.cls = static_cast<MsgClass>(cls);
    switch (m.cls) {
      case MsgClass::event: {
        const bool leak = rng() % 10 == 0;
        auto e = bench::driver_like_event(clock_, dev, leak, rng() % 2 == 0,
                                          18.0 + static_cast<double>(rng() % 100) / 10.0);
        e.site = site;
        e.seq = seq;
        m.id = e.id;
        m.topic = bridge::event_topic(site, e.kind);
        m.payload = bridge::event_payload(e).dump();
        break;
      }
      case MsgClass::status: {
        auto e = bench::driver_like_event(clock_, dev, false, false, 20.0);
        e.kind = rng() % 2 ? edge::EventKind::device_offline : edge::EventKind::device_online;
        e.values.clear();
        e.site = site;
        e.seq = seq;
        m.id = e.id;
        m.topic = bridge::status_topic(site, e.device.id);
        m.payload = bridge::status_payload(e).dump();
        break;
      }
      case MsgClass::alert: {
        auto e = bench::driver_like_event(clock_, dev, true, true, 0);
        edge::AlertChange c;
        c.type = edge::AlertChangeType::raised;
        auto& a = c.alert;
        a.alert_id = edge::uuid_v7(clock_.wall_ms());
        a.rule = "water_leak";
        a.kind = edge::EventKind::water_leak;
        a.site = site;
        a.grid_code = e.grid_code;
        a.location = e.location;
        a.device = e.device;
        a.severity = 3;
        a.first_seen_ms = a.last_seen_ms = a.updated_ms = e.ts_ms;
        a.last_seq = seq;
        a.event_ids = {e.id};
        a.message = "water leak at " + e.device.name;
        a.history.push_back({"raise", "", "raised", "system", "rules", "", e.ts_ms});
        c.json = edge::to_json(a).dump();
        m.id = edge::uuid_v7(clock_.wall_ms());
        m.topic = bridge::alert_topic(site, a.kind);
        m.payload = bridge::alert_payload(c, m.id, true);
        break;
      }
      case MsgClass::summary: {
        auto j = summary_;
        const std::int64_t now = clock_.wall_ms();
        const std::int64_t start = now / 300'000 * 300'000;
        m.id = bridge::summary_id(site, 300'000, start);
        j["id"] = m.id;
        j["seq"] = seq;
        j["site"] = site;
        j["ts_ms"] = now;
        j["period"]["start_ms"] = start;
        j["period"]["end_ms"] = start + 300'000;
        m.topic = bridge::summary_topic(site, 300'000);
        m.payload = j.dump();
        break;
      }
    }
    return m;
  }

 private:
  edge::SystemClock clock_;
  json summary_ = json::parse(kSummaryExample);
};

// Feeds every gateway its mix, on one thread, until stopped. sink(gateway, message).
class Producer {
 public:
  using Sink = std::function<void(int, Msg&&)>;
  Producer(int n, Sink sink) : n_(n), sink_(std::move(sink)) {}
  ~Producer() { stop(); }
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::int64_t produced(int cls) const { return produced_[cls].load(); }
  std::int64_t produced_total() const {
    std::int64_t t = 0;
    for (int c = 0; c < 4; ++c) t += produced_[c].load();
    return t;
  }

 private:
  struct Due {
    double t;
    int gw;
    int cls;
    bool operator>(const Due& o) const { return t > o.t; }
  };
  void run() {
    std::mt19937 rng(42);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    std::priority_queue<Due, std::vector<Due>, std::greater<>> q;
    for (int g = 0; g < n_; ++g)
      for (int c = 0; c < 4; ++c) q.push({u01(rng) * kPeriods[c], g, c});
    std::vector<std::int64_t> seq(static_cast<std::size_t>(n_), 0);
    const auto t0 = SteadyClock::now();
    while (!stop_) {
      const Due d = q.top();
      const auto at = t0 + std::chrono::duration_cast<SteadyClock::duration>(
                               std::chrono::duration<double>(d.t));
      if (SteadyClock::now() < at) {
        std::this_thread::sleep_until(
            std::min(at, SteadyClock::now() + std::chrono::milliseconds(20)));
        continue;
      }
      q.pop();
      sink_(d.gw, factory_.make(d.cls, site_of(d.gw), ++seq[static_cast<std::size_t>(d.gw)], rng));
      ++produced_[d.cls];
      // Summaries on their fixed period; the rest jittered ±50 %.
      const double p = kPeriods[d.cls];
      q.push({d.t + (d.cls == static_cast<int>(MsgClass::summary) ? p : p * (0.5 + u01(rng))), d.gw,
              d.cls});
    }
  }
  int n_;
  Sink sink_;
  MixFactory factory_;
  std::atomic<bool> stop_{false};
  std::array<std::atomic<std::int64_t>, 4> produced_{};
  std::thread thread_;
};

// What the city broker delivers on anju/v1/#: messages and bytes (topic + payload), per class.
struct CityCounts {
  std::atomic<std::int64_t> msgs{0}, bytes{0}, payload_bytes{0};
  std::array<std::atomic<std::int64_t>, 4> cls_msgs{}, cls_bytes{};
  void add(const mqtt::const_message_ptr& m) {
    const auto& topic = m->get_topic();
    const auto sz = static_cast<std::int64_t>(m->get_payload_ref().size());
    ++msgs;
    bytes += sz + static_cast<std::int64_t>(topic.size());
    payload_bytes += sz;
    // anju/v1/<site>/<class>/...
    std::size_t p = 0;
    for (int i = 0; i < 3 && p != std::string::npos; ++i) p = topic.find('/', p + 1);
    if (p == std::string::npos) return;
    const std::string cls = topic.substr(p + 1, topic.find('/', p + 1) - p - 1);
    int c = cls == "alert" ? 0 : cls == "status" ? 1 : cls == "summary" ? 2 : 3;
    ++cls_msgs[c];
    cls_bytes[c] += sz;
  }
  struct Snap {
    std::int64_t msgs, bytes, payload_bytes;
    std::array<std::int64_t, 4> cm, cb;
  };
  Snap snap() const {
    Snap s{msgs.load(), bytes.load(), payload_bytes.load(), {}, {}};
    for (int c = 0; c < 4; ++c) {
      s.cm[c] = cls_msgs[c].load();
      s.cb[c] = cls_bytes[c].load();
    }
    return s;
  }
};

// The birth / Last Will the bare baseline sends: the production gateway status fields.
std::string bare_gateway_status(const std::string& site, bool online) {
  const edge::SystemClock clock;
  json j{
      {"schema", 1},          {"id", edge::uuid_v7(clock.wall_ms())},  {"seq", 0},
      {"site", site},         {"grid_code", bench::kGridCode},         {"ts_ms", clock.wall_ms()},
      {"clock_synced", true}, {"state", online ? "online" : "offline"}};
  return j.dump();
}

struct Footprint {
  std::int64_t rss_kb = 0, hwm_kb = 0;
  int threads = 0, fds = 0;
  static Footprint now() {
    return {bench::read_status_kb("VmRSS"), bench::read_status_kb("VmHWM"),
            static_cast<int>(bench::read_status_kb("Threads")), count_fds()};
  }
};

// Reconnect offsets (ms after the restarted broker's port opened) → the curve's buckets.
std::vector<int> buckets(const std::vector<double>& offsets_ms, int n_buckets) {
  std::vector<int> b(static_cast<std::size_t>(n_buckets), 0);
  for (double v : offsets_ms) {
    const int i = std::clamp(static_cast<int>(std::max(0.0, v) / kBucketMs), 0, n_buckets - 1);
    ++b[static_cast<std::size_t>(i)];
  }
  return b;
}
// Time until `share` of `n` were back (NaN: never).
double time_to(std::vector<double> offsets_ms, int n, double share) {
  std::sort(offsets_ms.begin(), offsets_ms.end());
  const auto need = static_cast<std::size_t>(std::ceil(share * n));
  if (need == 0 || offsets_ms.size() < need) return NAN;
  return offsets_ms[need - 1];
}

// ---------------------------------------------------------------------------------------------
// The baseline, run in a child process: N bare Paho clients, Paho's automatic reconnect.

struct BareClient {
  std::string site;
  std::unique_ptr<mqtt::async_client> client;
  std::atomic<std::int64_t> up_ns{0}, down_ns{0};
  std::atomic<int> ups{0};
};

int run_baseline(const Args& a) {
  bench::Watchdog watchdog(std::chrono::seconds(26));
  const auto nofile = raise_nofile();
  bench::TempDir dir("bench-fleet-bare");
  Broker broker(dir.path());
  const Footprint f0 = Footprint::now();
  const std::int64_t b0 = broker.rss_kb();
  std::vector<std::unique_ptr<BareClient>> cs;
  const auto c0 = SteadyClock::now();
  for (int i = 0; i < a.gateways; ++i) {
    auto c = std::make_unique<BareClient>();
    c->site = site_of(i);
    auto ep = bench::bench_endpoint(broker.uri(), "anjud-" + c->site, 5);
    c->client = std::make_unique<mqtt::async_client>(broker.uri(), ep.client_id,
                                                     edge::make_create_options(ep), nullptr);
    BareClient* raw = c.get();
    raw->client->set_connected_handler([raw](const std::string&) {
      const std::string status = "anju/v1/" + raw->site + "/status/gateway";
      try {
        raw->client->publish(status, bare_gateway_status(raw->site, true), 1, true);
        raw->client->subscribe("anju/v1/" + raw->site + "/cmd/+", 1);
      } catch (const std::exception&) {
      }
      raw->up_ns = now_ns();
      ++raw->ups;
    });
    raw->client->set_connection_lost_handler(
        [raw](const std::string&) { raw->down_ns = now_ns(); });
    mqtt::message will("anju/v1/" + c->site + "/status/gateway",
                       bare_gateway_status(c->site, false), 1, true);
    auto opts = edge::make_connect_options(ep, true, will);
    opts.set_max_inflight(64 + 16);
    opts.set_automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(60));
    raw->client->connect(opts);
    cs.push_back(std::move(c));
  }
  auto all_up = [&](int min_ups) {
    for (auto& c : cs)
      if (c->ups.load() < min_ups) return false;
    return true;
  };
  while (!all_up(1) && SteadyClock::now() < c0 + std::chrono::seconds(8))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double connect_all_s = bench::seconds_between(c0, SteadyClock::now());
  int connected = 0;
  for (auto& c : cs) connected += c->ups.load() >= 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const Footprint f1 = Footprint::now();
  const std::int64_t b1 = broker.rss_kb();

  // Steady state: the same mix, published directly (QoS 1, no outbox).
  CityCounts city;
  std::atomic<std::int64_t> dropped{0};
  json r;
  {
    bench::Subscriber sub(broker.uri(), "fleet-city-bare", 5);
    sub.start("anju/v1/#", 0, [&](const mqtt::const_message_ptr& m) { city.add(m); });
    Producer prod(a.gateways, [&](int g, Msg&& m) {
      try {
        cs[static_cast<std::size_t>(g)]->client->publish(
            mqtt::make_message(m.topic, m.payload, 1, false));
      } catch (const std::exception&) {
        ++dropped;
      }
    });
    prod.start();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const auto s0 = city.snap();
    const auto w0 = SteadyClock::now();
    std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
    const auto s1 = city.snap();
    const double w = bench::seconds_between(w0, SteadyClock::now());
    r["steady_msgs_s"] = static_cast<double>(s1.msgs - s0.msgs) / w;
    r["steady_bytes_s"] = static_cast<double>(s1.bytes - s0.bytes) / w;
    // Outage.
    const auto k0 = SteadyClock::now();
    broker.kill_now();
    std::this_thread::sleep_for(std::chrono::seconds(a.outage_s));
    if (!broker.start()) throw std::runtime_error("mosquitto did not restart");
    const std::int64_t up_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(broker.up_at().time_since_epoch())
            .count();
    const auto cap = broker.up_at() + std::chrono::seconds(7);
    while (!all_up(2) && SteadyClock::now() < cap)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::vector<double> offs;
    for (auto& c : cs)
      if (c->ups.load() >= 2) offs.push_back(static_cast<double>(c->up_ns.load() - up_ns) / 1e6);
    r["reconnect_ms"] = offs;
    r["outage_s"] = bench::seconds_between(k0, broker.up_at());
    r["dropped"] = dropped.load();
    prod.stop();
  }
  r["gateways"] = a.gateways;
  r["connected"] = connected;
  r["connect_all_s"] = connect_all_s;
  r["rss_kb"] = f1.rss_kb - f0.rss_kb;
  r["threads"] = f1.threads - f0.threads;
  r["fds"] = f1.fds - f0.fds;
  r["broker_rss_kb"] = b1 - b0;
  r["nofile"] = static_cast<std::int64_t>(nofile.second);
  for (auto& c : cs) {
    c->client->disable_callbacks();
    try {
      if (c->client->is_connected()) c->client->disconnect(0);
    } catch (const std::exception&) {
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  cs.clear();
  std::ofstream(a.out) << r.dump();
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Anju: N gateways with the production uplink stack.

struct Gateway {
  std::string site;
  std::string db_path;
  bridge::OutboxCounters counters;
  std::unique_ptr<edge::Db> db;  // the writer's connection (the journal's, in anjud)
  std::unique_ptr<bridge::OutboxWriter> writer;
  std::unique_ptr<bridge::Uplink> uplink;

  std::int64_t rows() const {
    std::int64_t t = 0;
    for (int c = 0; c < bridge::kClasses; ++c) t += counters.rows[c].load();
    return t;
  }
  // The producer thread only.
  void put(const Msg& m) {
    db->exec("BEGIN IMMEDIATE");
    writer->put(m.cls, m.id, m.topic, m.payload);
    db->exec("COMMIT");
    uplink->wake();
  }
};

std::string mb(double kb) {
  return bench::fmt(kb / 1024.0, 1) + " MB";
}
std::string ms(double v) {
  return std::isnan(v) ? "-" : bench::fmt(v, 0) + " ms";
}

int run(const Args& a, const std::string& self) {
  bench::Watchdog watchdog(std::chrono::seconds(58));
  spdlog::set_level(spdlog::level::err);
  const auto nofile = raise_nofile();
  bench::TempDir dir("bench-fleet");

  // 1. The baseline, first, in a child process (a clean RSS of its own), bounded at 26 s.
  json base;
  {
    const std::string out = dir / "baseline.json";
    const pid_t child = bench::spawn(
        {self, "--baseline-child", "--gateways", std::to_string(a.gateways), "--seconds",
         std::to_string(a.seconds), "--outage", std::to_string(a.outage_s), "--out", out},
        dir / "baseline.log");
    const auto deadline = SteadyClock::now() + std::chrono::seconds(28);
    int status = 0;
    while (::waitpid(child, &status, WNOHANG) == 0 && SteadyClock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (SteadyClock::now() >= deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
    }
    bench::unregister_pid(child);
    std::ifstream in(out);
    base = json::parse(in, nullptr, false);
    if (base.is_discarded()) {
      std::ifstream log(dir / "baseline.log");
      std::cerr << "bench_fleet: the baseline did not finish:\n" << log.rdbuf() << "\n";
      base = json::object();
    }
  }

  // 2. Anju's fleet.
  Broker broker(dir.path());
  const Footprint f0 = Footprint::now();
  const std::int64_t broker0 = broker.rss_kb();
  std::vector<std::unique_ptr<Gateway>> gws;
  const auto t_make = SteadyClock::now();
  for (int i = 0; i < a.gateways; ++i) {
    auto g = std::make_unique<Gateway>();
    g->site = site_of(i);
    g->db_path = dir / (g->site + ".db");
    g->db = std::make_unique<edge::Db>(g->db_path);
    g->db->exec("PRAGMA journal_mode=WAL");
    g->db->exec("PRAGMA synchronous=NORMAL");
    // the journal's meta table (the outbox keeps its eviction counters there)
    g->db->exec(
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID");
    bridge::ensure_outbox_schema(*g->db);
    bridge::load_counters(*g->db, g->counters);
    g->writer = std::make_unique<bridge::OutboxWriter>(
        *g->db, bridge::CityBridgeOptions{}.budget_bytes, g->counters);
    bridge::UplinkOptions uo;
    uo.endpoint = bench::bench_endpoint(broker.uri(), "anjud-" + g->site, 5);
    uo.db_path = g->db_path;
    uo.site = g->site;
    uo.grid_code = bench::kGridCode;
    uo.command_filter = "anju/v1/" + g->site + "/cmd/+";
    uo.on_command = [](const edge::LocalBus::Message&) {};
    // window, backoff_min_ms, backoff_max_ms: the defaults, which are the config's defaults
    g->uplink = std::make_unique<bridge::Uplink>(uo, g->counters);
    gws.push_back(std::move(g));
  }
  const double make_s = bench::seconds_between(t_make, SteadyClock::now());
  CityCounts city;
  bench::Subscriber sub(broker.uri(), "fleet-city", 5);
  sub.start("anju/v1/#", 0, [&](const mqtt::const_message_ptr& m) { city.add(m); });
  const auto c0 = SteadyClock::now();
  for (auto& g : gws) g->uplink->start();
  auto count_connected = [&](std::int64_t min_connects) {
    int n = 0;
    for (auto& g : gws) {
      const auto s = g->uplink->stats();
      n += s.connected && s.connects >= min_connects;
    }
    return n;
  };
  while (count_connected(1) < a.gateways && SteadyClock::now() < c0 + std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double connect_all_s = bench::seconds_between(c0, SteadyClock::now());
  const int connected = count_connected(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const Footprint f1 = Footprint::now();
  const std::int64_t broker1 = broker.rss_kb();

  // 3. Steady state.
  Producer prod(a.gateways, [&](int g, Msg&& m) { gws[static_cast<std::size_t>(g)]->put(m); });
  prod.start();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const auto s0 = city.snap();
  const auto p0 = prod.produced_total();
  const auto w0 = SteadyClock::now();
  std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
  const auto s1 = city.snap();
  const auto p1 = prod.produced_total();
  const double w = bench::seconds_between(w0, SteadyClock::now());
  const double msgs_s = static_cast<double>(s1.msgs - s0.msgs) / w;
  const double bytes_s = static_cast<double>(s1.bytes - s0.bytes) / w;
  const Footprint f2 = Footprint::now();

  // 4. Broker restart: SIGKILL, down for outage_s, same port again.
  std::int64_t failures0 = 0;
  for (auto& g : gws) failures0 += g->uplink->stats().connect_failures;
  const auto k0 = SteadyClock::now();
  broker.kill_now();
  const std::size_t n = gws.size();
  std::vector<double> lost_ms(n, NAN);
  {
    const auto until = k0 + std::chrono::seconds(a.outage_s);
    while (SteadyClock::now() < until) {
      for (std::size_t i = 0; i < n; ++i)
        if (std::isnan(lost_ms[i]) && !gws[i]->uplink->stats().connected)
          lost_ms[i] = bench::ms_between(k0, SteadyClock::now());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::int64_t failures1 = 0;
  std::vector<std::int64_t> backlog(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    failures1 += gws[i]->uplink->stats().connect_failures;
    backlog[i] = gws[i]->rows();
  }
  if (!broker.start()) throw std::runtime_error("mosquitto did not restart");
  const auto up = broker.up_at();
  const double outage_s = bench::seconds_between(k0, up);
  std::vector<double> back_ms(n, NAN), drained_ms(n, NAN);
  const auto cap = up + std::chrono::seconds(13);
  std::size_t back = 0, drained = 0;
  while (SteadyClock::now() < cap && (back < n || drained < n)) {
    const auto t = SteadyClock::now();
    for (std::size_t i = 0; i < n; ++i) {
      if (std::isnan(back_ms[i])) {
        const auto s = gws[i]->uplink->stats();
        if (s.connected && s.connects >= 2) {
          back_ms[i] = bench::ms_between(up, t);
          ++back;
        }
      }
      if (!std::isnan(back_ms[i]) && std::isnan(drained_ms[i]) && gws[i]->rows() == 0) {
        drained_ms[i] = bench::ms_between(up, t);
        ++drained;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::int64_t failures2 = 0;
  for (auto& g : gws) failures2 += g->uplink->stats().connect_failures;
  prod.stop();
  const Footprint f3 = Footprint::now();

  // 5. Stop the gateways (in parallel: each stop says offline and disconnects).
  {
    std::vector<std::thread> ts;
    const std::size_t k = 8;
    for (std::size_t t = 0; t < k; ++t)
      ts.emplace_back([&, t] {
        for (std::size_t i = t; i < n; i += k) gws[i]->uplink->stop(std::chrono::milliseconds(0));
      });
    for (auto& t : ts) t.join();
  }

  // 6. The tables.
  const double N = a.gateways;
  std::vector<double> anju_back;
  for (double v : back_ms)
    if (!std::isnan(v)) anju_back.push_back(v);
  std::vector<double> bare_back;
  if (base.contains("reconnect_ms")) bare_back = base["reconnect_ms"].get<std::vector<double>>();
  auto bget = [&](const char* k) { return base.contains(k) ? base[k].get<double>() : NAN; };

  bench::Table t("bench_fleet: " + bench::fmt(N) +
                 " gateways (production Uplink + SQLite outbox "
                 "each) vs " +
                 bench::fmt(N) + " bare Paho clients, one loopback mosquitto");
  auto row = [&](const std::string& m, double av, double bv, const std::string& unit, int prec) {
    t.add(m, bench::fmt(av, prec) + unit, bench::fmt(bv, prec) + unit, bench::pct(av / bv), "-",
          "-");
  };
  t.add("connected at start (time for all)",
        std::to_string(connected) + " (" + bench::fmt(connect_all_s, 2) + " s)",
        base.contains("connected") ? std::to_string(base["connected"].get<int>()) + " (" +
                                         bench::fmt(bget("connect_all_s"), 2) + " s)"
                                   : "-",
        "-", "-", "-");
  row("city broker delivers, msgs/s (steady)", msgs_s, bget("steady_msgs_s"), "", 1);
  row("city broker delivers, bytes/s (topic+payload)", bytes_s, bget("steady_bytes_s"), "", 0);
  row("per gateway: msgs/s", msgs_s / N, bget("steady_msgs_s") / N, "", 4);
  row("per gateway: bytes/s", bytes_s / N, bget("steady_bytes_s") / N, "", 1);
  row("per gateway: RSS, this process (KB)", double(f1.rss_kb - f0.rss_kb) / N, bget("rss_kb") / N,
      "", 1);
  row("per gateway: threads", double(f1.threads - f0.threads) / N, bget("threads") / N, "", 2);
  row("per gateway: fds", double(f1.fds - f0.fds) / N, bget("fds") / N, "", 2);
  row("broker RSS per client (KB)", double(broker1 - broker0) / N, bget("broker_rss_kb") / N, "",
      1);
  const int nb = std::max(1, static_cast<int>(std::ceil(13'000.0 / kBucketMs)));
  const auto ab = buckets(anju_back, nb);
  const auto bb = buckets(bare_back, nb);
  row("after restart: 50 % back (ms)", time_to(anju_back, a.gateways, 0.5),
      time_to(bare_back, a.gateways, 0.5), "", 0);
  row("after restart: 90 % back (ms)", time_to(anju_back, a.gateways, 0.9),
      time_to(bare_back, a.gateways, 0.9), "", 0);
  row("after restart: 100 % back (ms)", time_to(anju_back, a.gateways, 1.0),
      time_to(bare_back, a.gateways, 1.0), "", 0);
  row("storm: most reconnects in one 250 ms bucket", *std::max_element(ab.begin(), ab.end()),
      *std::max_element(bb.begin(), bb.end()), "", 0);
  std::vector<double> bl;
  for (auto b : backlog) bl.push_back(static_cast<double>(b));
  std::vector<double> dr;
  for (double v : drained_ms)
    if (!std::isnan(v)) dr.push_back(v);
  t.add("outage backlog per gateway, mean / max (msgs)",
        bench::fmt(std::accumulate(bl.begin(), bl.end(), 0.0) / N, 2) + " / " +
            bench::fmt(*std::max_element(bl.begin(), bl.end())),
        "dropped: " + bench::fmt(bget("dropped")) + " msgs in all", "-", "-", "-");
  t.add("outbox empty again after restart, p50 / p90 / max",
        ms(bench::percentile(dr, 50)) + " / " + ms(bench::percentile(dr, 90)) + " / " +
            ms(dr.empty() ? NAN : *std::max_element(dr.begin(), dr.end())),
        "-", "-", "-", "-");
  t.note("mix per gateway: a sensor event every " + bench::fmt(kEventPeriodS) +
         " s, a device status change every " + bench::fmt(kStatusPeriodS) + " s, a summary every " +
         bench::fmt(kSummaryPeriodS) + " s (5 min in production), an alert every " +
         bench::fmt(kAlertPeriodS) + " s; each interval jittered ±50 % but summaries; produced " +
         bench::fmt(static_cast<double>(p1 - p0) / w, 1) + " msgs/s in the window");
  {
    std::string cls = "delivered in the window, per class (msgs, mean payload B):";
    const char* names[4] = {"alert", "status", "summary", "event"};
    for (int c = 0; c < 4; ++c) {
      const auto m = s1.cm[c] - s0.cm[c];
      cls += std::string(" ") + names[c] + " " + std::to_string(m) + " (" +
             (m ? bench::fmt(double(s1.cb[c] - s0.cb[c]) / double(m)) : "-") + ")";
    }
    t.note(cls + "; steady window " + bench::fmt(w, 2) + " s");
  }
  t.note("Anju: " + std::to_string(a.gateways) + " outbox files and Uplinks made in " +
         bench::fmt(make_s, 2) + " s; RSS " + mb(double(f0.rss_kb)) + " before, " +
         mb(double(f1.rss_kb)) + " all connected, " + mb(double(f2.rss_kb)) +
         " after the steady window, " + mb(double(f3.rss_kb)) + " after the restart; threads " +
         std::to_string(f0.threads) + " -> " + std::to_string(f1.threads) + ", fds " +
         std::to_string(f0.fds) + " -> " + std::to_string(f1.fds) + "; mosquitto RSS " +
         mb(double(broker0)) + " -> " + mb(double(broker1)));
  t.note("RLIMIT_NOFILE raised from " + std::to_string(nofile.first) + " to " +
         std::to_string(nofile.second) + " (inherited by the mosquittos)");
  t.note("restart: broker SIGKILLed, port open again after " + bench::fmt(outage_s, 2) +
         " s (baseline " + bench::fmt(bget("outage_s"), 2) +
         " s); Anju's connect attempts refused "
         "during the outage: " +
         std::to_string(failures1 - failures0) + " (" +
         bench::fmt(double(failures1 - failures0) / N, 1) +
         " per gateway), after the restart: " + std::to_string(failures2 - failures1) +
         "; back within 13 s: " + std::to_string(anju_back.size()) + " of " + std::to_string(n) +
         " (baseline " + std::to_string(bare_back.size()) + ")");
  {
    std::vector<double> lm;
    for (double v : lost_ms)
      if (!std::isnan(v)) lm.push_back(v);
    t.note("loss noticed after the kill: p50 " + ms(bench::percentile(lm, 50)) + ", max " +
           ms(lm.empty() ? NAN : *std::max_element(lm.begin(), lm.end())) + " (" +
           std::to_string(lm.size()) + " gateways)");
  }
  t.note(
      "baseline: bare Paho async_client per gateway, same client ids, MQTT 5, keepalive, Last "
      "Will, birth and command subscription; the same mix published directly (QoS 1, no "
      "outbox: what is published while disconnected is dropped); Paho's automatic reconnect "
      "(1 s doubling to 60 s, no jitter); run first, in a child process of this program");
  t.note("machine: " + bench::machine_line());
  t.print();

  // The reconnect curve.
  std::cout << "\nReconnect curve: gateways back per " << kBucketMs
            << " ms after the restarted broker's port opened (each # = "
            << std::max(1, a.gateways / 100) << " gateways)\n\n";
  std::cout << "|  t (ms) | Anju | Anju total | bare | bare total | Anju                 | bare\n";
  std::cout << "|--------:|-----:|-----------:|-----:|-----------:|:---------------------|:-----\n";
  int last = 0;
  for (int i = 0; i < nb; ++i)
    if (ab[static_cast<std::size_t>(i)] || bb[static_cast<std::size_t>(i)]) last = i;
  int ca = 0, cb = 0;
  const int per = std::max(1, a.gateways / 100);
  for (int i = 0; i <= last; ++i) {
    const int x = ab[static_cast<std::size_t>(i)], y = bb[static_cast<std::size_t>(i)];
    ca += x;
    cb += y;
    char line[512];
    std::snprintf(
        line, sizeof(line), "| %7d | %4d | %10d | %4d | %10d | %-20s | %s\n", i * kBucketMs, x, ca,
        y, cb,
        std::string(static_cast<std::size_t>(std::min(x / per + (x > 0 && x < per), 100)), '#')
            .substr(0, 20)
            .c_str(),
        std::string(static_cast<std::size_t>(std::min(y / per + (y > 0 && y < per), 100)), '#')
            .c_str());
    std::cout << line;
  }
  std::cout << std::flush;
  gws.clear();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&] {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + k);
      return std::string(argv[++i]);
    };
    try {
      if (k == "--gateways")
        a.gateways = std::stoi(val());
      else if (k == "--seconds")
        a.seconds = std::stoi(val());
      else if (k == "--outage")
        a.outage_s = std::stoi(val());
      else if (k == "--baseline-child")
        a.child = true;
      else if (k == "--out")
        a.out = val();
      else {
        std::cerr
            << "usage: bench_fleet [--gateways N (1000)] [--seconds S (5)] [--outage S (5)]\n";
        return 2;
      }
    } catch (const std::exception& e) {
      std::cerr << "bench_fleet: " << e.what() << "\n";
      return 2;
    }
  }
  if (a.gateways < 1 || a.seconds < 1 || a.outage_s < 1) {
    std::cerr << "bench_fleet: --gateways, --seconds and --outage must be >= 1\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::err);
  try {
    if (a.child) return run_baseline(a);
    return run(a, std::filesystem::read_symlink("/proc/self/exe").string());
  } catch (const std::exception& e) {
    std::cerr << "bench_fleet: " << e.what() << "\n";
    return 1;
  }
}
