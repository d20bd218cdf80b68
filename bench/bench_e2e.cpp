// bench_e2e: the built anjud end to end, on the embedded demo config, with two private mosquittos
// (the compound's local bus and a stand-in for the city broker):
//  (a) zigbee2mqtt water_leak messages → alert messages at a city subscriber, msgs/s, beside a
//      bare Paho QoS 1 publisher → subscriber through one mosquitto;
//  (b) latency from a zigbee2mqtt message to its local alert message at a paced 5,000 msgs/s for
//      3 s and at 500 msgs/s for 2 s (p50/p99), beside two baselines at the same paces: the bare
//      broker round trip (publisher → mosquitto → subscriber, one hop) and the bare relay;
//  (c) idle RSS of anjud with 55 devices known beside a bare Paho subscriber + SQLite process, and
//      bytes written to disk per event under a steady temperature load beside raw SQLite inserts
//      of the same rows; with --flash also at a compound's steady 10 msgs/s for 20 s, split into
//      anjud's writes, its WAL frames and the checkpoint (docs/FLASH.md; the time comes from (b)).
// The bare relay is this program run as `bench_e2e --relay LOCAL CITY`, a process of its own like
// anjud, started after anjud has stopped: anjud's MQTT hops per zigbee2mqtt message with Paho as
// anjud uses it and nothing else (no journal, no rules, no outbox): it receives the message (MQTT
// 5, QoS 1, a persistent session on anjud's client id), publishes one retained QoS 1 local alert
// message carrying the device (what the latency matcher reads) and two QoS 1 messages to the city
// broker (MQTT 5: the alert and the event), with payloads of anjud's sizes and windows of anjud's
// sizes. It is warmed up with one message per device, then measured by the same probe as anjud.
// What anjud costs beyond it is the journal, the rules, the outbox and their threads.
// Run as `bench_e2e --idle-baseline URI DB` it is the idle baseline process itself.
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>

#include <charconv>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <map>

#include "anju/edge/journal.hpp"
#include "anju/edge/sqlite.hpp"
#include "anju/firmware/config.hpp"
#include "bench_util.hpp"

#ifndef ANJU_BENCH_ANJUD
#error "ANJU_BENCH_ANJUD (the path of the built anjud) must be defined"
#endif

namespace {
using namespace anju;
using bench::SteadyClock;
using nlohmann::json;

constexpr int kBenchDevices = 50;
constexpr int kMessagesA = 5'000;  // (a): 100 toggles per device
constexpr int kRateB = 5'000;      // (b): msgs/s
constexpr int kSecondsB = 3;       // 15,000 samples: enough for a p99, and it fits the budget
constexpr int kRateLow = 500;      // (b'): a pace anjud sustains
constexpr int kSecondsLow = 2;
constexpr int kMessagesC = 2'000;  // (c): temperature readings
constexpr int kRateC = 1'000;      // (c): msgs/s
constexpr int kRateSteady = 10;    // (c'): a compound's steady load, msgs/s
constexpr int kSecondsSteady = 20;
bool g_flash = false;  // --flash: also run (c) at kRateSteady (takes the time of (b), mostly)
// The local broker's max_inflight_messages (its Receive Maximum over MQTT 5): what `anju
// broker-config` sets (LocalBus::kWindow); --local-inflight 20 is Mosquitto's default. The city
// stand-in keeps Mosquitto's default: the city's broker is not ours to configure.
int g_local_inflight = 64;
constexpr int kMqttVersion = 3;  // zigbee2mqtt speaks MQTT 3.1.1 by default
const std::string kBase = "zigbee2mqtt";
const std::string kAlertTopicLocal = std::string("anju/") + bench::kSite + "/alert/+";
const std::string kAlertTopicCity = std::string("anju/v1/") + bench::kSite + "/alert/#";
constexpr const char* kDivisionCode = "110105001002";  // the demo config's site.division_code

std::string bench_device(int d) {
  return "leak_bench_" + bench::two_digits(d);
}

// The demo devices of scripts/z2m-sim plus 50 bench multi-sensors (water_leak + temperature).
std::string devices_list() {
  json list = json::parse(R"([
 {"ieee_address":"0x00124b0000000000","type":"Coordinator","friendly_name":"Coordinator","definition":null},
 {"ieee_address":"0x00158d0000000001","type":"EndDevice","friendly_name":"smoke_3_2_hall","definition":{"model":"JTYJ-GD-01LM/BW","vendor":"Aqara","exposes":[{"type":"binary","property":"smoke"},{"type":"numeric","property":"battery"},{"type":"binary","property":"tamper"},{"type":"binary","property":"battery_low"}]}},
 {"ieee_address":"0x00158d0000000002","type":"EndDevice","friendly_name":"gas_3_2_1201_kitchen","definition":{"model":"JTQJ-BF-01LM/BW","vendor":"Aqara","exposes":[{"type":"binary","property":"gas"}]}},
 {"ieee_address":"0x00158d0000000003","type":"EndDevice","friendly_name":"leak_pump_room","definition":{"model":"SJCGQ11LM","vendor":"Aqara","exposes":[{"type":"binary","property":"water_leak"},{"type":"numeric","property":"battery"}]}},
 {"ieee_address":"0x00158d0000000004","type":"EndDevice","friendly_name":"door_3_2_entrance","definition":{"model":"MCCGQ11LM","vendor":"Aqara","exposes":[{"type":"binary","property":"contact"},{"type":"numeric","property":"battery"}]}},
 {"ieee_address":"0x00158d0000000005","type":"EndDevice","friendly_name":"climate_3_2_1201","definition":{"model":"WSDCGQ11LM","vendor":"Aqara","exposes":[{"type":"numeric","property":"temperature"},{"type":"numeric","property":"humidity"},{"type":"numeric","property":"battery"}]}}
])");
  for (int d = 0; d < kBenchDevices; ++d) {
    list.push_back({{"ieee_address", "0x00158d00000100" + bench::two_digits(d)},
                    {"type", "EndDevice"},
                    {"friendly_name", bench_device(d)},
                    {"definition",
                     {{"model", "bench-leak-climate"},
                      {"vendor", "Anju bench"},
                      {"exposes",
                       {{{"type", "binary"}, {"property", "water_leak"}},
                        {{"type", "numeric"}, {"property", "temperature"}}}}}}});
  }
  return list.dump();
}
constexpr int kKnownDevices = 5 + kBenchDevices;

std::string leak_payload(bool on) {
  return std::string("{\"water_leak\":") + (on ? "true" : "false") + ",\"linkquality\":120}";
}

// ---------------------------------------------------------------------------------------------
// The run's time budget: every wait is capped so that the whole program stays under a minute.
// anjud's runs end by g_deadline; its stop comes after it, then the bare relay's runs in a slot
// of their own that ends by g_relay_deadline; the relay's stop and the cleanup come after that.

SteadyClock::time_point g_deadline = SteadyClock::now() + std::chrono::seconds(42);
SteadyClock::time_point g_relay_deadline = SteadyClock::now() + std::chrono::seconds(54);

std::chrono::milliseconds capped(std::chrono::milliseconds want,
                                 SteadyClock::time_point deadline = g_deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return std::clamp(left, std::chrono::milliseconds(0), want);
}
bool have_time(std::chrono::seconds need, SteadyClock::time_point deadline = g_deadline) {
  return SteadyClock::now() + need <= deadline;
}

