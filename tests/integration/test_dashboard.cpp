// The dashboard as property management uses it, against a real Mosquitto and the built anjud:
// log in (and fail to), follow open alerts live over Server-Sent Events, act on an alert raised
// by a zigbee2mqtt smoke message, with sessions, CSRF tokens, roles and lockout enforced; and the
// monitoring endpoints /healthz and /metrics.
#include <catch2/catch.hpp>

#include <httplib.h>

#include <atomic>
#include <thread>

#include "harness.hpp"
#include "prom_check.hpp"

using namespace anju::it;

namespace {

json parse(const std::string& s) {
  return json::parse(s, nullptr, false);
}

struct Login {
  std::string cookie;  // "anju_session=<id>"
  std::string csrf;
  std::string set_cookie;
};

std::optional<Login> login(httplib::Client& cli, const std::string& user,
                           const std::string& password, int* status = nullptr) {
  auto res = cli.Post("/api/login", json{{"user", user}, {"password", password}}.dump(),
                      "application/json");
  if (!res) return std::nullopt;
  if (status) *status = res->status;
  if (res->status != 200) return std::nullopt;
  Login l;
  l.set_cookie = res->get_header_value("Set-Cookie");
  l.cookie = l.set_cookie.substr(0, l.set_cookie.find(';'));
  l.csrf = parse(res->body).value("csrf", "");
  return l;
}

httplib::Headers auth(const Login& l, bool with_csrf = true) {
  httplib::Headers h{{"Cookie", l.cookie}};
  if (with_csrf) h.emplace("X-CSRF-Token", l.csrf);
  return h;
}

// Reads /api/stream on its own connection and thread; the test waits on what arrived.
class StreamReader {
 public:
  StreamReader(int port, const Login& l) : cli_("127.0.0.1", port) {
    cli_.set_read_timeout(60, 0);
    thread_ = std::thread([this, l] {
      cli_.Get("/api/stream", httplib::Headers{{"Cookie", l.cookie}},
               [this](const char* data, std::size_t n) {
                 {
                   std::lock_guard lock(mu_);
                   text_.append(data, n);
                 }
                 cv_.notify_all();
                 return !stop_.load();
               });
      std::lock_guard lock(mu_);
      ended_ = true;
      cv_.notify_all();
    });
  }
  ~StreamReader() {
    stop_ = true;
    cli_.stop();
    thread_.join();
  }
  // The `data:` JSON of every complete `event: <name>` frame so far.
  std::vector<json> frames(const std::string& name) const {
    std::lock_guard lock(mu_);
    return parse_frames(name);
  }
  bool wait_for(const std::string& name, const std::function<bool(const std::vector<json>&)>& pred,
                std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return ended_ || pred(parse_frames(name)); }) &&
           pred(parse_frames(name));
  }
  std::string text() const {
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  std::vector<json> parse_frames(const std::string& name) const {
    std::vector<json> out;
    std::size_t pos = 0;
    for (;;) {
      const auto end = text_.find("\n\n", pos);
      if (end == std::string::npos) break;
      const std::string frame = text_.substr(pos, end - pos);
      pos = end + 2;
      std::string event, data;
      std::size_t p = 0;
      while (p < frame.size()) {
        auto nl = frame.find('\n', p);
        std::string line = frame.substr(p, nl == std::string::npos ? std::string::npos : nl - p);
        p = nl == std::string::npos ? frame.size() : nl + 1;
        if (line.rfind("event: ", 0) == 0) event = line.substr(7);
        if (line.rfind("data: ", 0) == 0) data += (data.empty() ? "" : "\n") + line.substr(6);
      }
      if (event == name) out.push_back(parse(data));
    }
    return out;
  }
  httplib::Client cli_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  bool ended_ = false;
};

bool has_change(const std::vector<json>& frames, const std::string& alert_id,
                const std::string& change) {
  for (const auto& f : frames)
    if (f.is_object() && f.value("change", "") == change &&
        f["alert"].value("alert_id", "") == alert_id)
      return true;
  return false;
}

}  // namespace

