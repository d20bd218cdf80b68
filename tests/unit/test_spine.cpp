// Unit tests of the spine: event encoding, UUIDv7, journal, rules (simulated clock), pipeline
// inbox replay, outbox order/budget/eviction.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "anju/bridge/city_bridge.hpp"
#include "anju/bridge/outbox.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/edge/rules.hpp"
#include "anju/edge/uuid.hpp"

using namespace anju::edge;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("anju-unit-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

Event reading(const ManualClock& clock, const std::string& dev, EventKind kind,
              std::optional<bool> active, std::optional<double> value = std::nullopt) {
  Event e;
  e.id = uuid_v7(clock.wall_ms());
  e.ts_ms = clock.wall_ms();
  e.mono_ns = clock.mono_ns();
  e.boot_id = "test-boot";
  e.clock_synced = true;
  e.site = "site-a";
  e.grid_code = "11010500100200300401";
  e.device = {dev, "sensor", dev + "_name", ""};
  e.location = {"3", "2", "1201"};
  e.kind = kind;
  e.active = active;
  if (value) e.values.push_back({std::string(to_string(kind)), *value, "C"});
  e.source = "test";
  return e;
}

}  // namespace

TEST_CASE("event JSON round-trips and the decoder names what is wrong", "[event]") {
  ManualClock clock;
  Event e = reading(clock, "0x01", EventKind::temperature, std::nullopt, 21.5);
  e.seq = 42;
  e.attrs = {{"linkquality", 96}};
  auto r = decode_event(encode(e));
  REQUIRE(r.event);
  CHECK(*r.event == e);

  CHECK(decode_event("{").error == "not valid JSON");
  CHECK(decode_event("[]").error == "event must be a JSON object");
  auto j = to_json(e);
  j["schema"] = 2;
  CHECK(event_from_json(j).error.find("unsupported schema 2") != std::string::npos);
  j = to_json(e);
  j["kind"] = "earthquake";
  CHECK(event_from_json(j).error == "unknown event kind 'earthquake'");
  j = to_json(e);
  j["severity"] = 7;
  CHECK(event_from_json(j).error.find("severity") != std::string::npos);
  j = to_json(e);
  j.erase("ts_ms");
  CHECK(event_from_json(j).error == "missing field 'ts_ms'");
  j = to_json(e);
  j["values"][0]["value"] = "hot";
  CHECK(event_from_json(j).error.find("value") != std::string::npos);
}

TEST_CASE("UUIDv7 ids are unique and sort by creation time", "[uuid]") {
  std::vector<std::string> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back(uuid_v7(1'760'000'000'000 + i / 100));
  std::set<std::string> unique(ids.begin(), ids.end());
  CHECK(unique.size() == ids.size());
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  for (const auto& id : ids) REQUIRE(is_uuid(id));
  CHECK(ids.front()[14] == '7');  // version nibble
  CHECK(uuid_from_name("a") == uuid_from_name("a"));
  CHECK(uuid_from_name("a") != uuid_from_name("b"));
}

TEST_CASE("journal: seq is gapless and survives reopening", "[journal]") {
  TempDir dir;
  ManualClock clock;
  JournalOptions o;
  o.path = dir.file("j.db");
  {
    auto j = Journal::open(o, nullptr);
    j->begin();
    for (int i = 0; i < 10; ++i) {
      Event e = reading(clock, "d1", EventKind::temperature, std::nullopt, i);
      j->append(e);
      CHECK(e.seq == i + 1);
    }
    j->commit();
    // A rolled-back transaction does not consume numbers.
    j->begin();
    Event e = reading(clock, "d1", EventKind::temperature, std::nullopt, 99);
    j->append(e);
    j->rollback();
  }
  auto j = Journal::open(o, nullptr);
  CHECK(j->last_seq() == 10);
  j->begin();
  Event e = reading(clock, "d2", EventKind::smoke, true);
  j->append(e);
  j->commit();
  CHECK(e.seq == 11);

  auto all = query_events(j->db(), EventQuery{});
  REQUIRE(all.size() == 11);
  for (std::size_t i = 0; i < all.size(); ++i)
    CHECK(all[i].seq == static_cast<std::int64_t>(i + 1));
  EventQuery by_dev;
  by_dev.device_id = "d2";
  CHECK(query_events(j->db(), by_dev).size() == 1);
  EventQuery by_kind;
  by_kind.kind = EventKind::temperature;
  by_kind.seq_from = 3;
  by_kind.seq_to = 5;
  CHECK(query_events(j->db(), by_kind).size() == 3);
}

TEST_CASE("journal: a corrupt file is moved aside and a fresh one started", "[journal]") {
  TempDir dir;
  JournalOptions o;
  o.path = dir.file("j.db");
  {
    std::ofstream f(o.path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) f.put(static_cast<char>(i * 31));
  }
  OpenReport report;
  auto j = Journal::open(o, &report);
  CHECK(report.recovered_from_corruption);
  CHECK(fs::exists(report.moved_to));
  CHECK(j->last_seq() == 0);
}