// Polls the status socket until `pred` holds; returns the last status (empty json on timeout).
json wait_status(const std::string& sock, const std::function<bool(const json&)>& pred,
                 std::chrono::milliseconds timeout, bool* ok = nullptr) {
  const auto deadline = SteadyClock::now() + timeout;
  json last;
  for (;;) {
    if (auto st = bench::query_status(sock)) {
      last = *st;
      try {
        if (pred(last)) {
          if (ok) *ok = true;
          return last;
        }
      } catch (const json::exception&) {
      }
    }
    if (SteadyClock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (ok) *ok = false;
  return last;
}

std::int64_t outbox_rows(const json& st) {
  std::int64_t n = 0;
  for (const auto& [cls, c] : st.at("outbox").items()) n += c.at("rows").get<std::int64_t>();
  return n;
}

// anjud has nothing left to do: queue empty, outbox empty.
bool quiet(const json& st) {
  return st.at("pipeline").at("queue_depth").get<std::int64_t>() == 0 && outbox_rows(st) == 0;
}

// ---------------------------------------------------------------------------------------------

// Publish → arrival latencies, matched first-in first-out per device.
class LatencyMatcher {
 public:
  void published(const std::string& device, SteadyClock::time_point t) {
    std::lock_guard lock(mu_);
    pending_[device].push_back(t);
  }
  void arrived(const std::string& device, SteadyClock::time_point t) {
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(device);
      if (it == pending_.end() || it->second.empty()) {
        ++unmatched_;
        return;
      }
      lat_ms_.push_back(bench::ms_between(it->second.front(), t));
      it->second.pop_front();
    }
    cv_.notify_all();
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return lat_ms_.size() >= n; });
  }
  std::vector<double> latencies() const {
    std::lock_guard lock(mu_);
    return lat_ms_;
  }
  std::int64_t unmatched() const {
    std::lock_guard lock(mu_);
    return unmatched_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::deque<SteadyClock::time_point>> pending_;
  std::vector<double> lat_ms_;
  std::int64_t unmatched_ = 0;
};

// Publishes `n` messages at `rate`/s; message i goes to device i % 50 via `topic_of`, with
// `payload_of(i)`. Records the publish time in `m`.
void paced_publish(bench::WindowedPublisher& pub, int n, int rate, LatencyMatcher& m,
                   const std::function<std::string(int)>& topic_of,
                   const std::function<std::string(int)>& payload_of) {
  const auto start = SteadyClock::now();
  const auto period = std::chrono::nanoseconds(1'000'000'000LL / rate);
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_until(start + period * i);
    const std::string dev = bench_device(i % kBenchDevices);
    m.published(dev, SteadyClock::now());
    pub.publish(topic_of(i), payload_of(i), 1, false);
  }
}

struct Latency {
  double p50 = NAN, p99 = NAN, max = NAN;
  std::size_t n = 0;
  std::int64_t unmatched = 0;
  double avg_bytes = NAN;  // payload of the messages that arrived (where counted)
  bool complete = false;
  bool ran = false;  // false: skipped for the time budget (the SKIPPED notes say which)
};
// Messages that never got their alert count as infinitely late.
Latency summarize(const LatencyMatcher& m, std::size_t expected, bool complete) {
  Latency l;
  l.ran = true;
  auto v = m.latencies();
  l.n = v.size();
  if (v.size() < expected) v.resize(expected, INFINITY);
  l.p50 = bench::percentile(v, 50);
  l.p99 = bench::percentile(v, 99);
  l.max = v.empty() ? NAN : *std::max_element(v.begin(), v.end());
  l.unmatched = m.unmatched();
  l.complete = complete && l.n == expected;
  return l;
}

// zigbee2mqtt messages (`payload_of(i)` to device i % 50) → local alert messages, anjud's or the
// bare relay's (whichever is running; both carry the device's name): a subscriber to the local
// alert topics and a paced zigbee2mqtt publisher, for one run or several in a row (the relay's:
// each connect costs this process up to a second or two of Paho's, and the relay's slot is short).
class AlertProbe {
 public:
  explicit AlertProbe(const std::string& uri)
      : sub_(uri, "bench-alerts", kMqttVersion),
        pub_(uri, "bench-z2m-paced", kMqttVersion, 10'000) {
    // Both at once: Paho takes up to a second to notice each new connection.
    auto publisher = std::async(std::launch::async, [this] { pub_.connect(); });
    sub_.start(kAlertTopicLocal, 1, [this](const mqtt::const_message_ptr& msg) {
      const auto now = SteadyClock::now();
      if (msg->is_retained()) return;  // the open alerts as they were, on subscribing
      auto j = json::parse(msg->get_payload_str(), nullptr, false);
      if (j.is_discarded() || !j.contains("device")) return;
      std::lock_guard lock(mu_);
      if (!current_) return;  // between runs
      current_->arrived(j["device"].value("name", ""), now);
      bytes_ += static_cast<std::int64_t>(msg->get_payload().size());
      ++messages_;
    });
    publisher.get();
  }
  // `n` messages at `rate`/s; waits up to `wait` (and `deadline`) after the last for the alerts.
  Latency run(int n, int rate, const std::function<std::string(int)>& payload_of,
              std::chrono::milliseconds wait, SteadyClock::time_point deadline = g_deadline) {
    LatencyMatcher m;
    {
      std::lock_guard lock(mu_);
      current_ = &m;
      bytes_ = messages_ = 0;
    }
    paced_publish(
        pub_, n, rate, m, [](int i) { return kBase + "/" + bench_device(i % kBenchDevices); },
        payload_of);
    const bool done = m.wait_for(static_cast<std::size_t>(n), capped(wait, deadline));
    std::lock_guard lock(mu_);
    current_ = nullptr;
    Latency l = summarize(m, static_cast<std::size_t>(n), done);
    if (messages_ > 0) l.avg_bytes = static_cast<double>(bytes_) / static_cast<double>(messages_);
    return l;
  }

 private:
  std::mutex mu_;
  LatencyMatcher* current_ = nullptr;
  std::int64_t bytes_ = 0, messages_ = 0;
  bench::Subscriber sub_;  // declared after what its callback uses: it disconnects first
  bench::WindowedPublisher pub_;
};

Latency latency_z2m_to_alert(const std::string& uri, int rate, int seconds,
                             const std::function<std::string(int)>& payload_of,
                             std::chrono::milliseconds wait) {
  AlertProbe probe(uri);
  return probe.run(rate * seconds, rate, payload_of, wait);
}

// The same messages through the broker only: publisher → mosquitto → subscriber.
Latency latency_bare(const std::string& uri, int rate, int seconds,
                     const std::function<std::string(int)>& payload_of,
                     std::chrono::milliseconds wait) {
  const int n = rate * seconds;
  LatencyMatcher m;
  bench::Subscriber sub(uri, "bench-rt-sub", kMqttVersion);
  sub.start("bench/rt/#", 1, [&](const mqtt::const_message_ptr& msg) {
    const auto now = SteadyClock::now();
    const auto& t = msg->get_topic();
    m.arrived(t.substr(t.rfind('/') + 1), now);
  });
  bench::WindowedPublisher pub(uri, "bench-rt-pub", kMqttVersion, 10'000);
  pub.connect();
  paced_publish(
      pub, n, rate, m, [](int i) { return "bench/rt/" + bench_device(i % kBenchDevices); },
      payload_of);
  const bool done = m.wait_for(static_cast<std::size_t>(n), capped(wait));
  return summarize(m, static_cast<std::size_t>(n), done);
}

// ---------------------------------------------------------------------------------------------

// The idle baseline: what the same libraries cost with nothing of Anju's own: one Paho client
// subscribed to zigbee2mqtt/# at QoS 1 (it gets the same retained messages) and one SQLite
// connection in WAL mode. Sleeps until killed.
int idle_baseline(const std::string& uri, const std::string& db_path) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the benchmark
  bench::Subscriber sub(uri, "bench-idle-baseline", kMqttVersion);
  sub.start(kBase + "/#", 1, [](const mqtt::const_message_ptr&) {});
  edge::Db db(db_path);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT)");
  db.exec("INSERT INTO t(v) VALUES('x')");
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

// ---------------------------------------------------------------------------------------------
// The bare relay (`bench_e2e --relay LOCAL CITY`; see the top of the file).