TEST_CASE("dashboard: login, live alerts, actions with CSRF and roles, lockout, monitoring",
          "[e2e][dashboard]") {
  Mosquitto local;
  local.start();
  Collector local_alerts(local.uri(), "anju/demo-compound/alert/+");
  local_alerts.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.dashboard_port = pick_free_port();
  cfg.dashboard_lockout_after = 5;
  cfg.dashboard_lockout_s = 300;
  Anjud gw(cfg);
  std::string out;
  REQUIRE(add_dashboard_user(gw, "wang", "operator", "op-password-1", &out) == 0);
  INFO(out);
  REQUIRE(add_dashboard_user(gw, "li", "viewer", "viewer-password-1") == 0);
  REQUIRE(add_dashboard_user(gw, "guard", "operator", "guard-password-1") == 0);
  CHECK(add_dashboard_user(gw, "wang", "admin", "another-pass-1", &out) == 1);  // exists
  CHECK(add_dashboard_user(gw, "zhao", "root", "another-pass-1") == 2);         // bad role
  CHECK(add_dashboard_user(gw, "zhao", "viewer", "short") == 2);                // too short
  gw.start();
  REQUIRE(gw.wait_devices(5, 15s));
  const int port = cfg.dashboard_port;
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(15, 0);

  // Healthy once the pipeline has committed (its tick commits every second even when idle).
  REQUIRE(wait_until(
      [&] {
        auto r = cli.Get("/healthz");
        return r && r->status == 200 && r->body == "ok\n";
      },
      10s, 50ms));

  // The page itself is served from the binary, to anyone (it holds no data).
  auto page = cli.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").rfind("text/html", 0) == 0);
  CHECK(page->body.find("app.js") != std::string::npos);
  auto js = cli.Get("/app.js");
  REQUIRE(js);
  CHECK(js->status == 200);
  CHECK(js->body.find("EventSource") != std::string::npos);

  // Data needs a session.
  auto anon = cli.Get("/api/alerts");
  REQUIRE(anon);
  CHECK(anon->status == 401);

  // A wrong password: 401 with a reason, and no cookie.
  int status = 0;
  CHECK_FALSE(login(cli, "guard", "wrong-password", &status));
  CHECK(status == 401);
  auto bad = cli.Post("/api/login", R"({"user":"nobody","password":"x"})", "application/json");
  REQUIRE(bad);
  CHECK(bad->status == 401);
  CHECK(parse(bad->body).value("error", "") == "wrong user name or password");
  CHECK_FALSE(bad->has_header("Set-Cookie"));
  // A form post (not JSON) is refused before anything else.
  auto form = cli.Post("/api/login", "user=wang&password=op-password-1",
                       "application/x-www-form-urlencoded");
  REQUIRE(form);
  CHECK(form->status == 415);

  auto op = login(cli, "wang", "op-password-1", &status);
  REQUIRE(op);
  CHECK(status == 200);
  CHECK(op->cookie.rfind("anju_session=", 0) == 0);
  CHECK(op->cookie.size() == std::string("anju_session=").size() + 64);
  CHECK(op->set_cookie.find("HttpOnly") != std::string::npos);
  CHECK(op->set_cookie.find("SameSite=Strict") != std::string::npos);
  CHECK(op->set_cookie.find("Secure") == std::string::npos);  // plain HTTP here
  CHECK(op->csrf.size() == 64);
  auto viewer = login(cli, "li", "viewer-password-1");
  REQUIRE(viewer);

  auto session = cli.Get("/api/session", auth(*op, false));
  REQUIRE(session);
  CHECK(session->status == 200);
  CHECK(parse(session->body).value("user", "") == "wang");
  CHECK(parse(session->body).value("role", "") == "operator");
  CHECK(parse(session->body).value("csrf", "") == op->csrf);

  // Follow the live stream, then raise an alert with a zigbee2mqtt smoke message.
  StreamReader stream(port, *op);
  REQUIRE(stream.wait_for(
      "snapshot", [](const auto& f) { return !f.empty(); }, 10s));
  local_alerts.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":true,"battery":87})", 1, false);
  std::string alert_id;
  REQUIRE(stream.wait_for(
      "alert",
      [&](const std::vector<json>& frames) {
        for (const auto& f : frames)
          if (f.value("change", "") == "raised" && f["alert"].value("rule", "") == "smoke")
            alert_id = f["alert"].value("alert_id", "");
        return !alert_id.empty();
      },
      15s));
  INFO("alert " << alert_id);

  auto alerts = cli.Get("/api/alerts", auth(*op, false));
  REQUIRE(alerts);
  CHECK(alerts->status == 200);
  const json open = parse(alerts->body)["alerts"];
  REQUIRE(open.is_array());
  REQUIRE(open.size() == 1);
  CHECK(open[0].value("alert_id", "") == alert_id);
  CHECK(open[0].value("state", "") == "raised");

  const std::string ack_path = "/api/alerts/" + alert_id + "/ack";
  const std::string close_path = "/api/alerts/" + alert_id + "/close";
  // No CSRF token, or someone else's: 403 with the reason, and nothing changes.
  auto no_csrf = cli.Post(ack_path, auth(*op, false), R"({"note":"x"})", "application/json");
  REQUIRE(no_csrf);
  CHECK(no_csrf->status == 403);
  CHECK(parse(no_csrf->body).value("error", "") == "missing or wrong X-CSRF-Token");
  httplib::Headers wrong{{"Cookie", op->cookie}, {"X-CSRF-Token", viewer->csrf}};
  auto wrong_csrf = cli.Post(ack_path, wrong, "{}", "application/json");
  REQUIRE(wrong_csrf);
  CHECK(wrong_csrf->status == 403);
  // A viewer may look but not act.
  auto by_viewer = cli.Post(close_path, auth(*viewer), "{}", "application/json");
  REQUIRE(by_viewer);
  CHECK(by_viewer->status == 403);
  CHECK(parse(by_viewer->body).value("error", "").find("viewer") != std::string::npos);
  // An unknown action is not an action.
  auto unknown =
      cli.Post("/api/alerts/" + alert_id + "/delete", auth(*op), "{}", "application/json");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);

  // The operator acknowledges (with a note) and closes it.
  auto ack = cli.Post(ack_path, auth(*op), R"({"note":"on my way / 马上到"})", "application/json");
  REQUIRE(ack);
  INFO(ack->body);
  CHECK(ack->status == 200);
  CHECK(parse(ack->body).value("ok", false));
  CHECK(parse(ack->body)["alert"].value("state", "") == "acknowledged");
  // Acknowledging twice is refused with the life-cycle's reason.
  auto again = cli.Post(ack_path, auth(*op), "{}", "application/json");
  REQUIRE(again);
  CHECK(again->status == 409);
  CHECK(parse(again->body).value("error", "").find("only a raised alert") != std::string::npos);
  // The list every open screen polls shows the new state (it is rendered once per change).
  REQUIRE(stream.wait_for(
      "alert", [&](const auto& f) { return has_change(f, alert_id, "acknowledged"); }, 10s));
  alerts = cli.Get("/api/alerts", auth(*op, false));
  REQUIRE(alerts);
  REQUIRE(parse(alerts->body)["alerts"].size() == 1);
  CHECK(parse(alerts->body)["alerts"][0].value("state", "") == "acknowledged");
  auto close =
      cli.Post(close_path, auth(*op), R"({"note":"false smoke from cooking"})", "application/json");
  REQUIRE(close);
  CHECK(close->status == 200);
  CHECK(parse(close->body)["alert"].value("state", "") == "closed");

  // The stream delivered the raise and both transitions, in order.
  REQUIRE(stream.wait_for(
      "alert", [&](const auto& f) { return has_change(f, alert_id, "closed"); }, 10s));
  std::vector<std::string> changes;
  for (const auto& f : stream.frames("alert"))
    if (f["alert"].value("alert_id", "") == alert_id) changes.push_back(f.value("change", ""));
  REQUIRE(changes.size() >= 3);
  CHECK(changes.front() == "raised");
  CHECK(std::find(changes.begin(), changes.end(), "acknowledged") <
        std::find(changes.begin(), changes.end(), "closed"));

  // Closed: gone from the open list; its detail has the timeline and its events.
  alerts = cli.Get("/api/alerts", auth(*op, false));
  REQUIRE(alerts);
  CHECK(parse(alerts->body)["alerts"].empty());
  auto detail = cli.Get("/api/alerts/" + alert_id, auth(*viewer, false));
  REQUIRE(detail);
  REQUIRE(detail->status == 200);
  const json d = parse(detail->body);
  const json history = d["alert"]["history"];
  REQUIRE(history.size() == 2);
  CHECK(history[0].value("action", "") == "ack");
  CHECK(history[0].value("by", "") == "wang");
  CHECK(history[0].value("via", "") == "dashboard");
  CHECK(history[0].value("note", "") == "on my way / 马上到");
  CHECK(history[1].value("to", "") == "closed");
  bool smoke_event = false, transition_events = false;
  for (const auto& e : d["events"]) {
    if (e.value("kind", "") == "smoke") smoke_event = true;
    if (e.value("kind", "") == "alert_transition") transition_events = true;
  }
  CHECK(smoke_event);
  CHECK(transition_events);
  auto missing = cli.Get("/api/alerts/00000000-0000-7000-8000-000000000000", auth(*op, false));
  REQUIRE(missing);
  CHECK(missing->status == 404);

  // Event search by kind and building (a field of the event body).
  auto events = cli.Get("/api/events?kind=smoke&building=3&limit=10", auth(*viewer, false));
  REQUIRE(events);
  REQUIRE(events->status == 200);
  const json found = parse(events->body)["events"];
  REQUIRE(found.size() == 1);
  CHECK(found[0]["device"].value("name", "") == "smoke_3_2_hall");
  auto elsewhere = cli.Get("/api/events?kind=smoke&building=B1", auth(*viewer, false));
  REQUIRE(elsewhere);
  CHECK(parse(elsewhere->body)["events"].empty());
  auto bad_query = cli.Get("/api/events?kind=fire", auth(*viewer, false));
  REQUIRE(bad_query);
  CHECK(bad_query->status == 400);
  CHECK(parse(bad_query->body).value("error", "") == "unknown event kind 'fire'");

  // Devices with what the gateway knows of them.
  auto devices = cli.Get("/api/devices", auth(*viewer, false));
  REQUIRE(devices);
  INFO(devices->body);
  bool smoke_device = false;
  const json device_list = parse(devices->body)["devices"];
  for (const auto& dev : device_list)
    if (dev.value("name", "") == "smoke_3_2_hall") {
      smoke_device = true;
      CHECK(dev.value("last_seen_ms", 0LL) > 0);
      CHECK(dev["location"].value("building", "") == "3");
      CHECK(dev["battery"] == 87);
      CHECK(dev["online"] == true);
      // One message, two events of the same instant (the alarm and the battery reading).
      const std::string last = dev.value("last_event", "");
      CHECK((last == "smoke" || last == "battery"));
    }
  CHECK(smoke_device);
  auto st = cli.Get("/api/status", auth(*viewer, false));
  REQUIRE(st);
  CHECK(parse(st->body)["pipeline"].value("queue_capacity", 0) > 0);
  CHECK(parse(st->body)["outbox"].contains("alert"));

  // Monitoring.
  auto health = cli.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto metrics = cli.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->get_header_value("Content-Type").find("version=0.0.4") != std::string::npos);
  const auto m = anju::testing::check_prometheus_text(metrics->body);
  INFO(metrics->body);
  for (const auto& e : m.errors) INFO(e);
  REQUIRE(m.ok());
  CHECK(m.value("anju_events_committed_total", {{"kind", "smoke"}}) == 1);
  CHECK(m.value("anju_events_committed_total", {{"kind", "alert_transition"}}) == 2);
  CHECK(m.value("anju_dashboard_sse_clients") == 1);
  CHECK(m.value("anju_local_bus_connected") == 1);
  CHECK(m.value("anju_driver_devices", {{"driver", "zigbee2mqtt"}}) == 5);
  CHECK(m.value("anju_journal_file_bytes") > 0);

  // Logout ends the session (and needs the CSRF token like any other POST).
  auto lo_nocsrf = cli.Post("/api/logout", auth(*viewer, false), "", "application/json");
  REQUIRE(lo_nocsrf);
  CHECK(lo_nocsrf->status == 403);
  auto lo = cli.Post("/api/logout", auth(*viewer), "", "application/json");
  REQUIRE(lo);
  CHECK(lo->status == 200);
  auto after = cli.Get("/api/session", auth(*viewer, false));
  REQUIRE(after);
  CHECK(after->status == 401);

  // Users are managed with the CLI while anjud runs: a changed password ends the user's
  // sessions, a deleted user can no longer log in.
  const std::string cli_prefix =
      std::string("'") + ANJU_PATH + "' --data-dir '" + gw.data_dir().string() + "' ";
  CHECK(run_shell("printf 'op-password-2\\n' | " + cli_prefix + "user passwd wang", &out) == 0);
  INFO(out);
  auto ended = cli.Get("/api/session", auth(*op, false));
  REQUIRE(ended);
  CHECK(ended->status == 401);
  CHECK_FALSE(login(cli, "wang", "op-password-1", &status));
  auto op2 = login(cli, "wang", "op-password-2", &status);
  CHECK(op2);
  CHECK(run_shell(cli_prefix + "user del li", &out) == 0);
  CHECK(run_shell(cli_prefix + "user list --json", &out) == 0);
  const json listed = parse(out);
  REQUIRE(listed.is_array());
  CHECK(listed.size() == 2);
  CHECK(listed.dump().find("\"li\"") == std::string::npos);
  CHECK(listed.dump().find("password") == std::string::npos);  // hashes are not shown
  CHECK_FALSE(login(cli, "li", "viewer-password-1", &status));
  CHECK(status == 401);

  // Lockout: four failures from this address so far (guard, nobody, wang's old password, li
  // deleted) and one more make five; then even the right password is refused for the lockout
  // period, with Retry-After. (The per-user count alone is covered by the unit tests.)
  for (int i = 0; i < 1; ++i) {
    CHECK_FALSE(login(cli, "guard", "wrong-" + std::to_string(i), &status));
    CHECK(status == 401);
  }
  auto locked =
      cli.Post("/api/login", json{{"user", "guard"}, {"password", "guard-password-1"}}.dump(),
               "application/json");
  REQUIRE(locked);
  CHECK(locked->status == 429);
  const int retry = std::atoi(locked->get_header_value("Retry-After").c_str());
  CHECK(retry > 250);
  CHECK(retry <= 300);

  // The audit trail in the journal: logins (ok and failed), the actions, the logout. The last
  // ones were handed to the pipeline just now: wait until they are committed.
  const auto db = gw.db_path();
  auto audits = [&](const std::string& where) {
    return sql_i64(db, "SELECT count(*) FROM events WHERE kind='audit' AND " + where);
  };
  const std::string attr = "json_extract(anju_event_json(body),'$.attrs.";
  CHECK(wait_until([&] { return audits(attr + "action')='login' AND " + attr + "ok')=0") == 6; },
                   10s));
  CHECK(audits(attr + "action')='login' AND " + attr + "ok')=1") == 3);
  CHECK(audits(attr + "action')='login' AND " + attr + "reason')='locked out'") == 1);
  CHECK(audits(attr + "user')='wang' AND " + attr + "alert_id')='" + alert_id + "' AND " + attr +
               "ok')=1") == 2);
  CHECK(audits(attr + "user')='li' AND " + attr + "action')='close' AND " + attr + "ok')=0") == 1);
  CHECK(audits(attr + "action')='logout'") == 1);
  CHECK(audits("json_extract(anju_event_json(body),'$.source')='dashboard'") == audits("1=1"));
  CHECK(gw.term() == 0);
}