TEST_CASE("journal: retention deletes old events in batches and keeps alert evidence longer",
          "[journal]") {
  TempDir dir;
  ManualClock clock;
  JournalOptions o;
  o.path = dir.file("j.db");
  o.retention_days = 1;
  o.alert_retention_days = 10;
  auto j = Journal::open(o, nullptr);
  j->begin();
  for (int i = 0; i < 30; ++i) {
    Event e = reading(clock, "d", EventKind::temperature, std::nullopt, i);
    j->append(e);
    if (i == 5) j->keep(e.seq);
  }
  j->commit();
  clock.advance_ms(2 * 86'400'000LL);
  CHECK(j->retention_step(clock.wall_ms(), 10) == 10);
  CHECK(j->retention_step(clock.wall_ms(), 100) == 19);
  CHECK(j->retention_step(clock.wall_ms(), 100) == 0);
  auto left = query_events(j->db(), EventQuery{});
  REQUIRE(left.size() == 1);
  CHECK(left[0].seq == 6);
  clock.advance_ms(10 * 86'400'000LL);
  CHECK(j->retention_step(clock.wall_ms(), 100) == 1);
}

TEST_CASE("rules: smoke raises severity 1 at once, repeats count, clearing keeps it open",
          "[rules]") {
  ManualClock clock;
  RuleEngine rules({});
  std::vector<AlertChange> out;
  Event e1 = reading(clock, "s1", EventKind::smoke, true);
  e1.seq = 1;
  rules.on_event(e1, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::raised);
  CHECK(out[0].alert.severity == 1);
  CHECK(out[0].alert.rule == "smoke");
  CHECK(out[0].alert.event_ids == std::vector<std::string>{e1.id});
  const std::string id = out[0].alert.alert_id;

  out.clear();
  clock.advance_ms(1000);
  Event e2 = reading(clock, "s1", EventKind::smoke, true);
  rules.on_event(e2, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::repeated);
  CHECK(out[0].alert.alert_id == id);
  CHECK(out[0].alert.count == 2);
  CHECK(out[0].alert.last_seen_ms == clock.wall_ms());

  out.clear();
  rules.on_event(reading(clock, "s1", EventKind::smoke, false), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::condition_cleared);
  CHECK(out[0].alert.condition_cleared);
  CHECK(out[0].alert.open());
  out.clear();
  rules.on_event(reading(clock, "s1", EventKind::smoke, false), out);
  CHECK(out.empty());
  rules.on_event(reading(clock, "s1", EventKind::smoke, true), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::condition_returned);
  CHECK(out[0].alert.alert_id == id);
  CHECK(rules.open_alerts().size() == 1);
}

TEST_CASE("rules: severities of water leak, tamper, gas and low battery", "[rules]") {
  ManualClock clock;
  RuleEngine rules({});
  std::vector<AlertChange> out;
  rules.on_event(reading(clock, "w", EventKind::water_leak, true), out);
  rules.on_event(reading(clock, "t", EventKind::tamper, true), out);
  rules.on_event(reading(clock, "g", EventKind::gas, true), out);
  Event b = reading(clock, "b", EventKind::battery, std::nullopt);
  b.values = {{"battery", 10, "%"}};
  rules.on_event(b, out);
  REQUIRE(out.size() == 4);
  CHECK(out[0].alert.severity == 3);
  CHECK(out[1].alert.severity == 3);
  CHECK(out[2].alert.severity == 1);
  CHECK(out[3].alert.rule == "battery_low");
  CHECK(out[3].alert.severity == 3);
  out.clear();
  b.values = {{"battery", 9, "%"}};
  rules.on_event(b, out);
  CHECK(out.empty());  // still low: no news
  b.values = {{"battery", 12, "%"}};
  rules.on_event(b, out);
  CHECK(out.empty());  // inside the hysteresis band
  b.values = {{"battery", 80, "%"}};
  rules.on_event(b, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::condition_cleared);
}

