// anju check's decisions and anju outbox's views, on measured numbers given directly.
#include <openssl/x509_vfy.h>
#include <sys/timex.h>

#include <catch2/catch.hpp>

#include "anju/firmware/check.hpp"

using namespace anju::firmware;
using nlohmann::json;

namespace {

constexpr std::uint64_t kGiB = 1024ULL * 1024 * 1024;
constexpr std::uint64_t kMiB = 1024ULL * 1024;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

Config config_of(const std::string& extra = {}) {
  const std::string yaml = R"(site:
  id: sunrise-garden
  grid_code: "11010500100200300401"
local_broker:
  uri: tcp://127.0.0.1:1883
uplink:
  enabled: false
)" + extra;
  auto r = parse_config(yaml, "anju.yaml");
  INFO((r.errors.empty() ? std::string() : r.errors.front().to_string()));
  REQUIRE(r.config);
  return *r.config;
}

anju::edge::DeviceRecord device(const std::string& id, const std::string& name,
                                std::int64_t last_seen_ms, const std::string& state = "online") {
  anju::edge::DeviceRecord d;
  d.device.id = id;
  d.device.name = name;
  d.device.kind = "smoke_detector";
  d.source = "zigbee2mqtt";
  d.first_seen_ms = last_seen_ms;
  d.last_seen_ms = last_seen_ms;
  d.state = state;
  return d;
}

}  // namespace

TEST_CASE("check: the config's errors are reported verbatim", "[check]") {
  const auto bad =
      parse_config("site:\n  id: x\n  grid_code: \"123\"\nlocal_broker: {}\n", "a.yaml");
  REQUIRE_FALSE(bad.config);
  const auto r = evaluate_config("a.yaml", bad);
  CHECK(r.status == CheckStatus::fail);
  for (const auto& e : bad.errors) CHECK(has(r.message, e.to_string()));
  CHECK(has(r.fix, "a.yaml"));  // no such file here: "pass --config FILE, or install ..."

  const auto good = parse_config(
      "site:\n  id: x\n  grid_code: \"11010500100200300401\"\nlocal_broker:\n  uri: "
      "tcp://127.0.0.1:1883\nuplink:\n  enabled: false\n",
      "b.yaml");
  REQUIRE(good.config);
  const auto ok = evaluate_config("b.yaml", good);
  CHECK(ok.status == CheckStatus::ok);
  CHECK(ok.message == "b.yaml is valid (site x)");
}