TEST_CASE("dashboard: HTTPS when a certificate is configured, the cookie is Secure",
          "[e2e][dashboard]") {
  TempDir certs("anju-it-tls");
  const auto cert = certs / "cert.pem";
  const auto key = certs / "key.pem";
  std::string out;
  REQUIRE(
      run_shell("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout '" +
                    key.string() + "' -out '" + cert.string() + "'",
                &out) == 0);
  Mosquitto local;
  local.start();
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.dashboard_port = pick_free_port();
  cfg.dashboard_tls_cert = cert.string();
  cfg.dashboard_tls_key = key.string();
  Anjud gw(cfg);
  REQUIRE(add_dashboard_user(gw, "wang", "operator", "op-password-1") == 0);
  gw.start();
  // The certificate names "localhost", and the client checks it against the CA file.
  httplib::SSLClient named("localhost", cfg.dashboard_port);
  named.set_ca_cert_path(cert.string().c_str());
  named.enable_server_certificate_verification(true);
  REQUIRE(wait_until(
      [&] {
        auto r = named.Get("/healthz");
        return r && r->status == 200;
      },
      10s, 50ms));
  auto res =
      named.Post("/api/login", R"({"user":"wang","password":"op-password-1"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  const std::string set_cookie = res->get_header_value("Set-Cookie");
  CHECK(set_cookie.find("Secure") != std::string::npos);
  CHECK(set_cookie.find("HttpOnly") != std::string::npos);
  // Plain HTTP on the same port is not served.
  httplib::Client plain("127.0.0.1", cfg.dashboard_port);
  plain.set_read_timeout(2, 0);
  auto p = plain.Get("/healthz");
  CHECK((!p || p->status != 200));
  CHECK(gw.term() == 0);
}
