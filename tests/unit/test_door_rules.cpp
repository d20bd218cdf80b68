// Door rules (edge/src/door_rules.cpp) on a ManualClock: forced, held open, tailgating and
// repeated denials, including the edges (exit button just before opening, a door re-closing at
// 29.9 s, denials interleaved with a grant).
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "anju/edge/clock.hpp"
#include "anju/edge/door_rules.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/rules.hpp"

using namespace anju::edge;

namespace {

constexpr std::int64_t kT0 = 1'760'000'000'000;

Event ev(EventKind k, std::int64_t ts, const std::string& door = "gate",
         std::optional<bool> active = std::nullopt) {
  Event e;
  e.id = "e";
  e.kind = k;
  e.ts_ms = ts;
  e.site = "compound-1";
  e.grid_code = "11010100100100100101";
  e.location = {"3", "1", door};
  e.attrs["door"] = door;
  e.active = active;
  if (k == EventKind::door_open) {
    e.device = {"contact-" + door, "door_contact", "", ""};
  } else {
    e.device = {"reader-" + door, "card_reader", "", ""};
  }
  return e;
}
Event opened(std::int64_t ts, const std::string& door = "gate") {
  return ev(EventKind::door_open, ts, door, true);
}
Event closed(std::int64_t ts, const std::string& door = "gate") {
  return ev(EventKind::door_open, ts, door, false);
}
Event granted(std::int64_t ts, const std::string& cred = "c1", const std::string& door = "gate") {
  Event e = ev(EventKind::passage_granted, ts, door);
  e.attrs["credential"] = cred;
  return e;
}
Event denied(std::int64_t ts, const std::string& cred = "c1", const std::string& door = "gate") {
  Event e = ev(EventKind::passage_denied, ts, door);
  e.attrs["credential"] = cred;
  e.attrs["reason"] = "unknown";
  return e;
}
Event passages(std::int64_t ts, double n, const std::string& door = "gate") {
  Event e = ev(EventKind::measurement, ts, door);
  e.device = {"cam-" + door, "camera", "", ""};
  e.values.push_back({"passages", n, "count"});
  return e;
}

std::vector<Event> of(const std::vector<Event>& evs, EventKind k) {
  std::vector<Event> out;
  for (const auto& e : evs)
    if (e.kind == k) out.push_back(e);
  return out;
}

void append(std::vector<Event>& to, std::vector<Event> from) {
  for (auto& e : from) to.push_back(std::move(e));
}

}  // namespace

TEST_CASE("Door forced: the contact opens with no grant and no exit request, cleared on close",
          "[door_rules]") {
  ManualClock clock(kT0);
  DoorRules rules({}, clock);
  auto out = rules.on_event(opened(kT0));
  REQUIRE(out.size() == 1);
  const Event& f = out[0];
  CHECK(f.kind == EventKind::door_forced);
  CHECK(f.severity == 2);
  CHECK(f.active == true);
  CHECK(f.ts_ms == kT0);  // raised at once, not at a later tick
  CHECK(f.device.id == "contact-gate");
  CHECK(f.location.room == "gate");
  CHECK(f.site == "compound-1");
  CHECK(f.attrs.at("door") == "gate");
  CHECK(f.source == "door_rules");
  CHECK_FALSE(f.id.empty());

  out = rules.on_event(closed(kT0 + 4000));
  REQUIRE(out.size() == 1);
  CHECK(out[0].kind == EventKind::door_forced);
  CHECK(out[0].active == false);
}