TEST_CASE("check: an unsynchronised clock is a warning, not a failure", "[check]") {
  CHECK(evaluate_clock({TIME_OK, 0, 12'000, ""}).status == CheckStatus::ok);
  CHECK(evaluate_clock({TIME_OK, 0, 12'000, ""}).message ==
        "synchronised (estimated error up to 12 ms)");
  const auto unsynced = evaluate_clock({TIME_ERROR, STA_UNSYNC, 16'000'000, ""});
  CHECK(unsynced.status == CheckStatus::warn);
  CHECK(has(unsynced.message, "clock_synced=false"));
  CHECK(has(unsynced.fix, "timedatectl set-ntp true"));
  // The status bit alone is enough.
  CHECK(evaluate_clock({TIME_OK, STA_UNSYNC, 0, ""}).status == CheckStatus::warn);
}

TEST_CASE("check: disk space thresholds (5 % or 100 MiB fail, 15 % warns)", "[check]") {
  const auto ok = evaluate_disk("/var/lib/anju", {100 * kGiB, 40 * kGiB}, 0, 512 * kMiB);
  CHECK(ok.status == CheckStatus::ok);
  CHECK(ok.message == "40.0 GiB free of 100.0 GiB (40 %) on the file system of /var/lib/anju");

  const auto low = evaluate_disk("/d", {100 * kGiB, 10 * kGiB}, 0, 512 * kMiB);
  CHECK(low.status == CheckStatus::warn);
  CHECK(has(low.message, "only 10.0 GiB free"));

  const auto full = evaluate_disk("/d", {100 * kGiB, 4 * kGiB}, 0, 512 * kMiB);
  CHECK(full.status == CheckStatus::fail);
  CHECK(has(full.message, "(4 %)"));
  CHECK(has(full.fix, "journal.max_bytes"));

  // A small card: 20 % free but under 100 MiB.
  CHECK(evaluate_disk("/d", {400 * kMiB, 80 * kMiB}, 0, 64 * kMiB).status == CheckStatus::fail);

  // Enough by percentage, but not for the journal to reach its configured cap.
  const auto cap = evaluate_disk("/d", {4 * kGiB, 1 * kGiB}, 10 * kMiB, 2 * kGiB);
  CHECK(cap.status == CheckStatus::warn);
  CHECK(has(cap.message, "journal.max_bytes 2.0 GiB"));

  CHECK(evaluate_disk("/d", {0, 0}, 0, 0).status == CheckStatus::fail);
}

TEST_CASE("check: flash wear is projected from anjud's writes over its uptime", "[check]") {
  const auto none = evaluate_flash_wear(std::nullopt, "anjud is not running", 32 * kGiB);
  CHECK(none.status == CheckStatus::warn);
  CHECK(none.message == "not measured: anjud is not running");

  const auto early = evaluate_flash_wear(WriteSample{42, 3 * kMiB, 30}, "", 32 * kGiB);
  CHECK(early.status == CheckStatus::ok);
  CHECK(has(early.message, "/proc/42/io write_bytes"));
  CHECK(has(early.message, "too early"));

  // 100 MiB/day on 32 GiB: centuries.
  const auto light = evaluate_flash_wear(WriteSample{42, 100 * kMiB, 86'400}, "", 32 * kGiB);
  CHECK(light.status == CheckStatus::ok);
  CHECK(has(light.message, "about 100.0 MiB per day"));
  CHECK(has(light.message, "more than 100 years"));

  // 100 GiB/day on 32 GiB: 3,000 cycles last ~2.6 years.
  const auto heavy = evaluate_flash_wear(WriteSample{42, 100 * kGiB, 86'400}, "", 32 * kGiB);
  CHECK(heavy.status == CheckStatus::warn);
  CHECK(has(heavy.message, "about 2.6 years"));
  CHECK(has(heavy.fix, "journal.commit_window_ms"));
}

TEST_CASE("check: /proc/<pid>/io and /proc/<pid>/stat are parsed", "[check]") {
  const std::string io =
      "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 1234567\n"
      "cancelled_write_bytes: 0\n";
  CHECK(parse_proc_io_write_bytes(io) == 1234567);
  CHECK_FALSE(parse_proc_io_write_bytes("rchar: 1\n"));
  // The command name may hold spaces and parentheses; starttime is field 22.
  const std::string stat =
      "1234 (anjud (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 9 0 987654 "
      "123456789 3000";
  CHECK(parse_proc_stat_start_ticks(stat) == 987654);
  CHECK_FALSE(parse_proc_stat_start_ticks("1234 (anjud) S 1 2"));
}

TEST_CASE("check: broker addresses", "[check]") {
  auto a = parse_broker_address("tcp://127.0.0.1:18830");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 18830);
  CHECK_FALSE(a->tls);
  a = parse_broker_address("mqtts://city.example.org");
  REQUIRE(a);
  CHECK(a->port == 8883);
  CHECK(a->tls);
  a = parse_broker_address("ssl://[::1]:8884");
  REQUIRE(a);
  CHECK(a->host == "::1");
  CHECK(a->port == 8884);
  a = parse_broker_address("wss://city.example.org/mqtt");
  REQUIRE(a);
  CHECK(a->websocket);
  CHECK(a->port == 443);
  CHECK_FALSE(parse_broker_address("http://x:1"));
  CHECK_FALSE(parse_broker_address("tcp://x:"));
  CHECK_FALSE(parse_broker_address("tcp://x:70000"));
  CHECK_FALSE(parse_broker_address("tcp://:1883"));
}

TEST_CASE("check: certificate expiry (expired fails, under 30 days warns)", "[check]") {
  const std::int64_t now = 1'800'000'000;
  const auto expired = evaluate_cert_expiry("city_certificate", "the city broker's certificate",
                                            now - 3 * 86400, now, "renew it");
  CHECK(expired.status == CheckStatus::fail);
  CHECK(has(expired.message, "the city broker's certificate expired on "));
  CHECK(has(expired.message, "(3 days ago)"));
  CHECK(expired.fix == "renew it");
  const auto soon = evaluate_cert_expiry("c", "it", now + 10 * 86400, now, "renew it");
  CHECK(soon.status == CheckStatus::warn);
  CHECK(has(soon.message, "it expires on "));
  CHECK(has(soon.message, "(10 days)"));
  CHECK(evaluate_cert_expiry("c", "it", now + 90 * 86400, now, "").status == CheckStatus::ok);
  CHECK(evaluate_cert_expiry("c", "it", now, now, "").status == CheckStatus::fail);
  // Dates past 2038 and leap days, whatever the width of time_t.
  CHECK(has(evaluate_cert_expiry("c", "it", 4'102'444'800, now, "").message,
            "valid until 2100-01-01 00:00 UTC"));
  CHECK(has(evaluate_cert_expiry("c", "it", 951'782'400 + 3723, now, "").message,
            "expired on 2000-02-29 01:02 UTC"));
}

TEST_CASE("check: a private key open to group or others fails", "[check]") {
  CHECK(evaluate_key_file_mode("client_key", "uplink.tls.key_file", "/k", 0100600).status ==
        CheckStatus::ok);
  const auto open = evaluate_key_file_mode("client_key", "uplink.tls.key_file", "/k", 0100644);
  CHECK(open.status == CheckStatus::fail);
  CHECK(open.message ==
        "uplink.tls.key_file /k has mode 0644: the private key is open to group or others");
  CHECK(has(open.fix, "chmod 600 /k"));
  CHECK(evaluate_key_file_mode("k", "k", "/k", 0100640).status == CheckStatus::fail);
}

TEST_CASE("check: the local broker's line names the broker and the fix", "[check]") {
  BrokerConfig b;
  b.uri = "tcp://127.0.0.1:1883";
  LocalBrokerProbe p;
  p.topic = "anju/s/cmd/alert/+";
  p.tcp_error = "Connection refused";
  auto r = evaluate_local_broker(b, "/etc/anju/anju.yaml", p);
  CHECK(r.status == CheckStatus::fail);
  CHECK(r.message == "cannot reach the local broker tcp://127.0.0.1:1883: Connection refused");
  CHECK(has(r.fix, "systemctl start mosquitto"));
  CHECK(has(r.fix, "local_broker.uri in /etc/anju/anju.yaml"));

  p.tcp_ok = true;
  p.connect_error = "not authorized";
  r = evaluate_local_broker(b, "c.yaml", p);
  CHECK(r.status == CheckStatus::fail);
  CHECK(has(r.message, "did not accept the gateway's connection: not authorized"));
  CHECK(has(r.fix, "set local_broker.username_file and password_file"));
  b.username_file = "/u";
  b.password_file = "/p";
  CHECK(has(evaluate_local_broker(b, "c.yaml", p).fix, "run anju broker-config"));

  p.connected = true;
  p.subscribe_error = "not authorized";
  r = evaluate_local_broker(b, "c.yaml", p);
  CHECK(r.status == CheckStatus::fail);
  CHECK(has(r.message, "refused the subscription to anju/s/cmd/alert/+: not authorized"));
  CHECK(has(r.fix, "ACL"));

  // Subscribed (Mosquitto's ACL file grants every SUBACK), but its own message did not return.
  p.subscribed = true;
  p.probe_topic = "anju/s/check/anju-check-1";
  p.loopback_error = "the broker accepted it but did not deliver it back within 3 s";
  r = evaluate_local_broker(b, "c.yaml", p);
  CHECK(r.status == CheckStatus::fail);
  CHECK(r.message ==
        "connected to tcp://127.0.0.1:1883 and subscribed to anju/s/cmd/alert/+, but a test "
        "message the gateway published on anju/s/check/anju-check-1 did not come back: the "
        "broker accepted it but did not deliver it back within 3 s");
  CHECK(has(r.fix, "read and write anju/<site>/#: run anju broker-config --config c.yaml"));

  p.loopback = true;
  r = evaluate_local_broker(b, "c.yaml", p);
  CHECK(r.status == CheckStatus::ok);
  CHECK(r.message ==
        "tcp://127.0.0.1:1883: connected with the gateway's login, subscribed to "
        "anju/s/cmd/alert/+, a test message on anju/s/check/anju-check-1 came back");
}

TEST_CASE("check: the city broker's line carries OpenSSL's verify error", "[check]") {
  UplinkConfig up;
  up.enabled = false;
  CHECK(evaluate_city_broker(up, "c.yaml", {}).status == CheckStatus::ok);

  up.enabled = true;
  up.broker.uri = "ssl://city.example.org:8883";
  up.broker.tls.enabled = true;
  up.broker.tls.ca_file = "/etc/anju/tls/ca.pem";
  TlsProbe p;
  p.address = "city.example.org:8883";
  p.tcp_error = "No route to host";
  auto r = evaluate_city_broker(up, "c.yaml", p);
  CHECK(r.status == CheckStatus::fail);
  CHECK(r.message == "cannot reach the city broker ssl://city.example.org:8883: No route to host");

  p.tcp_ok = true;
  p.tls = true;
  p.handshake_ok = true;
  p.issuer = "/CN=Other CA";
  p.subject = "/CN=city.example.org";
  p.verify_code = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
  p.verify_error = "unable to get local issuer certificate";
  r = evaluate_city_broker(up, "c.yaml", p);
  CHECK(r.status == CheckStatus::fail);
  CHECK(has(r.message, "is not trusted: unable to get local issuer certificate"));
  CHECK(has(r.message, "issued by /CN=Other CA"));
  CHECK(has(r.fix, "uplink.tls.ca_file (/etc/anju/tls/ca.pem) does not hold the CA"));

  p.verify_code = X509_V_ERR_CERT_HAS_EXPIRED;
  p.verify_error = "certificate has expired";
  p.not_after_s = 1'700'000'000;
  r = evaluate_city_broker(up, "c.yaml", p);
  CHECK(has(r.message, "certificate has expired (expired 2023-11-14 22:13 UTC)"));
  CHECK(has(r.fix, "renew"));

  p.verify_code = X509_V_ERR_HOSTNAME_MISMATCH;
  p.verify_error = "hostname mismatch";
  r = evaluate_city_broker(up, "c.yaml", p);
  CHECK(has(r.message, "hostname mismatch"));
  CHECK(has(r.fix, "host name the certificate names"));

  p.verify_code = X509_V_OK;
  p.hostname_checked = true;
  r = evaluate_city_broker(up, "c.yaml", p);
  CHECK(r.status == CheckStatus::ok);
  CHECK(r.message ==
        "ssl://city.example.org:8883: TLS verified against /etc/anju/tls/ca.pem "
        "(/CN=city.example.org, host name checked)");
  p.hostname_checked = false;
  CHECK(evaluate_city_broker(up, "c.yaml", p).status == CheckStatus::warn);

  p.handshake_ok = false;
  p.handshake_error = "sslv3 alert handshake failure";
  r = evaluate_city_broker(up, "c.yaml", p);
  CHECK(r.message ==
        "TLS handshake with ssl://city.example.org:8883 failed: sslv3 alert handshake failure");

  // Plain TCP to the city works but is a warning.
  up.broker.uri = "tcp://city.example.org:1883";
  up.broker.tls.enabled = false;
  TlsProbe plain;
  plain.tcp_ok = true;
  CHECK(evaluate_city_broker(up, "c.yaml", plain).status == CheckStatus::warn);
}

TEST_CASE("check: anjud and its uplink from the status socket", "[check]") {
  auto r = evaluate_anjud(std::nullopt, "/var/lib/anju/anjud.sock");
  CHECK(r.status == CheckStatus::fail);
  CHECK(r.message == "anjud is not running (no answer on /var/lib/anju/anjud.sock)");
  CHECK(has(r.fix, "systemctl start anjud"));

  json s = {{"pid", 77},
            {"pipeline", {{"committed", 12}, {"commit_failures", 0}}},
            {"local_bus", {{"connected", true}}},
            {"uplink", {{"connected", false}, {"connect_failures", 3}, {"last_error", "TLS"}}}};
  r = evaluate_anjud(s, "x");
  CHECK(r.status == CheckStatus::ok);
  CHECK(r.message == "running (pid 77), 12 events committed since it started, local bus connected");
  s["local_bus"]["connected"] = false;
  CHECK(evaluate_anjud(s, "x").status == CheckStatus::fail);

  auto cfg = config_of();
  CHECK(evaluate_uplink(cfg, s).message == "disabled in the config");
  cfg.uplink.enabled = true;
  r = evaluate_uplink(cfg, s);
  CHECK(r.status == CheckStatus::fail);
  CHECK(has(r.message, "NOT connected to the city broker (3 failed attempts; last error: TLS)"));
  s["uplink"]["connected"] = true;
  s["uplink"]["acked"] = 5;
  s["uplink"]["inflight"] = 1;
  CHECK(evaluate_uplink(cfg, s).status == CheckStatus::ok);
  CHECK(evaluate_uplink(cfg, std::nullopt).status == CheckStatus::warn);
}

TEST_CASE("check: silent devices, by their own interval", "[check]") {
  const std::int64_t now = 10'000'000;
  DeviceIntervals iv;
  iv.default_ms = 3'600'000;
  iv.overrides_ms["leak_pump_room"] = 60'000;  // by name
  iv.overrides_ms["0x03"] = 0;                 // not supervised
  std::vector<anju::edge::DeviceRecord> reg{
      device("0x01", "smoke_hall", now - 120'000),     // within the hour
      device("0x02", "leak_pump_room", now - 75'000),  // 75 s > its 60 s
      device("0x03", "door", now - 9'000'000),         // never late
      device("0x04", "gas_kitchen", now - 1000, "offline")};
  const auto silent = silent_devices(reg, iv, {"smoke_hall", "0x02", "climate_1201"}, now);
  REQUIRE(silent.size() == 3);
  CHECK(silent[0].name == "leak_pump_room");
  CHECK(silent[0].interval_ms == 60'000);
  CHECK(silent[1].name == "gas_kitchen");
  CHECK(silent[1].reported_offline);
  CHECK(silent[2].id == "climate_1201");
  CHECK(silent[2].last_seen_ms == 0);

  const auto r = evaluate_devices(reg, iv, {"smoke_hall", "climate_1201"}, now);
  CHECK(r.status == CheckStatus::fail);
  CHECK(has(r.message, "3 of 5 devices silent: "));
  CHECK(has(r.message, "leak_pump_room (0x02): last seen "));
  CHECK(has(r.message, "75 s ago, expected every 60 s"));
  CHECK(has(r.message, "gas_kitchen (0x04): reported offline, last seen"));
  CHECK(has(r.message, "climate_1201: never seen"));
  CHECK_FALSE(has(r.message, "smoke_hall"));
  CHECK(has(r.fix, "heartbeat_timeout_s"));

  // A gateway that just restarted counts silence from its start, as the rule engine does.
  CHECK(silent_devices({reg[1]}, iv, {}, now, now - 10'000).empty());

  const auto fine = evaluate_devices({reg[0], reg[2]}, iv, {"smoke_hall"}, now);
  CHECK(fine.status == CheckStatus::ok);
  CHECK(fine.message ==
        "2 devices, each heard from within its interval (1 without an interval: "
        "heartbeat_timeout_s 0, only checked for being seen)");
  CHECK(evaluate_devices({}, iv, {}, now).message == "none configured or heard from yet");
}

TEST_CASE("check: configured devices and their intervals come from the config", "[check]") {
  const auto cfg = config_of(R"(rules:
  heartbeat_timeout_s: 600
zigbee2mqtt:
  devices:
    leak_pump_room:
      heartbeat_timeout_s: 5
chirpstack:
  enabled: true
  mappings:
    m:
      device_kind: manhole_sensor
      object_fields:
        - {path: cover_open, kind: manhole_open}
  default: m
  devices:
    70B3D57ED0051A2B:
      room: gate
)");
  const auto iv = device_intervals(cfg);
  CHECK(iv.default_ms == 600'000);
  CHECK(iv.overrides_ms.at("leak_pump_room") == 5'000);
  const auto ids = configured_devices(cfg);
  CHECK(std::find(ids.begin(), ids.end(), "leak_pump_room") != ids.end());
  CHECK(std::find(ids.begin(), ids.end(), "70b3d57ed0051a2b") != ids.end());
}

TEST_CASE("check: cameras and readers from the status socket", "[check]") {
  const auto cfg = config_of();
  CHECK(evaluate_cameras(cfg, json::object()).message == "none configured");
  CHECK(evaluate_readers(cfg, json::object()).message == "none configured");
  json s = {
      {"cameras", json::array({{{"id", "cam-gate"}, {"online", true}, {"frames_read", 300}},
                               {{"id", "cam-b3"}, {"online", false}, {"last_error", "timeout"}}})}};
  auto r = evaluate_cameras(cfg, s);
  CHECK(r.status == CheckStatus::fail);
  CHECK(r.message == "1 of 2 cameras not delivering frames: cam-b3: offline (timeout)");

  auto with_reader = cfg;
  with_reader.access.osdp.push_back({});
  with_reader.access.osdp.back().readers.push_back({});
  json o = {{"osdp", json::array({{{"name", "gate"},
                                   {"readers", json::array({{{"id", "r1"},
                                                             {"address", 1},
                                                             {"online", false},
                                                             {"last_error", "no reply"}}})}}})}};
  r = evaluate_readers(with_reader, o);
  CHECK(r.status == CheckStatus::fail);
  CHECK(r.message == "1 of 1 readers not answering: r1 (bus gate, address 1): no reply");
  o["osdp"][0]["readers"][0]["online"] = true;
  CHECK(evaluate_readers(with_reader, o).message == "1 readers answering");

  CHECK(evaluate_gpio_doors(cfg, json::object()).message == "none configured");
  auto with_door = cfg;
  with_door.access.gpio_doors.push_back({});
  with_door.access.gpio_doors.back().door = "b3-u1";
  CHECK(evaluate_gpio_doors(with_door, std::nullopt).status == CheckStatus::warn);
  CHECK(evaluate_gpio_doors(with_door, json::object()).status == CheckStatus::fail);
  json g = {{"gpio_doors", json::array({{{"door", "b3-u1"},
                                         {"chip", "gpiochip9"},
                                         {"watched", false},
                                         {"last_error", "cannot open"}}})}};
  r = evaluate_gpio_doors(with_door, g);
  CHECK(r.status == CheckStatus::fail);
  CHECK(r.message == "1 of 1 doors not watched: b3-u1 (gpiochip9): cannot open");
  g["gpio_doors"][0]["watched"] = true;
  CHECK(evaluate_gpio_doors(with_door, g).message == "1 doors watched");
}

TEST_CASE("check: text and JSON output, exit code", "[check]") {
  std::vector<CheckResult> rs{{"config", CheckStatus::ok, "fine", ""},
                              {"local_broker", CheckStatus::fail, "down", "start it"},
                              {"clock", CheckStatus::warn, "unsynced", "ntp"}};
  CHECK(render_check_text(rs) ==
        "ok    config        fine\n"
        "FAIL  local_broker  down -- fix: start it\n"
        "warn  clock         unsynced -- fix: ntp\n"
        "1 FAIL, 1 warn, 1 ok\n");
  const auto j = check_results_json(rs);
  CHECK(j[1].dump() ==
        R"({"check":"local_broker","status":"fail","message":"down","fix":"start it"})");
  CHECK(j[2]["status"] == "warn");
  CHECK(check_exit_code(rs) == 1);
  rs.erase(rs.begin() + 1);
  CHECK(check_exit_code(rs) == 0);
}

TEST_CASE("outbox: the status socket's figures, in priority order", "[check][outbox]") {
  const json s = {
      {"uplink", {{"connected", false}, {"inflight", 0}, {"acked", 9}, {"last_error", "refused"}}},
      {"outbox",
       {{"alert", {{"rows", 2}, {"bytes", 900}, {"evicted", 0}, {"sent", 4}}},
        {"event", {{"rows", 10}, {"bytes", 2048}, {"evicted", 3}, {"sent", 1}}},
        {"status", {{"rows", 0}, {"bytes", 0}, {"evicted", 0}, {"sent", 0}}},
        {"summary", {{"rows", 1}, {"bytes", 300}, {"evicted", 0}, {"sent", 0}}}}}};
  auto v = outbox_view(s);
  REQUIRE(v.classes.size() == 4);
  CHECK(v.classes[0].cls == "alert");
  CHECK(v.classes[3].cls == "event");
  CHECK_FALSE(v.connected);
  // The line `anju status` prints, unchanged.
  CHECK(outbox_summary(v) ==
        "alert 2 (900 B, evicted 0)  event 10 (2048 B, evicted 3)  status 0 (0 B, evicted 0)  "
        "summary 1 (300 B, evicted 0)  ");
  v.classes[0].oldest_ms = 1'000'000;
  const auto text = render_outbox_text(v, 1'090'000);
  CHECK(has(text, "city link: DISCONNECTED (last error: refused)\n"));
  CHECK(has(text, "90 s ago"));
  CHECK(has(text, "13 messages (3.2 KiB) waiting for the city\n"));
  const auto j = outbox_json(v, 1'090'000);
  CHECK(j["link"]["connected"] == false);
  CHECK(j["classes"][0] == json{{"class", "alert"},
                                {"messages", 2},
                                {"bytes", 900},
                                {"evicted", 0},
                                {"oldest_ms", 1'000'000},
                                {"oldest_age_s", 90},
                                {"sent", 4}});
  CHECK(j["classes"][1]["oldest_ms"].is_null());
}
