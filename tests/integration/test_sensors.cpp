// Integration tests of the sensor drivers' I/O side (drivers/sensors/): ChirpStack and generic
// MQTT through a real Mosquitto on a loopback port and the real LocalBus; Modbus against a real
// libmodbus server on 127.0.0.1. The drivers hand their events to a sink that records them; every
// wait is on a condition with a deadline, never a fixed sleep.
#include <catch2/catch.hpp>

#include <bit>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "anju/drivers/chirpstack_driver.hpp"
#include "anju/drivers/generic_mqtt_driver.hpp"
#include "anju/drivers/modbus_driver.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/mqtt.hpp"
#include "harness.hpp"
#include "modbus_server.hpp"

using namespace anju::it;
using anju::edge::Event;
using anju::edge::EventKind;
namespace drivers = anju::drivers;
namespace modbus = anju::drivers::modbus;

namespace {

// Records what a driver hands over; waits are on a condition variable with a deadline.
class SinkRecorder {
 public:
  std::function<bool(std::vector<Event>)> sink() {
    return [this](std::vector<Event> events) {
      {
        std::lock_guard lock(mu_);
        for (auto& e : events) events_.push_back(std::move(e));
      }
      cv_.notify_all();
      return true;
    };
  }
  bool wait_for(const std::function<bool(const std::vector<Event>&)>& pred,
                std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(events_); });
  }
  std::vector<Event> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return events_.size();
  }
  void clear() {
    std::lock_guard lock(mu_);
    events_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
};

std::size_t count_kind(const std::vector<Event>& es, EventKind k) {
  std::size_t n = 0;
  for (const auto& e : es) n += e.kind == k ? 1 : 0;
  return n;
}

const Event* find_kind(const std::vector<Event>& es, EventKind k, std::size_t from = 0) {
  for (std::size_t i = from; i < es.size(); ++i)
    if (es[i].kind == k) return &es[i];
  return nullptr;
}

const Event* find_value(const std::vector<Event>& es, const std::string& name) {
  for (const auto& e : es)
    if (e.value(name) != nullptr) return &e;
  return nullptr;
}

// Waits until `probe` (a message the driver counts) has reached the driver: the local bus's
// subscription is then live and what is published next reaches it. Re-publishes while waiting,
// since a message published before the SUBACK is not delivered.
void wait_subscribed(Publisher& pub, const std::string& topic, const std::string& payload,
                     const std::function<std::int64_t()>& messages) {
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  const std::int64_t before = messages();
  while (std::chrono::steady_clock::now() < deadline) {
    pub.publish(topic, payload, 1, false);
    if (wait_until([&] { return messages() > before; }, 300ms)) return;
  }
  FAIL("the driver never saw a message on " << topic);
}

constexpr const char* kAppId = "17c82e96-be03-4f38-aef3-f83d48582d97";
constexpr const char* kEui = "24e124329e090021";

std::string up_topic(const std::string& event = "up") {
  return std::string("application/") + kAppId + "/device/" + kEui + "/event/" + event;
}

// A ChirpStack v4 "up" event (Protobuf JSON mapping) of a water sensor with a codec.
std::string uplink(std::uint32_t fcnt, double temperature, bool leak) {
  nlohmann::json j = nlohmann::json::parse(R"json({
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2026-11-30T08:16:15.688878229+00:00",
    "deviceInfo": {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "ChirpStack",
                   "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
                   "applicationName": "compound-sensors",
                   "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
                   "deviceProfileName": "pump-room-water", "deviceName": "pump-room-b3",
                   "devEui": "24E124329E090021", "deviceClassEnabled": "CLASS_A", "tags": {}},
    "devAddr": "00189440", "adr": true, "dr": 5, "fPort": 85, "confirmed": false,
    "data": "AXVXA2c4AASCXAgFAAA=",
    "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -97,
                "snr": 4.25, "channel": 2, "context": "E3OWOQ=="}],
    "txInfo": {"frequency": 867100000}})json");
  j["fCnt"] = fcnt;
  j["object"] = {{"temperature", temperature}, {"leak", leak ? "wet" : "dry"}};
  return j.dump();
}

std::string status_json() {
  return R"json({"deduplicationId": "a0047d3f-b432-4400-8ef8-ed8fad4c9025",
    "time": "2026-11-30T08:16:15.688878229+00:00",
    "deviceInfo": {"applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
                   "deviceProfileName": "pump-room-water", "deviceName": "pump-room-b3",
                   "devEui": "24e124329e090021", "tags": {}},
    "margin": 10, "externalPowerSource": false, "batteryLevelUnavailable": false,
    "batteryLevel": 66.5})json";
}

drivers::ChirpStackOptions chirpstack_options() {
  drivers::ChirpStackOptions o;
  o.site = "demo-compound";
  o.grid_code = "11010500100200300001";
  anju::drivers::chirpstack::DeviceMapping m;
  m.device_kind = "water_sensor";
  anju::drivers::chirpstack::ObjectField temp;
  temp.path = "temperature";
  temp.kind = EventKind::temperature;
  temp.unit = "C";
  anju::drivers::chirpstack::ObjectField leak;
  leak.path = "leak";
  leak.kind = EventKind::water_leak;
  m.object_fields = {temp, leak};
  o.mappings.by_profile["pump-room-water"] = m;
  anju::drivers::sensors::DeviceSettings s;
  s.location = {"3", "", "pump room"};
  s.gb28181 = "34020000001320000042";
  o.devices[kEui] = s;
  return o;
}

