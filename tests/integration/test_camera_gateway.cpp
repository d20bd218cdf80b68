// A camera configured in anju.yaml, inside the real anjud: Debian's vtest.avi (people on a
// walkway) is analysed on the gateway; the walkway zone raises an intrusion alert at the city
// with the camera's place, and the camera's online state reaches the city too. No video leaves.
// The driver is the module anju-camera.so: the first case loads it from the build tree the way
// an installed anjud does; the second gives anjud a module it cannot load.
#include <httplib.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <string>

#include <opencv2/imgcodecs.hpp>

#include "anju/bridge/city_token.hpp"
#include "city_contract.hpp"
#include "city_signer.hpp"
#include "harness.hpp"
#include "requester.hpp"

using namespace anju::it;

namespace {
const std::string kSite = "demo-compound";
const std::string kVtest = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
}  // namespace

TEST_CASE("a camera in anju.yaml raises an intrusion alert at the city", "[e2e][camera]") {
  REQUIRE(fs::exists(kVtest));  // opencv-doc (scripts/install-deps)
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.event_kinds = {"device_online", "device_offline"};
  cfg.dashboard_port = pick_free_port();
  // The city may ask for one snapshot an hour, with its signed token.
  anju::test::CitySigner city_key;
  TempDir keys("anju-it-citykey");
  write_file(keys / "city.pub", city_key.public_pem());
  cfg.command_key_file = (keys / "city.pub").string();
  cfg.evidence_per_hour = 1;
  Anjud gw(cfg);
  REQUIRE(add_dashboard_user(gw, "li", "viewer", "viewer-password-1") == 0);
  write_file(gw.config_path(), read_file(gw.config_path()) + R"(
cameras:
  streams:
    - id: walkway-cam
      name: Walkway camera
      url: )" + kVtest + R"(
      building: "3"
      room: walkway
      width: 384
      height: 288
      fps: 10
      covers: [smoke_3_2_hall]
      zones:
        - id: walkway
          detector: intrusion
          polygon: [[0.0, 0.30], [0.55, 0.30], [1.0, 0.45], [1.0, 0.75], [0.0, 0.60]]
          min_area: 0.003
          severity: 2
)");
  // The module in the build tree is where anjud finds it, and it loads.
  std::string out;
  CHECK(run_shell(std::string(ANJUD_PATH) + " --check-config --config " +
                      gw.config_path().string() + " 2>&1",
                  &out) == 0);
  CHECK(out.find("camera module OK: ") != std::string::npos);
  gw.start();
  json alert;
  const bool raised = city_col.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          if (!anju::contract::under(m.topic, "anju/v1/" + kSite + "/alert")) continue;
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("change", "") == "raised" &&
              j["alert"].value("rule", "") == "intrusion") {
            alert = j["alert"];
            return true;
          }
        }
        return false;
      },
      60s);
  INFO("anjud log:\n" << tail(gw.log(), 4000));
  REQUIRE(raised);
  CHECK(alert["severity"] == 2);
  CHECK(alert["device"]["id"] == "walkway-cam");
  CHECK(alert["location"]["building"] == "3");
  CHECK(alert["location"]["room"] == "walkway");
  // The camera reported itself online (it opened the stream) before it saw anything.
  CHECK(city_col.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("kind", "") == "device_online" &&
              j["device"].value("id", "") == "walkway-cam")
            return true;
        }
        return false;
      },
      10s));
  // The status socket (anju status, anju check) reports the stream and its frames.
  const auto st = gw.status();
  REQUIRE(st);
  REQUIRE((*st)["cameras"].is_array());
  REQUIRE((*st)["cameras"].size() == 1);
  const auto& cam = (*st)["cameras"][0];
  CHECK(cam["id"] == "walkway-cam");
  CHECK(cam["online"] == true);
  CHECK(cam["frames_read"].get<std::int64_t>() > 0);
  CHECK(cam["frames_analysed"].get<std::int64_t>() > 0);
  // Evidence: the event that raised the alert names its snapshot and clip, which stay on the
  // gateway (<data_dir>/evidence/<event id>/) and are shown to a logged-in user only.
  const auto evidence_ids = sql_strings(
      gw.db_path(),
      "SELECT json_extract(anju_event_json(body), '$.attrs.evidence') FROM events WHERE "
      "json_extract(anju_event_json(body), '$.kind')='intrusion' AND "
      "json_extract(anju_event_json(body), '$.attrs.evidence') IS NOT NULL ORDER BY seq");
  REQUIRE(!evidence_ids.empty());
  const std::string ev = evidence_ids.front();
  const auto ev_dir = gw.data_dir() / "evidence" / ev;
  const cv::Mat snap = cv::imread((ev_dir / "snapshot.jpg").string());
  REQUIRE(!snap.empty());
  // Not the 384x288 analysis copy: vtest.avi's 768x576 frame scaled to fit the evidence box
  // (640x360 by default), its 4:3 aspect kept.
  CHECK(snap.cols == 480);
  CHECK(snap.rows == 360);
  json index;
  const bool complete = wait_until(
      [&] {
        index = json::parse(read_file(ev_dir / "evidence.json"), nullptr, false);
        return index.is_object() && index.value("complete", false);
      },
      30s);
  REQUIRE(complete);
  CHECK(index["stream"] == "walkway-cam");
  REQUIRE(index["frames"].is_array());
  // The seconds before the trigger (10 s by default, less when the alert came sooner) and the
  // 5 s after it, every frame a JPEG of the evidence size.
  CHECK(index["frames"].front()["offset_ms"].get<std::int64_t>() < 0);
  CHECK(index["frames"].back()["offset_ms"].get<std::int64_t>() >= 5000);
  const cv::Mat last =
      cv::imread((ev_dir / index["frames"].back()["file"].get<std::string>()).string());
  CHECK(last.cols == 480);
  httplib::Client web("127.0.0.1", cfg.dashboard_port);
  auto anon = web.Get(("/api/evidence/" + ev + "/snapshot.jpg").c_str());
  REQUIRE(anon);
  CHECK(anon->status == 401);
  auto lr =
      web.Post("/api/login", R"({"user":"li","password":"viewer-password-1"})", "application/json");
  REQUIRE(lr);
  REQUIRE(lr->status == 200);
  const std::string cookie =
      lr->get_header_value("Set-Cookie").substr(0, lr->get_header_value("Set-Cookie").find(';'));
  auto img = web.Get(("/api/evidence/" + ev + "/snapshot.jpg").c_str(), {{"Cookie", cookie}});
  REQUIRE(img);
  CHECK(img->status == 200);
  CHECK(img->get_header_value("Content-Type") == "image/jpeg");
  CHECK(img->body == read_file(ev_dir / "snapshot.jpg"));
  auto bad = web.Get("/api/evidence/..%2F..%2Fanju.db/snapshot.jpg", {{"Cookie", cookie}});
  REQUIRE(bad);
  CHECK(bad->status == 404);
  CHECK(wait_until(
      [&] {
        return sql_i64(gw.db_path(),
                       "SELECT count(*) FROM events WHERE json_extract(anju_event_json(body), "
                       "'$.attrs.action')='evidence_view'") == 1;
      },
      10s));
  const auto st2 = gw.status();
  REQUIRE(st2);
  CHECK((*st2)["evidence"]["enabled"] == true);
  std::string status_out;
  REQUIRE(run_shell(std::string(ANJU_PATH) + " --data-dir " + gw.data_dir().string() + " status",
                    &status_out) == 0);
  CHECK(status_out.find("cameras        1 of 1 online") != std::string::npos);
  CHECK(status_out.find("  evidence       ") != std::string::npos);

  // The camera covers the hall's smoke detector: the smoke alarm's alert gets the camera's
  // snapshot and clip, named by the smoke event, listed with the alert on the dashboard.
  Publisher z2m(local.uri());
  z2m.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  REQUIRE(gw.wait_devices(5, 20s));
  z2m.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":true})", 1, false);
  std::string smoke_alert;
  REQUIRE(city_col.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("change", "") == "raised" &&
              j["alert"].value("rule", "") == "smoke") {
            smoke_alert = j["alert"].value("alert_id", "");
            return true;
          }
        }
        return false;
      },
      30s));
  const auto smoke_events =
      sql_strings(gw.db_path(),
                  "SELECT json_extract(anju_event_json(body), '$.id') FROM events WHERE "
                  "json_extract(anju_event_json(body), '$.kind')='smoke' ORDER BY seq LIMIT 1");
  REQUIRE(smoke_events.size() == 1);
  CHECK(wait_until(
      [&] { return fs::exists(gw.data_dir() / "evidence" / smoke_events[0] / "snapshot.jpg"); },
      20s));
  auto detail = web.Get(("/api/alerts/" + smoke_alert).c_str(), {{"Cookie", cookie}});
  REQUIRE(detail);
  REQUIRE(detail->status == 200);
  const json dj = json::parse(detail->body, nullptr, false);
  REQUIRE(dj.is_object());
  CHECK(dj["evidence"] == json::array({smoke_events[0]}));

  // The city asks for the smoke alert's snapshot (evidence.request, signed, with its reason): it
  // gets exactly the file on the gateway, once; the second request within the hour is refused.
  // Both are in the audit log with the reason.
  V5Requester dispatch(city.uri(), "city/dispatch-9/replies", "it-city-evidence");
  auto ask = [&](const std::string& rid) {
    const std::int64_t until =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch() + std::chrono::minutes(1))
            .count();
    const json args{{"alert_id", smoke_alert}, {"reason", "fire brigade case 2026-118"}};
    dispatch.send("anju/v1/" + kSite + "/cmd/evidence.request",
                  {{"schema", 1},
                   {"request_id", rid},
                   {"user", "fire-dispatch-3"},
                   {"expires_ms", until},
                   {"authorization", city_key.token(kSite, "evidence.request", rid, until, args)}},
                  "corr-" + rid);
    auto r = dispatch.wait_reply("corr-" + rid, 15s);
    REQUIRE(r);
    return r->body;
  };
  const json released = ask("ev-1");
  INFO(released.dump().substr(0, 500));
  REQUIRE(released["ok"] == true);
  CHECK(released["result"]["evidence_id"] == smoke_events[0]);
  CHECK(released["result"]["content_type"] == "image/jpeg");
  const auto jpeg =
      anju::bridge::base64url_decode(released["result"]["snapshot_base64url"].get<std::string>());
  REQUIRE(jpeg);
  CHECK(*jpeg == read_file(gw.data_dir() / "evidence" / smoke_events[0] / "snapshot.jpg"));
  const json limited = ask("ev-2");
  CHECK(limited["ok"] == false);
  CHECK(limited["error"] ==
        "rate limit: 1 evidence releases in the last hour (uplink.evidence_per_hour: 1)");
  CHECK(wait_until(
      [&] {
        return sql_i64(
                   gw.db_path(),
                   "SELECT count(*) FROM events WHERE json_extract(anju_event_json(body), "
                   "'$.attrs.action')='evidence.request' AND json_extract(anju_event_json(body), "
                   "'$.attrs.why')='fire brigade case 2026-118'") == 2;
      },
      10s));
  // Nothing the city got on its topics is an image: every message is a small JSON document.
  for (const auto& m : city_col.messages()) CHECK(m.payload.size() < 16 * 1024);
  CHECK(gw.term() == 0);
  anju::contract::check_city_contract(city_col.messages());
}