// QoS 1 publishes of one Paho client: at most `window` handed to Paho and unacknowledged, the rest
// queued here and handed over as PUBACKs make room, as anjud's local bus and uplink do. Never
// blocks: the relay publishes on Paho's thread, the one that also delivers the PUBACKs.
class RelayOut {
 public:
  explicit RelayOut(int window) : window_(window), listener_(*this) {}
  void attach(mqtt::async_client& client) { client_ = &client; }
  void set_window(int window) {
    std::unique_lock lock(mu_);
    window_ = window;
  }
  void publish(std::string topic, std::string payload, bool retain) {
    std::unique_lock lock(mu_);
    queue_.push_back({std::move(topic), std::move(payload), retain});
    peak_queued_ = std::max(peak_queued_, static_cast<std::int64_t>(queue_.size()));
    pump(lock);
  }
  // Waits until everything queued has been acknowledged (or has failed).
  bool wait_idle(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return queue_.empty() && inflight_ == 0; });
  }
  SteadyClock::time_point last_ack() const {
    std::lock_guard lock(mu_);
    return last_ack_;
  }
  json stats() const {
    std::lock_guard lock(mu_);
    return {{"window", window_},          {"sent", sent_},           {"acked", acked_},
            {"failed", failed_},          {"queued", queue_.size()}, {"inflight", inflight_},
            {"peak_queued", peak_queued_}};
  }

 private:
  struct Out {
    std::string topic, payload;
    bool retain = false;
  };
  class Listener final : public mqtt::iaction_listener {
   public:
    explicit Listener(RelayOut& r) : r_(r) {}
    void on_success(const mqtt::token&) override { r_.done(true); }
    void on_failure(const mqtt::token&) override { r_.done(false); }

   private:
    RelayOut& r_;
  };
  void done(bool ok) {
    std::unique_lock lock(mu_);
    --inflight_;
    ++(ok ? acked_ : failed_);
    last_ack_ = SteadyClock::now();
    pump(lock);
  }
  // Hands queued messages to Paho while the window has room, without holding the lock meanwhile;
  // one thread at a time (another one finds pumping_ set and leaves it to the loop, which looks
  // at the queue and the window again under the lock before it stops).
  void pump(std::unique_lock<std::mutex>& lock) {
    if (pumping_) return;
    pumping_ = true;
    while (!queue_.empty() && inflight_ < window_) {
      Out m = std::move(queue_.front());
      queue_.pop_front();
      ++inflight_;
      ++sent_;
      lock.unlock();
      bool ok = true;
      try {
        client_->publish(mqtt::make_message(m.topic, m.payload, 1, m.retain), nullptr, listener_);
      } catch (const mqtt::exception&) {
        ok = false;
      }
      lock.lock();
      if (!ok) {
        --inflight_;
        ++failed_;
      }
    }
    pumping_ = false;
    if (queue_.empty() && inflight_ == 0) cv_.notify_all();
  }

  int window_;
  Listener listener_;
  mqtt::async_client* client_ = nullptr;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Out> queue_;
  bool pumping_ = false;
  int inflight_ = 0;
  std::int64_t sent_ = 0, acked_ = 0, failed_ = 0, peak_queued_ = 0;
  SteadyClock::time_point last_ack_{};
};

// A uuid-shaped id from a counter: the relay draws no random numbers.
std::string relay_id(std::uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "01a20000-0000-7000-8000-%012llx",
                static_cast<unsigned long long>(n));
  return buf;
}

// The relay's state of one device's alert: enough to make payloads shaped and sized as anjud's
// (anjud's alert keeps its first event ids and the most recent ones, 32 at most: every bench
// device has had over 32 toggles by the time (b) runs).
struct RelayAlert {
  std::string device_json;  // {"gb28181":"","id":...,"kind":...,"name":...}
  std::string name, alert_id, older_ids;
  std::int64_t count = 1, version = 0, first_ms = 0, last_ms = 0;
};