anju::edge::MqttEndpoint local_endpoint(const Mosquitto& broker, const std::string& client) {
  anju::edge::MqttEndpoint ep;
  ep.uri = broker.uri();
  ep.client_id = client;
  ep.mqtt_version = 5;
  return ep;
}

}  // namespace

TEST_CASE("sensors: ChirpStack uplinks and status through Mosquitto become events", "[sensors]") {
  Mosquitto broker;
  broker.start();
  anju::edge::SystemClock clock;
  SinkRecorder rec;
  drivers::ChirpStackDriver driver(chirpstack_options(), clock, rec.sink());
  anju::edge::LocalBus bus(local_endpoint(broker, "anju-it-chirpstack"));
  driver.attach(bus);
  bus.start();
  Publisher pub(broker.uri());
  // An event type the driver ignores, to know when the subscription is live.
  wait_subscribed(pub, up_topic("log"), "{}", [&] { return driver.stats().messages; });
  INFO("mosquitto log:\n" << tail(broker.log(), 2000));

  // An uplink: temperature, water leak and the radio measurement, stamped and placed.
  pub.publish(up_topic(), uplink(100, 21.5, true), 1, false);
  REQUIRE(rec.wait_for([](const auto& es) { return es.size() >= 3; }, 10s));
  {
    const auto es = rec.events();
    REQUIRE(es.size() == 3);
    const Event* t = find_kind(es, EventKind::temperature);
    REQUIRE(t != nullptr);
    REQUIRE(t->value("temperature"));
    CHECK(t->value("temperature")->value == Approx(21.5));
    CHECK(t->value("temperature")->unit == "C");
    CHECK(t->device.id == kEui);
    CHECK(t->device.kind == "water_sensor");
    CHECK(t->device.name == "pump-room-b3");
    CHECK(t->device.gb28181 == "34020000001320000042");
    CHECK(t->site == "demo-compound");
    CHECK(t->grid_code == "11010500100200300001");
    CHECK(t->location.building == "3");
    CHECK(t->location.room == "pump room");
    CHECK(t->source == "chirpstack");
    CHECK(t->attrs["fcnt"] == 100);
    CHECK(t->attrs["rssi"] == -97);
    CHECK_FALSE(t->id.empty());
    CHECK(t->ts_ms > 0);
    CHECK_FALSE(t->source_key.empty());  // the MQTT message's key, for redelivery checks
    const Event* leak = find_kind(es, EventKind::water_leak);
    REQUIRE(leak != nullptr);
    REQUIRE(leak->active);
    CHECK(*leak->active);
    CHECK(leak->severity == 3);
    const Event* radio = find_value(es, "rssi");
    REQUIRE(radio != nullptr);
    CHECK(radio->value("rssi")->unit == "dBm");
    CHECK(radio->value("snr")->value == 4.25);
  }

  // Status: battery in %.
  pub.publish(up_topic("status"), status_json(), 1, false);
  REQUIRE(
      rec.wait_for([](const auto& es) { return count_kind(es, EventKind::battery) == 1; }, 10s));
  {
    const auto es = rec.events();
    const Event* b = find_kind(es, EventKind::battery);
    CHECK(b->value("battery")->value == 66.5);
    CHECK(b->value("battery")->unit == "%");
    CHECK(b->attrs["margin"] == 10);
    CHECK(b->location.room == "pump room");
  }

  // The same fCnt again (a second integration path, a late copy): dropped and counted.
  rec.clear();
  pub.publish(up_topic(), uplink(100, 22.0, false), 1, false);
  REQUIRE(wait_until([&] { return driver.stats().duplicates == 1; }, 10s));
  // A malformed payload and one with a bad field: counted by reason, nothing submitted.
  pub.publish(up_topic(), "{\"deviceInfo\": ", 1, false);
  pub.publish(up_topic(), uplink(101, 22.0, false).replace(0, 1, "["), 1, false);
  auto bad = nlohmann::json::parse(uplink(102, 22.0, false));
  bad["fCnt"] = "lots";
  pub.publish(up_topic(), bad.dump(), 1, false);
  REQUIRE(wait_until([&] { return driver.stats().parse_errors == 3; }, 10s));
  // ... and the next good one still arrives.
  pub.publish(up_topic(), uplink(103, 23.0, false), 1, false);
  REQUIRE(rec.wait_for([](const auto& es) { return es.size() >= 3; }, 10s));
  const auto es = rec.events();
  CHECK(es.size() == 3);
  REQUIRE(find_kind(es, EventKind::temperature));
  CHECK(find_kind(es, EventKind::temperature)->value("temperature")->value == Approx(23.0));
  CHECK(find_kind(es, EventKind::temperature)->attrs["fcnt"] == 103);
  CHECK_FALSE(*find_kind(es, EventKind::water_leak)->active);

  const auto st = driver.stats();
  CHECK(st.duplicates == 1);
  CHECK(st.parse_errors == 3);
  CHECK(st.errors_by_reason.at("invalid_json") == 2);
  CHECK(st.errors_by_reason.at("bad_field") == 1);
  CHECK(st.events == 3 + 1 + 3);
  CHECK(st.ignored >= 1);
  bus.stop();
}

