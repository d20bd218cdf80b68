// Device supervision in the rule engine, on a simulated clock: heartbeat timeouts by driver,
// silence and return (device_offline once, device_online once), flapping that does not spam, a
// restart in the middle, and weak radio signal with hysteresis.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <random>

#include "anju/bridge/city_bridge.hpp"
#include "anju/bridge/outbox.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/rules.hpp"
#include "anju/edge/uuid.hpp"
#include "contract_schemas.hpp"

using namespace anju::edge;

namespace {

constexpr std::int64_t kMinute = 60'000;

Event heard(const ManualClock& clock, const std::string& dev, const std::string& source,
            EventKind kind = EventKind::temperature) {
  Event e;
  e.id = uuid_v7(clock.wall_ms());
  e.ts_ms = clock.wall_ms();
  e.site = "site-a";
  e.grid_code = "11010500100200300401";
  e.device = {dev, "sensor", dev + "_name", ""};
  e.location = {"3", "2", "1201"};
  e.kind = kind;
  if (kind == EventKind::temperature) e.values.push_back({"temperature", 21.5, "C"});
  e.source = source;
  return e;
}

// One tick; the synthesized events go back through the rules, as the pipeline does.
struct Supervised {
  ManualClock clock;
  RuleEngine rules;
  std::vector<AlertChange> changes;  // every alert change so far
  std::vector<Event> made;           // every event the rules synthesized so far

  explicit Supervised(RuleSettings s, std::int64_t start_ms = 1'760'000'000'000)
      : clock(start_ms), rules(std::move(s)) {}
  void event(Event e) { rules.on_event(e, changes); }
  void advance(std::int64_t ms) {
    clock.advance_ms(ms);
    std::vector<Event> synth;
    rules.on_tick(clock.wall_ms(), synth, changes);
    for (auto& e : synth) {
      rules.on_event(e, changes);
      made.push_back(std::move(e));
    }
  }
  std::size_t made_of(EventKind k, const std::string& dev) const {
    return static_cast<std::size_t>(std::count_if(made.begin(), made.end(), [&](const Event& e) {
      return e.kind == k && e.device.id == dev;
    }));
  }
  std::size_t changes_of(AlertChangeType t, const std::string& rule) const {
    return static_cast<std::size_t>(
        std::count_if(changes.begin(), changes.end(),
                      [&](const AlertChange& c) { return c.type == t && c.alert.rule == rule; }));
  }
};

RuleSettings hourly() {
  RuleSettings s;
  s.heartbeat_timeout_ms = 60 * kMinute;
  return s;
}

// One watched home and no heartbeat: the welfare tests are about activity, not silence.
RuleSettings welfare(const std::string& name, std::vector<std::string> devices,
                     std::int64_t quiet_ms, Location home = {}) {
  RuleSettings s;
  s.heartbeat_timeout_ms = 0;
  WelfareSpec w;
  w.name = name;
  w.home = std::move(home);
  w.devices = std::move(devices);
  w.quiet_ms = quiet_ms;
  s.welfare.push_back(std::move(w));
  return s;
}

}  // namespace

TEST_CASE("supervision: each driver's devices get its heartbeat, a device's own wins",
          "[rules][supervision]") {
  RuleSettings s = hourly();
  s.heartbeat_by_source["chirpstack"] = 120 * kMinute;
  s.heartbeat_overrides["pump"] = 5 * kMinute;
  Supervised t(s);
  t.event(heard(t.clock, "leak", "zigbee2mqtt"));
  t.event(heard(t.clock, "cam-gate", "camera"));     // built in: the camera driver says offline
  t.event(heard(t.clock, "panel", "modbus"));        // built in: the poll says offline
  t.event(heard(t.clock, "door-3-2", "wiegand"));    // built in: wired, silence is normal
  t.event(heard(t.clock, "manhole", "chirpstack"));  // configured: two hours
  t.event(heard(t.clock, "pump", "modbus"));         // its own override: five minutes

  t.advance(5 * kMinute);
  CHECK(t.made_of(EventKind::device_offline, "pump") == 1);
  t.advance(55 * kMinute);
  CHECK(t.made_of(EventKind::device_offline, "leak") == 1);
  CHECK(t.made_of(EventKind::device_offline, "manhole") == 0);
  t.advance(60 * kMinute);
  CHECK(t.made_of(EventKind::device_offline, "manhole") == 1);
  t.advance(24 * 60 * kMinute);
  CHECK(t.made_of(EventKind::device_offline, "cam-gate") == 0);
  CHECK(t.made_of(EventKind::device_offline, "panel") == 0);
  CHECK(t.made_of(EventKind::device_offline, "door-3-2") == 0);
  CHECK(t.rules.offline_devices() == 3);
  // Each went offline once: one alert each, no repeats while silent.
  CHECK(t.changes_of(AlertChangeType::raised, "device_offline") == 3);
  CHECK(t.made.size() == 3);
}