TEST_CASE("rules: threshold with hysteresis and minimum hold time", "[rules]") {
  ManualClock clock;
  RuleSettings s;
  ThresholdSpec t;
  t.name = "temperature_high";
  t.kind = EventKind::temperature;
  t.above = 45;
  t.hysteresis = 2;
  t.hold_ms = 10'000;
  t.severity = 2;
  s.thresholds.push_back(t);
  s.heartbeat_timeout_ms = 0;
  RuleEngine rules(s);
  std::vector<AlertChange> out;
  std::vector<Event> synth;
  rules.on_event(reading(clock, "c", EventKind::temperature, std::nullopt, 46), out);
  CHECK(out.empty());  // must hold 10 s first
  CHECK(rules.next_deadline_ms() == clock.wall_ms() + 10'000);
  clock.advance_ms(5'000);
  rules.on_event(reading(clock, "c", EventKind::temperature, std::nullopt, 44), out);
  CHECK(out.empty());  // dipped below: the hold starts over
  rules.on_event(reading(clock, "c", EventKind::temperature, std::nullopt, 47), out);
  clock.advance_ms(9'999);
  rules.on_tick(clock.wall_ms(), synth, out);
  CHECK(out.empty());
  clock.advance_ms(1);
  rules.on_tick(clock.wall_ms(), synth, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::raised);
  CHECK(out[0].alert.severity == 2);
  CHECK(out[0].alert.value == 47);
  out.clear();
  rules.on_event(reading(clock, "c", EventKind::temperature, std::nullopt, 43.5), out);
  CHECK(out.empty());  // below 45 but not below 45 - 2
  rules.on_event(reading(clock, "c", EventKind::temperature, std::nullopt, 42.9), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::condition_cleared);
}

TEST_CASE("rules: heartbeat timeout makes a device offline once, a message brings it back",
          "[rules]") {
  ManualClock clock;
  RuleSettings s;
  s.heartbeat_timeout_ms = 60'000;
  RuleEngine rules(s);
  std::vector<AlertChange> out;
  std::vector<Event> synth;
  rules.on_event(reading(clock, "d", EventKind::temperature, std::nullopt, 20), out);
  clock.advance_ms(59'999);
  rules.on_tick(clock.wall_ms(), synth, out);
  CHECK(synth.empty());
  clock.advance_ms(1);
  rules.on_tick(clock.wall_ms(), synth, out);
  REQUIRE(synth.size() == 1);
  CHECK(synth[0].kind == EventKind::device_offline);
  CHECK(synth[0].device.id == "d");
  rules.on_event(synth[0], out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].alert.rule == "device_offline");
  CHECK(out[0].alert.severity == 3);
  synth.clear();
  out.clear();
  clock.advance_ms(600'000);
  rules.on_tick(clock.wall_ms(), synth, out);
  CHECK(synth.empty());  // announced once, not every tick
  rules.on_event(reading(clock, "d", EventKind::temperature, std::nullopt, 21), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::condition_cleared);

  // After a restart: the open alert and the offline state come back; no second alert.
  RuleEngine again(s);
  auto open = rules.open_alerts();
  open[0].condition_cleared = false;
  again.restore(open, {}, clock.wall_ms());
  CHECK(again.offline_devices() == 1);
  synth.clear();
  clock.advance_ms(120'000);
  again.on_tick(clock.wall_ms(), synth, out);
  CHECK(synth.empty());
}

TEST_CASE("pipeline: events handed over but not committed are replayed after a crash",
          "[pipeline]") {
  TempDir dir;
  ManualClock clock;
  JournalOptions o;
  o.path = dir.file("j.db");
  PipelineOptions po;
  po.inbox_dir = dir.file("inbox");
  std::vector<std::string> ids;
  {
    auto j = Journal::open(o, nullptr);
    RuleEngine rules({});
    Pipeline p(*j, rules, clock, po);
    p.start(/*with_thread=*/false);
    for (int i = 0; i < 5; ++i) {
      auto e = reading(clock, "d", EventKind::temperature, std::nullopt, i);
      ids.push_back(e.id);
      REQUIRE(p.submit(e));
    }
    CHECK(p.run_once() >= 5);  // committed
    for (int i = 5; i < 8; ++i) {
      auto e = reading(clock, "d", EventKind::smoke, true);
      ids.push_back(e.id);
      REQUIRE(p.submit(e));
    }
    // "Crash": the pipeline goes away without committing the last three.
  }
  auto j = Journal::open(o, nullptr);
  CHECK(j->last_seq() == 5);
  RuleEngine rules({});
  Pipeline p(*j, rules, clock, po);
  p.start(false);
  CHECK(p.stats().replayed == 3);
  p.run_once();
  auto all = query_events(j->db(), EventQuery{});
  REQUIRE(all.size() == 8);
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].id == ids[i]);
    CHECK(all[i].seq == static_cast<std::int64_t>(i + 1));
  }
  CHECK(rules.open_alerts().size() == 1);
  CHECK(load_alerts(j->db(), true).size() == 1);
}

TEST_CASE("pipeline: a torn record at the end of the inbox is ignored, the rest replayed",
          "[pipeline]") {
  TempDir dir;
  ManualClock clock;
  JournalOptions o;
  o.path = dir.file("j.db");
  PipelineOptions po;
  po.inbox_dir = dir.file("inbox");
  {
    auto j = Journal::open(o, nullptr);
    RuleEngine rules({});
    Pipeline p(*j, rules, clock, po);
    p.start(false);
    p.submit(reading(clock, "d", EventKind::temperature, std::nullopt, 1));
    p.submit(reading(clock, "d", EventKind::temperature, std::nullopt, 2));
  }
  int torn = 0;
  for (const auto& f : fs::directory_iterator(po.inbox_dir)) {
    // Segments are preallocated: the records end where a zero length starts.
    std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
    std::uint32_t len = 0;
    std::streamoff end = 0;
    while (io.seekg(end) && io.read(reinterpret_cast<char*>(&len), 4) && len != 0) end += 8 + len;
    if (end == 0) continue;
    io.clear();
    io.seekp(end);
    io.write("\x40\x00\x00\x00garbage", 11);  // a record cut short by the crash
    ++torn;
  }
  REQUIRE(torn == 1);
  auto j = Journal::open(o, nullptr);
  RuleEngine rules({});
  Pipeline p(*j, rules, clock, po);
  p.start(false);
  CHECK(p.stats().replayed == 2);
  p.run_once();
  CHECK(j->last_seq() == 2);
}

TEST_CASE("pipeline thread: group commit under concurrent producers, nothing lost", "[pipeline]") {
  TempDir dir;
  SystemClock clock;
  JournalOptions o;
  o.path = dir.file("j.db");
  o.synchronous_full = false;
  PipelineOptions po;
  po.inbox_dir = dir.file("inbox");
  po.queue_capacity = 100;  // small, so producers meet back-pressure
  auto j = Journal::open(o, nullptr);
  RuleSettings rs;
  rs.heartbeat_timeout_ms = 0;
  RuleEngine rules(rs);
  Pipeline p(*j, rules, clock, po);
  p.start();
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&, t] {
      ManualClock c;
      for (int i = 0; i < 500; ++i)
        p.submit(reading(c, "d" + std::to_string(t), EventKind::temperature, std::nullopt, i));
    });
  }
  for (auto& t : producers) t.join();
  REQUIRE(p.wait_committed(std::chrono::seconds(30)));
  // The thread names itself before its first commit: `top -H` and `ps -L` show it by name.
  std::set<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  CHECK(names.count("anju-pipeline") == 1);
  const auto s = p.stats();
  CHECK(s.committed == 2000);
  CHECK(s.batches < 2000);  // grouped
  p.stop();
  CHECK(j->last_seq() == 2000);
  CHECK(j->db().scalar_i64("SELECT count(*) FROM events") == 2000);
}

