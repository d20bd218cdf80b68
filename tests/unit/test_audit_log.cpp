// The audit log (edge/src/audit_log.cpp) against a real journal file: audit events copied once,
// in seq order, chained; an edited or removed line is found; a line cut short by a crash is
// repaired and copied again; retention removes whole old days and never the newest.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "anju/edge/audit_log.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/journal.hpp"

using namespace anju::edge;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kDay = 86'400'000;

struct Dir {
  fs::path path = fs::temp_directory_path() /
                  ("anju-audit-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
  static inline int n = 0;
};

// `count` audit events and one reading between each, committed.
void add_audits(Journal& j, const Clock& clock, int count, const std::string& user) {
  j.begin();
  for (int i = 0; i < count; ++i) {
    Event a = gateway_event(EventKind::audit, clock);
    a.site = "site-1";
    a.severity = 4;
    a.attrs = {{"via", "dashboard"}, {"action", "evidence_view"}, {"user", user}, {"ok", true}};
    j.append(a);
    Event r = gateway_event(EventKind::temperature, clock);
    r.site = "site-1";
    j.append(r);
  }
  j.commit();
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("audit log: the journal's audit events, once each, chained", "[audit]") {
  Dir dir;
  ManualClock clock(1'760'000'000'000);
  JournalOptions o;
  o.path = (dir.path / "j.db").string();
  auto j = Journal::open(o, nullptr);
  const std::string logdir = (dir.path / "audit").string();
  add_audits(*j, clock, 3, "wang");
  {
    AuditLog log({logdir, 30});
    CHECK(log.catch_up(j->db(), clock.wall_ms()) == 3);
    CHECK(log.catch_up(j->db(), clock.wall_ms()) == 0);  // nothing twice
    CHECK(log.last_seq() == 5);                          // audits are seq 1, 3, 5
  }
  // A new run (anjud restarted) goes on from the last line, on a new day in a new file.
  clock.advance_ms(kDay);
  add_audits(*j, clock, 2, "li");
  {
    AuditLog log({logdir, 30});
    CHECK(log.last_seq() == 5);
    CHECK(log.catch_up(j->db(), clock.wall_ms(), 1) == 1);  // in bounded steps
    CHECK(log.catch_up(j->db(), clock.wall_ms(), 1) == 1);
  }
  auto v = verify_audit_log(logdir);
  INFO(v.error);
  CHECK(v.ok);
  CHECK(v.files == 2);
  CHECK(v.lines == 5);
  CHECK(v.first_seq == 1);
  CHECK(v.last_seq == 9);
  CHECK(files(logdir).front().filename() == "audit-" + utc_day(clock.wall_ms() - kDay) + ".jsonl");
  const auto tail = audit_log_tail(logdir, 2);
  REQUIRE(tail.size() == 2);
  CHECK(tail[1].find(R"("user":"li")") != std::string::npos);
  CHECK(tail[0].find(R"("seq":7,)") != std::string::npos);

  // Someone edits a line of the first day: found, with the file and the line after it.
  const fs::path first = files(logdir).front();
  std::string text = read(first);
  const auto at = text.find("wang");
  text.replace(at, 4, "zhao");
  std::ofstream(first, std::ios::binary | std::ios::trunc) << text;
  v = verify_audit_log(logdir);
  CHECK_FALSE(v.ok);
  CHECK(v.error ==
        first.string() + ":2: the chain is broken: the line before it was changed or removed");
}

TEST_CASE("audit log: a line cut short by a crash is removed and copied again", "[audit]") {
  Dir dir;
  ManualClock clock(1'760'000'000'000);
  JournalOptions o;
  o.path = (dir.path / "j.db").string();
  auto j = Journal::open(o, nullptr);
  const std::string logdir = (dir.path / "audit").string();
  add_audits(*j, clock, 3, "wang");
  {
    AuditLog log({logdir, 30});
    REQUIRE(log.catch_up(j->db(), clock.wall_ms()) == 3);
  }
  // Power lost in the middle of the last line's write.
  const fs::path file = files(logdir).front();
  std::string text = read(file);
  text.resize(text.size() - 20);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
  CHECK_FALSE(verify_audit_log(logdir).ok);
  AuditLog log({logdir, 30});
  CHECK(log.repaired());
  CHECK(log.last_seq() == 3);
  CHECK(log.catch_up(j->db(), clock.wall_ms()) == 1);
  const auto v = verify_audit_log(logdir);
  INFO(v.error);
  CHECK(v.ok);
  CHECK(v.lines == 3);

  // A last line that is not one of ours (changed by hand): refused by name, nothing written.
  std::ofstream(file, std::ios::binary | std::ios::app) << "hello\n";
  CHECK_THROWS_WITH(AuditLog({logdir, 30}),
                    Catch::Contains("is not a log line (changed by hand?)"));
}

TEST_CASE("audit log: retention removes whole old days, never the newest", "[audit]") {
  Dir dir;
  ManualClock clock(1'760'000'000'000);
  JournalOptions o;
  o.path = (dir.path / "j.db").string();
  auto j = Journal::open(o, nullptr);
  const std::string logdir = (dir.path / "audit").string();
  AuditLog log({logdir, 2});
  for (int day = 0; day < 4; ++day) {
    add_audits(*j, clock, 1, "wang");
    REQUIRE(log.catch_up(j->db(), clock.wall_ms()) == 1);
    clock.advance_ms(kDay);
  }
  REQUIRE(files(logdir).size() == 4);
  // Now is day 4: days 0 and 1 are older than 2 days.
  CHECK(log.prune(clock.wall_ms()) == 2);
  CHECK(files(logdir).size() == 2);
  auto v = verify_audit_log(logdir);
  CHECK(v.ok);  // the first line kept follows removed days
  CHECK(v.first_seq == 5);
  // Long after: everything but the newest day goes; the chain goes on from it.
  clock.advance_ms(30 * kDay);
  CHECK(log.prune(clock.wall_ms()) == 1);
  CHECK(files(logdir).size() == 1);
  add_audits(*j, clock, 1, "wang");
  CHECK(log.catch_up(j->db(), clock.wall_ms()) == 1);
  v = verify_audit_log(logdir);
  CHECK(v.ok);
  CHECK(v.lines == 2);

  // The clock set back: lines still go to the newest file, so the files stay in chain order.
  ManualClock back(1'700'000'000'000);
  add_audits(*j, back, 1, "wang");
  CHECK(log.catch_up(j->db(), back.wall_ms()) == 1);
  CHECK(files(logdir).size() == 2);
  CHECK(verify_audit_log(logdir).ok);
}
