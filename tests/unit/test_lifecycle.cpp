// The alert life-cycle: transitions, the command parser, escalation, and commands through the
// pipeline (idempotent by request id, journaled).
#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <random>
#include <tuple>

#include "anju/edge/clock.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/lifecycle.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/edge/rules.hpp"
#include "anju/edge/uuid.hpp"

using namespace anju::edge;
namespace fs = std::filesystem;

namespace {

Event alarm(const ManualClock& clock, const std::string& dev, EventKind kind, bool on) {
  Event e;
  e.id = uuid_v7(clock.wall_ms());
  e.ts_ms = clock.wall_ms();
  e.site = "site-a";
  e.device = {dev, "smoke_detector", dev, ""};
  e.kind = kind;
  e.active = on;
  e.source = "test";
  return e;
}

// A pipeline on a real journal file in a fresh temp dir, driven by hand with a ManualClock.
struct PipelineRig {
  fs::path dir;
  ManualClock clock;
  std::unique_ptr<Journal> journal;
  std::unique_ptr<RuleEngine> rules;
  std::unique_ptr<Pipeline> pipeline;
  PipelineRig() {
    std::random_device rd;
    dir = fs::temp_directory_path() / ("anju-lc-" + std::to_string(rd()));
    fs::create_directories(dir);
    JournalOptions o;
    o.path = (dir / "j.db").string();
    journal = Journal::open(o, nullptr);
    RuleSettings s;
    s.heartbeat_timeout_ms = 0;
    rules = std::make_unique<RuleEngine>(s);
    PipelineOptions po;
    po.inbox_dir = (dir / "inbox").string();
    pipeline = std::make_unique<Pipeline>(*journal, *rules, clock, po);
    pipeline->start(false);
  }
  ~PipelineRig() {
    pipeline.reset();
    journal.reset();
    fs::remove_all(dir);
  }
  std::tuple<ManualClock&, Journal*, RuleEngine&, Pipeline&> parts() {
    return {clock, journal.get(), *rules, *pipeline};
  }
};

AlertCommand command(const std::string& alert_id, AlertAction action, const std::string& req) {
  AlertCommand c;
  c.alert_id = alert_id;
  c.action = action;
  c.user = "wang";
  c.via = "local_mqtt";
  c.request_id = req;
  return c;
}

Alert in_state(const std::string& state) {
  Alert a;
  a.state = state;
  if (state == "suspended") a.suspended_from = "acknowledged";
  return a;
}

}  // namespace

TEST_CASE("life-cycle: every legal and illegal transition", "[lifecycle]") {
  struct Row {
    const char* from;
    AlertAction action;
    const char* to;  // "" = refused
  };
  const Row rows[] = {
      {"raised", AlertAction::ack, "acknowledged"},
      {"raised", AlertAction::handle, "handled"},
      {"raised", AlertAction::close, ""},
      {"raised", AlertAction::false_alarm, "closed"},
      {"raised", AlertAction::suspend, "suspended"},
      {"raised", AlertAction::resume, ""},
      {"acknowledged", AlertAction::ack, ""},
      {"acknowledged", AlertAction::handle, "handled"},
      {"acknowledged", AlertAction::close, "closed"},
      {"acknowledged", AlertAction::false_alarm, "closed"},
      {"acknowledged", AlertAction::suspend, "suspended"},
      {"acknowledged", AlertAction::resume, ""},
      {"handled", AlertAction::ack, ""},
      {"handled", AlertAction::handle, ""},
      {"handled", AlertAction::close, "closed"},
      {"handled", AlertAction::false_alarm, "closed"},
      {"handled", AlertAction::suspend, "suspended"},
      {"suspended", AlertAction::ack, ""},
      {"suspended", AlertAction::close, ""},
      {"suspended", AlertAction::suspend, ""},
      {"suspended", AlertAction::resume, "acknowledged"},
      {"suspended", AlertAction::false_alarm, "closed"},
      {"closed", AlertAction::ack, ""},
      {"closed", AlertAction::false_alarm, ""},
      {"closed", AlertAction::resume, ""},
  };
  for (const auto& row : rows) {
    INFO(row.from << " + " << to_string(row.action));
    const auto r = check_transition(in_state(row.from), row.action);
    CHECK(r.to == row.to);
    CHECK(r.error.empty() == (std::string(row.to) != ""));
  }
}