TEST_CASE("a camera module that cannot be loaded: cameras offline with the reason, sensors work",
          "[e2e][camera]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  Anjud gw(cfg);
  const auto bogus = gw.config_path().parent_path() / "anju-camera.so";
  write_file(bogus, "not a shared object\n");
  write_file(gw.config_path(), read_file(gw.config_path()) + R"(
cameras:
  module: )" + bogus.string() + R"(
  streams:
    - id: gate-cam
      url: rtsp://user:secret@192.0.2.10/stream1
)");
  // The installer's pre-flight says so before anything starts.
  std::string out;
  CHECK(run_shell(std::string(ANJUD_PATH) + " --check-config --config " +
                      gw.config_path().string() + " 2>&1",
                  &out) == 1);
  CHECK(out.find("1 camera streams configured, but cannot load the camera module " +
                 bogus.string()) != std::string::npos);
  gw.start();
  // The camera's offline alert reaches the city, naming the module and why it failed.
  json alert;
  const bool raised = city_col.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          if (!anju::contract::under(m.topic, "anju/v1/" + kSite + "/alert")) continue;
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("change", "") == "raised" &&
              j["alert"]["device"].value("id", "") == "gate-cam") {
            alert = j["alert"];
            return true;
          }
        }
        return false;
      },
      30s);
  INFO("anjud log:\n" << tail(gw.log(), 4000));
  REQUIRE(raised);
  CHECK(alert["rule"] == "device_offline");
  CHECK(alert["severity"] == 3);
  const auto st = gw.status();
  REQUIRE(st);
  REQUIRE((*st)["cameras"].size() == 1);
  const auto& cam = (*st)["cameras"][0];
  CHECK(cam["online"] == false);
  const std::string why = cam["last_error"];
  CHECK(why.find(bogus.string()) != std::string::npos);
  CHECK(gw.log().find("streams configured but not watched") != std::string::npos);
  // The password in the stream's URL is in no message and no log line.
  for (const auto& m : city_col.messages()) CHECK(m.payload.find("secret") == std::string::npos);
  CHECK(gw.log().find("secret") == std::string::npos);
  // The rest of the gateway works: a smoke alarm still raises its alert at the city.
  Publisher z2m(local.uri());
  z2m.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  REQUIRE(gw.wait_devices(5, 20s));
  z2m.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":true})", 1, false);
  CHECK(city_col.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("change", "") == "raised" &&
              j["alert"].value("rule", "") == "smoke")
            return true;
        }
        return false;
      },
      30s));
  CHECK(gw.term() == 0);
}