TEST_CASE("supervision: what the gateway derives about a device does not make it seen",
          "[rules][supervision]") {
  Supervised t(hourly());
  t.event(heard(t.clock, "contact-1201", "zigbee2mqtt", EventKind::contact));
  // The door rules speak of the contact's device (door held open) and a person acts on it: the
  // device stays a zigbee2mqtt device, supervised by its own silence.
  t.advance(30 * kMinute);
  Event derived = heard(t.clock, "contact-1201", "door_rules", EventKind::door_held_open);
  derived.active = true;
  derived.severity = 3;
  t.event(derived);
  t.event(heard(t.clock, "contact-1201", "dashboard", EventKind::maintenance));
  t.advance(30 * kMinute);
  CHECK(t.made_of(EventKind::device_offline, "contact-1201") == 1);
}

TEST_CASE("supervision: silence, then the device is heard again: device_online once",
          "[rules][supervision]") {
  Supervised t(hourly());
  t.event(heard(t.clock, "smoke-1201", "zigbee2mqtt"));
  t.advance(60 * kMinute);
  REQUIRE(t.made_of(EventKind::device_offline, "smoke-1201") == 1);
  const Event& off = t.made.back();
  CHECK(off.source == "supervisor");
  CHECK(off.severity == 3);
  t.advance(10 * kMinute);
  CHECK(t.made.size() == 1);  // said once, not every tick

  t.clock.advance_ms(1'000);
  t.event(heard(t.clock, "smoke-1201", "zigbee2mqtt"));
  CHECK(t.changes_of(AlertChangeType::condition_cleared, "device_offline") == 1);
  CHECK(t.rules.next_deadline_ms() <= t.clock.wall_ms());  // the return is due at once
  t.advance(1'000);
  REQUIRE(t.made_of(EventKind::device_online, "smoke-1201") == 1);
  CHECK(t.made.back().source == "supervisor");
  CHECK(t.made.back().location.room == "1201");
  t.advance(1'000);
  CHECK(t.made_of(EventKind::device_online, "smoke-1201") == 1);
  // Its own device_online, fed back, changed nothing more.
  CHECK(t.changes_of(AlertChangeType::condition_cleared, "device_offline") == 1);
}

TEST_CASE("supervision: a flapping device is one alert that counts, not one alert a flap",
          "[rules][supervision]") {
  Supervised t(hourly());
  t.event(heard(t.clock, "leak-b3", "zigbee2mqtt"));
  for (int i = 0; i < 5; ++i) {
    t.advance(60 * kMinute);                            // silent: offline
    t.event(heard(t.clock, "leak-b3", "zigbee2mqtt"));  // back
    t.advance(1'000);
  }
  CHECK(t.made_of(EventKind::device_offline, "leak-b3") == 5);
  CHECK(t.made_of(EventKind::device_online, "leak-b3") == 5);
  CHECK(t.changes_of(AlertChangeType::raised, "device_offline") == 1);
  CHECK(t.changes_of(AlertChangeType::condition_returned, "device_offline") == 4);
  const auto open = t.rules.open_alerts();
  REQUIRE(open.size() == 1);
  CHECK(open[0].count == 5);
  CHECK(open[0].condition_cleared);
}

TEST_CASE("supervision: a restart keeps a device offline without a second device_offline",
          "[rules][supervision]") {
  RuleSettings s = hourly();
  Supervised before(s);
  before.event(heard(before.clock, "gas-k1", "zigbee2mqtt"));
  before.advance(60 * kMinute);
  REQUIRE(before.made_of(EventKind::device_offline, "gas-k1") == 1);

  // A person closed the alert; the registry (the journal's devices table) still says offline.
  Supervised after(s, before.clock.wall_ms() + 10 * kMinute);
  after.rules.restore({},
                      {{{"gas-k1", "gas_detector", "", ""},
                        "zigbee2mqtt",
                        before.clock.wall_ms() - 60 * kMinute,
                        true}},
                      after.clock.wall_ms());
  CHECK(after.rules.offline_devices() == 1);
  after.advance(5 * 60 * kMinute);
  CHECK(after.made.empty());
  after.event(heard(after.clock, "gas-k1", "zigbee2mqtt"));
  after.advance(1'000);
  CHECK(after.made_of(EventKind::device_online, "gas-k1") == 1);

  // A device that was online starts its window afresh at the restart, with its driver's timeout.
  RuleSettings s2 = hourly();
  s2.heartbeat_by_source["chirpstack"] = 120 * kMinute;
  Supervised again(s2);
  again.rules.restore({}, {{{"manhole-7", "manhole", "", ""}, "chirpstack", 0, false}},
                      again.clock.wall_ms());
  again.advance(119 * kMinute);
  CHECK(again.made.empty());
  again.advance(1 * kMinute);
  CHECK(again.made_of(EventKind::device_offline, "manhole-7") == 1);
}

TEST_CASE("supervision: weak zigbee link quality raises once and clears with hysteresis",
          "[rules][supervision][signal]") {
  RuleSettings s = hourly();
  s.weak_linkquality = 20;
  s.linkquality_hysteresis = 10;
  Supervised t(s);
  auto lq = [&](double v) {
    Event e = heard(t.clock, "smoke-1201", "zigbee2mqtt");
    e.attrs["linkquality"] = v;
    t.event(e);
    t.clock.advance_ms(1'000);
  };
  lq(120);
  CHECK(t.changes.empty());
  lq(18);
  lq(12);
  lq(20);
  CHECK(t.changes_of(AlertChangeType::raised, "signal_weak") == 1);
  CHECK(t.changes.size() == 1);
  CHECK(t.changes[0].alert.severity == 4);
  CHECK(t.changes[0].alert.value == Approx(18));
  lq(25);
  lq(30);  // not above 20 + 10: still weak
  CHECK(t.changes.size() == 1);
  lq(31);
  CHECK(t.changes_of(AlertChangeType::condition_cleared, "signal_weak") == 1);
  lq(29);
  lq(25);  // within the band again: no change either way
  CHECK(t.changes.size() == 2);
  lq(15);
  CHECK(t.changes_of(AlertChangeType::condition_returned, "signal_weak") == 1);

  // Off by default.
  Supervised off(hourly());
  Event e = heard(off.clock, "smoke-1201", "zigbee2mqtt");
  e.attrs["linkquality"] = 3;
  off.event(e);
  CHECK(off.changes.empty());
}

TEST_CASE("supervision: a driver's signal_weak clears only with margin above its threshold",
          "[rules][supervision][signal]") {
  RuleSettings s = hourly();
  s.rssi_hysteresis_db = 5;
  Supervised t(s);
  auto weak = [&](bool active, std::optional<double> rssi) {
    Event e = heard(t.clock, "manhole-7", "chirpstack", EventKind::signal_weak);
    e.active = active;
    if (rssi) {
      e.values.push_back({"rssi", *rssi, "dBm"});
      e.attrs["weak_below_dbm"] = -120;
    }
    t.event(e);
    t.clock.advance_ms(1'000);
  };
  weak(true, -123);
  CHECK(t.changes_of(AlertChangeType::raised, "signal_weak") == 1);
  weak(false, -119);  // above the threshold, within the margin
  weak(false, -116);
  CHECK(t.changes_of(AlertChangeType::condition_cleared, "signal_weak") == 0);
  weak(false, -115);
  CHECK(t.changes_of(AlertChangeType::condition_cleared, "signal_weak") == 1);
  weak(true, -121);
  CHECK(t.changes_of(AlertChangeType::condition_returned, "signal_weak") == 1);
  weak(false, std::nullopt);  // a driver that gives no numbers decides alone
  CHECK(t.changes_of(AlertChangeType::condition_cleared, "signal_weak") == 2);
  CHECK(t.changes_of(AlertChangeType::raised, "signal_weak") == 1);
}

TEST_CASE("registry: counts per state in the summary, and the devices that changed",
          "[rules][supervision][summary]") {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("anju-registry-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path p;
    ~Cleanup() { fs::remove_all(p); }
  } cleanup{dir};
  JournalOptions o;
  o.path = (dir / "j.db").string();
  auto j = Journal::open(o, nullptr);
  anju::bridge::OutboxCounters counters;
  anju::bridge::CityBridgeOptions bo;
  bo.site = "site-a";
  bo.grid_code = "11010500100200300401";
  bo.summary_periods_ms = {300'000};
  anju::bridge::CityBridge city(bo, *j, counters, nullptr);

  // Four devices; the rules (a real engine) decide what their events mean, and the alerts and
  // events are stored as the pipeline stores them.
  RuleSettings s = hourly();
  s.weak_linkquality = 20;
  ManualClock clock(1'800'000'000'000);  // a 5-minute boundary
  const std::int64_t start = clock.wall_ms();
  RuleEngine rules(s);
  auto store = [&](Event e) {
    std::vector<AlertChange> changes;
    j->begin();
    j->append(e);
    rules.on_event(e, changes);
    for (const auto& c : changes) j->put_alert(c.alert);
    j->commit();
  };
  Event battery = heard(clock, "smoke-1", "zigbee2mqtt", EventKind::battery);
  battery.values = {{"battery", 8, "%"}};
  store(battery);
  Event weak = heard(clock, "leak-2", "zigbee2mqtt");
  weak.attrs["linkquality"] = 9;
  store(weak);
  Event tamper = heard(clock, "contact-3", "zigbee2mqtt", EventKind::tamper);
  tamper.active = true;
  store(tamper);
  store(heard(clock, "gas-4", "zigbee2mqtt"));
  // gas-4 goes silent and comes back; contact-3 goes silent and stays so.
  clock.advance_ms(1'000);
  std::vector<Event> synth;
  std::vector<AlertChange> ignored;
  Event off4 = heard(clock, "gas-4", "supervisor", EventKind::device_offline);
  store(off4);
  clock.advance_ms(1'000);
  store(heard(clock, "gas-4", "zigbee2mqtt"));
  clock.advance_ms(1'000);
  rules.on_tick(clock.wall_ms(), synth, ignored);
  REQUIRE(synth.size() == 1);  // gas-4's device_online
  store(synth[0]);
  clock.advance_ms(1'000);
  store(heard(clock, "contact-3", "supervisor", EventKind::device_offline));

  const auto counts = device_state_counts(j->db());
  CHECK(counts.known == 4);
  CHECK(counts.online == 3);
  CHECK(counts.offline == 1);
  CHECK(counts.battery_low == 1);
  CHECK(counts.signal_weak == 1);
  CHECK(counts.tamper == 1);
  const auto cond = device_conditions(j->db());
  CHECK(cond.at("leak-2") == std::vector<std::string>{"signal_weak"});
  CHECK(cond.at("contact-3") == std::vector<std::string>{"offline", "tamper"});
  CHECK(cond.count("gas-4") == 0);  // back online: the offline alert's condition cleared

  const auto summary = city.summaries(*j, 300'000, start);
  REQUIRE(summary.size() == 1);
  const auto& d = summary[0]["devices"];
  INFO(summary[0].dump());
  CHECK(d["known"] == 4);
  CHECK(d["online"] == 3);
  CHECK(d["offline"] == 1);
  CHECK(d["low_battery"] == 1);
  CHECK(d["signal_weak"] == 1);
  CHECK(d["tamper"] == 1);
  CHECK(d["changed_total"] == 2);
  REQUIRE(d["changed"].size() == 2);
  CHECK(d["changed"][0]["device"] == "gas-4");  // oldest first: gas-4 came back before...
  CHECK(d["changed"][0]["state"] == "online");
  CHECK(d["changed"][1]["device"] == "contact-3");  // ...contact-3 went silent
  CHECK(d["changed"][1]["state"] == "offline");
  CHECK(anju::contract::check_uplink_message("anju/v1/site-a/summary/5m", summary[0].dump()) == "");
}

TEST_CASE("welfare: a quiet home raises once, its next activity clears it", "[rules][welfare]") {
  // The home's devices: an id and a name.
  Supervised t(welfare("welfare_3_2_1201", {"door_1201", "meter_1201_name"}, 24 * 60 * kMinute,
                       {"3", "2", "1201"}));
  auto meter = [&](double total) {
    Event e = heard(t.clock, "meter_1201", "chirpstack", EventKind::measurement);
    e.values = {{"volume", total, "m3"}, {"battery", 80, "%"}};
    t.event(e);
  };
  t.advance(0);  // the quiet time starts with the gateway
  t.event(heard(t.clock, "door_1201", "zigbee2mqtt", EventKind::contact));
  meter(12.5);
  // Twenty hours later: heartbeats and an unchanged meter are not activity.
  for (int h = 0; h < 23; ++h) {
    t.advance(60 * kMinute);
    meter(12.5);
    Event beat = heard(t.clock, "door_1201", "zigbee2mqtt", EventKind::battery);
    beat.values = {{"battery", 90 - h * 0.1, "%"}};
    t.event(beat);
  }
  CHECK(t.made_of(EventKind::welfare_check, "door_1201") == 0);
  t.advance(60 * kMinute);  // 24 h after the door opened
  REQUIRE(t.made_of(EventKind::welfare_check, "door_1201") == 1);
  const Event& w1 = t.made.back();
  CHECK(w1.location.room == "1201");
  CHECK(w1.severity == 2);
  CHECK(w1.source == "supervisor");
  REQUIRE(t.changes_of(AlertChangeType::raised, "welfare_3_2_1201") == 1);
  const auto open = t.rules.open_alerts();
  REQUIRE(open.size() == 1);
  CHECK(open[0].kind == EventKind::welfare_check);
  CHECK(open[0].location.building == "3");
  t.advance(6 * 60 * kMinute);
  CHECK(t.made_of(EventKind::welfare_check, "door_1201") == 1);  // once, not every tick

  // The water meter advances: someone is using water.
  meter(12.6);
  CHECK(t.changes_of(AlertChangeType::condition_cleared, "welfare_3_2_1201") == 1);
  // Quiet again for a day: the condition returns on the same open alert.
  t.advance(24 * 60 * kMinute);
  CHECK(t.made_of(EventKind::welfare_check, "door_1201") == 2);
  CHECK(t.changes_of(AlertChangeType::raised, "welfare_3_2_1201") == 1);
  CHECK(t.changes_of(AlertChangeType::condition_returned, "welfare_3_2_1201") == 1);
}

TEST_CASE("welfare: other devices, derived events and uninstalled homes", "[rules][welfare]") {
  Supervised t(welfare("welfare_home", {"door_9"}, 60 * kMinute));
  t.advance(0);
  t.advance(2 * 60 * kMinute);
  CHECK(t.made.empty());  // door_9 never heard: the home is not installed yet
  t.event(heard(t.clock, "door_9", "osdp", EventKind::passage_granted));
  t.advance(59 * kMinute);
  // A neighbour's door and the door rules' conclusions about door_9 are not activity of the home.
  t.event(heard(t.clock, "door_10", "osdp", EventKind::passage_granted));
  Event held = heard(t.clock, "door_9", "door_rules", EventKind::door_held_open);
  held.active = false;
  t.event(held);
  t.advance(1 * kMinute);
  REQUIRE(t.made_of(EventKind::welfare_check, "door_9") == 1);
  CHECK(t.made.back().location.room == "1201");  // no home given: the device's own location
}

TEST_CASE("welfare: a restart keeps the quiet time and the raised alert", "[rules][welfare]") {
  const RuleSettings s = welfare("welfare_home", {"door_9_name"}, 24 * 60 * kMinute);
  const std::int64_t t0 = 1'800'000'000'000;

  // The door was last used 20 h before the restart: 4 h after it, the check is due.
  Supervised t(s, t0 + 20 * 60 * kMinute);
  t.rules.restore({}, {{{"door_9", "reader", "door_9_name", ""}, "osdp", t0, false}},
                  t.clock.wall_ms());
  t.rules.restore_activity({{"door_9", t0}, {"door_10", t0 + 19 * 60 * kMinute}});
  t.advance(3 * 60 * kMinute);
  CHECK(t.made.empty());
  t.advance(60 * kMinute);
  REQUIRE(t.made_of(EventKind::welfare_check, "door_9") == 1);

  // Restarted again while the alert is open and the home still quiet: no second one.
  Supervised again(s, t.clock.wall_ms() + 10 * kMinute);
  again.rules.restore(t.rules.open_alerts(),
                      {{{"door_9", "reader", "door_9_name", ""}, "osdp", t0, false}},
                      again.clock.wall_ms());
  again.rules.restore_activity({{"door_9", t0}});
  again.advance(48 * 60 * kMinute);
  CHECK(again.made.empty());
  again.event(heard(again.clock, "door_9", "osdp", EventKind::exit_request));
  CHECK(again.changes_of(AlertChangeType::condition_cleared, "welfare_home") == 1);
}
