// Derived events (EventDeriver, e.g. the door rules) are journaled right after their cause, in
// the same transaction, raise alerts through the rule engine, and commit at once.
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include "anju/edge/journal.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/edge/uuid.hpp"

using namespace anju::edge;
namespace fs = std::filesystem;

namespace {
struct Dir {
  fs::path path =
      fs::temp_directory_path() / ("anju-deriver-" + std::to_string(std::random_device{}()));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
};

Event door_event(const ManualClock& clock, EventKind kind, std::optional<bool> active) {
  Event e;
  e.id = uuid_v7(clock.wall_ms());
  e.ts_ms = clock.wall_ms();
  e.site = "s";
  e.device = {"door-3-2", "door_contact", "entrance 3-2", ""};
  e.location = {"3", "2", "entrance"};
  e.kind = kind;
  e.active = active;
  e.source = "test";
  return e;
}

// Opens without a grant → door_forced (sev 2) while open; a close clears it. A deadline makes
// on_tick report held-open once.
class FakeDoorRules final : public EventDeriver {
 public:
  explicit FakeDoorRules(const ManualClock& c) : clock_(c) {}
  std::vector<Event> on_event(const Event& e) override {
    if (e.kind != EventKind::door_open) return {};
    Event f = door_event(clock_, EventKind::door_forced, e.active);
    f.severity = 2;
    f.source = "door_rules";
    deadline_ = *e.active ? e.ts_ms + 30'000 : INT64_MAX;
    return {f};
  }
  std::vector<Event> on_tick(std::int64_t now_ms) override {
    if (now_ms < deadline_) return {};
    deadline_ = INT64_MAX;
    Event h = door_event(clock_, EventKind::door_held_open, true);
    h.severity = 3;
    h.source = "door_rules";
    return {h};
  }
  std::int64_t next_deadline_ms() const override { return deadline_; }

 private:
  const ManualClock& clock_;
  std::int64_t deadline_ = INT64_MAX;
};
}  // namespace

TEST_CASE("derived events are journaled after their cause and raise alerts", "[pipeline]") {
  Dir dir;
  ManualClock clock;
  JournalOptions o;
  o.path = (dir.path / "j.db").string();
  auto j = Journal::open(o, nullptr);
  RuleSettings rs;
  rs.heartbeat_timeout_ms = 0;
  rs.escalate_after_ms = {};
  RuleEngine rules(rs);
  PipelineOptions po;
  po.inbox_dir = (dir.path / "inbox").string();
  Pipeline p(*j, rules, clock, po);
  FakeDoorRules doors(clock);
  p.add_deriver(&doors);
  p.start(false);

  REQUIRE(p.submit(door_event(clock, EventKind::door_open, true)));
  p.run_once();
  auto evs = query_events(j->db(), EventQuery{});
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].kind == EventKind::door_open);
  CHECK(evs[1].kind == EventKind::door_forced);
  CHECK(evs[1].seq == evs[0].seq + 1);
  CHECK_FALSE(evs[1].boot_id.empty());
  auto open = rules.open_alerts();
  REQUIRE(open.size() == 1);
  CHECK(open[0].rule == "door_forced");
  CHECK(open[0].severity == 2);

  // Time passes: the deriver's deadline makes the tick report the door held open.
  clock.advance_ms(31'000);
  p.run_once();
  evs = query_events(j->db(), EventQuery{});
  REQUIRE(evs.size() == 3);
  CHECK(evs[2].kind == EventKind::door_held_open);
  CHECK(rules.open_alerts().size() == 2);

  // Closing clears the forced condition (the alert stays open until a person closes it).
  REQUIRE(p.submit(door_event(clock, EventKind::door_open, false)));
  p.run_once();
  bool cleared = false;
  for (const auto& a : rules.open_alerts())
    if (a.rule == "door_forced") cleared = a.condition_cleared;
  CHECK(cleared);
}

namespace {
// Refuses the first `failures` commits, as a full disk or a locked database would.
class FlakyHook final : public PipelineHook {
 public:
  int failures = 1;
  void in_transaction(Journal&, const std::vector<Event>&,
                      const std::vector<AlertChange>&) override {
    if (failures > 0) {
      --failures;
      throw std::runtime_error("disk full (simulated)");
    }
  }
};
}  // namespace

TEST_CASE("a failed commit keeps every event and retries it, nothing twice", "[pipeline]") {
  Dir dir;
  ManualClock clock;
  JournalOptions o;
  o.path = (dir.path / "j.db").string();
  auto j = Journal::open(o, nullptr);
  RuleSettings rs;
  rs.heartbeat_timeout_ms = 0;
  rs.escalate_after_ms = {};
  RuleEngine rules(rs);
  PipelineOptions po;
  po.inbox_dir = (dir.path / "inbox").string();
  Pipeline p(*j, rules, clock, po);
  FlakyHook flaky;
  p.add_hook(&flaky);
  p.start(false);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto e = door_event(clock, EventKind::door_open, i % 2 == 0);
    ids.push_back(e.id);
    REQUIRE(p.submit(e));
  }
  CHECK_THROWS(p.run_once());
  CHECK(p.stats().commit_failures == 1);
  CHECK(j->last_seq() == 0);
  p.run_once();  // the retry, first
  const auto evs = query_events(j->db(), EventQuery{});
  REQUIRE(evs.size() == 5);
  for (std::size_t i = 0; i < evs.size(); ++i) {
    CHECK(evs[i].id == ids[i]);
    CHECK(evs[i].seq == static_cast<std::int64_t>(i + 1));
  }
  CHECK(p.wait_committed(std::chrono::milliseconds(0)));
}

namespace {
// Throws once, on the third event it sees: a failure in the middle of a batch.
class ThrowOnceDeriver final : public EventDeriver {
 public:
  int seen = 0;
  std::vector<Event> on_event(const Event&) override {
    if (++seen == 3) throw std::runtime_error("deriver failed (simulated)");
    return {};
  }
  std::vector<Event> on_tick(std::int64_t) override { return {}; }
  std::int64_t next_deadline_ms() const override { return INT64_MAX; }
};
}  // namespace

TEST_CASE("a failure in the middle of a batch loses none of the batch", "[pipeline]") {
  Dir dir;
  ManualClock clock;
  JournalOptions o;
  o.path = (dir.path / "j.db").string();
  auto j = Journal::open(o, nullptr);
  RuleSettings rs;
  rs.heartbeat_timeout_ms = 0;
  rs.escalate_after_ms = {};
  RuleEngine rules(rs);
  PipelineOptions po;
  po.inbox_dir = (dir.path / "inbox").string();
  Pipeline p(*j, rules, clock, po);
  ThrowOnceDeriver d;
  p.add_deriver(&d);
  p.start(false);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto e = door_event(clock, EventKind::door_open, i % 2 == 0);
    ids.push_back(e.id);
    REQUIRE(p.submit(e));
  }
  CHECK_THROWS(p.run_once());
  p.run_once();
  const auto evs = query_events(j->db(), EventQuery{});
  REQUIRE(evs.size() == 5);
  for (std::size_t i = 0; i < evs.size(); ++i) CHECK(evs[i].id == ids[i]);
  CHECK(p.wait_committed(std::chrono::milliseconds(0)));
}