TEST_CASE("Door forced: a recent grant or exit request covers one opening", "[door_rules]") {
  ManualClock clock(kT0);
  DoorRuleSettings s;
  s.forced_window_ms = 10'000;
  DoorRules rules(s, clock);

  SECTION("grant 3 s before") {
    CHECK(rules.on_event(granted(kT0)).empty());
    CHECK(rules.on_event(opened(kT0 + 3000)).empty());
    CHECK(rules.on_event(closed(kT0 + 6000)).empty());
    // The grant was used: the next opening is forced.
    CHECK(of(rules.on_event(opened(kT0 + 7000)), EventKind::door_forced).size() == 1);
  }
  SECTION("exit button 100 ms before the contact opens") {
    CHECK(rules.on_event(ev(EventKind::exit_request, kT0)).empty());
    CHECK(rules.on_event(opened(kT0 + 100)).empty());
  }
  SECTION("exit button released does not count") {
    CHECK(rules.on_event(ev(EventKind::exit_request, kT0, "gate", false)).empty());
    CHECK(of(rules.on_event(opened(kT0 + 100)), EventKind::door_forced).size() == 1);
  }
  SECTION("a grant older than the window does not cover it") {
    rules.on_event(granted(kT0));
    CHECK(of(rules.on_event(opened(kT0 + 10'001)), EventKind::door_forced).size() == 1);
  }
  SECTION("a grant at another door does not cover it") {
    rules.on_event(granted(kT0, "c1", "garage"));
    CHECK(of(rules.on_event(opened(kT0 + 1000)), EventKind::door_forced).size() == 1);
  }
  SECTION("an operator's remote open covers one opening, a refused one does not") {
    Event audit;
    audit.id = "a";
    audit.kind = EventKind::audit;
    audit.ts_ms = kT0;
    audit.source = "door_command";
    audit.attrs = {{"action", "door_open"}, {"door", "gate"}, {"ok", false}, {"user", "wang"}};
    CHECK(rules.on_event(audit).empty());
    CHECK(of(rules.on_event(opened(kT0 + 1000)), EventKind::door_forced).size() == 1);
    rules.on_event(closed(kT0 + 2000));
    audit.attrs["ok"] = true;
    audit.ts_ms = kT0 + 3000;
    CHECK(rules.on_event(audit).empty());
    CHECK(rules.on_event(opened(kT0 + 5000)).empty());
    CHECK(rules.on_event(closed(kT0 + 6000)).empty());
    const auto forced = of(rules.on_event(opened(kT0 + 7000)), EventKind::door_forced);
    REQUIRE(forced.size() == 1);
    // The alert names the contact, not the gateway that audited the command.
    CHECK(forced[0].device.id == "contact-gate");
    CHECK(forced[0].location.room == "gate");
  }
  SECTION("two grants, two openings") {
    rules.on_event(granted(kT0));
    rules.on_event(granted(kT0 + 500, "c2"));
    CHECK(rules.on_event(opened(kT0 + 1000)).empty());
    CHECK(rules.on_event(closed(kT0 + 2000)).empty());
    CHECK(rules.on_event(opened(kT0 + 5000)).empty());
  }
}

TEST_CASE("Door held open: open longer than the limit, cleared when it closes", "[door_rules]") {
  ManualClock clock(kT0);
  DoorRules rules({}, clock);  // 30 s
  rules.on_event(granted(kT0));
  REQUIRE(rules.on_event(opened(kT0)).empty());
  CHECK(rules.next_deadline_ms() == kT0 + 30'000);

  SECTION("re-closing at 29.9 s raises nothing") {
    CHECK(rules.on_tick(kT0 + 29'899).empty());
    CHECK(rules.on_event(closed(kT0 + 29'900)).empty());
    CHECK(rules.on_tick(kT0 + 60'000).empty());
  }
  SECTION("at 30 s it is held open; closing clears it") {
    CHECK(rules.on_tick(kT0 + 29'999).empty());
    auto out = rules.on_tick(kT0 + 30'000);
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == EventKind::door_held_open);
    CHECK(out[0].severity == 3);
    CHECK(out[0].active == true);
    CHECK(out[0].device.id == "contact-gate");
    CHECK(rules.on_tick(kT0 + 45'000).empty());  // once
    out = rules.on_event(closed(kT0 + 50'000));
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == EventKind::door_held_open);
    CHECK(out[0].active == false);
    CHECK(out[0].attrs.at("open_s") == 50.0);
  }
  SECTION("a close reported after the limit with no tick in between still counts") {
    auto out = rules.on_event(closed(kT0 + 31'000));
    REQUIRE(out.size() == 2);
    CHECK(out[0].kind == EventKind::door_held_open);
    CHECK(out[0].active == true);
    CHECK(out[0].ts_ms == kT0 + 30'000);
    CHECK(out[1].active == false);
  }
}

TEST_CASE("Door held open: a per-door limit, and 0 turns supervision off", "[door_rules]") {
  ManualClock clock(kT0);
  DoorRuleSettings s;
  s.held_open_overrides = {{"garage", 120'000}, {"courtyard", 0}};
  DoorRules rules(s, clock);
  rules.on_event(granted(kT0, "c1", "garage"));
  rules.on_event(opened(kT0, "garage"));
  rules.on_event(granted(kT0, "c1", "courtyard"));
  rules.on_event(opened(kT0, "courtyard"));
  CHECK(rules.on_tick(kT0 + 119'000).empty());
  auto out = rules.on_tick(kT0 + 120'000);
  REQUIRE(out.size() == 1);
  CHECK(out[0].attrs.at("door") == "garage");
  CHECK(rules.on_tick(kT0 + 3'600'000).empty());
}

TEST_CASE("Tailgating: more passages than grants in one door cycle", "[door_rules]") {
  ManualClock clock(kT0);
  DoorRules rules({}, clock);

  SECTION("one grant, two people") {
    rules.on_event(granted(kT0));
    rules.on_event(opened(kT0 + 1000));
    CHECK(rules.on_event(passages(kT0 + 2000, 1)).empty());
    auto out = rules.on_event(passages(kT0 + 3000, 1));
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == EventKind::tailgating);
    CHECK(out[0].severity == 3);
    CHECK(out[0].attrs.at("passages") == 2);
    CHECK(out[0].attrs.at("authorised") == 1);
    CHECK(out[0].device.id == "contact-gate");
    CHECK(rules.on_event(passages(kT0 + 3500, 1)).empty());  // once per cycle
    rules.on_event(closed(kT0 + 5000));
    // The next cycle starts clean.
    rules.on_event(granted(kT0 + 60'000));
    rules.on_event(opened(kT0 + 61'000));
    CHECK(rules.on_event(passages(kT0 + 62'000, 1)).empty());
  }
  SECTION("two grants, two people; an exit request counts as an authorisation") {
    rules.on_event(granted(kT0));
    rules.on_event(granted(kT0 + 200, "c2"));
    rules.on_event(opened(kT0 + 1000));
    CHECK(rules.on_event(passages(kT0 + 2000, 2)).empty());
    rules.on_event(ev(EventKind::exit_request, kT0 + 2500));
    CHECK(rules.on_event(passages(kT0 + 3000, 1)).empty());
  }
  SECTION("a counter reporting just after the close still counts for that cycle") {
    rules.on_event(granted(kT0));
    rules.on_event(opened(kT0 + 1000));
    rules.on_event(closed(kT0 + 4000));
    auto out = rules.on_event(passages(kT0 + 5000, 2));  // within the 2 s grace
    CHECK(of(out, EventKind::tailgating).size() == 1);
  }
  SECTION("a count long after the close is not held against the next cycle") {
    rules.on_event(granted(kT0));
    rules.on_event(opened(kT0 + 1000));
    rules.on_event(closed(kT0 + 4000));
    CHECK(rules.on_event(passages(kT0 + 30'000, 1)).empty());
    rules.on_event(granted(kT0 + 90'000));
    rules.on_event(opened(kT0 + 91'000));
    CHECK(rules.on_event(passages(kT0 + 92'000, 1)).empty());
  }
}

TEST_CASE("Repeated denials: N in a window at one door or for one credential", "[door_rules]") {
  ManualClock clock(kT0);
  DoorRules rules({}, clock);  // 5 in 5 minutes

  SECTION("the fifth denial raises it, further ones repeat it with the count") {
    for (int i = 0; i < 4; ++i)
      CHECK(rules.on_event(denied(kT0 + i * 1000, "c" + std::to_string(i))).empty());
    auto out = rules.on_event(denied(kT0 + 4000, "c9"));
    REQUIRE(out.size() == 1);  // door scope only: five different credentials
    CHECK(out[0].kind == EventKind::repeated_denial);
    CHECK(out[0].severity == 3);
    CHECK(out[0].attrs.at("scope") == "door");
    CHECK(out[0].attrs.at("count") == 5);
    CHECK(out[0].device.id == "reader-gate");
    std::vector<Event> all;
    for (int i = 5; i < 20; ++i) append(all, rules.on_event(denied(kT0 + i * 1000, "x")));
    std::vector<Event> door_scope;
    for (const auto& e : of(all, EventKind::repeated_denial))
      if (e.attrs.at("scope") == "door") door_scope.push_back(e);
    REQUIRE(door_scope.size() == 15);
    CHECK(door_scope.back().attrs.at("count") == 20);
  }
  SECTION("one credential at several doors") {
    std::vector<Event> all;
    for (int i = 0; i < 5; ++i)
      append(all, rules.on_event(denied(kT0 + i * 1000, "c1", "door" + std::to_string(i))));
    REQUIRE(all.size() == 1);
    CHECK(all[0].attrs.at("scope") == "credential");
    CHECK(all[0].attrs.at("credential") == "c1");
    CHECK(all[0].attrs.at("count") == 5);
  }
  SECTION("a grant in between ends the streak") {
    std::vector<Event> all;
    for (int i = 0; i < 3; ++i) append(all, rules.on_event(denied(kT0 + i * 1000)));
    rules.on_event(granted(kT0 + 3500));
    for (int i = 4; i < 8; ++i) append(all, rules.on_event(denied(kT0 + i * 1000)));
    CHECK(all.empty());
    CHECK(of(rules.on_event(denied(kT0 + 9000)), EventKind::repeated_denial).size() == 2);
  }
  SECTION("denials spread beyond the window do not add up") {
    std::vector<Event> all;
    for (int i = 0; i < 10; ++i) append(all, rules.on_event(denied(kT0 + i * 80'000)));
    CHECK(all.empty());
  }
}

TEST_CASE("Tailgating from a camera's counting line across the door", "[door_rules]") {
  ManualClock clock(kT0);
  DoorRules rules({}, clock);
  // What the camera's line_count zone with `door: gate` reports for each entry.
  auto entry = [](std::int64_t ts, double in_total) {
    Event e = ev(EventKind::people_count, ts, "gate");
    e.device = {"gate-cam", "camera", "", ""};
    e.location = {"3", "", "gate camera"};
    e.values = {{"in", in_total, ""}, {"out", 0, ""}, {"passages", 1, "count"}};
    e.attrs["direction"] = "in";
    return e;
  };
  rules.on_event(granted(kT0));
  rules.on_event(opened(kT0 + 1000));
  CHECK(rules.on_event(entry(kT0 + 2000, 1)).empty());    // the resident
  const auto out = rules.on_event(entry(kT0 + 2600, 2));  // someone right behind
  const auto tailgating = of(out, EventKind::tailgating);
  REQUIRE(tailgating.size() == 1);
  const auto& t = tailgating[0];
  CHECK(t.attrs.at("passages") == 2);
  CHECK(t.attrs.at("authorised") == 1);
  CHECK(t.attrs.at("door") == "gate");
}

TEST_CASE("20 denials in a row at one reader are one alert with count 20", "[door_rules][rules]") {
  ManualClock clock(kT0);
  DoorRules door_rules({}, clock);  // 5 in 5 minutes
  RuleEngine rules({});
  std::vector<AlertChange> changes;
  for (int i = 0; i < 20; ++i) {
    // The same unknown card: each denial from the fifth on gives a door-scope and a
    // credential-scope event, both counting the streak; the alert counts denials, not events.
    for (auto e : door_rules.on_event(denied(kT0 + i * 1000, "card-x"))) {
      e.id = "rd" + std::to_string(i);
      rules.on_event(e, changes);
    }
  }
  REQUIRE(!changes.empty());
  CHECK(changes.front().type == AlertChangeType::raised);
  CHECK(changes.front().alert.count == 5);
  std::set<std::string> ids;
  int raised = 0;
  for (const auto& c : changes) {
    ids.insert(c.alert.alert_id);
    raised += c.type == AlertChangeType::raised ? 1 : 0;
  }
  CHECK(ids.size() == 1);
  CHECK(raised == 1);
  CHECK(changes.size() == 16);  // raised at 5, then one update per further denial
  CHECK(changes.back().type == AlertChangeType::repeated);
  CHECK(changes.back().alert.count == 20);
  REQUIRE(rules.open_alerts().size() == 1);
  CHECK(rules.open_alerts()[0].count == 20);
  CHECK(rules.open_alerts()[0].rule == "repeated_denial");
}

TEST_CASE("Door rules ignore events that are not about doors, and check their settings",
          "[door_rules]") {
  ManualClock clock(kT0);
  DoorRules rules({}, clock);
  Event smoke = ev(EventKind::smoke, kT0, "gate", true);
  CHECK(rules.on_event(smoke).empty());
  CHECK(rules.tracked_doors() == 0);
  CHECK(rules.next_deadline_ms() == INT64_MAX);

  DoorRuleSettings bad;
  bad.held_open_ms = 0;
  bad.denial_count = 0;
  bad.forced_severity = 7;
  const std::string err = validate(bad);
  CHECK(err.find("held_open_ms: must be > 0") != std::string::npos);
  CHECK(err.find("denial_count: must be >= 1") != std::string::npos);
  CHECK(err.find("severities must be 1..4") != std::string::npos);
  CHECK_THROWS_WITH(DoorRules(bad, clock), Catch::Contains("door rules: held_open_ms"));
}