// The bare relay process: connects, says "relay: ready", relays until SIGTERM, then waits up to
// 0.5 s for what is still queued and prints its counters as one "relay-stats {json}" line.
int relay(const std::string& local_uri, const std::string& city_uri) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the benchmark
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // Paho's threads inherit the mask

  const std::string site = bench::kSite;
  const std::string prefix = kBase + "/";
  const std::string local_alert = "anju/" + site + "/alert/";
  const std::string city_alert = "anju/v1/" + site + "/alert/water_leak";
  const std::string city_event = "anju/v1/" + site + "/event/water_leak";
  // anjud's client ids (firmware/src/config.cpp): the local one replaces the persistent session
  // anjud left on the local broker, which would otherwise queue every message of the relay's runs.
  const auto local_ep = bench::bench_endpoint(local_uri, "anjud-" + site + "-local", 5);
  const auto city_ep = bench::bench_endpoint(city_uri, "anjud-" + site, 5);
  const std::string boot = edge::boot_id();

  // Declared before the clients: the clients (and their callbacks) go first.
  RelayOut local_out(edge::LocalBus::kWindow);
  RelayOut city_out(firmware::UplinkConfig{}.window);
  std::map<std::string, RelayAlert> alerts;  // Paho's thread only
  std::atomic<std::int64_t> messages{0};
  std::atomic<std::int64_t> last_message_ns{0};
  std::uint64_t next_id = 0;
  std::int64_t seq = 0;
  auto relay_one = [&](const mqtt::const_message_ptr& msg) {
    const std::string& topic = msg->get_topic();
    // zigbee2mqtt/<device> only (not bridge/..., <device>/availability)
    if (topic.size() <= prefix.size() || topic.find('/', prefix.size()) != std::string::npos)
      return;
    const std::string& p = msg->get_payload_str();
    const auto at = p.find("\"water_leak\":");
    if (at == std::string::npos) return;
    const bool leak = p.compare(at + 13, 4, "true") == 0;
    const std::string name = topic.substr(prefix.size());
    const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    auto [it, fresh] = alerts.try_emplace(name);
    RelayAlert& a = it->second;
    if (fresh) {
      const std::string ieee =
          "0x00158d00000100" + (name.size() >= 2 ? name.substr(name.size() - 2) : "00");
      a.name = name;
      a.device_json = R"({"gb28181":"","id":")" + ieee +
                      R"(","kind":"water_leak_sensor","name":")" + name + R"("})";
      a.alert_id = edge::uuid_from_name("anju-bench-relay/" + name);
      for (int k = 0; k < 31; ++k) a.older_ids += '"' + relay_id(next_id++) + "\",";
      a.first_ms = now_ms;
    } else if (leak) {
      ++a.count;  // the condition returned
    }
    if (leak) a.last_ms = now_ms;
    ++a.version;
    const std::string event_id = relay_id(next_id++);
    const std::string s = std::to_string(++seq);
    std::string alert =
        R"({"alert_id":")" + a.alert_id + R"(","condition_cleared":)" + (leak ? "false" : "true") +
        R"(,"count":)" + std::to_string(a.count) + R"(,"device":)" + a.device_json +
        R"(,"escalation_level":0,"event_ids":[)" + a.older_ids + '"' + event_id +
        R"("],"first_seen_ms":)" + std::to_string(a.first_ms) + R"(,"grid_code":")" +
        bench::kGridCode + R"(","history":[],"kind":"water_leak","last_seen_ms":)" +
        std::to_string(a.last_ms) + R"(,"last_seq":)" + s +
        R"(,"location":{"building":"","room":"","unit":""},"message":"water leak at )" + name +
        R"(","rule":"water_leak","schema":1,"severity":3,"site":")" + site +
        R"(","state":"raised","updated_ms":)" + std::to_string(now_ms) + R"(,"version":)" +
        std::to_string(a.version) + "}";
    std::string city_alert_body = R"({"alert_id":")" + a.alert_id + R"(","change":")" +
                                  (fresh  ? "raised"
                                   : leak ? "condition_returned"
                                          : "condition_cleared") +
                                  R"(","clock_synced":false,"division_code":")" + kDivisionCode +
                                  R"(","grid_code":")" + bench::kGridCode + R"(","id":")" +
                                  relay_id(next_id++) + R"(","schema":1,"seq":)" + s +
                                  R"(,"site":")" + site + R"(","ts_ms":)" + std::to_string(now_ms) +
                                  R"(,"alert":)" + alert + "}";
    std::string event_body =
        R"({"active":)" + std::string(leak ? "true" : "false") + R"(,"boot_id":")" + boot +
        R"(","clock_synced":false,"device":)" + a.device_json + R"(,"division_code":")" +
        kDivisionCode + R"(","grid_code":")" + bench::kGridCode + R"(","id":")" + event_id +
        R"(","kind":"water_leak","location":{"building":"","room":"","unit":""},"mono_ns":)" +
        std::to_string(SteadyClock::now().time_since_epoch().count()) + R"(,"schema":1,"seq":)" +
        s + R"(,"severity":)" + (leak ? "3" : "4") + R"(,"site":")" + site + R"(","ts_ms":)" +
        std::to_string(now_ms) + R"(,"values":[]})";
    // anjud's order: the local alert (after the commit), then the city's alert before its event.
    local_out.publish(local_alert + a.alert_id, std::move(alert), true);
    city_out.publish(city_alert, std::move(city_alert_body), false);
    city_out.publish(city_event, std::move(event_body), false);
    ++messages;
    last_message_ns = SteadyClock::now().time_since_epoch().count();
  };

  // As anjud's local bus (edge/src/mqtt.cpp): MQTT 5, persistent session, Paho's buffer 4 windows.
  auto local_create = edge::make_create_options(local_ep);
  local_create.set_max_buffered_messages(4 * edge::LocalBus::kWindow);
  mqtt::async_client local(local_uri, local_ep.client_id, local_create, nullptr);
  mqtt::async_client city(city_uri, city_ep.client_id, edge::make_create_options(city_ep), nullptr);
  local_out.attach(local);
  city_out.attach(city);

  // As the uplink (cloud-bridge/src/uplink.cpp): MQTT 5, clean start, Paho's in-flight limit the
  // window + 16.
  // Both at once: Paho takes up to a second to notice each CONNACK.
  auto city_opts = edge::make_connect_options(city_ep, /*clean=*/true, std::nullopt);
  city_opts.set_max_inflight(firmware::UplinkConfig{}.window + 16);
  local.set_message_callback(relay_one);
  auto city_connected = city.connect(city_opts);
  // Clean start, then kept for a week as anjud's: anjud's session settings, without the state
  // anjud left in it (resuming that one made the relay ten times slower in trials).
  auto local_opts = edge::make_connect_options(local_ep, /*clean=*/false, std::nullopt);
  local_opts.set_clean_start(true);
  auto connected = local.connect(local_opts);
  if (!city_connected->wait_for(std::chrono::seconds(10)) || !city.is_connected())
    throw std::runtime_error("relay: cannot connect to " + city_uri);
  if (!connected->wait_for(std::chrono::seconds(10)) || !local.is_connected())
    throw std::runtime_error("relay: cannot connect to " + local_uri);
  // The local window: at most the broker's Receive Maximum, as the local bus's.
  int receive_max = -1;
  const mqtt::connect_response connack = connected->get_connect_response();
  const mqtt::properties& props = connack.get_properties();
  if (props.contains(mqtt::property::RECEIVE_MAXIMUM)) {
    receive_max = mqtt::get<std::uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM);
    if (receive_max > 0) local_out.set_window(std::min(edge::LocalBus::kWindow, receive_max));
  }
  edge::disable_nagle_on_tcp_sockets();
  local.subscribe(prefix + "#", 1)->wait_for(std::chrono::seconds(10));
  std::printf("relay: ready; local window %d (broker Receive Maximum %d), city window %d\n",
              local_out.stats().at("window").get<int>(), receive_max,
              city_out.stats().at("window").get<int>());
  std::fflush(stdout);

  int sig = 0;
  ::sigwait(&stop_signals, &sig);
  const auto drain_end = SteadyClock::now() + std::chrono::milliseconds(500);
  const bool local_drained = local_out.wait_idle(capped(std::chrono::seconds(1), drain_end));
  const bool city_drained = city_out.wait_idle(capped(std::chrono::seconds(1), drain_end));
  const bool drained = local_drained && city_drained;
  const SteadyClock::time_point last_message{SteadyClock::duration(last_message_ns.load())};
  json stats{{"messages", messages.load()},
             {"local", local_out.stats()},
             {"city", city_out.stats()},
             {"receive_maximum", receive_max},
             {"drained", drained}};
  if (messages > 0) {
    stats["local_done_ms"] = bench::ms_between(last_message, local_out.last_ack());
    stats["city_done_ms"] = bench::ms_between(last_message, city_out.last_ack());
  }
  std::printf("relay-stats %s\n", stats.dump().c_str());
  std::fflush(stdout);
  try {
    local.disconnect(std::chrono::milliseconds(200))->wait_for(std::chrono::seconds(1));
    city.disconnect(std::chrono::milliseconds(200))->wait_for(std::chrono::seconds(1));
  } catch (const std::exception&) {
  }
  return 0;
}

// The bare relay as a child process, for one phase: stopped by its PID and reaped at the end of it
// (or when this goes out of scope).
class RelayChild {
 public:
  RelayChild(const std::string& self, const std::string& local_uri, const std::string& city_uri,
             std::string log)
      : log_(std::move(log)), pid_(bench::spawn({self, "--relay", local_uri, city_uri}, log_)) {}
  ~RelayChild() { stop(); }
  RelayChild(const RelayChild&) = delete;
  RelayChild& operator=(const RelayChild&) = delete;