TEST_CASE("sensors: a generic MQTT mapping turns a vendor's JSON into events", "[sensors]") {
  Mosquitto broker;
  broker.start();
  anju::edge::SystemClock clock;
  SinkRecorder rec;

  namespace gm = anju::drivers::generic_mqtt;
  drivers::GenericMqttOptions o;
  o.site = "demo-compound";
  o.grid_code = "11010500100200300001";
  gm::Mapping m;
  m.name = "pump_controller";
  m.topic = "vendor/acme/{building}/+device/tele";
  m.device_kind = "pump_controller";
  m.timestamp_pointer = "/ts";
  m.timestamp_unit = gm::TimestampUnit::seconds;
  gm::FieldMap level{.pointer = "/tank/level", .kind = EventKind::water_level, .unit = "m"};
  level.scale = 0.01;
  gm::FieldMap pressure{.pointer = "/main/kpa", .kind = EventKind::pressure, .unit = "kPa"};
  gm::FieldMap fault{.pointer = "/status", .kind = EventKind::equipment_fault};
  fault.active.active_values = {"FAULT"};
  fault.active.inactive_values = {"RUN", "STOP"};
  m.fields = {level, pressure, fault};
  // A second mapping, another topic of the same vendor.
  gm::Mapping other;
  other.name = "leak_strip";
  other.topic = "vendor/acme/+/+device/leak";
  other.fields = {gm::FieldMap{.pointer = "/wet", .kind = EventKind::water_leak}};
  o.mappings = {m, other};
  anju::drivers::sensors::DeviceSettings s;
  s.name = "Pump controller B3";
  s.location.room = "pump room";
  o.devices["pump-7"] = s;

  drivers::GenericMqttDriver driver(o, clock, rec.sink());
  CHECK(driver.subscriptions() ==
        std::vector<std::string>{"vendor/acme/+/+/tele", "vendor/acme/+/+/leak"});
  anju::edge::LocalBus bus(local_endpoint(broker, "anju-it-generic"));
  driver.attach(bus);
  bus.start();
  Publisher pub(broker.uri());
  wait_subscribed(pub, "vendor/acme/3/probe/leak", "{}", [&] { return driver.stats().messages; });

  pub.publish("vendor/acme/3/pump-7/tele",
              R"({"ts": 1764490000, "tank": {"level": 235}, "main": {"kpa": 412.5},
                  "status": "FAULT"})",
              1, false);
  REQUIRE(rec.wait_for([](const auto& es) { return es.size() >= 3; }, 10s));
  auto es = rec.events();
  REQUIRE(es.size() == 3);
  const Event* lv = find_kind(es, EventKind::water_level);
  REQUIRE(lv != nullptr);
  REQUIRE(lv->value("water_level"));  // a reading kind's value is named after the kind
  CHECK(lv->value("water_level")->value == Approx(2.35));
  CHECK(lv->value("water_level")->unit == "m");
  CHECK(lv->device.id == "pump-7");
  CHECK(lv->device.kind == "pump_controller");
  CHECK(lv->device.name == "Pump controller B3");
  CHECK(lv->location.building == "3");      // from the topic
  CHECK(lv->location.room == "pump room");  // from config
  CHECK(lv->site == "demo-compound");
  CHECK(lv->attrs["device_ts_ms"] == 1764490000000LL);
  CHECK(lv->source == "generic_mqtt");
  const Event* pr = find_kind(es, EventKind::pressure);
  REQUIRE(pr != nullptr);
  REQUIRE(pr->value("pressure"));
  CHECK(pr->value("pressure")->value == 412.5);
  CHECK(pr->value("pressure")->unit == "kPa");
  const Event* f = find_kind(es, EventKind::equipment_fault);
  REQUIRE(f != nullptr);
  CHECK(*f->active);
  CHECK(f->severity == 3);

  // A value of the wrong type is counted; the other fields still arrive.
  rec.clear();
  pub.publish("vendor/acme/3/pump-7/tele", R"({"tank": {"level": "high"}, "status": "RUN"})", 1,
              false);
  REQUIRE(rec.wait_for([](const auto& es2) { return !es2.empty(); }, 10s));
  REQUIRE(wait_until([&] { return driver.stats().parse_errors == 1; }, 5s));
  es = rec.events();
  REQUIRE(es.size() == 1);
  CHECK(es[0].kind == EventKind::equipment_fault);
  CHECK_FALSE(*es[0].active);
  CHECK(driver.stats().errors_by_reason.at("bad_value") == 1);

  // The second mapping.
  rec.clear();
  pub.publish("vendor/acme/2/strip-1/leak", R"({"wet": true})", 1, false);
  REQUIRE(rec.wait_for([](const auto& es2) { return !es2.empty(); }, 10s));
  es = rec.events();
  CHECK(es[0].kind == EventKind::water_leak);
  CHECK(es[0].device.id == "strip-1");
  CHECK(*es[0].active);
  CHECK(driver.stats().messages_by_mapping.at("leak_strip") >= 2);
  bus.stop();
}