TEST_CASE("life-cycle: the command parser names what is wrong", "[lifecycle]") {
  auto ok = parse_alert_command(
      "a1", R"({"action":"ack","user":"wang","note":"on my way","request_id":"r-1"})",
      "local_mqtt");
  REQUIRE(ok.command);
  CHECK(ok.command->action == AlertAction::ack);
  CHECK(ok.command->user == "wang");
  CHECK(ok.command->note == "on my way");
  CHECK(ok.command->via == "local_mqtt");
  CHECK(ok.command->alert_id == "a1");

  auto err = [](std::string_view payload) {
    return parse_alert_command("a1", payload, "local_mqtt").error;
  };
  CHECK(err("nope") == "command is not valid JSON");
  CHECK(err("[]") == "command must be a JSON object");
  CHECK(err(R"({"user":"w","request_id":"r"})") == "missing field 'action'");
  CHECK(err(R"({"action":"ack","request_id":"r"})").find("missing field 'user'") == 0);
  CHECK(err(R"({"action":"ack","user":"w"})") == "missing field 'request_id'");
  CHECK(err(R"({"action":"shred","user":"w","request_id":"r"})").find("unknown action 'shred'") ==
        0);
  CHECK(err(R"({"action":"ack","user":"w","request_id":"r","colour":1})") ==
        "unknown field 'colour'");
  CHECK(err(R"({"action":"ack","user":7,"request_id":"r"})") == "field 'user' must be a string");
  CHECK(err(R"({"action":"ack","user":"w","request_id":"r","reply_to":"x/#"})").find("reply_to") !=
        std::string::npos);
  CHECK(err(std::string(9000, ' ')).find("command too large: 9000 bytes") == 0);
  CHECK(parse_alert_command("a/b", R"({"action":"ack","user":"w","request_id":"r"})", "x").error ==
        "bad alert id in the topic");
}

TEST_CASE("life-cycle: a closed alert leaves, the next alarm raises a new one", "[lifecycle]") {
  ManualClock clock;
  RuleEngine rules({});
  std::vector<AlertChange> out;
  rules.on_event(alarm(clock, "s1", EventKind::smoke, true), out);
  REQUIRE(out.size() == 1);
  const std::string id = out[0].alert.alert_id;
  out.clear();

  auto r = rules.apply(command(id, AlertAction::close, "r1"), clock.wall_ms(), out);
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("acknowledge it first") != std::string::npos);
  CHECK(out.empty());

  clock.advance_ms(1000);
  r = rules.apply(command(id, AlertAction::ack, "r2"), clock.wall_ms(), out);
  REQUIRE(r.ok);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::acknowledged);
  CHECK(out[0].alert.state == "acknowledged");
  REQUIRE(out[0].alert.history.size() == 1);
  CHECK(out[0].alert.history[0].by == "wang");
  CHECK(out[0].alert.history[0].from == "raised");
  CHECK(out[0].alert.history[0].at_ms == clock.wall_ms());

  out.clear();
  r = rules.apply(command(id, AlertAction::close, "r3"), clock.wall_ms(), out);
  REQUIRE(r.ok);
  CHECK(out[0].type == AlertChangeType::closed);
  CHECK(out[0].alert.close_reason == "resolved");
  CHECK(rules.open_alerts().empty());
  r = rules.apply(command(id, AlertAction::ack, "r4"), clock.wall_ms(), out);
  CHECK(r.error == "no open alert " + id);

  out.clear();
  rules.on_event(alarm(clock, "s1", EventKind::smoke, true), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::raised);
  CHECK(out[0].alert.alert_id != id);
}