TEST_CASE("pipeline thread: quiet readings wait for more, an alarm commits them at once",
          "[pipeline]") {
  TempDir dir;
  SystemClock clock;
  JournalOptions o;
  o.path = dir.file("j.db");
  PipelineOptions po;
  po.inbox_dir = dir.file("inbox");
  po.quiet_commit_ms = 600'000;  // longer than the test: only an alarm or stop() commits
  po.tick_interval_ms = 600'000;
  auto j = Journal::open(o, nullptr);
  RuleSettings rs;
  rs.heartbeat_timeout_ms = 0;
  rs.escalate_after_ms = {};  // the readings' times are a ManualClock's: no escalation here
  RuleEngine rules(rs);
  Pipeline p(*j, rules, clock, po);
  p.start();
  ManualClock c;
  for (int i = 0; i < 3; ++i)
    REQUIRE(p.submit(reading(c, "t", EventKind::temperature, std::nullopt, 20 + i)));
  // Held in the open transaction (and in the inbox): not committed yet.
  CHECK_FALSE(p.wait_committed(std::chrono::milliseconds(100)));
  CHECK(p.stats().batches == 0);
  // A smoke alarm changes an alert: it and the held readings commit together, at once.
  REQUIRE(p.submit(reading(c, "s", EventKind::smoke, true)));
  REQUIRE(p.wait_committed(std::chrono::seconds(10)));
  CHECK(p.stats().batches == 1);
  CHECK(p.stats().committed == 4);
  CHECK(j->last_seq() == 4);
  // stop() commits what is held.
  REQUIRE(p.submit(reading(c, "t", EventKind::temperature, std::nullopt, 30)));
  p.stop();
  CHECK(j->last_seq() == 5);
  CHECK(j->db().scalar_i64("SELECT count(*) FROM events").value_or(-1) == 5);
}