TEST_CASE("anjud --check-config warns about a camera credentials file the driver cannot use",
          "[camera][config]") {
  GatewayConfig cfg;
  cfg.local_uri = "tcp://127.0.0.1:1";  // --check-config connects to nothing
  Anjud gw(cfg);
  const auto cred = gw.config_path().parent_path() / "gate.cred";
  write_file(cred, "admin:s3cret-Pa55\n");
  ::chmod(cred.c_str(), 0644);
  write_file(gw.config_path(), read_file(gw.config_path()) + R"(
cameras:
  streams:
    - id: gate-cam
      url: rtsp://192.0.2.10/stream1
      credentials_file: )" + cred.string() +
                                   "\n");
  const std::string check =
      std::string(ANJUD_PATH) + " --check-config --config " + gw.config_path().string() + " 2>&1";
  std::string out;
  CHECK(run_shell(check, &out) == 0);  // a warning: anjud runs, without that camera
  INFO(out);
  CHECK(out.find("anjud: warning: camera gate-cam will stay offline: credentials_file " +
                 cred.string() + ": mode 0644 lets others read the camera's password") !=
        std::string::npos);
  CHECK(out.find("s3cret") == std::string::npos);
  ::chmod(cred.c_str(), 0600);
  out.clear();
  CHECK(run_shell(check, &out) == 0);
  CHECK(out.find("camera module OK: ") != std::string::npos);
  CHECK(out.find("warning") == std::string::npos);
  fs::remove(cred);
  out.clear();
  CHECK(run_shell(check, &out) == 0);
  CHECK(out.find("credentials_file " + cred.string() + ": cannot open: No such file") !=
        std::string::npos);
}