TEST_CASE("life-cycle: escalation when nobody acknowledges, surviving a restart", "[lifecycle]") {
  ManualClock clock;
  RuleSettings s;
  s.heartbeat_timeout_ms = 0;
  s.escalate_after_ms = {0, 60'000, 300'000, 1'800'000, 0};
  RuleEngine rules(s);
  std::vector<AlertChange> out;
  std::vector<Event> synth;
  rules.on_event(alarm(clock, "w1", EventKind::water_leak, true), out);  // severity 3
  REQUIRE(out.size() == 1);
  CHECK(rules.next_deadline_ms() == clock.wall_ms() + 1'800'000);
  out.clear();
  clock.advance_ms(1'799'999);
  rules.on_tick(clock.wall_ms(), synth, out);
  CHECK(out.empty());
  clock.advance_ms(1);
  rules.on_tick(clock.wall_ms(), synth, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].type == AlertChangeType::escalated);
  CHECK(out[0].alert.severity == 2);
  CHECK(out[0].alert.escalation_level == 1);
  // The next escalation is due after severity 2's time, counted from this one.
  CHECK(rules.next_deadline_ms() == clock.wall_ms() + 300'000);

  // Restart: the timer is data in the alert.
  RuleEngine again(s);
  again.restore(rules.open_alerts(), {}, clock.wall_ms());
  out.clear();
  clock.advance_ms(300'000);
  again.on_tick(clock.wall_ms(), synth, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].alert.severity == 1);
  CHECK(out[0].alert.escalation_level == 2);

  // Acknowledged alerts do not escalate.
  out.clear();
  REQUIRE(again
              .apply(command(again.open_alerts()[0].alert_id, AlertAction::ack, "r"),
                     clock.wall_ms(), out)
              .ok);
  out.clear();
  clock.advance_ms(10'000'000);
  again.on_tick(clock.wall_ms(), synth, out);
  CHECK(out.empty());
}

