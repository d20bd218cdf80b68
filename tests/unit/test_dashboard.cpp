// The dashboard's pure parts: sessions and CSRF tokens, login lockout with an injected clock,
// the parsers of what browsers send, SSE framing, /metrics as valid Prometheus text, and the
// dashboard section of the config.
#include <catch2/catch.hpp>

#include <cmath>

#include "anju/firmware/config.hpp"
#include "anju/firmware/dashboard_logic.hpp"
#include "prom_check.hpp"

using namespace anju::firmware;
using nlohmann::json;

namespace {

// Deterministic tokens: 64 hex digits from a counter.
std::function<std::string()> counter_tokens() {
  auto n = std::make_shared<int>(0);
  return [n] {
    std::string s = std::to_string(++*n);
    return std::string(64 - s.size(), '0') + s;
  };
}

}  // namespace

TEST_CASE("dashboard: sessions expire after the ttl unless used", "[dashboard]") {
  SessionStore store(1000, counter_tokens());
  std::int64_t now = 1'000'000;
  const Session s = store.create("wang", Role::operator_, "h", now);
  CHECK(s.id.size() == 64);
  CHECK(s.csrf.size() == 64);
  CHECK(s.id != s.csrf);
  CHECK(s.expires_ms == now + 1000);
  // Used at 900 ms: lives until 1900.
  auto t = store.touch(s.id, now + 900);
  REQUIRE(t);
  CHECK(t->user == "wang");
  CHECK(t->role == Role::operator_);
  CHECK(store.touch(s.id, now + 1899));
  // Unused for a whole ttl: gone, and removed from the store.
  CHECK_FALSE(store.touch(s.id, now + 1899 + 1000));
  CHECK(store.size() == 0);
  CHECK_FALSE(store.touch("nonexistent", now));
}

