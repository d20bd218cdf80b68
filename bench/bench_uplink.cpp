// bench_uplink: draining a backlog of 100,000 event-class messages (~400 B payloads) from the
// outbox through the Uplink (QoS 1, window 64) to a local mosquitto, beside a bare Paho publisher
// sending the same number of QoS 1 messages of the same size with the same window; peak RSS of
// the process during each.
#include <spdlog/spdlog.h>

#include <iostream>

#include "anju/bridge/city_bridge.hpp"
#include "anju/bridge/outbox.hpp"
#include "anju/bridge/uplink.hpp"
#include "anju/edge/journal.hpp"
#include "bench_util.hpp"

namespace {
using namespace anju;
using bench::SteadyClock;

constexpr int kMessages = 100'000;
constexpr int kWindow = 64;
constexpr std::size_t kPayloadBytes = 400;
const std::string kTopic = std::string("anju/v1/") + bench::kSite + "/event/temperature";

// Payloads like the city bridge's event messages, padded to exactly kPayloadBytes, each with its
// own id. Built from a template so that the baseline can make them on the fly too.
class Payloads {
 public:
  explicit Payloads(const edge::Clock& clock) {
    auto e = bench::driver_like_event(clock, 41, true, true, 0);
    e.seq = 1;
    auto j = bridge::event_payload(e);  // ~450 B; trimmed to the benchmark's 400
    j.erase("boot_id");
    j.erase("mono_ns");
    j["id"] = std::string(36, '#');
    j["pad"] = "";
    std::string s = j.dump();
    if (s.size() > kPayloadBytes) throw std::runtime_error("payload template too large");
    const auto pad_at = s.find("\"pad\":\"") + 7;
    template_ = s.substr(0, pad_at) + std::string(kPayloadBytes - s.size(), '.') + s.substr(pad_at);
    id_at_ = template_.find(std::string(36, '#'));
  }
  std::string make(const std::string& id) const {
    std::string s = template_;
    s.replace(id_at_, 36, id);
    return s;
  }

 private:
  std::string template_;
  std::size_t id_at_ = 0;
};

std::string mb(std::int64_t kb) {
  return bench::fmt(static_cast<double>(kb) / 1024.0, 1) + " MB";
}

}  // namespace