  // Polls its log for the line it prints once connected and subscribed.
  bool wait_ready(std::chrono::milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      if (log_text().find("relay: ready") != std::string::npos) return true;
      if (SteadyClock::now() >= deadline || !bench::process_alive(pid_)) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // SIGTERM: it waits up to 0.5 s for what it still has queued, prints its counters and exits.
  // Returns the counters (an empty object if it printed none).
  json stop() {
    if (pid_ <= 0) return stats_;
    bench::stop_process(pid_, std::chrono::milliseconds(2000));
    pid_ = -1;
    const std::string text = log_text();
    const auto at = text.rfind("relay-stats ");
    if (at != std::string::npos) {
      auto j = json::parse(text.substr(at + 12, text.find('\n', at) - at - 12), nullptr, false);
      if (j.is_object()) stats_ = std::move(j);
    }
    return stats_;
  }
  const std::string& log() const { return log_; }

 private:
  std::string log_text() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string log_;
  pid_t pid_;
  json stats_ = json::object();
};

std::string mb(std::int64_t kb) {
  return kb < 0 ? "-" : bench::fmt(static_cast<double>(kb) / 1024.0, 1) + " MB";
}
std::string times(double r) {
  return std::isnan(r) || std::isinf(r) ? "-" : bench::fmt(r, r < 10 ? 1 : 0) + " x";
}
std::string ms(double v) {
  if (std::isnan(v)) return "-";
  return std::isinf(v) ? "not arrived" : bench::fmt(v, v >= 100 ? 0 : 2) + " ms";
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

// The journal's WAL frame counter and salt, read from its -shm file (the wal-index header:
// mxFrame at byte 16, the first salt at byte 40, native byte order), so that the bytes anjud
// appended to the WAL can be told from the rest of what it wrote.
struct WalMark {
  std::uint32_t frames = 0, salt = 0;
  bool ok = false;
};
WalMark wal_mark(const std::string& db) {
  WalMark m;
  std::ifstream in(db + "-shm", std::ios::binary);
  char h[48] = {};
  if (!in.read(h, sizeof h)) return m;
  std::memcpy(&m.frames, h + 16, 4);
  std::memcpy(&m.salt, h + 40, 4);
  m.ok = true;
  return m;
}
// Frames appended between two marks; a reset of the WAL in between (a checkpoint that copied
// everything, then a new write) restarts the count: good for at most one reset.
std::int64_t wal_frames_between(const WalMark& a, const WalMark& b) {
  if (!a.ok || !b.ok) return -1;
  if (a.salt != b.salt) return b.frames;
  return static_cast<std::int64_t>(b.frames) - a.frames;
}
// A PASSIVE checkpoint of anjud's journal run by this process: what it writes to the database
// file is counted in this process's write_bytes, not anjud's.
std::int64_t checkpoint_bytes(const std::string& db) {
  edge::Db c(db);
  const auto r0 = bench::read_proc_io();
  c.exec("PRAGMA wal_checkpoint(PASSIVE)");
  ::sync();  // dirty pages are accounted when dirtied; sync only keeps later phases apart
  const auto r1 = bench::read_proc_io();
  return r1.write_bytes - r0.write_bytes;
}

int run() {
  bench::TempDir tmp("bench-e2e");
  bench::Mosquitto local(tmp.path(),
                         "max_inflight_messages " + std::to_string(g_local_inflight) + "\n");
  bench::Mosquitto city(tmp.path());
  const std::string data = tmp / "data";
  const std::string sock = data + "/anjud.sock";
  const std::string anjud_log = tmp / "anjud.log";

  char self[4096] = {};
  if (::readlink("/proc/self/exe", self, sizeof(self) - 1) <= 0)
    throw std::runtime_error("cannot find this program's path");
  const pid_t idle_pid = bench::spawn(
      {self, "--idle-baseline", local.uri(), tmp / "idle-baseline.db"}, tmp / "idle-baseline.log");
  const pid_t anjud = bench::spawn({ANJU_BENCH_ANJUD, "--data-dir", data, "--local-broker",
                                    local.uri(), "--uplink-broker", city.uri()},
                                   anjud_log);
  const std::string apid = std::to_string(anjud);
  struct Stopper {
    pid_t a, b;
    ~Stopper() {
      bench::stop_process(a, std::chrono::milliseconds(7000));
      bench::stop_process(b, std::chrono::milliseconds(1000));
    }
  } stopper{anjud, idle_pid};

  bool ok = false;
  wait_status(
      sock,
      [](const json& s) {
        return s.at("local_bus").at("connected").get<bool>() &&
               s.at("uplink").at("connected").get<bool>();
      },
      capped(std::chrono::seconds(10)), &ok);
  if (!ok) {
    tail_log(anjud_log);
    throw std::runtime_error("anjud did not connect to both brokers within 10 s");
  }

  // The zigbee2mqtt stand-in: retained device list and availability, as scripts/z2m-sim does.
  bench::WindowedPublisher z2m(local.uri(), "bench-z2m", kMqttVersion, 64);
  z2m.connect();
  z2m.publish(kBase + "/bridge/devices", devices_list(), 1, true);
  std::vector<std::string> names{"smoke_3_2_hall", "gas_3_2_1201_kitchen", "leak_pump_room",
                                 "door_3_2_entrance", "climate_3_2_1201"};
  for (int d = 0; d < kBenchDevices; ++d) names.push_back(bench_device(d));
  for (const auto& n : names)
    z2m.publish(kBase + "/" + n + "/availability", R"({"state":"online"})", 1, true);
  z2m.wait_all(std::chrono::seconds(5));
  wait_status(
      sock,
      [](const json& s) {
        return s.at("zigbee2mqtt").at("devices").get<int>() == kKnownDevices &&
               s.at("pipeline").at("committed").get<std::int64_t>() >= kKnownDevices && quiet(s);
      },
      capped(std::chrono::seconds(10)), &ok);
  if (!ok) {
    tail_log(anjud_log);
    throw std::runtime_error("anjud did not learn the device list within 10 s");
  }

  // (c1) idle RSS, settled.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const std::int64_t idle_rss = bench::read_status_kb("VmRSS", apid);
  const std::int64_t idle_base_rss = bench::read_status_kb("VmRSS", std::to_string(idle_pid));
  bench::stop_process(idle_pid, std::chrono::milliseconds(1000));

  std::vector<bool> leak(kBenchDevices, false);
  auto toggle = [&](int i) {
    const int d = i % kBenchDevices;
    leak[static_cast<std::size_t>(d)] = !leak[static_cast<std::size_t>(d)];
    return leak_payload(leak[static_cast<std::size_t>(d)]);
  };

  // (c2) bytes written per event under a steady temperature load.
  const std::string dbfile = data + "/anju.db";
  if (g_flash)
    checkpoint_bytes(dbfile);  // start from a checkpointed WAL: what follows is this phase's
  json c0 = wait_status(sock, quiet, capped(std::chrono::seconds(3)), &ok);
  const WalMark w0 = wal_mark(dbfile);
  if (!c0.is_object() || !c0.contains("pipeline")) throw std::runtime_error("anjud status lost");
  const auto io0 = bench::read_proc_io(apid);
  const std::int64_t committed0 = c0.at("pipeline").at("committed").get<std::int64_t>();
  const std::int64_t batches0 = c0.at("pipeline").at("batches").get<std::int64_t>();
  {
    LatencyMatcher unused;
    paced_publish(
        z2m, kMessagesC, kRateC, unused,
        [](int i) { return kBase + "/" + bench_device(i % kBenchDevices); },
        [](int i) {
          // alternate per device so that every reading is a change (one event each)
          const double t = (i / kBenchDevices) % 2 ? 21.5 : 21.0;
          return "{\"temperature\":" + bench::fmt(t, 1) + ",\"linkquality\":120}";
        });
  }
  json c1 = wait_status(
      sock,
      [&](const json& s) {
        return s.at("pipeline").at("committed").get<std::int64_t>() >= committed0 + kMessagesC &&
               quiet(s);
      },
      capped(std::chrono::seconds(8)), &ok);
  const bool c_complete = ok;
  if (!c1.is_object() || !c1.contains("pipeline")) throw std::runtime_error("anjud status lost");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto io1 = bench::read_proc_io(apid);
  const WalMark w1 = wal_mark(dbfile);
  const std::int64_t c_ckpt = g_flash ? checkpoint_bytes(dbfile) : -1;
  const std::int64_t c_events = c1.at("pipeline").at("committed").get<std::int64_t>() - committed0;
  const std::int64_t c_batches = c1.at("pipeline").at("batches").get<std::int64_t>() - batches0;
  const double c_avg_batch =
      c_batches > 0 ? static_cast<double>(c_events) / static_cast<double>(c_batches) : 1;
  const double c_wb = static_cast<double>(io1.write_bytes - io0.write_bytes) /
                      static_cast<double>(std::max<std::int64_t>(c_events, 1));
  const double c_wc = static_cast<double>(io1.wchar - io0.wchar) /
                      static_cast<double>(std::max<std::int64_t>(c_events, 1));

  // Raw baseline for (c2): the same rows, read back from anjud's journal, into a bare table with
  // the demo config's synchronous=FULL in batches of anjud's average size.
  std::vector<std::string> bodies;
  {
    edge::Db reader = edge::open_reader(data + "/anju.db");
    auto st = reader.prepare(
        "SELECT body FROM events WHERE kind='temperature' ORDER BY seq DESC LIMIT ?");
    st.bind(1, kMessagesC);
    while (st.step()) bodies.push_back(st.str(0));
  }
  double raw_wb = NAN, raw_wc = NAN, body_avg = 0;
  {
    for (const auto& b : bodies) body_avg += static_cast<double>(b.size());
    body_avg /= static_cast<double>(std::max<std::size_t>(bodies.size(), 1));
    edge::Db db(tmp / "raw.db");
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=FULL");
    db.exec("CREATE TABLE raw_events(seq INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    auto ins = db.prepare("INSERT INTO raw_events(seq, body) VALUES(?, ?)");
    const int batch = std::max(1, static_cast<int>(std::lround(c_avg_batch)));
    const auto r0 = bench::read_proc_io();
    std::int64_t seq = 1;
    for (std::size_t i = 0; i < bodies.size();) {
      db.exec("BEGIN IMMEDIATE");
      for (int k = 0; k < batch && i < bodies.size(); ++k, ++i)
        ins.bind(1, seq++).bind(2, bodies[i]).exec();
      db.exec("COMMIT");
    }
    const auto r1 = bench::read_proc_io();
    const double n = static_cast<double>(std::max<std::size_t>(bodies.size(), 1));
    raw_wb = static_cast<double>(r1.write_bytes - r0.write_bytes) / n;
    raw_wc = static_cast<double>(r1.wchar - r0.wchar) / n;
  }

  // (c3) the same at a compound's steady load: 10 msgs/s for 20 s, temperature readings with a
  // door contact toggling every 5 s (an event that changes no alert unless the rules say so).
  std::int64_t s_events = 0, s_batches = 0, s_wb = 0, s_ckpt = -1, s_frames = -1;
  bool s_complete = false, s_done = false;
  if (g_flash && have_time(std::chrono::seconds(kSecondsSteady + 10))) {
    s_done = true;
    checkpoint_bytes(dbfile);
    json s0 = wait_status(sock, quiet, capped(std::chrono::seconds(3)), &ok);
    if (!s0.is_object() || !s0.contains("pipeline")) throw std::runtime_error("anjud status lost");
    const WalMark sw0 = wal_mark(dbfile);
    const auto sio0 = bench::read_proc_io(apid);
    const std::int64_t committed_s0 = s0.at("pipeline").at("committed").get<std::int64_t>();
    const std::int64_t batches_s0 = s0.at("pipeline").at("batches").get<std::int64_t>();
    constexpr int n = kRateSteady * kSecondsSteady;
    {
      LatencyMatcher unused;
      paced_publish(
          z2m, n, kRateSteady, unused,
          [](int i) {
            return kBase + "/" +
                   (i % 50 == 49 ? std::string("door_3_2_entrance")
                                 : bench_device(i % kBenchDevices));
          },
          [](int i) {
            if (i % 50 == 49)
              return std::string((i / 50) % 2 ? "{\"contact\":true}" : "{\"contact\":false}");
            const double t = 20.0 + 0.1 * (i % 37);
            return "{\"temperature\":" + bench::fmt(t, 1) + ",\"linkquality\":120}";
          });
    }
    json s1 = wait_status(
        sock,
        [&](const json& s) {
          // a door contact that repeats the door's state is no event: up to n / 50 fewer
          return s.at("pipeline").at("committed").get<std::int64_t>() >=
                     committed_s0 + n - n / 50 &&
                 quiet(s);
        },
        capped(std::chrono::seconds(8)), &ok);
    s_complete = ok;
    if (!s1.is_object() || !s1.contains("pipeline")) throw std::runtime_error("anjud status lost");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto sio1 = bench::read_proc_io(apid);
    const WalMark sw1 = wal_mark(dbfile);
    s_ckpt = checkpoint_bytes(dbfile);
    s_frames = wal_frames_between(sw0, sw1);
    s_events = s1.at("pipeline").at("committed").get<std::int64_t>() - committed_s0;
    s_batches = s1.at("pipeline").at("batches").get<std::int64_t>() - batches_s0;
    s_wb = sio1.write_bytes - sio0.write_bytes;
  }
  std::int64_t page_size = 4096;
  {
    edge::Db reader = edge::open_reader(dbfile);
    page_size = reader.scalar_i64("PRAGMA page_size").value_or(4096);
  }

  // (a) throughput: 5,000 toggles → 5,000 alert changes at the city broker.
  double a_rate = NAN, a_s = NAN, a_pub_s = NAN;
  std::int64_t a_got = 0;
  bool a_complete = false;
  std::int64_t a_batches = -1, a_events = -1;
  const json a0 = wait_status(sock, quiet, capped(std::chrono::seconds(3)), &ok);
  {
    bench::ArrivalCounter alerts;
    bench::Subscriber citysub(city.uri(), "bench-city", kMqttVersion);
    citysub.start(kAlertTopicCity, 1, [&](const mqtt::const_message_ptr&) { alerts.add(); });
    std::vector<std::string> payloads;
    for (int i = 0; i < kMessagesA; ++i) payloads.push_back(toggle(i));
    const auto t0 = SteadyClock::now();
    for (int i = 0; i < kMessagesA; ++i)
      z2m.publish(kBase + "/" + bench_device(i % kBenchDevices),
                  payloads[static_cast<std::size_t>(i)], 1, false);
    z2m.wait_all(capped(std::chrono::seconds(15)));
    a_pub_s = bench::seconds_between(t0, z2m.last_completion());
    a_complete = alerts.wait_for_count(kMessagesA, capped(std::chrono::seconds(15)));
    a_got = alerts.count();
    a_s = bench::seconds_between(t0, alerts.last());
    a_rate = static_cast<double>(a_got) / a_s;
  }
  const json a1 = wait_status(sock, quiet, capped(std::chrono::seconds(10)), &ok);
  const bool a_drained = ok;
  if (a0.contains("pipeline") && a1.contains("pipeline")) {
    // Transactions during (a): the events' own and those that delete PUBACKed outbox rows.
    a_batches = a1.at("pipeline").at("batches").get<std::int64_t>() -
                a0.at("pipeline").at("batches").get<std::int64_t>();
    a_events = a1.at("pipeline").at("committed").get<std::int64_t>() -
               a0.at("pipeline").at("committed").get<std::int64_t>();
  }

  double b_rate = NAN, b_s = NAN;
  {
    bench::ArrivalCounter got;
    bench::Subscriber sub(local.uri(), "bench-base-sub", kMqttVersion);
    sub.start("bench/e2e/#", 1, [&](const mqtt::const_message_ptr&) { got.add(); });
    bench::WindowedPublisher pub(local.uri(), "bench-base-pub", kMqttVersion, 64);
    pub.connect();
    const std::string on = leak_payload(true), off = leak_payload(false);
    const auto t0 = SteadyClock::now();
    for (int i = 0; i < kMessagesA; ++i)
      pub.publish("bench/e2e/" + bench_device(i % kBenchDevices),
                  (i / kBenchDevices) % 2 ? off : on, 1, false);
    got.wait_for_count(kMessagesA, capped(std::chrono::seconds(10)));
    b_s = bench::seconds_between(t0, got.last());
    b_rate = static_cast<double>(got.count()) / b_s;
  }

  // (b) latency: message → local alert message, at a pace anjud sustains (500/s for 2 s) and at
  // the goal's 5,000/s for 3 s; each beside the bare broker round trip at the same pace.
  const std::string on = leak_payload(true), off = leak_payload(false);
  auto bare_payload = [&](int i) { return (i / kBenchDevices) % 2 ? off : on; };
  Latency lat_low, lat_low_bare, lat_anju, lat_bare;
  std::vector<std::string> skipped;
  std::int64_t b_left = -1, b_outbox = -1, b_dropped = -1;
  if (have_time(std::chrono::seconds(kSecondsLow * 2 + kSecondsB * 2 + 6))) {
    std::vector<std::string> low;
    for (int i = 0; i < kRateLow * kSecondsLow; ++i) low.push_back(toggle(i));
    lat_low = latency_z2m_to_alert(
        local.uri(), kRateLow, kSecondsLow, [&](int i) { return low[static_cast<std::size_t>(i)]; },
        std::chrono::seconds(3));
    wait_status(sock, quiet, capped(std::chrono::seconds(5)), &ok);
    lat_low_bare =
        latency_bare(local.uri(), kRateLow, kSecondsLow, bare_payload, std::chrono::seconds(2));
  } else {
    skipped.push_back("(b) at " + std::to_string(kRateLow) + "/s");
  }
  if (have_time(std::chrono::seconds(kSecondsB + 1))) {
    lat_bare = latency_bare(local.uri(), kRateB, kSecondsB, bare_payload, std::chrono::seconds(3));
  } else {
    skipped.push_back("(b) bare round trip at " + std::to_string(kRateB) + "/s");
  }
  if (have_time(std::chrono::seconds(kSecondsB + 2))) {
    std::vector<std::string> high;
    for (int i = 0; i < kRateB * kSecondsB; ++i) high.push_back(toggle(i));
    lat_anju = latency_z2m_to_alert(
        local.uri(), kRateB, kSecondsB, [&](int i) { return high[static_cast<std::size_t>(i)]; },
        std::chrono::seconds(3));
    // Last: what anjud has not done yet is left to its stop.
    if (auto st = bench::query_status(sock)) {
      b_left = st->at("pipeline").at("queue_depth").get<std::int64_t>();
      b_outbox = outbox_rows(*st);
      // Local publishes Paho refused (the local alert topic loses them): anjud's own count.
      b_dropped = st->at("local_bus").value("publish_dropped", std::int64_t{-1});
    }
  } else {
    skipped.push_back("(b) anjud at " + std::to_string(kRateB) + "/s");
  }
  const std::int64_t loaded_rss = bench::read_status_kb("VmRSS", apid);
  const std::int64_t peak_rss = bench::read_status_kb("VmHWM", apid);

  const bool alive = bench::process_alive(anjud);
  const auto stop0 = SteadyClock::now();
  const int exit_status = bench::stop_process(anjud, std::chrono::milliseconds(7000));
  const double stop_s = bench::seconds_between(stop0, SteadyClock::now());

  // The bare relay: anjud has stopped (the two never load the machine at once); the relay's runs
  // have a slot of the budget of their own, after anjud's stop. One relay process and one probe
  // for its runs; the lower pace first, as anjud's, when there is time for both, else only the
  // goal's pace.
  Latency relay_low, relay_high;
  json relay_stats = json::object();
  std::string relay_failed;  // a relay that did not start: its log
  if (have_time(std::chrono::seconds(kSecondsB + 4), g_relay_deadline)) {
    RelayChild relay(self, local.uri(), city.uri(), tmp / "relay.log");
    if (relay.wait_ready(capped(std::chrono::seconds(5), g_relay_deadline))) {
      AlertProbe probe(local.uri());
      auto run_relay = [&](int n, int rate) {
        std::vector<std::string> payloads;
        for (int i = 0; i < n; ++i) payloads.push_back(toggle(i));
        return probe.run(
            n, rate, [&](int i) { return payloads[static_cast<std::size_t>(i)]; },
            std::chrono::seconds(3), g_relay_deadline);
      };
      // Its first messages wait ~80-100 ms (a fresh process, fresh connections): one toggle per
      // device through it first, as anjud had relayed thousands before its (b).
      run_relay(kBenchDevices, kRateLow);
      if (have_time(std::chrono::seconds(kSecondsLow + 1 + kSecondsB + 1), g_relay_deadline))
        relay_low = run_relay(kRateLow * kSecondsLow, kRateLow);
      if (have_time(std::chrono::seconds(kSecondsB + 1), g_relay_deadline))
        relay_high = run_relay(kRateB * kSecondsB, kRateB);
    } else {
      relay_failed = relay.log();
    }
    relay_stats = relay.stop();
  }
  if (!relay_failed.empty()) tail_log(relay_failed);

  // ---- report
  bench::Table t("bench_e2e: anjud (embedded demo config, synchronous=FULL) between a local (" +
                 std::string("max_inflight_messages ") + std::to_string(g_local_inflight) +
                 ") and a city mosquitto (its defaults)");
  const double ra = a_rate / b_rate;
  t.add("(a) z2m msgs -> city alerts, msgs/s", bench::fmt(a_rate),
        bench::fmt(b_rate) + " (bare pub->sub)", bench::pct(ra), ">= 80 % of bare",
        bench::met(a_complete && ra >= 0.8));
  t.add("(a) time for " + bench::fmt(kMessagesA) + " messages", bench::fmt(a_s, 2) + " s",
        bench::fmt(b_s, 2) + " s", "-", "-", "-");
  const std::string relay_not_run =
      relay_failed.empty() ? "not run (time budget)" : "not run (relay did not start)";
  const std::string relay_label = ", bare relay (same MQTT hops, no journal)";
  auto lat_rows = [&](const std::string& pace, const Latency& a, const Latency& b,
                      const Latency& r) {
    t.add("(b) msg -> local alert p50, " + pace, ms(a.p50), ms(b.p50) + " (bare rt)",
          times(a.p50 / b.p50), "-", "-");
    t.add("(b) msg -> local alert p99, " + pace, ms(a.p99), ms(b.p99) + " (bare rt)",
          times(a.p99 / b.p99), "<= 5 ms", bench::met(a.complete && a.p99 <= 5.0));
    t.add("(b) msg -> local alert max, " + pace, ms(a.max), ms(b.max) + " (bare rt)", "-", "-",
          "-");
    t.add("(b) ... p50, " + pace + relay_label, ms(a.p50),
          r.ran ? ms(r.p50) + " (bare relay)" : relay_not_run, r.ran ? times(a.p50 / r.p50) : "-",
          "-", "-");
    t.add("(b) ... p99, " + pace + relay_label, ms(a.p99),
          r.ran ? ms(r.p99) + " (bare relay)" : relay_not_run, r.ran ? times(a.p99 / r.p99) : "-",
          "-", "-");
  };
  lat_rows(bench::fmt(kRateB) + "/s", lat_anju, lat_bare, relay_high);
  lat_rows(std::to_string(kRateLow) + "/s", lat_low, lat_low_bare, relay_low);
  t.add("(c) idle RSS, " + std::to_string(kKnownDevices) + " devices known", mb(idle_rss),
        mb(idle_base_rss) + " (Paho sub + SQLite)",
        bench::pct(double(idle_rss) / double(idle_base_rss)), "<= 15 MB",
        bench::met(idle_rss > 0 && idle_rss <= 15 * 1024));
  t.add("(c) disk bytes written/event, " + std::to_string(kRateC) + " msgs/s", bench::fmt(c_wb),
        bench::fmt(raw_wb) + " (raw inserts)", bench::pct(c_wb / raw_wb), "<= 1,024 B",
        bench::met(c_complete && c_wb <= 1024));
  {
    const double ev = static_cast<double>(std::max<std::int64_t>(c_events, 1));
    const std::int64_t frames = wal_frames_between(w0, w1);
    t.add("(c) ... + checkpoint (db file) bytes/event",
          c_ckpt < 0 ? std::string("(--flash)") : bench::fmt(c_ckpt / ev), "-", "-", "-", "-");
    t.add("(c) ... of which WAL frames bytes/event",
          frames < 0 ? std::string("n/a")
                     : bench::fmt(static_cast<double>(frames) * (page_size + 24) / ev),
          "-", "-", "-", "-");
  }
  if (s_done) {
    const double ev = static_cast<double>(std::max<std::int64_t>(s_events, 1));
    const double total = (static_cast<double>(s_wb) + static_cast<double>(s_ckpt)) / ev;
    t.add("(c) disk bytes/event at " + std::to_string(kRateSteady) + " msgs/s (anjud + checkpoint)",
          bench::fmt(total), "-", "-", "<= 1,024 B", bench::met(s_complete && total <= 1024));
    t.add("(c) ... anjud write_bytes/event", bench::fmt(static_cast<double>(s_wb) / ev), "-", "-",
          "-", "-");
    t.add("(c) ... of which WAL frames bytes/event",
          s_frames < 0 ? std::string("n/a")
                       : bench::fmt(static_cast<double>(s_frames) * (page_size + 24) / ev),
          "-", "-", "-", "-");
    t.add("(c) ... checkpoint (db file) bytes/event", bench::fmt(static_cast<double>(s_ckpt) / ev),
          "-", "-", "-", "-");
    t.add("(c) ... avg batch at " + std::to_string(kRateSteady) + " msgs/s",
          bench::fmt(s_batches > 0 ? ev / static_cast<double>(s_batches) : 0, 2), "-", "-", "-",
          "-");
    t.add("(c) ... projected at 10 events/s, MB/day", bench::fmt(total * 864'000 / 1e6, 1), "-",
          "-", "-", "-");
  }
  t.add("(c) write() bytes/event", bench::fmt(c_wc), bench::fmt(raw_wc) + " (raw inserts)",
        bench::pct(c_wc / raw_wc), "-", "-");
  t.add("(c) avg batch (committed/batches)", bench::fmt(c_avg_batch, 2),
        std::to_string(std::max(1, static_cast<int>(std::lround(c_avg_batch)))) + " (fixed)", "-",
        "-", "-");
  t.add("RSS after the runs (VmRSS / VmHWM)", mb(loaded_rss) + " / " + mb(peak_rss), "-", "-", "-",
        "-");
  t.note("(a) " + std::to_string(a_got) + " of " + std::to_string(kMessagesA) +
         " alert messages arrived" + (a_complete ? "" : " (INCOMPLETE within 20 s)") +
         "; the z2m publisher's last PUBACK after " + bench::fmt(a_pub_s, 2) +
         " s; outbox drained afterwards: " + (a_drained ? "yes" : "NO") + "; " +
         std::to_string(a_events) + " events committed in " + std::to_string(a_batches) +
         " transactions" + "; water_leak true/false toggles over " + std::to_string(kBenchDevices) +
         " devices, QoS 1, window 64; each toggle is one alert change (and one event message)");
  auto arrived = [](const Latency& l, int n) {
    if (!l.ran) return std::string("not run");
    return std::to_string(l.n) + " of " + std::to_string(n) + (l.complete ? "" : " (INCOMPLETE)");
  };
  t.note("(b) " + bench::fmt(kRateB) + "/s for " + std::to_string(kSecondsB) + " s: " +
         (lat_anju.ran ? "alerts arrived " + arrived(lat_anju, kRateB * kSecondsB) +
                             " within 3 s of the last message (" +
                             std::to_string(lat_anju.unmatched) + " unmatched)"
                       : std::string("anjud not run (time budget)")) +
         ", bare " + arrived(lat_bare, kRateB * kSecondsB) + "; " + std::to_string(kRateLow) +
         "/s for " + std::to_string(kSecondsLow) +
         " s: " + arrived(lat_low, kRateLow * kSecondsLow) + ", bare " +
         arrived(lat_low_bare, kRateLow * kSecondsLow) + "; missing ones count as infinitely late" +
         (lat_anju.ran ? "; after the 5,000/s run anjud still had " + std::to_string(b_left) +
                             " events queued and " + std::to_string(b_outbox) +
                             " outbox rows, and had dropped " + std::to_string(b_dropped) +
                             " local publishes in all"
                       : std::string()));
  // The relay's own counters (its "relay-stats" line).
  auto relay_hops = [](const json& st) {
    if (!st.contains("city")) return std::string("no counters from the relay");
    auto i64 = [](const json& j, const char* k) { return j.value(k, std::int64_t{-1}); };
    auto ms_of = [&](const char* k) { return bench::fmt(st.value(k, NAN), 1) + " ms"; };
    const json& lo = st["local"];
    const json& ci = st["city"];
    return std::to_string(i64(st, "messages")) + " z2m messages relayed; local alerts PUBACKed " +
           std::to_string(i64(lo, "acked")) + " of " + std::to_string(i64(lo, "sent")) +
           ", city messages " + std::to_string(i64(ci, "acked")) + " of " +
           std::to_string(i64(ci, "sent")) + ", the last local PUBACK " + ms_of("local_done_ms") +
           " and the last city PUBACK " + ms_of("city_done_ms") +
           " after the last z2m message; most queued beyond the windows: local " +
           std::to_string(i64(lo, "peak_queued")) + ", city " +
           std::to_string(i64(ci, "peak_queued")) +
           (i64(lo, "failed") + i64(ci, "failed") > 0
                ? "; publishes FAILED: local " + std::to_string(i64(lo, "failed")) + ", city " +
                      std::to_string(i64(ci, "failed"))
                : std::string()) +
           (st.value("drained", false) ? "" : "; NOT drained within 0.5 s of SIGTERM");
  };
  if (relay_low.ran || relay_high.ran) {
    const json& lo = relay_stats.value("local", json::object());
    t.note(
        "(b) bare relay (`bench_e2e --relay`, a process of its own started after anjud's stop, "
        "warmed up with one message per device; Paho C++ " +
        std::string(mqtt::VERSION_STR.substr(mqtt::VERSION_STR.rfind(' ') + 1)) +
        ", MQTT 5, QoS 1, anjud's client ids, a persistent local session started clean, the local "
        "alert retained; windows: local " +
        std::to_string(lo.value("window", -1)) + " (broker Receive Maximum " +
        std::to_string(relay_stats.value("receive_maximum", -1)) + "), city " +
        std::to_string(relay_stats.value("city", json::object()).value("window", -1)) + "): " +
        bench::fmt(kRateB) + "/s: alerts arrived " + arrived(relay_high, kRateB * kSecondsB) +
        " (" + std::to_string(relay_high.unmatched) + " unmatched); " + std::to_string(kRateLow) +
        "/s: " + arrived(relay_low, kRateLow * kSecondsLow) + "; " + relay_hops(relay_stats) +
        "; local alert payloads " + bench::fmt(lat_anju.avg_bytes) + " B on average from anjud, " +
        bench::fmt(relay_high.ran ? relay_high.avg_bytes : relay_low.avg_bytes) +
        " B from the relay");
  }
  if (relay_failed.empty()) {
    if (!relay_high.ran) skipped.push_back("(b) bare relay at " + bench::fmt(kRateB) + "/s");
    if (!relay_low.ran) skipped.push_back("(b) bare relay at " + std::to_string(kRateLow) + "/s");
  } else {
    t.note("the bare relay did not start: see its log above (stderr)");
  }
  t.note("(c) " + std::to_string(c_events) + " temperature events at " + std::to_string(kRateC) +
         "/s" + (c_complete ? "" : " (INCOMPLETE)") + "; bytes = /proc/<anjud>/io deltas; raw = " +
         std::to_string(bodies.size()) + " of the same rows (" + bench::fmt(body_avg) +
         " B bodies, read back from anjud's journal) into a bare table, WAL, FULL");
  if (s_done)
    t.note("(c) at " + std::to_string(kRateSteady) + "/s: " + std::to_string(s_events) +
           " events over " + std::to_string(kSecondsSteady) + " s" +
           (s_complete ? "" : " (INCOMPLETE)") + ", " + std::to_string(s_batches) + " commits, " +
           std::to_string(s_frames) + " WAL frames of " + std::to_string(page_size) +
           " B pages; temperature readings over " + std::to_string(kBenchDevices) +
           " devices, a door contact every 5 s; the checkpoint is run by the benchmark "
           "(PASSIVE) after each phase and counted; 'anjud write_bytes' - 'WAL frames' = the "
           "inbox, re-dirtied partial WAL pages and logs");
  else if (g_flash)
    skipped.push_back("(c) at " + std::to_string(kRateSteady) + "/s");
  t.note("anjud " + std::string(alive ? "ran to the end" : "HAD EXITED before the end") +
         "; SIGTERM to exit: " + bench::fmt(stop_s, 1) + " s, wait status " +
         std::to_string(exit_status) + (exit_status == -1 ? " (SIGKILLed after 7 s)" : "") +
         "; MQTT 3.1.1 clients, QoS 1");
  for (const auto& sk : skipped) t.note("SKIPPED for the time budget: " + sk);
  t.note("machine: " + bench::machine_line());
  t.print();
  if (!alive) tail_log(anjud_log);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--idle-baseline")
    return idle_baseline(argv[2], argv[3]);
  if (argc == 4 && std::string(argv[1]) == "--relay") {
    spdlog::set_level(spdlog::level::warn);
    try {
      return relay(argv[2], argv[3]);
    } catch (const std::exception& e) {
      std::cerr << "bench_e2e --relay: " << e.what() << "\n";
      return 1;
    }
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--flash") {
      g_flash = true;
    } else if (a == "--local-inflight" && i + 1 < argc) {
      const std::string v = argv[++i];
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), g_local_inflight);
      if (ec != std::errc{} || end != v.data() + v.size() || g_local_inflight < 0 ||
          g_local_inflight > 65535) {
        std::cerr << "bench_e2e: --local-inflight: expected 0..65535 (0: no limit)\n";
        return 2;
      }
    } else {
      std::cerr << "usage: bench_e2e [--flash] [--local-inflight N]\n";
      return 2;
    }
  }
  bench::Watchdog watchdog(std::chrono::seconds(58));
  spdlog::set_level(spdlog::level::warn);
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << "bench_e2e: " << e.what() << "\n";
    return 1;
  }
}