TEST_CASE("test events raise their own flagged alert and leave the device alone", "[lifecycle]") {
  ManualClock clock;
  RuleSettings s;
  s.heartbeat_timeout_ms = 0;
  RuleEngine rules(s);
  std::vector<AlertChange> out;
  std::vector<Event> synth;
  // A real smoke alarm is open on s1.
  rules.on_event(alarm(clock, "s1", EventKind::smoke, true), out);
  REQUIRE(out.size() == 1);
  const std::string real_id = out[0].alert.alert_id;
  out.clear();

  // Two installer's tests on the same detector, standing for smoke.
  Event t = alarm(clock, "s1", EventKind::gateway_test, true);
  t.active.reset();
  t.attrs = {{"test", true}, {"alert_kind", "smoke"}};
  rules.on_event(t, out);
  t.id = uuid_v7(clock.wall_ms());
  rules.on_event(t, out);
  REQUIRE(out.size() == 2);
  for (const auto& c : out) {
    CHECK(c.type == AlertChangeType::raised);
    CHECK(c.alert.test);
    CHECK(c.alert.rule == "gateway_test");
    CHECK(c.alert.kind == EventKind::smoke);  // the city gets it on the smoke topic...
    CHECK(c.alert.severity == 1);             // ...with smoke's severity
    CHECK(c.alert.count == 1);
    CHECK(c.alert.alert_id != real_id);
    CHECK(c.alert.message.rfind("TEST, nobody is dispatched: smoke at s1", 0) == 0);
  }
  CHECK(out[0].alert.alert_id != out[1].alert.alert_id);
  CHECK(to_json(out[0].alert).value("test", false));
  // The real alarm is untouched: its count is still 1.
  for (const auto& a : rules.open_alerts())
    if (a.alert_id == real_id) CHECK(a.count == 1);

  // A test alert never escalates, and survives a restart as a test alert of its own.
  s.escalate_after_ms = {0, 1, 1, 1, 1};
  RuleEngine again(s);
  again.restore(rules.open_alerts(), {}, clock.wall_ms());
  CHECK(again.open_alert_count() == 3);
  out.clear();
  clock.advance_ms(60'000);
  again.on_tick(clock.wall_ms(), synth, out);
  REQUIRE(out.size() == 1);  // only the real alarm escalates
  CHECK(out[0].alert.alert_id == real_id);
  CHECK(out[0].type == AlertChangeType::escalated);

  // A test alert is closed like any other.
  std::string test_id;
  for (const auto& a : again.open_alerts())
    if (a.test) test_id = a.alert_id;
  out.clear();
  REQUIRE(again.apply(command(test_id, AlertAction::close, "t1"), clock.wall_ms(), out).ok);
  REQUIRE(out.size() == 1);
  CHECK(out[0].alert.state == "closed");
  CHECK(out[0].alert.close_reason == "test");
  CHECK(out[0].alert.test);
  CHECK(again.open_alert_count() == 2);
}

TEST_CASE("life-cycle: commands through the pipeline are journaled and applied once",
          "[lifecycle]") {
  PipelineRig rig;
  {
    auto [clock, j, rules, p] = rig.parts();
    p.submit(alarm(clock, "g1", EventKind::gas, true));
    p.run_once();
    const std::string id = rules.open_alerts().at(0).alert_id;

    std::vector<std::pair<CommandResult, bool>> answers;
    auto done = [&](const CommandResult& r, bool dup) { answers.emplace_back(r, dup); };
    REQUIRE(p.submit_command(command(id, AlertAction::ack, "req-1"), done));
    REQUIRE(p.submit_command(command(id, AlertAction::ack, "req-1"), done));  // same request
    REQUIRE(p.submit_command(command(id, AlertAction::ack, "req-2"), done));  // a second ack
    AlertCommand stale = command(id, AlertAction::handle, "req-3");
    stale.expires_ms = clock.wall_ms() - 1;
    REQUIRE(p.submit_command(stale, done));
    p.run_once();
    REQUIRE(answers.size() == 4);
    CHECK(answers[0].first.ok);
    CHECK_FALSE(answers[0].second);
    CHECK(answers[1].first.ok);
    CHECK(answers[1].second);  // duplicate: answered as before, applied once
    CHECK_FALSE(answers[2].first.ok);
    CHECK(answers[2].first.error.find("only a raised alert") != std::string::npos);
    CHECK(answers[3].first.error.find("command expired") == 0);

    EventQuery q;
    q.kind = EventKind::alert_transition;
    auto transitions = query_events(j->db(), q);
    REQUIRE(transitions.size() == 1);
    CHECK(transitions[0].attrs["action"] == "ack");
    CHECK(transitions[0].attrs["by"] == "wang");
    CHECK(transitions[0].attrs["alert_id"] == id);
    auto stored = load_alerts(j->db(), true);
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].state == "acknowledged");
    CHECK(stored[0].version == 2);
  }
}

TEST_CASE("life-cycle: an escalation through the pipeline is journaled", "[lifecycle]") {
  PipelineRig rig;
  {
    auto [clock, j, rules, p] = rig.parts();
    p.submit(alarm(clock, "g1", EventKind::gas, true));  // severity 1: escalates after 60 s
    p.run_once();
    clock.advance_ms(60'000);
    p.run_once();
    EventQuery q;
    q.kind = EventKind::alert_transition;
    auto t = query_events(j->db(), q);
    REQUIRE(t.size() == 1);
    CHECK(t[0].attrs["action"] == "escalate");
    CHECK(t[0].attrs["by"] == "system");
    auto stored = load_alerts(j->db(), true);
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].escalation_level == 1);
    CHECK(stored[0].last_seq == t[0].seq);
  }
}