TEST_CASE("outbox: priority classes, order within class, budget eviction, alerts never evicted",
          "[outbox]") {
  using namespace anju::bridge;
  TempDir dir;
  JournalOptions o;
  o.path = dir.file("j.db");
  auto j = Journal::open(o, nullptr);
  OutboxCounters counters;
  ensure_outbox_schema(j->db());
  // event class budget: ~10 messages of 1 KB
  OutboxWriter w(j->db(), {100, 0, 0, 10 * 1100}, counters);
  const std::string kb(1000, 'x');
  j->begin();
  for (int i = 0; i < 30; ++i) w.put(MsgClass::event, "e" + std::to_string(i), "t/event", kb);
  for (int i = 0; i < 30; ++i) w.put(MsgClass::alert, "a" + std::to_string(i), "t/alert", kb);
  w.put(MsgClass::summary, "s0", "t/summary", "{}");
  j->commit();
  CHECK(counters.rows[0] == 30);  // alerts: the 100-byte "budget" is ignored
  CHECK(counters.evicted[0] == 0);
  CHECK(counters.rows[3] <= 10);
  CHECK(counters.evicted[3] == 30 - counters.rows[3]);

  OutboxSender sender(o.path, counters);
  auto alerts = sender.next(MsgClass::alert, 0, 100);
  REQUIRE(alerts.size() == 30);
  for (int i = 0; i < 30; ++i) CHECK(alerts[i].msg_id == "a" + std::to_string(i));
  auto events = sender.next(MsgClass::event, 0, 100);
  REQUIRE(!events.empty());
  CHECK(events.back().msg_id == "e29");  // the newest survive, the oldest were evicted
  CHECK(std::is_sorted(events.begin(), events.end(),
                       [](const OutMsg& a, const OutMsg& b) { return a.oid < b.oid; }));
  std::vector<std::pair<std::int64_t, MsgClass>> acked;
  for (const auto& a : alerts) acked.emplace_back(a.oid, MsgClass::alert);
  sender.ack(acked);
  CHECK(counters.rows[0] == 0);
  CHECK(counters.sent[0] == 30);
  CHECK(sender.next(MsgClass::alert, 0, 100).empty());

  // Counters come back from the database (evictions persist across restarts).
  OutboxCounters again;
  load_counters(j->db(), again);
  CHECK(again.rows[3] == counters.rows[3].load());
  CHECK(again.evicted[3] == counters.evicted[3].load());
}