// ---- Modbus
// --------------------------------------------------------------------------------------

namespace {

std::uint16_t swap16(std::uint16_t v) {
  return static_cast<std::uint16_t>((v << 8) | (v >> 8));
}

// Two registers holding a 32-bit value `bits` in the given word order.
std::pair<std::uint16_t, std::uint16_t> words_of(std::uint32_t bits, modbus::WordOrder order) {
  const auto hi = static_cast<std::uint16_t>(bits >> 16);
  const auto lo = static_cast<std::uint16_t>(bits & 0xFFFF);
  switch (order) {
    case modbus::WordOrder::ABCD:
      return {hi, lo};
    case modbus::WordOrder::CDAB:
      return {lo, hi};
    case modbus::WordOrder::BADC:
      return {swap16(hi), swap16(lo)};
    case modbus::WordOrder::DCBA:
      return {swap16(lo), swap16(hi)};
  }
  return {hi, lo};
}

modbus::RegisterEntry reg(const std::string& name, std::uint8_t function, std::uint32_t address,
                          modbus::DataType type,
                          modbus::WordOrder order = modbus::WordOrder::ABCD) {
  modbus::RegisterEntry e;
  e.name = name;
  e.function = function;
  e.address = address;
  e.type = type;
  e.count = modbus::register_count(type);
  e.order = order;
  return e;
}

drivers::ModbusDeviceConfig tcp_device(const std::string& id, int port) {
  drivers::ModbusDeviceConfig d;
  d.id = id;
  d.kind = "pump_controller";
  d.host = "127.0.0.1";
  d.port = port;
  d.unit_id = 1;
  d.poll_interval_ms = 1000;
  d.timeout_ms = 150;
  d.retries = 1;
  d.refresh_polls = 3;
  d.settings.location = {"3", "", "pump room"};
  return d;
}

// Steps the clock by one poll interval and wakes the driver until it has done `target` polls.
bool wait_polls(drivers::ModbusDriver& drv, anju::edge::ManualClock& clock, std::int64_t target,
                std::int64_t step_ms = 1000) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (drv.stats().polls < target) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    const std::int64_t before = drv.stats().polls;
    clock.advance_ms(step_ms);
    drv.wake();
    wait_until([&] { return drv.stats().polls > before; }, 2s, 2ms);
  }
  return true;
}

}  // namespace