TEST_CASE("maintenance: the parser names what is wrong", "[maintenance]") {
  auto ok = parse_maintenance_command(
      R"({"action":"start","user":"wang","request_id":"m1","device":"leak_pump_room","duration_s":3600,"note":"pump repair"})",
      "local_mqtt");
  REQUIRE(ok.command);
  CHECK(ok.command->start);
  CHECK(ok.command->duration_s == 3600);
  auto err = [](std::string_view p) { return parse_maintenance_command(p, "x").error; };
  CHECK(err(R"({"action":"start","user":"w","request_id":"r","duration_s":60})") ==
        "name either a 'device' or a 'building' (with an optional 'unit')");
  CHECK(
      err(R"({"action":"start","user":"w","request_id":"r","device":"d","building":"3","duration_s":60})") ==
      "name either a 'device' or a 'building' (with an optional 'unit')");
  CHECK(err(R"({"action":"start","user":"w","request_id":"r","device":"d"})") ==
        "missing field 'duration_s' (how long the maintenance lasts)");
  CHECK(err(R"({"action":"start","user":"w","request_id":"r","device":"d","duration_s":0})")
            .find("duration_s") != std::string::npos);
  CHECK(err(R"({"action":"pause","user":"w","request_id":"r","device":"d"})") ==
        "unknown action 'pause' (expected start or end)");
  CHECK(err(R"({"action":"end","user":"w","request_id":"r","unit":"2"})") ==
        "name either a 'device' or a 'building' (with an optional 'unit')");
  CHECK(parse_maintenance_command(
            R"({"action":"end","user":"w","request_id":"r","building":"3","unit":"2"})", "x")
            .command);
}

TEST_CASE("maintenance: alerts raised in a window are suppressed, not escalated, it expires",
          "[maintenance]") {
  ManualClock clock;
  RuleSettings s;
  s.heartbeat_timeout_ms = 0;
  RuleEngine rules(s);
  MaintenanceCommand start;
  start.user = "wang";
  start.request_id = "m1";
  start.building = "3";
  start.duration_s = 600;
  REQUIRE(rules.apply(start, clock.wall_ms()).ok);

  std::vector<AlertChange> out;
  std::vector<Event> synth;
  Event in_area = alarm(clock, "g1", EventKind::gas, true);
  in_area.location = {"3", "2", "1201"};
  Event elsewhere = alarm(clock, "g2", EventKind::gas, true);
  elsewhere.location = {"5", "1", "101"};
  rules.on_event(in_area, out);
  rules.on_event(elsewhere, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].alert.suppressed);
  CHECK_FALSE(out[1].alert.suppressed);
  out.clear();
  clock.advance_ms(120'000);  // past severity 1's escalation time
  rules.on_tick(clock.wall_ms(), synth, out);
  REQUIRE(out.size() == 1);  // only the alert outside the window escalates
  CHECK(out[0].alert.device.id == "g2");

  clock.advance_ms(600'000);  // the window is over
  rules.on_tick(clock.wall_ms(), synth, out);
  CHECK(rules.maintenance().empty());
  out.clear();
  Event later = alarm(clock, "g3", EventKind::gas, true);
  later.location = {"3", "2", "1202"};
  rules.on_event(later, out);
  REQUIRE(out.size() == 1);
  CHECK_FALSE(out[0].alert.suppressed);

  MaintenanceCommand end = start;
  end.start = false;
  end.request_id = "m2";
  CHECK(rules.apply(end, clock.wall_ms()).error == "no maintenance window for building 3");
}

TEST_CASE("maintenance: the city does not hear of suppressed alerts, windows are kept",
          "[maintenance]") {
  PipelineRig rig;
  {
    auto [clock, j, rules, p] = rig.parts();
    MaintenanceCommand start;
    start.user = "wang";
    start.request_id = "m1";
    start.device = "g1";
    start.duration_s = 600;
    bool answered = false;
    REQUIRE(p.submit_maintenance(start, [&](const CommandResult& r, bool) { answered = r.ok; }));
    p.submit(alarm(clock, "g1", EventKind::gas, true));
    p.run_once();
    CHECK(answered);
    auto alerts = load_alerts(j->db(), true);
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0].suppressed);
    auto saved = meta_get(j->db(), "maintenance_windows");
    REQUIRE(saved);
    auto windows = nlohmann::json::parse(*saved);
    REQUIRE(windows.size() == 1);
    CHECK(windows[0]["device"] == "g1");
    CHECK(windows[0]["until_ms"] == clock.wall_ms() + 600'000);
    EventQuery q;
    q.kind = EventKind::maintenance;
    CHECK(query_events(j->db(), q).size() == 1);
  }
}