int main() {
  bench::Watchdog watchdog(std::chrono::seconds(55));
  spdlog::set_level(spdlog::level::warn);
  try {
    edge::SystemClock clock;
    const Payloads payloads(clock);
    bench::TempDir dir("bench-uplink");
    bench::Mosquitto broker(dir.path());

    // 1. The backlog: 100k rows written by OutboxWriter in one transaction on a Journal's db.
    edge::JournalOptions jo;
    jo.path = dir / "anju.db";
    auto journal = edge::Journal::open(jo, nullptr);
    bridge::ensure_outbox_schema(journal->db());
    bridge::OutboxCounters counters;
    bridge::load_counters(journal->db(), counters);
    const auto fill0 = SteadyClock::now();
    {
      bridge::OutboxWriter writer(journal->db(), bridge::CityBridgeOptions{}.budget_bytes,
                                  counters);
      journal->begin();
      for (int i = 0; i < kMessages; ++i) {
        const std::string id = edge::uuid_v7(clock.wall_ms());
        writer.put(bridge::MsgClass::event, id, kTopic, payloads.make(id));
      }
      journal->commit();
    }
    const double fill_s = bench::seconds_between(fill0, SteadyClock::now());
    const auto ev = static_cast<int>(bridge::MsgClass::event);
    const std::int64_t backlog = counters.rows[ev];
    const std::int64_t evicted = counters.evicted[ev];

    // 2. Drain through the Uplink; poll the counters until the outbox is empty.
    bench::reset_peak_rss();
    const std::int64_t rss_before_uplink = bench::read_status_kb("VmRSS");
    bridge::UplinkOptions uo;
    uo.endpoint = bench::bench_endpoint(broker.uri(), "bench-uplink", 5);
    uo.db_path = jo.path;
    uo.site = bench::kSite;
    uo.window = kWindow;
    bridge::Uplink uplink(uo, counters);
    const auto t0 = SteadyClock::now();
    uplink.start();
    bool drained = false;
    const auto deadline = t0 + std::chrono::seconds(25);
    while (SteadyClock::now() < deadline) {
      if (counters.rows[ev].load() == 0) {
        drained = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const auto t1 = SteadyClock::now();
    const std::int64_t uplink_peak = bench::read_status_kb("VmHWM");
    const std::int64_t left = counters.rows[ev];
    const auto us = uplink.stats();
    uplink.stop(std::chrono::milliseconds(500));
    const double uplink_s = bench::seconds_between(t0, t1);
    const double uplink_rate = drained ? static_cast<double>(backlog) / uplink_s
                                       : static_cast<double>(backlog - left) / uplink_s;

    // 3. Baseline: a bare Paho async_client, same count, size, QoS and window.
    bench::reset_peak_rss();
    const std::int64_t rss_before_bare = bench::read_status_kb("VmRSS");
    double bare_s = 0;
    std::int64_t bare_done = 0;
    bool bare_complete = false;
    {
      bench::WindowedPublisher pub(broker.uri(), "bench-bare", 5, kWindow);
      const auto b0 = SteadyClock::now();
      pub.connect();
      for (int i = 0; i < kMessages; ++i) {
        const std::string id = edge::uuid_v7(clock.wall_ms());
        if (!pub.publish(kTopic, payloads.make(id), 1, false)) break;
      }
      bare_complete = pub.wait_all(std::chrono::seconds(10)) && pub.completed() == kMessages;
      bare_s = bench::seconds_between(b0, pub.last_completion());
      bare_done = pub.completed();
    }
    const std::int64_t bare_peak = bench::read_status_kb("VmHWM");
    const double bare_rate = static_cast<double>(bare_done) / bare_s;

    bench::Table table("bench_uplink: draining " + bench::fmt(kMessages) + " outbox messages of " +
                       std::to_string(kPayloadBytes) + " B, QoS 1, window " +
                       std::to_string(kWindow) + ", vs a bare Paho publisher");
    const double ratio = uplink_rate / bare_rate;
    table.add("msgs/s to the broker (PUBACKed)", bench::fmt(uplink_rate),
              bench::fmt(bare_rate) + " (bare Paho)", bench::pct(ratio), ">= 70 % of bare",
              bench::met(drained && ratio >= 0.7));
    table.add("drain time", bench::fmt(uplink_s, 2) + " s", bench::fmt(bare_s, 2) + " s", "-", "-",
              "-");
    table.add("peak RSS during the drain (VmHWM)", mb(uplink_peak), mb(bare_peak) + " (bare Paho)",
              bench::pct(double(uplink_peak) / double(bare_peak)), "-", "-");
    table.note("backlog: " + std::to_string(backlog) + " rows written in one transaction in " +
               bench::fmt(fill_s, 2) + " s (" + std::to_string(evicted) +
               " evicted by the event budget); RSS before the drain " + mb(rss_before_uplink) +
               ", before the bare run " + mb(rss_before_bare));
    table.note("uplink: " + std::to_string(us.published) + " published, " +
               std::to_string(us.acked) + " acked, " + std::to_string(us.connects) + " connects, " +
               std::to_string(us.connect_failures) + " connect failures" +
               (drained ? "" : "; NOT DRAINED within 25 s (" + std::to_string(left) + " left)") +
               (us.last_error.empty() ? "" : "; last error: " + us.last_error));
    table.note("bare: " + std::to_string(bare_done) + " of " + std::to_string(kMessages) +
               " completed" + (bare_complete ? "" : " (INCOMPLETE)"));
    table.note(
        "both: MQTT 5, clean start, loopback mosquitto, no subscriber; times from "
        "start() / connect() to the last PUBACK (uplink: outbox row count reached 0)");
    table.note("machine: " + bench::machine_line());
    table.print();
  } catch (const std::exception& e) {
    std::cerr << "bench_uplink: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