TEST_CASE("sensors: Modbus TCP register maps of every type and word order decode", "[sensors]") {
  ModbusServer server;
  server.start();
  const float f = 123.456f;
  const auto fbits = std::bit_cast<std::uint32_t>(f);
  const std::int32_t neg = -123456;
  const auto ibits = std::bit_cast<std::uint32_t>(neg);
  const modbus::WordOrder orders[] = {modbus::WordOrder::ABCD, modbus::WordOrder::CDAB,
                                      modbus::WordOrder::BADC, modbus::WordOrder::DCBA};
  auto dev = tcp_device("pump-b3", server.port());
  for (int i = 0; i < 4; ++i) {
    auto [a, b] = words_of(fbits, orders[i]);
    server.set_holding(10 + 2 * i, a);
    server.set_holding(11 + 2 * i, b);
    dev.registers.push_back(reg("f_" + std::string(modbus::to_string(orders[i])), 3,
                                static_cast<std::uint32_t>(10 + 2 * i), modbus::DataType::float32,
                                orders[i]));
    auto [c, d] = words_of(ibits, orders[i]);
    server.set_input(20 + 2 * i, c);
    server.set_input(21 + 2 * i, d);
    dev.registers.push_back(reg("i_" + std::string(modbus::to_string(orders[i])), 4,
                                static_cast<std::uint32_t>(20 + 2 * i), modbus::DataType::int32,
                                orders[i]));
  }
  server.set_holding(0, static_cast<std::uint16_t>(-250));  // int16 -250, scale 0.1 -> -25.0
  auto t = reg("temperature", 3, 0, modbus::DataType::int16);
  t.kind = EventKind::temperature;
  t.scale = 0.1;
  t.unit = "C";
  dev.registers.push_back(t);
  server.set_holding(1, swap16(4321));  // uint16, byte-swapped
  dev.registers.push_back(reg("u16_badc", 3, 1, modbus::DataType::uint16, modbus::WordOrder::BADC));
  server.set_input(40, 0x0000);  // uint32 65536 in CDAB: low word first
  server.set_input(41, 0x0001);
  dev.registers.push_back(
      reg("u32_cdab", 4, 40, modbus::DataType::uint32, modbus::WordOrder::CDAB));
  server.set_coil(5, true);
  auto pump = reg("pump_fault", 1, 5, modbus::DataType::boolean);
  pump.kind = EventKind::equipment_fault;
  dev.registers.push_back(pump);
  server.set_discrete(3, false);
  auto fire = reg("fire_alarm", 2, 3, modbus::DataType::boolean);
  fire.kind = EventKind::equipment_alarm;
  dev.registers.push_back(fire);
  server.set_holding(50, 0x0004);  // bit 2 of a status word
  auto door = reg("door", 3, 50, modbus::DataType::uint16);
  door.kind = EventKind::contact;
  door.bit = 2;
  dev.registers.push_back(door);

  anju::edge::ManualClock clock;
  SinkRecorder rec;
  drivers::ModbusOptions opts;
  opts.site = "demo-compound";
  opts.devices = {dev};
  drivers::ModbusDriver driver(opts, clock, rec.sink());
  driver.start();
  const std::size_t n_entries = dev.registers.size();
  REQUIRE(rec.wait_for([&](const auto& es) { return es.size() >= n_entries; }, 10s));
  auto es = rec.events();
  REQUIRE(es.size() == n_entries);
  for (const auto o : orders) {
    const std::string fo = "f_" + std::string(modbus::to_string(o));
    const std::string io = "i_" + std::string(modbus::to_string(o));
    INFO(fo);
    REQUIRE(find_value(es, fo));
    CHECK(find_value(es, fo)->value(fo)->value == Approx(123.456).epsilon(1e-6));
    REQUIRE(find_value(es, io));
    CHECK(find_value(es, io)->value(io)->value == -123456);
  }
  const Event* temp = find_value(es, "temperature");
  REQUIRE(temp);
  CHECK(temp->kind == EventKind::temperature);
  CHECK(temp->value("temperature")->value == Approx(-25.0));
  CHECK(temp->value("temperature")->unit == "C");
  CHECK(temp->device.id == "pump-b3");
  CHECK(temp->device.kind == "pump_controller");
  CHECK(temp->location.room == "pump room");
  CHECK(temp->site == "demo-compound");
  CHECK(temp->source == "modbus");
  CHECK(find_value(es, "u16_badc")->value("u16_badc")->value == 4321);
  CHECK(find_value(es, "u32_cdab")->value("u32_cdab")->value == 65536);
  REQUIRE(find_kind(es, EventKind::equipment_fault));
  CHECK(*find_kind(es, EventKind::equipment_fault)->active);
  CHECK_FALSE(*find_kind(es, EventKind::equipment_alarm)->active);
  CHECK(*find_kind(es, EventKind::contact)->active);
  CHECK(count_kind(es, EventKind::device_offline) == 0);
  CHECK(count_kind(es, EventKind::device_online) == 0);
  // Adjacent entries of one function went in one request: holding 0..1, 10..17, 50; input
  // 20..27, 40..41; coil 5; discrete 3.
  CHECK(driver.stats().requests == 7);
  CHECK(driver.stats().registers == 2 + 8 + 1 + 8 + 2 + 1 + 1);

  // Second poll: numbers again, binary kinds only on change (the fire alarm goes on).
  rec.clear();
  server.set_discrete(3, true);
  REQUIRE(wait_polls(driver, clock, 2));
  es = rec.events();
  CHECK(es.size() == n_entries - 3 + 1);
  REQUIRE(find_kind(es, EventKind::equipment_alarm));
  CHECK(*find_kind(es, EventKind::equipment_alarm)->active);
  CHECK(find_kind(es, EventKind::equipment_alarm)->severity == 2);
  CHECK_FALSE(find_kind(es, EventKind::contact));
  // Third: nothing changed. Fourth (refresh_polls 3): every binary kind again, marked a refresh.
  rec.clear();
  REQUIRE(wait_polls(driver, clock, 3));
  CHECK(rec.size() == n_entries - 3);
  rec.clear();
  REQUIRE(wait_polls(driver, clock, 4));
  es = rec.events();
  CHECK(es.size() == n_entries);
  REQUIRE(find_kind(es, EventKind::contact));
  CHECK(find_kind(es, EventKind::contact)->attrs["refresh"] == true);
  driver.stop();
  server.stop();
}

