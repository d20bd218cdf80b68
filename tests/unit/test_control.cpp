// anjud's control socket: the request parser names what is wrong, and a test event is planned
// from the devices the journal knows (control.hpp).
#include <catch2/catch.hpp>

#include "anju/firmware/control.hpp"

using namespace anju::firmware;

TEST_CASE("control requests: what each command takes, and what is wrong", "[control]") {
  auto ok = [](std::string_view text) {
    auto r = parse_control_request(text);
    INFO(text << " -> " << r.error);
    REQUIRE(r.request);
    return *r.request;
  };
  auto err = [](std::string_view text) {
    auto r = parse_control_request(text);
    INFO(text);
    REQUIRE_FALSE(r.request);
    return r.error;
  };
  CHECK(ok("").cmd == ControlCmd::status);  // older clients send nothing
  CHECK(ok(" \n").cmd == ControlCmd::status);
  CHECK(ok(R"({"cmd":"status"})").cmd == ControlCmd::status);
  CHECK(ok(R"({"cmd":"drain-now"})").cmd == ControlCmd::drain_now);
  const auto t =
      ok(R"({"cmd":"test-event","target":"smoke_3_2_hall","kind":"smoke","timeout_ms":5000})");
  CHECK(t.cmd == ControlCmd::test_event);
  CHECK(t.target == "smoke_3_2_hall");
  CHECK(t.kind == "smoke");
  CHECK(t.timeout_ms == 5000);
  CHECK(ok(R"({"cmd":"test-event","target":"smoke"})").timeout_ms == 30'000);

  CHECK(err("status") == "the request is not JSON");
  CHECK(err("[]") == "the request must be a JSON object");
  CHECK(err("{}") == "member 'cmd' (status, drain-now or test-event) is missing or not a string");
  CHECK(err(R"({"cmd":"reboot"})") == "unknown cmd 'reboot' (status, drain-now or test-event)");
  CHECK(err(R"({"cmd":"drain-now","target":"x"})") == "member 'target' is not taken by drain-now");
  CHECK(err(R"({"cmd":"test-event"})") ==
        "test-event needs a 'target': a device id or name, or an event kind");
  CHECK(err(R"({"cmd":"test-event","target":7})") == "member 'target' must be a string");
  CHECK(err(R"({"cmd":"test-event","target":"a\nb"})") ==
        "member 'target' must be at most 128 printable characters");
  CHECK(err(R"({"cmd":"test-event","target":"x","timeout_ms":10})") ==
        "member 'timeout_ms' must be an integer from 1000 to 600000");
  CHECK(err(R"({"cmd":"test-event","target":"x","force":true})") ==
        "unknown member 'force' (target, kind, timeout_ms)");
  CHECK(err(std::string(5000, ' ')) == "request of 5000 bytes, at most 4096");
}

TEST_CASE("test events: the target's device and the alarm it stands for", "[control]") {
  anju::edge::DeviceRecord smoke, leak;
  smoke.device = {"0x01", "smoke_detector", "smoke_3_2_hall", ""};
  smoke.location = {"3", "2", "hall"};
  leak.device = {"0x02", "leak_sensor", "leak_pump_room", ""};
  const std::vector<anju::edge::DeviceRecord> devices{smoke, leak};
  const std::map<std::string, std::vector<std::string>> seen{
      {"0x01", {"battery", "smoke", "tamper"}}, {"0x02", {"battery"}}};
  auto plan = [&](std::string target, std::string kind = "") {
    ControlRequest r;
    r.cmd = ControlCmd::test_event;
    r.target = std::move(target);
    r.kind = std::move(kind);
    return plan_test_event(r, devices, seen, "site-a", "110101001001001001001");
  };

  // By name: the first alarm kind the detector has reported (newest first), at its place.
  auto p = plan("smoke_3_2_hall");
  REQUIRE(p.event);
  CHECK(p.event->kind == anju::edge::EventKind::gateway_test);
  CHECK(p.event->device.id == "0x01");
  CHECK(p.event->location.room == "hall");
  CHECK(p.event->site == "site-a");
  CHECK(p.event->attrs == nlohmann::json{{"test", true}, {"alert_kind", "smoke"}});
  // By id, with the kind given; a device that reported no alarm yet: gateway_test.
  CHECK(plan("0x01", "tamper").event->attrs["alert_kind"] == "tamper");
  CHECK(plan("leak_pump_room").event->attrs["alert_kind"] == "gateway_test");
  // An alarm kind alone: reported for the gateway itself.
  p = plan("gas");
  REQUIRE(p.event);
  CHECK(p.event->device.id == "gateway");
  CHECK(p.event->attrs["alert_kind"] == "gas");

  CHECK(plan("nobody").error.rfind("no device or event kind named 'nobody' (anju devices lists",
                                   0) == 0);
  CHECK(plan("temperature")
            .error.rfind("'temperature' is an event kind that raises no alarm; one of: smoke, gas,",
                         0) == 0);
  CHECK(plan("smoke_3_2_hall", "humidity")
            .error.rfind("kind 'humidity' cannot be tested; one of: ", 0) == 0);
  CHECK(plan("gas", "smoke").error == "target kind 'gas' and --kind 'smoke' differ");
}