TEST_CASE("dashboard: logout and user removal end sessions, the store is bounded", "[dashboard]") {
  SessionStore store(60'000, counter_tokens(), 3);
  const auto a = store.create("a", Role::viewer, "h", 0);
  const auto b = store.create("b", Role::viewer, "h", 1);
  const auto b2 = store.create("b", Role::viewer, "h", 2);
  CHECK(store.remove(a.id));
  CHECK_FALSE(store.remove(a.id));
  CHECK_FALSE(store.touch(a.id, 3));
  store.remove_user("b");
  CHECK_FALSE(store.touch(b.id, 3));
  CHECK_FALSE(store.touch(b2.id, 3));
  // Full: the session closest to expiry makes room.
  const auto c1 = store.create("c", Role::viewer, "h", 10);
  const auto c2 = store.create("c", Role::viewer, "h", 11);
  const auto c3 = store.create("c", Role::viewer, "h", 12);
  const auto c4 = store.create("c", Role::viewer, "h", 13);
  CHECK(store.size() == 3);
  CHECK_FALSE(store.touch(c1.id, 14));
  CHECK(store.touch(c4.id, 14));
  CHECK(store.touch(c2.id, 14));
  CHECK(store.touch(c3.id, 14));
}

TEST_CASE("dashboard: CSRF tokens must match exactly", "[dashboard]") {
  const std::string t(64, 'a');
  CHECK(csrf_matches(t, t));
  CHECK_FALSE(csrf_matches(t, ""));
  CHECK_FALSE(csrf_matches(t, t.substr(1)));
  CHECK_FALSE(csrf_matches(t, t + "a"));
  CHECK_FALSE(csrf_matches(t, std::string(63, 'a') + "b"));
  CHECK_FALSE(csrf_matches("", ""));  // a session without a token never matches
}

TEST_CASE("dashboard: cookies are found by name", "[dashboard]") {
  CHECK(cookie_value("anju_session=abc", "anju_session") == "abc");
  CHECK(cookie_value("a=1; anju_session=abc; b=2", "anju_session") == "abc");
  CHECK(cookie_value("x_anju_session=zzz; anju_session=abc", "anju_session") == "abc");
  CHECK(cookie_value("anju_session=\"q\"", "anju_session") == "q");
  CHECK(cookie_value("a=1; b", "anju_session").empty());
  CHECK(cookie_value("", "anju_session").empty());
}

TEST_CASE("dashboard: lockout after N failures per user, for the window", "[dashboard]") {
  LoginLimiter lim(5, 300'000);
  std::int64_t now = 10'000'000;
  for (int i = 0; i < 4; ++i) {
    CHECK(lim.retry_after_ms("wang", "10.0.0.1", now) == 0);
    lim.failure("wang", "10.0.0.1", now);
    now += 1000;
  }
  CHECK(lim.retry_after_ms("wang", "10.0.0.2", now) == 0);
  lim.failure("wang", "10.0.0.2", now);  // the 5th failure for wang, from another address
  // Locked for wang from anywhere, until the first of the five is 300 s old.
  CHECK(lim.retry_after_ms("wang", "10.0.0.3", now) == 300'000 - 4000);
  CHECK(lim.retry_after_ms("li", "10.0.0.3", now) == 0);  // other users are not
  now += 300'000 - 4000 - 1;
  CHECK(lim.retry_after_ms("wang", "10.0.0.3", now) == 1);
  now += 1;
  CHECK(lim.retry_after_ms("wang", "10.0.0.3", now) == 0);
}

TEST_CASE("dashboard: lockout per client address across user names", "[dashboard]") {
  LoginLimiter lim(3, 60'000);
  const std::int64_t now = 5'000'000;
  lim.failure("a", "192.168.1.9", now);
  lim.failure("b", "192.168.1.9", now + 1);
  CHECK(lim.retry_after_ms("c", "192.168.1.9", now + 2) == 0);
  lim.failure("c", "192.168.1.9", now + 2);
  // A password spray from one address locks that address for every name.
  CHECK(lim.retry_after_ms("d", "192.168.1.9", now + 3) == 60'000 - 3);
  CHECK(lim.retry_after_ms("d", "192.168.1.10", now + 3) == 0);
  // A success clears the user's count but not the address's.
  lim.success("a");
  CHECK(lim.retry_after_ms("a", "192.168.1.9", now + 3) > 0);
}

TEST_CASE("dashboard: failures older than the window do not count", "[dashboard]") {
  LoginLimiter lim(3, 10'000);
  std::int64_t now = 0;
  lim.failure("u", "ip", now);
  lim.failure("u", "ip", now + 5000);
  now += 10'001;  // the first one has aged out
  lim.failure("u", "ip", now);
  CHECK(lim.retry_after_ms("u", "ip", now) == 0);
  lim.failure("u", "ip", now + 1);
  CHECK(lim.retry_after_ms("u", "ip", now + 1) > 0);
  // A success resets the user.
  lim.success("u");
  CHECK(lim.retry_after_ms("u", "other-ip", now + 2) == 0);
}

TEST_CASE("dashboard: the limiter's memory is bounded", "[dashboard]") {
  LoginLimiter lim(3, 10'000, 100);
  for (int i = 0; i < 10'000; ++i) lim.failure("user" + std::to_string(i), "ip", i);
  CHECK(lim.keys() <= 100);
  // Entries that aged out make room again.
  lim.failure("late", "ip2", 1'000'000);
  CHECK(lim.retry_after_ms("late", "ip2", 1'000'000) == 0);
}

TEST_CASE("dashboard: the login body", "[dashboard]") {
  auto ok = parse_login(R"({"user":"wang","password":"p w"})");
  REQUIRE(ok.request);
  CHECK(ok.request->user == "wang");
  CHECK(ok.request->password == "p w");
  CHECK(parse_login("").error.find("JSON object") != std::string::npos);
  CHECK(parse_login("[1]").error.find("JSON object") != std::string::npos);
  CHECK(parse_login(R"({"user":"wang"})").error == "'password' must be a string");
  CHECK(parse_login(R"({"user":1,"password":"x"})").error == "'user' must be a string");
  CHECK(parse_login(R"({"user":"","password":"x"})").error == "'user' must be 1 to 1024 bytes");
  CHECK(parse_login(R"({"user":"a","password":"x","remember":true})").error ==
        "unknown field 'remember'");
  CHECK(parse_login(std::string(5000, ' ')).error == "request too large");
}

TEST_CASE("dashboard: an action's body is empty or carries a note", "[dashboard]") {
  CHECK(parse_action_body("").note == "");
  CHECK(parse_action_body(" \n").note == "");
  CHECK(parse_action_body("{}").note == "");
  CHECK(parse_action_body(R"({"note":null})").note == "");
  CHECK(parse_action_body(R"({"note":"在路上"})").note == "在路上");
  CHECK(parse_action_body(R"({"note":5})").error == "'note' must be a string");
  CHECK(parse_action_body(R"({"user":"x"})").error == "unknown field 'user'");
  CHECK(parse_action_body("nope").error.find("JSON object") != std::string::npos);
  // 1000 characters (of three bytes each) pass; 1001 do not.
  std::string note;
  for (int i = 0; i < 1000; ++i) note += "火";
  CHECK(parse_action_body(json{{"note", note}}.dump()).note == note);
  CHECK_FALSE(parse_action_body(json{{"note", note + "火"}}.dump()).note);
}

TEST_CASE("dashboard: actions by name", "[dashboard]") {
  CHECK(normalise_action("ack") == "ack");
  CHECK(normalise_action("false-alarm") == "false_alarm");
  CHECK(normalise_action("false_alarm") == "false_alarm");
  CHECK(normalise_action("resume") == "resume");
  CHECK_FALSE(normalise_action("delete"));
  CHECK_FALSE(normalise_action(""));
}

TEST_CASE("dashboard: event search parameters", "[dashboard]") {
  using P = std::multimap<std::string, std::string>;
  auto r = parse_event_search(P{{"from", "1000"},
                                {"to", "2000"},
                                {"kind", "smoke"},
                                {"device", "0x01"},
                                {"building", "3"},
                                {"limit", "50"}});
  REQUIRE(r.search);
  CHECK(r.search->from_ms == 1000);
  CHECK(r.search->to_ms == 2000);
  CHECK(r.search->kind == anju::edge::EventKind::smoke);
  CHECK(r.search->device == "0x01");
  CHECK(r.search->building == "3");
  CHECK(r.search->limit == 50);
  auto d = parse_event_search(P{{"kind", ""}, {"from", ""}});
  REQUIRE(d.search);
  CHECK(d.search->limit == 100);
  CHECK_FALSE(d.search->kind);
  CHECK(parse_event_search(P{{"kind", "fire"}}).error == "unknown event kind 'fire'");
  CHECK(parse_event_search(P{{"limit", "0"}}).error == "'limit' must be 1..1000");
  CHECK(parse_event_search(P{{"limit", "1001"}}).error == "'limit' must be 1..1000");
  CHECK(parse_event_search(P{{"from", "-5"}}).error.find("'from'") != std::string::npos);
  CHECK(parse_event_search(P{{"from", "12x"}}).error.find("'from'") != std::string::npos);
  CHECK(parse_event_search(P{{"from", "10"}, {"to", "10"}}).error == "'to' must be after 'from'");
  CHECK(parse_event_search(P{{"limit", "1"}, {"limit", "2"}}).error ==
        "parameter 'limit' given twice");
  CHECK(parse_event_search(P{{"sql", "1"}}).error == "unknown parameter 'sql'");
}

TEST_CASE("dashboard: open alerts sort by severity, then age", "[dashboard]") {
  std::vector<anju::edge::Alert> v(4);
  v[0].alert_id = "a";
  v[0].severity = 3;
  v[0].first_seen_ms = 100;
  v[1].alert_id = "b";
  v[1].severity = 1;
  v[1].first_seen_ms = 300;
  v[2].alert_id = "c";
  v[2].severity = 1;
  v[2].first_seen_ms = 200;
  v[3].alert_id = "d";
  v[3].severity = 2;
  v[3].first_seen_ms = 50;
  sort_for_display(v);
  CHECK(v[0].alert_id == "c");
  CHECK(v[1].alert_id == "b");
  CHECK(v[2].alert_id == "d");
  CHECK(v[3].alert_id == "a");
}

TEST_CASE("dashboard: SSE frames", "[dashboard]") {
  CHECK(sse_frame("alert", R"({"a":1})") == "event: alert\ndata: {\"a\":1}\n\n");
  // Line breaks in the data become data lines: a browser joins them with "\n" again.
  CHECK(sse_frame("x", "one\ntwo\r\nthree") == "event: x\ndata: one\ndata: two\ndata: three\n\n");
  CHECK(sse_frame("a\nb", "") == "event: a b\ndata: \n\n");
}

TEST_CASE("dashboard: Prometheus label escaping", "[dashboard]") {
  CHECK(prom_escape(R"(a"b\c)") == R"(a\"b\\c)");
  CHECK(prom_escape("line\nbreak") == "line\\nbreak");
  PromWriter w;
  w.family("anju_x", "help with \\ and\nnewline", "gauge");
  w.sample("anju_x", 1.5, {{"l", "q\"\\\n"}});
  w.sample("anju_x", std::nan(""), {{"l", "nan"}});
  w.sample("anju_x", 1e300 * 1e300, {{"l", "inf"}});
  const auto c = anju::testing::check_prometheus_text(w.text());
  INFO(w.text());
  for (const auto& e : c.errors) INFO(e);
  CHECK(c.ok());
  CHECK(c.samples.size() == 3);
  CHECK(c.samples[0].labels[0].second == "q\"\\\n");
  CHECK(c.value("anju_x", {{"l", "q\"\\\n"}}) == 1.5);
}

TEST_CASE("dashboard: the Prometheus validator rejects what a scraper would", "[dashboard]") {
  using anju::testing::check_prometheus_text;
  CHECK(check_prometheus_text("# TYPE a counter\na 1\n").ok());
  CHECK(check_prometheus_text("a{x=\"1\"} 2 1700000000000\n").ok());
  CHECK_FALSE(check_prometheus_text("a 1").ok());                     // no final newline
  CHECK_FALSE(check_prometheus_text("1a 1\n").ok());                  // bad name
  CHECK_FALSE(check_prometheus_text("a{x=1} 1\n").ok());              // unquoted label
  CHECK_FALSE(check_prometheus_text("a{x=\"\\t\"} 1\n").ok());        // bad escape
  CHECK_FALSE(check_prometheus_text("a{x=\"1\",x=\"2\"} 1\n").ok());  // label twice
  CHECK_FALSE(check_prometheus_text("a one\n").ok());                 // bad value
  CHECK_FALSE(check_prometheus_text("a 1\na 2\n").ok());              // duplicate series
  CHECK_FALSE(check_prometheus_text("a 1\n# TYPE a gauge\n").ok());   // TYPE after samples
  CHECK_FALSE(check_prometheus_text("# TYPE a gauge\n# TYPE a gauge\n").ok());
  CHECK_FALSE(check_prometheus_text("# TYPE a speed\n").ok());
  CHECK_FALSE(check_prometheus_text("# TYPE a counter\na -1\n").ok());
  CHECK_FALSE(check_prometheus_text("a{x=\"1\"} 1\nb 1\na{x=\"2\"} 1\n").ok());  // not together
  CHECK_FALSE(check_prometheus_text("a{__x=\"1\"} 1\n").ok());
}

TEST_CASE("dashboard: /metrics from a status document is valid Prometheus text", "[dashboard]") {
  const json status = json::parse(R"({
    "site":"demo","pid":1,
    "pipeline":{"queue_depth":3,"queue_capacity":20000,"submitted":10,"committed":9,
                "batches":2,"replayed":0,"commit_failures":0,"last_seq":9,"retention_deleted":0},
    "alerts_open":2,
    "outbox":{"alert":{"rows":1,"bytes":100,"evicted":0,"sent":5},
              "event":{"rows":7,"bytes":900,"evicted":2,"sent":50}},
    "uplink":{"connected":true,"connects":3,"connect_failures":1,"published":55,"acked":55,
              "inflight":0,"window":20,"last_error":""},
    "local_bus":{"connected":true,"messages_in":40,"redeliveries_dropped":0,"publish_dropped":6,
                 "publish_queued":11,"window":64},
    "zigbee2mqtt":{"messages":40,"events":38,"parse_errors":2,"unknown_device":0,"devices":5}})");
  DashboardCounters c;
  c.events_by_kind = {{"smoke", 3}, {"audit", 4}};
  c.open_alerts = {{{"raised", 1}, 1}, {{"acknowledged", 2}, 1}};
  c.journal_bytes = 4096;
  c.logins_failed = 2;
  const std::string text = render_metrics(status, c);
  const auto r = anju::testing::check_prometheus_text(text);
  INFO(text);
  for (const auto& e : r.errors) INFO(e);
  REQUIRE(r.ok());
  CHECK(r.types.at("anju_events_committed_total") == "counter");
  CHECK(r.value("anju_events_committed_total", {{"kind", "smoke"}}) == 3);
  CHECK(r.value("anju_alerts_open", {{"state", "acknowledged"}, {"severity", "2"}}) == 1);
  CHECK(r.value("anju_pipeline_queue_depth") == 3);
  CHECK(r.value("anju_pipeline_queue_capacity") == 20000);
  CHECK(r.value("anju_outbox_rows", {{"class", "event"}}) == 7);
  CHECK(r.value("anju_outbox_evicted_total", {{"class", "event"}}) == 2);
  CHECK(r.value("anju_journal_file_bytes") == 4096);
  CHECK(r.value("anju_uplink_connected") == 1);
  CHECK(r.value("anju_uplink_connects_total") == 3);
  CHECK(r.value("anju_uplink_window") == 20);
  CHECK(r.value("anju_local_bus_window") == 64);
  CHECK(r.value("anju_local_bus_publish_queued") == 11);
  CHECK(r.value("anju_local_bus_publish_dropped_total") == 6);
  CHECK(r.value("anju_driver_parse_errors_total", {{"driver", "zigbee2mqtt"}}) == 2);
  CHECK(r.value("anju_dashboard_logins_total", {{"result", "failed"}}) == 2);
  // Every name carries the anju_ prefix.
  for (const auto& s : r.samples) CHECK(s.name.rfind("anju_", 0) == 0);

  // A status without an uplink or drivers still renders valid text.
  const auto bare = anju::testing::check_prometheus_text(
      render_metrics(json{{"uplink", {{"enabled", false}}}}, DashboardCounters{}));
  CHECK(bare.ok());
  CHECK(bare.value("anju_uplink_enabled") == 0);
}

TEST_CASE("dashboard: the config section and its errors", "[dashboard][config]") {
  const std::string base = R"(site:
  id: t1
  grid_code: "11010500100200300401"
local_broker:
  uri: tcp://127.0.0.1:1883
uplink:
  enabled: false
)";
  auto r = parse_config(base, "t.yaml");
  REQUIRE(r.config);
  CHECK_FALSE(r.config->dashboard.enabled);
  CHECK(r.config->dashboard.lockout_after == 5);
  CHECK(r.config->dashboard.lockout_s == 300);

  r = parse_config(base +
                       "dashboard:\n  enabled: true\n  listen: \"[::]:8443\"\n  tls_cert: c.pem\n"
                       "  tls_key: k.pem\n  session_ttl_s: 600\n",
                   "t.yaml");
  REQUIRE(r.config);
  CHECK(r.config->dashboard.listen == "[::]:8443");
  std::string host;
  int port = 0;
  CHECK(split_listen("[::]:8443", host, port));
  CHECK(host == "::");
  CHECK(port == 8443);
  CHECK(split_listen("0.0.0.0:8080", host, port));
  CHECK(host == "0.0.0.0");
  CHECK_FALSE(split_listen("8080", host, port));
  CHECK_FALSE(split_listen("host:0", host, port));
  CHECK_FALSE(split_listen("host:99999", host, port));
  CHECK_FALSE(split_listen(":8080", host, port));

  r = parse_config(base +
                       "dashboard:\n  listen: nowhere\n  tls_cert: c.pem\n  lockout_after: 0\n"
                       "  colour: red\n",
                   "t.yaml");
  REQUIRE_FALSE(r.config);
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  INFO(all);
  CHECK(all.find("t.yaml:9:11: dashboard.listen: must be host:port") != std::string::npos);
  CHECK(all.find("dashboard.tls_key: missing: tls_cert and tls_key must be given together") !=
        std::string::npos);
  CHECK(all.find("t.yaml:11:18: dashboard.lockout_after: must be between 1 and 1000, got 0") !=
        std::string::npos);
  CHECK(all.find("t.yaml:12:3: dashboard.colour: unknown key 'colour'") != std::string::npos);
}