TEST_CASE("sensors: a Modbus device that stops answering goes offline once and comes back",
          "[sensors]") {
  ModbusServer server;
  server.start();
  server.set_holding(0, 42);
  auto dev = tcp_device("panel-1", server.port());
  dev.registers = {reg("level", 3, 0, modbus::DataType::uint16)};
  anju::edge::ManualClock clock;
  SinkRecorder rec;
  drivers::ModbusOptions opts;
  opts.devices = {dev};
  opts.backoff_min_ms = 1000;
  opts.backoff_max_ms = 1000;
  drivers::ModbusDriver driver(opts, clock, rec.sink());
  driver.start();
  REQUIRE(rec.wait_for([](const auto& es) { return es.size() == 1; }, 10s));

  // Silent: requests are read and never answered -> timeouts, retried once, then offline.
  server.set_silent(true);
  REQUIRE(wait_polls(driver, clock, 3));
  auto es = rec.events();
  INFO("events: " << es.size());
  REQUIRE(count_kind(es, EventKind::device_offline) == 1);  // once, not per poll
  const Event* off = find_kind(es, EventKind::device_offline);
  const std::string reason = off->attrs["reason"];
  CHECK(reason == "no answer within 150 ms reading holding registers 0..0 (2 attempts)");
  CHECK(off->severity == 3);
  CHECK(off->device.id == "panel-1");
  CHECK(driver.stats().timeouts >= 4);
  CHECK(driver.stats().devices.at(0).online == false);

  // It answers again: device_online once, and readings again.
  server.set_silent(false);
  server.set_holding(0, 43);
  rec.clear();
  REQUIRE(wait_polls(driver, clock, 5));
  es = rec.events();
  REQUIRE(count_kind(es, EventKind::device_online) == 1);
  CHECK(es.front().kind == EventKind::device_online);
  CHECK(find_value(es, "level")->value("level")->value == 43);
  CHECK(driver.stats().devices.at(0).online);

  // The server goes away: connection refused -> offline with that reason; back -> online.
  rec.clear();
  server.stop();
  REQUIRE(wait_polls(driver, clock, 8));
  es = rec.events();
  REQUIRE(count_kind(es, EventKind::device_offline) == 1);
  const std::string refused = find_kind(es, EventKind::device_offline)->attrs["reason"];
  INFO(refused);
  // Either the open connection reports the close first, or the reconnect is refused.
  CHECK((refused.find("Connection refused") != std::string::npos ||
         refused.find("Connection reset") != std::string::npos ||
         refused.find("connection") != std::string::npos));
  REQUIRE(wait_polls(driver, clock, 10));
  CHECK(driver.stats().devices.at(0).last_error.find("Connection refused") != std::string::npos);
  CHECK(driver.stats().connect_failures >= 1);
  server.start();  // the same port
  rec.clear();
  const std::int64_t polls = driver.stats().polls;
  REQUIRE(wait_polls(driver, clock, polls + 3));
  es = rec.events();
  CHECK(count_kind(es, EventKind::device_online) == 1);
  CHECK(find_value(es, "level") != nullptr);
  driver.stop();
}

TEST_CASE("sensors: Modbus exception replies are reported with their meaning", "[sensors]") {
  ModbusServer server(8, 8, 16, 16);  // 16 holding registers: address 100 does not exist
  server.start();
  server.set_holding(2, 7);
  auto bad = tcp_device("bad-map", server.port());
  bad.registers = {reg("nowhere", 3, 100, modbus::DataType::uint16)};
  auto partial = tcp_device("partial-map", server.port());
  partial.unit_id = 2;
  partial.registers = {reg("good", 3, 2, modbus::DataType::uint16),
                       reg("missing", 4, 200, modbus::DataType::uint16)};
  anju::edge::ManualClock clock;
  SinkRecorder rec;
  drivers::ModbusOptions opts;
  opts.devices = {bad, partial};
  drivers::ModbusDriver driver(opts, clock, rec.sink());
  driver.start();
  REQUIRE(rec.wait_for(
      [](const auto& es) {
        return count_kind(es, EventKind::device_offline) == 1 && find_value(es, "good");
      },
      10s));
  const auto es = rec.events();
  const Event* off = find_kind(es, EventKind::device_offline);
  CHECK(off->device.id == "bad-map");
  // The exception's meaning, as modbus::exception_text gives it.
  const std::string meaning =
      "Illegal Data Address: the address (or address + count) is not valid in the device";
  CHECK(modbus::exception_text(2) == meaning);
  CHECK(off->attrs["reason"] == "exception 2 (" + meaning + ") reading holding registers 100..100");
  // The device that answered part of its map stays online; the failing part is its last error.
  const auto st = driver.stats();
  CHECK(st.exceptions == 2);  // not retried
  CHECK(st.requests == 3);
  REQUIRE(st.devices.size() == 2);
  CHECK_FALSE(st.devices[0].online);
  CHECK(st.devices[1].online);
  CHECK(st.devices[1].last_error ==
        "exception 2 (" + meaning + ") reading input registers 200..200");
  CHECK(find_value(es, "good")->value("good")->value == 7);
  driver.stop();
}

TEST_CASE("sensors: Modbus config problems are named, stop() is prompt", "[sensors]") {
  drivers::ModbusOptions opts;
  drivers::ModbusDeviceConfig d;
  d.id = "x";
  d.host = "";
  d.registers = {reg("v", 3, 0, modbus::DataType::int32)};
  d.registers[0].count = 1;
  drivers::ModbusDeviceConfig r;
  r.id = "x";
  r.transport = drivers::ModbusTransport::rtu;
  r.serial.device = "/dev/ttyUSB0";
  r.serial.parity = 'X';
  opts.devices = {d, r};
  const auto errors = drivers::validate(opts);
  CHECK(errors == std::vector<std::string>{
                      "devices[0].host: must not be empty for tcp",
                      "devices[0].registers[0].count: int32 needs 2 registers, not 1",
                      "devices[1].id: 'x' is used twice",
                      "devices[1].serial.parity: must be N, E or O",
                      "devices[1].registers: at least one is needed",
                  });
  anju::edge::SystemClock clock;
  CHECK_THROWS_WITH(drivers::ModbusDriver(opts, clock, [](std::vector<Event>) { return true; }),
                    Catch::Contains("devices[1].serial.parity"));

  // A device that never answers (a port nobody listens on) and a long poll interval: stop()
  // returns promptly instead of waiting for the next poll.
  const int port = pick_free_port();
  auto dev = tcp_device("nobody", port);
  dev.registers = {reg("v", 3, 0, modbus::DataType::uint16)};
  dev.poll_interval_ms = 3'600'000;
  drivers::ModbusOptions o2;
  o2.devices = {dev};
  SinkRecorder rec;
  drivers::ModbusDriver driver(o2, clock, rec.sink());
  driver.start();
  REQUIRE(rec.wait_for([](const auto& es) { return es.size() == 1; }, 10s));
  CHECK(rec.events()[0].kind == EventKind::device_offline);
  CHECK(rec.events()[0].attrs["reason"] ==
        "connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
  const auto t0 = std::chrono::steady_clock::now();
  driver.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 500ms);
}