TEST_CASE("city bridge: summaries have a stable id per period and count from the journal",
          "[bridge]") {
  using namespace anju::bridge;
  TempDir dir;
  ManualClock clock(1'800'000'000'000);
  JournalOptions o;
  o.path = dir.file("j.db");
  auto j = Journal::open(o, nullptr);
  OutboxCounters counters;
  CityBridgeOptions bo;
  bo.site = "site-a";
  bo.grid_code = "11010500100200300401";
  bo.summary_periods_ms = {300'000};
  CityBridge city(bo, *j, counters, nullptr);
  const std::int64_t start = clock.wall_ms() - clock.wall_ms() % 300'000;
  j->begin();
  for (int i = 0; i < 3; ++i) {
    Event e = reading(clock, "d", EventKind::temperature, std::nullopt, i);
    e.ts_ms = start + 1000 * i;
    j->append(e);
  }
  j->commit();
  const auto all1 = city.summaries(*j, 300'000, start);
  REQUIRE(all1.size() == 1);  // every device in the site's cell: the compound's summary only
  const auto& s1 = all1[0];
  const auto s2 = city.summaries(*j, 300'000, start)[0];
  CHECK(s1["id"] == s2["id"]);
  CHECK(s1["id"] == summary_id("site-a", 300'000, start));
  CHECK(s1["scope"] == "compound");
  CHECK(s1["events"]["total"] == 3);
  CHECK(s1["events"]["by_kind"]["temperature"] == 3);
  CHECK(s1["seq"] == 3);
  CHECK(city.summaries(*j, 300'000, start + 300'000)[0]["id"] != s1["id"]);

  // The tick writes one summary per finished period, including missed ones.
  j->begin();
  city.on_tick(*j, start + 10);
  j->commit();
  CHECK(counters.rows[2] == 0);
  j->begin();
  city.on_tick(*j, start + 3 * 300'000 + 5);
  j->commit();
  CHECK(counters.rows[2] == 3);
}

TEST_CASE("city bridge: summaries per grid cell, hourly and daily, backfilled newest first",
          "[spine][summary]") {
  using namespace anju::bridge;
  TempDir dir;
  JournalOptions o;
  o.path = dir.file("j.db");
  auto j = Journal::open(o, nullptr);
  OutboxCounters counters;
  CityBridgeOptions bo;
  bo.site = "site-a";
  bo.grid_code = "11010500100200300401";
  bo.grid_cells = {"11010500100200300402"};
  bo.summary_periods_ms = {300'000, 3'600'000, 86'400'000};
  bo.summary_backfill_ms = 86'400'000;
  CityBridge city(bo, *j, counters, nullptr);
  const std::int64_t day = 86'400'000;
  const std::int64_t t0 = 1'800'000'000'000 - 1'800'000'000'000 % day;  // a UTC midnight
  ManualClock clock(t0);

  // The first tick of a fresh gateway: nothing before it is summarised.
  j->begin();
  city.on_tick(*j, t0 + 1000);
  j->commit();
  CHECK(counters.rows[2] == 0);

  // Two devices in the site's cell, one in its own cell, all in the first 5 minutes.
  j->begin();
  for (const auto& [dev, cell] : {std::pair{"a", ""}, std::pair{"b", "11010500100200300401"},
                                  std::pair{"c", "11010500100200300402"}}) {
    Event e = reading(clock, dev, EventKind::temperature, std::nullopt, 20);
    e.grid_code = cell;
    e.ts_ms = t0 + 2000;
    j->append(e);
  }
  j->commit();
  const auto first = city.summaries(*j, 300'000, t0);
  REQUIRE(first.size() == 3);  // the compound, then each cell
  CHECK(first[0]["scope"] == "compound");
  CHECK(first[0]["grid_code"] == "11010500100200300401");
  CHECK(first[0]["events"]["total"] == 3);
  CHECK(first[0]["devices"]["reporting"] == 3);
  std::map<std::string, nlohmann::json> by_cell;
  for (std::size_t i = 1; i < first.size(); ++i) {
    CHECK(first[i]["scope"] == "cell");
    by_cell[first[i]["grid_code"]] = first[i];
  }
  CHECK(by_cell["11010500100200300401"]["events"]["total"] == 2);
  CHECK(by_cell["11010500100200300402"]["events"]["total"] == 1);
  CHECK(by_cell["11010500100200300402"]["devices"]["reporting"] == 1);
  // Stable and distinct ids per (site, cell, period).
  CHECK(by_cell["11010500100200300402"]["id"] ==
        summary_id("site-a", 300'000, t0, "11010500100200300402"));
  CHECK(by_cell["11010500100200300402"]["id"] != first[0]["id"]);

  // The gateway is off for the rest of the day and comes back the next morning at 06:00:30.
  j->begin();
  city.on_tick(*j, t0 + day + 6 * 3'600'000 + 30'000);
  j->commit();
  // Backfilled 24 h back at most: 5-minute periods from 06:00 yesterday, hours from 06:00
  // yesterday, and yesterday; three summaries each (compound + two cells).
  const std::int64_t n5 = (day) / 300'000, nh = day / 3'600'000, nd = 1;
  CHECK(counters.rows[2] == 3 * (n5 + nh + nd));
  // Newest first within each period length: live data is not held up behind the backfill.
  std::vector<std::int64_t> five_min_starts;
  auto st = j->db().prepare("SELECT payload FROM outbox WHERE topic=? ORDER BY oid");
  st.bind(1, std::string("anju/v1/site-a/summary/5m"));
  while (st.step()) {
    const auto p = nlohmann::json::parse(st.str(0));
    if (p["scope"] == "compound") five_min_starts.push_back(p["period"]["start_ms"]);
  }
  REQUIRE(five_min_starts.size() == static_cast<std::size_t>(n5));
  CHECK(five_min_starts.front() == t0 + day + 6 * 3'600'000 - 300'000);
  CHECK(std::is_sorted(five_min_starts.rbegin(), five_min_starts.rend()));
  // The daily summary of yesterday counts the three readings.
  auto d = j->db().prepare("SELECT payload FROM outbox WHERE topic=?");
  d.bind(1, std::string("anju/v1/site-a/summary/1d"));
  REQUIRE(d.step());
  const auto daily = nlohmann::json::parse(d.str(0));
  CHECK(daily["period"]["start_ms"] == t0);
  CHECK(daily["events"]["total"] == 3);
}

TEST_CASE("city bridge: acknowledged rows are deleted by the pipeline's next transaction",
          "[bridge]") {
  using namespace anju::bridge;
  TempDir dir;
  JournalOptions o;
  o.path = dir.file("j.db");
  auto j = Journal::open(o, nullptr);
  OutboxCounters counters;
  CityBridgeOptions bo;
  bo.site = "site-a";
  bo.event_kinds = {EventKind::smoke};
  CityBridge city(bo, *j, counters, nullptr);
  ManualClock clock;
  std::vector<Event> events;
  for (int i = 0; i < 3; ++i) {
    events.push_back(reading(clock, "s", EventKind::smoke, true));
  }
  j->begin();
  for (auto& e : events) j->append(e);
  city.in_transaction(*j, events, {});
  j->commit();
  REQUIRE(counters.rows[3] == 3);
  OutboxSender sender(o.path, counters);
  auto rows = sender.next(MsgClass::event, 0, 10);
  REQUIRE(rows.size() == 3);
  city.acked({{rows[0].oid, MsgClass::event}, {rows[1].oid, MsgClass::event}});
  CHECK(sender.next(MsgClass::event, 0, 10).size() == 3);  // not yet: the pipeline deletes
  j->begin();
  city.on_tick(*j, clock.wall_ms());
  j->commit();
  city.after_commit({}, {});
  auto left = sender.next(MsgClass::event, 0, 10);
  REQUIRE(left.size() == 1);
  CHECK(left[0].oid == rows[2].oid);
  CHECK(counters.rows[3] == 1);
}

TEST_CASE("rules: rate of rise raises on a fast rise, not on a slow one", "[rules]") {
  ManualClock clock;
  RuleSettings s;
  s.heartbeat_timeout_ms = 0;
  ThresholdSpec t;
  t.name = "temperature_rising_fast";
  t.kind = EventKind::temperature;
  t.rise = 8;
  t.rise_window_ms = 60'000;
  t.hysteresis = 2;
  t.severity = 2;
  s.thresholds.push_back(t);
  RuleEngine rules(s);
  std::vector<AlertChange> out;
  auto temp = [&](const char* dev, double v) {
    rules.on_event(reading(clock, dev, EventKind::temperature, std::nullopt, v), out);
  };
  // Slow: +1 C every 10 s is +6 C in any 60 s window: never 8.
  for (int i = 0; i <= 30; ++i) {
    temp("slow", 20 + i);
    clock.advance_ms(10'000);
  }
  CHECK(out.empty());
  // Fast: 20 -> 29 within 40 s.
  temp("fast", 20);
  clock.advance_ms(20'000);
  temp("fast", 24);
  CHECK(out.empty());
  clock.advance_ms(20'000);
  temp("fast", 29);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::raised);
  CHECK(out[0].alert.rule == "temperature_rising_fast");
  CHECK(out[0].alert.device.id == "fast");
  CHECK(out[0].alert.value == 29);
  out.clear();
  // Still hot but no longer rising: once the window has moved past the low readings, it clears.
  clock.advance_ms(30'000);
  temp("fast", 29.5);  // the window still holds 24: a rise of 5.5 < 8 - 2 -> clears
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::condition_cleared);
}

TEST_CASE("rules: a named value held above its limit (manhole tilt)", "[rules]") {
  ManualClock clock;
  RuleSettings s;
  s.heartbeat_timeout_ms = 0;
  ThresholdSpec t;
  t.name = "manhole_tilted";
  t.kind = EventKind::measurement;
  t.value_name = "tilt";
  t.above = 10;
  t.hold_ms = 2'000;
  s.thresholds.push_back(t);
  RuleEngine rules(s);
  std::vector<AlertChange> out;
  std::vector<Event> synth;
  Event e = reading(clock, "mh", EventKind::measurement, std::nullopt);
  e.values = {{"battery_v", 30, "V"}, {"tilt", 14, "deg"}};
  rules.on_event(e, out);
  CHECK(out.empty());
  clock.advance_ms(1'999);
  rules.on_tick(clock.wall_ms(), synth, out);
  CHECK(out.empty());
  clock.advance_ms(1);
  rules.on_tick(clock.wall_ms(), synth, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].alert.rule == "manhole_tilted");
  CHECK(out[0].alert.value == 14);
  // Another measurement without a tilt value changes nothing.
  out.clear();
  Event other = reading(clock, "mh", EventKind::measurement, std::nullopt);
  other.values = {{"battery_v", 3, "V"}};
  rules.on_event(other, out);
  CHECK(out.empty());
}

TEST_CASE("rules: a flow that is never zero for hours raises, the first zero clears", "[rules]") {
  ManualClock clock;
  RuleSettings s;
  s.heartbeat_timeout_ms = 0;
  ThresholdSpec t;
  t.name = "water_flow_never_stops";
  t.kind = EventKind::measurement;
  t.value_name = "flow";
  t.nonzero_for_ms = 6 * 3'600'000LL;
  s.thresholds.push_back(t);
  RuleEngine rules(s);
  std::vector<AlertChange> out;
  auto flow = [&](double v) {
    Event e = reading(clock, "meter", EventKind::measurement, std::nullopt);
    e.values = {{"flow", v, "L/h"}};
    rules.on_event(e, out);
  };
  // A household: water runs, and stops at least every few hours -> never raises.
  for (int h = 0; h < 48; ++h) {
    flow(h % 5 == 0 ? 0 : 30);
    clock.advance_ms(3'600'000);
  }
  CHECK(out.empty());
  // A leak: a trickle all the time. The 6 h count from the first non-zero reading (the flow may
  // have started any time after the last zero): raised at the reading 6 h after it, not before.
  flow(0);
  for (int h = 1; h <= 7; ++h) {
    clock.advance_ms(3'600'000);
    flow(2);
    if (h < 7) CHECK(out.empty());
  }
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::raised);
  out.clear();
  clock.advance_ms(3'600'000);
  flow(2);
  CHECK(out.empty());  // still running: no news
  flow(0);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::condition_cleared);
}

namespace {

// A smoke detector and a temperature sensor in the same kitchen, a smoke detector next door; a
// rise rule and the fire_suspected correlation of smoke + rise in one room within 2 minutes.
struct FireRig {
  ManualClock clock;
  RuleEngine rules{settings()};
  std::vector<AlertChange> out;

  static RuleSettings settings() {
    RuleSettings s;
    s.heartbeat_timeout_ms = 0;
    ThresholdSpec rise;
    rise.name = "temperature_rising_fast";
    rise.kind = EventKind::temperature;
    rise.rise = 8;
    rise.rise_window_ms = 60'000;
    rise.severity = 2;
    s.thresholds.push_back(rise);
    CorrelationSpec fire;
    fire.name = "fire_suspected";
    fire.rules = {"smoke", "temperature_rising_fast"};
    fire.window_ms = 120'000;
    fire.scope = CorrelationScope::room;
    fire.severity = 1;
    s.correlations.push_back(fire);
    return s;
  }
  Event at(const char* dev, const char* room, EventKind k, std::optional<bool> active,
           std::optional<double> v = std::nullopt) {
    Event e = reading(clock, dev, k, active, v);
    e.location = {"3", "2", room};
    return e;
  }
  void smoke(const char* dev, const char* room, bool on = true) {
    rules.on_event(at(dev, room, EventKind::smoke, on), out);
  }
  void temp(const char* dev, const char* room, double v) {
    rules.on_event(at(dev, room, EventKind::temperature, std::nullopt, v), out);
  }
  void fast_rise(const char* dev, const char* room) {
    temp(dev, room, 21);
    clock.advance_ms(20'000);
    temp(dev, room, 30);
  }
  std::vector<AlertChange> of(const std::string& rule) const {
    std::vector<AlertChange> r;
    for (const auto& c : out)
      if (c.alert.rule == rule) r.push_back(c);
    return r;
  }
};

}  // namespace

TEST_CASE("correlation: smoke then a temperature rise in the room is one fire_suspected",
          "[rules][correlation]") {
  FireRig rig;
  rig.smoke("smoke_k", "1201 kitchen");
  // The smoke alarm is raised at once, not held back for a possible correlation.
  REQUIRE(rig.out.size() == 1);
  CHECK(rig.out[0].type == AlertChangeType::raised);
  const std::string smoke_id = rig.out[0].alert.alert_id;
  rig.clock.advance_ms(30'000);
  rig.fast_rise("temp_k", "1201 kitchen");

  const auto fire = rig.of("fire_suspected");
  REQUIRE(fire.size() == 1);
  CHECK(fire[0].type == AlertChangeType::raised);
  CHECK(fire[0].alert.severity == 1);
  CHECK(fire[0].alert.location.room == "1201 kitchen");
  REQUIRE(fire[0].alert.related.size() == 2);
  CHECK(fire[0].alert.related[0] == smoke_id);
  CHECK(fire[0].alert.event_ids.size() >= 2);  // the smoke event and the readings of the rise
  // Both parts are closed as merged into it; one alert stays open.
  const auto smoke = rig.of("smoke");
  REQUIRE(smoke.back().type == AlertChangeType::closed);
  CHECK(smoke.back().alert.close_reason == "merged");
  CHECK(smoke.back().alert.related == std::vector<std::string>{fire[0].alert.alert_id});
  CHECK(smoke.back().alert.history.back().action == "merge");
  CHECK(rig.of("temperature_rising_fast").back().type == AlertChangeType::closed);
  REQUIRE(rig.rules.open_alerts().size() == 1);
  CHECK(rig.rules.open_alerts()[0].rule == "fire_suspected");

  // The detector still alarming counts on fire_suspected; no new smoke alert.
  rig.out.clear();
  rig.clock.advance_ms(5'000);
  rig.smoke("smoke_k", "1201 kitchen");
  REQUIRE(rig.out.size() == 1);
  CHECK(rig.out[0].alert.rule == "fire_suspected");
  CHECK(rig.out[0].type == AlertChangeType::repeated);
  CHECK(rig.rules.open_alerts().size() == 1);
}

TEST_CASE("correlation: a rise first, then smoke, correlates too", "[rules][correlation]") {
  FireRig rig;
  rig.fast_rise("temp_k", "1201 kitchen");
  REQUIRE(rig.of("temperature_rising_fast").size() == 1);
  CHECK(rig.of("fire_suspected").empty());
  rig.clock.advance_ms(60'000);
  rig.smoke("smoke_k", "1201 kitchen");
  REQUIRE(rig.of("fire_suspected").size() == 1);
  CHECK(rig.rules.open_alerts().size() == 1);
}

TEST_CASE("correlation: other rooms and old alerts do not correlate", "[rules][correlation]") {
  FireRig rig;
  // Smoke next door: same building and unit, another room.
  rig.smoke("smoke_n", "1202 kitchen");
  rig.fast_rise("temp_k", "1201 kitchen");
  CHECK(rig.of("fire_suspected").empty());
  CHECK(rig.rules.open_alerts().size() == 2);
  // Smoke in the kitchen long after the rise was last seen (outside the 2-minute window).
  rig.clock.advance_ms(10 * 60'000);
  rig.smoke("smoke_k", "1201 kitchen");
  CHECK(rig.of("fire_suspected").empty());
  CHECK(rig.rules.open_alerts().size() == 3);
  // A device without a room never joins a room-scoped correlation.
  FireRig bare;
  bare.smoke("s", "");
  bare.fast_rise("t", "");
  CHECK(bare.of("fire_suspected").empty());
}
