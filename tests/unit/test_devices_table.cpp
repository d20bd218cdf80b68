// The journal's devices table: one row per device, updated at commit, and filled once from the
// events of a journal written before it existed.
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include "anju/edge/journal.hpp"
#include "anju/edge/uuid.hpp"

using namespace anju::edge;
namespace fs = std::filesystem;

namespace {
struct Dir {
  fs::path path =
      fs::temp_directory_path() / ("anju-devices-" + std::to_string(std::random_device{}()));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
};

Event from(const std::string& dev, std::int64_t ts, EventKind kind, const std::string& source) {
  Event e;
  e.id = uuid_v7(ts);
  e.ts_ms = ts;
  e.site = "s";
  e.device = {dev, "climate_sensor", dev + "_name", ""};
  e.location = {"3", "2", "1201"};
  e.kind = kind;
  e.source = source;
  return e;
}
}  // namespace

TEST_CASE("devices: last seen, battery, signal and state from the events", "[journal][devices]") {
  Dir dir;
  JournalOptions o;
  o.path = (dir.path / "j.db").string();
  auto j = Journal::open(o, nullptr);
  j->begin();
  auto a = from("a", 1000, EventKind::temperature, "zigbee2mqtt");
  a.attrs = {{"linkquality", 87}};
  j->append(a);
  auto b = from("a", 2000, EventKind::battery, "zigbee2mqtt");
  b.values = {{"battery", 55, "%"}};
  j->append(b);
  auto other = from("b", 1500, EventKind::smoke, "zigbee2mqtt");
  j->append(other);
  j->commit();

  // The supervisor declares "a" offline later: its state changes, its last-seen does not.
  j->begin();
  auto off = from("a", 9000, EventKind::device_offline, "supervisor");
  j->append(off);
  // An alert transition about "b" is the gateway talking, not the device.
  auto t = from("b", 9500, EventKind::alert_transition, "dashboard");
  t.device.kind.clear();
  j->append(t);
  j->commit();

  auto devices = load_devices(j->db());
  REQUIRE(devices.size() == 2);
  const auto& da = devices[0].device.id == "a" ? devices[0] : devices[1];
  const auto& db = devices[0].device.id == "b" ? devices[0] : devices[1];
  CHECK(da.first_seen_ms == 1000);
  CHECK(da.last_seen_ms == 2000);
  CHECK(da.state == "offline");
  CHECK(da.battery == Approx(55));
  CHECK(da.signal == Approx(87));
  CHECK(da.device.kind == "climate_sensor");
  CHECK(da.location.room == "1201");
  CHECK(da.source == "zigbee2mqtt");  // the supervisor's verdict keeps the driver it belongs to
  CHECK(db.last_seen_ms == 1500);
  CHECK(db.state == "online");
  CHECK_FALSE(db.battery);

  SECTION("a rolled-back transaction leaves no trace") {
    j->begin();
    auto late = from("c", 10000, EventKind::temperature, "zigbee2mqtt");
    j->append(late);
    j->rollback();
    CHECK(load_devices(j->db()).size() == 2);
  }
}

TEST_CASE("devices: an old journal is filled from its events and loses the device index",
          "[journal][devices]") {
  Dir dir;
  const std::string path = (dir.path / "old.db").string();
  {
    // The layout before the devices table: JSON bodies and an index on device_id.
    Db db(path);
    db.exec(R"SQL(
      CREATE TABLE events(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, ts_ms INTEGER NOT NULL,
        kind TEXT NOT NULL, device_id TEXT NOT NULL, severity INTEGER NOT NULL,
        keep INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL);
      CREATE INDEX events_ts ON events(ts_ms);
      CREATE INDEX events_device ON events(device_id, ts_ms);
    )SQL");
    auto ins = db.prepare(
        "INSERT INTO events(seq,id,ts_ms,kind,device_id,severity,body) "
        "VALUES(?,?,?,?,?,?,?)");
    std::int64_t seq = 1;
    for (auto [dev, ts] : {std::pair{"x", 100}, {"y", 200}, {"x", 300}}) {
      auto e = from(dev, ts, EventKind::temperature, "zigbee2mqtt");
      ins.bind(1, seq++)
          .bind(2, e.id)
          .bind(3, e.ts_ms)
          .bind(4, "temperature")
          .bind(5, dev)
          .bind(6, 4)
          .bind(7, encode(e))
          .exec();
    }
  }
  JournalOptions o;
  o.path = path;
  auto j = Journal::open(o, nullptr);
  auto devices = load_devices(j->db());
  REQUIRE(devices.size() == 2);
  CHECK(devices[0].device.id == "x");
  CHECK(devices[0].first_seen_ms == 100);
  CHECK(devices[0].last_seen_ms == 300);
  CHECK(devices[0].last_seq == 3);
  CHECK(devices[0].device.name == "x_name");
  CHECK(devices[0].location.building == "3");
  CHECK(j->db().scalar_i64("SELECT count(*) FROM sqlite_master WHERE name='events_device'") == 0);
  // Old JSON rows and new binary rows are read alike.
  j->begin();
  auto e = from("x", 400, EventKind::temperature, "zigbee2mqtt");
  j->append(e);
  j->commit();
  CHECK(query_events(j->db(), EventQuery{}).size() == 4);
}