TEST_CASE("sensors: Modbus RTU over a pseudo-terminal: two units share one serial line",
          "[sensors]") {
  ModbusRtuServer server(7);
  server.set_holding(3, 0x4120);  // float32 10.0 in ABCD: 0x41200000
  server.set_holding(4, 0x0000);
  drivers::ModbusDeviceConfig meter;
  meter.id = "water-meter-7";
  meter.transport = drivers::ModbusTransport::rtu;
  meter.serial.device = server.serial_path();
  meter.serial.baud = 19200;
  meter.serial.parity = 'E';
  meter.unit_id = 7;
  meter.poll_interval_ms = 1000;
  meter.timeout_ms = 150;
  meter.retries = 0;
  auto flow = reg("flow", 3, 3, modbus::DataType::float32);
  flow.unit = "m3/h";
  meter.registers = {flow};
  auto absent = meter;  // a unit nobody answers for, on the same line
  absent.id = "water-meter-9";
  absent.unit_id = 9;

  anju::edge::ManualClock clock;
  SinkRecorder rec;
  drivers::ModbusOptions opts;
  opts.devices = {meter, absent};
  drivers::ModbusDriver driver(opts, clock, rec.sink());
  driver.start();
  REQUIRE(rec.wait_for(
      [](const auto& es) {
        return find_value(es, "flow") && count_kind(es, EventKind::device_offline) == 1;
      },
      10s));
  const auto es = rec.events();
  const Event* f = find_value(es, "flow");
  CHECK(f->device.id == "water-meter-7");
  CHECK(f->value("flow")->value == Approx(10.0));
  CHECK(f->value("flow")->unit == "m3/h");
  const Event* off = find_kind(es, EventKind::device_offline);
  CHECK(off->device.id == "water-meter-9");
  CHECK(off->attrs["reason"] ==
        "no answer within 150 ms reading holding registers 3..4 (1 attempt)");
  CHECK(off->attrs["bus"] == "rtu " + server.serial_path());
  CHECK(server.requests() == 1);
  driver.stop();
}

TEST_CASE("local bus: a burst of QoS 1 publishes all arrive, in order, over MQTT 3.1.1 and 5",
          "[local_bus]") {
  // One commit can publish hundreds of alert changes at once. Paho's client refused a publish
  // while 100 were queued in it (11,567 of 15,000 local alert messages lost in bench_e2e at
  // 5,000/s); over MQTT 5 it held what exceeded the broker's Receive Maximum (Mosquitto's default,
  // 20, here) and sent that only slowly (539 of 2,000 in 20 s). LocalBus now queues them itself
  // and hands Paho a window at a time.
  const int version = GENERATE(3, 5);
  CAPTURE(version);
  Mosquitto broker;
  broker.start();
  Collector got(broker.uri(), "anju-it/burst/#");
  auto ep = local_endpoint(broker, "anju-it-burst");
  ep.mqtt_version = version;
  anju::edge::LocalBus bus(ep);
  bus.start();
  REQUIRE(wait_until([&] { return bus.connected(); }, 10s));
  // Mosquitto's default max_inflight_messages, 20, is its Receive Maximum over MQTT 5.
  CHECK(bus.window() == (version == 5 ? 20 : anju::edge::LocalBus::kWindow));
  constexpr int kBurst = 2'000;
  constexpr int kTopics = 50;
  static_assert(kBurst > 20 * anju::edge::LocalBus::kWindow);
  static_assert(kBurst < anju::edge::LocalBus::kMaxBufferedPublishes);
  for (int i = 0; i < kBurst; ++i)
    bus.publish("anju-it/burst/" + std::to_string(i % kTopics),
                std::to_string(i) + ":" + std::string(300, 'x'), 1, i % 2 == 0);
  CHECK(bus.publish_dropped() == 0);
  CHECK(got.wait_for_progress([](const auto& ms) { return ms.size() >= kBurst; }, 20s, 5s));
  const auto ms = got.messages();
  CHECK(ms.size() == kBurst);
  // Per topic, in the order published (a retained alert's last state must be its newest).
  std::map<std::string, int> last;
  int out_of_order = 0;
  for (const auto& m : ms) {
    const int i = std::stoi(m.payload.substr(0, m.payload.find(':')));
    auto [it, fresh] = last.emplace(m.topic, i);
    if (!fresh && i <= it->second) ++out_of_order;
    it->second = i;
  }
  CHECK(out_of_order == 0);
  CHECK(bus.publish_queued() == 0);
  bus.stop();
}

TEST_CASE("local bus: publishes queued while disconnected go out after the connect",
          "[local_bus]") {
  Mosquitto broker;
  broker.start();
  Collector got(broker.uri(), "anju-it/early/#");
  anju::edge::LocalBus bus(local_endpoint(broker, "anju-it-early"));
  for (int i = 0; i < 100; ++i)
    bus.publish("anju-it/early/" + std::to_string(i % 5), std::to_string(i), 1, false);
  CHECK(bus.publish_queued() == 100);
  CHECK(bus.publish_dropped() == 0);
  bus.start();
  CHECK(got.wait_for([](const auto& ms) { return ms.size() >= 100; }, 20s));
  const auto ms = got.messages();
  REQUIRE(ms.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(ms[static_cast<std::size_t>(i)].payload == std::to_string(i));
  CHECK(bus.publish_queued() == 0);
  bus.stop();
}

TEST_CASE("local bus: publishes made in a Batch go out, in order, when it ends", "[local_bus]") {
  Mosquitto broker;
  broker.start();
  Collector got(broker.uri(), "anju-it/batch/#");
  anju::edge::LocalBus bus(local_endpoint(broker, "anju-it-batch"));
  bus.start();
  REQUIRE(wait_until([&] { return bus.connected(); }, 10s));
  {
    anju::edge::LocalBus::Batch batch(bus);
    for (int i = 0; i < 10; ++i)
      bus.publish("anju-it/batch/" + std::to_string(i % 3), std::to_string(i), 1, i % 2 == 0);
    CHECK(bus.publish_queued() == 10);  // nothing in flight, so nothing pumps before the end
  }
  CHECK(got.wait_for([](const auto& ms) { return ms.size() >= 10; }, 10s));
  const auto ms = got.messages();
  REQUIRE(ms.size() == 10);
  for (int i = 0; i < 10; ++i) CHECK(ms[static_cast<std::size_t>(i)].payload == std::to_string(i));
  CHECK(bus.publish_queued() == 0);
  bus.stop();
}

TEST_CASE("local bus: a full queue drops its oldest publishes, never the newest", "[local_bus]") {
  // A long outage of the compound's broker: what is queued is bounded, and the newest state of
  // each alert (the last messages) is what must get through.
  Mosquitto broker;
  broker.start();
  Collector got(broker.uri(), "anju-it/full/#");
  anju::edge::LocalBus bus(local_endpoint(broker, "anju-it-full"));
  constexpr int kMax = anju::edge::LocalBus::kMaxBufferedPublishes;
  constexpr int kOver = 5;
  for (int i = 0; i < kMax + kOver; ++i)
    bus.publish("anju-it/full/" + std::to_string(i % 10), std::to_string(i), 1, false);
  CHECK(bus.publish_dropped() == kOver);
  CHECK(bus.publish_queued() == static_cast<std::size_t>(kMax));
  bus.start();
  CHECK(got.wait_for_progress([&](const auto& ms) { return ms.size() >= kMax; }, 60s, 10s));
  const auto ms = got.messages();
  REQUIRE(ms.size() == static_cast<std::size_t>(kMax));
  CHECK(ms.front().payload == std::to_string(kOver));
  CHECK(ms.back().payload == std::to_string(kMax + kOver - 1));
  CHECK(bus.retained_resynced() == 0);  // nothing retained was dropped
  bus.stop();
}

TEST_CASE("local bus: a retained publish dropped from a full queue is resynchronised",
          "[local_bus]") {
  // An alert's clearing (an empty retained message) dropped in a long outage would leave the
  // broker showing the alert open to every new client, for good. The topics of dropped retained
  // publishes go to the owner once the queue has drained, which publishes their current state.
  Mosquitto broker;
  broker.start();
  const std::string alert = "anju-it/stale/alert/1";
  {
    Collector before(broker.uri(), alert);
    before.publish(alert, "open", 1, true);  // on the broker before the outage
  }
  anju::edge::LocalBus bus(local_endpoint(broker, "anju-it-stale"));
  std::mutex mu;
  std::vector<std::string> stale;
  int calls = 0;
  bus.on_stale_retained([&](const std::vector<std::string>& topics) {
    for (const auto& t : topics) bus.publish(t, "closed", 1, true);  // the owner's current state
    std::lock_guard lock(mu);
    stale.insert(stale.end(), topics.begin(), topics.end());
    ++calls;
  });
  bus.publish(alert, "", 1, true);  // queued first, while the broker is away ...
  for (int i = 0; i < anju::edge::LocalBus::kMaxBufferedPublishes; ++i)  // ... and pushed out
    bus.publish("anju-it/stale/other/" + std::to_string(i % 10), std::to_string(i), 1, false);
  CHECK(bus.publish_dropped() == 1);
  bus.start();
  REQUIRE(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return calls > 0;
      },
      60s));
  {
    std::lock_guard lock(mu);
    CHECK(calls == 1);
    CHECK(stale == std::vector<std::string>{alert});
  }
  CHECK(bus.retained_resynced() == 1);
  // A client subscribing now ends up with the current state, not the one before the outage.
  Collector after(broker.uri(), alert);
  CHECK(after.wait_for([](const auto& ms) { return !ms.empty() && ms.back().payload == "closed"; },
                       10s));
  bus.stop();
}
