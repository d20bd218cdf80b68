// Camera evidence: the recorder's clip around a trigger (drivers/camera/evidence.hpp; frames are
// opaque JPEG bytes here, no OpenCV) and the store's budget and retention
// (edge/evidence_store.hpp) on a real directory.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "anju/drivers/camera/evidence.hpp"
#include "anju/edge/alert.hpp"
#include "anju/edge/evidence_store.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/uuid.hpp"

namespace fs = std::filesystem;
using anju::drivers::camera::EvidenceOptions;
using anju::drivers::camera::EvidenceRecorder;
using anju::edge::Event;
using anju::edge::EventKind;
using json = nlohmann::json;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("anju-evidence-" + anju::edge::uuid_v7(0).substr(24));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

EvidenceRecorder::Jpeg jpeg(std::int64_t t) {
  const std::string s = "jpeg@" + std::to_string(t);
  return std::make_shared<const std::vector<unsigned char>>(s.begin(), s.end());
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Event intrusion(const std::string& id, std::optional<bool> active = true) {
  Event e;
  e.id = id;
  e.ts_ms = 1'764'500'000'000;
  e.kind = EventKind::intrusion;
  e.active = active;
  return e;
}

void make_item(const fs::path& dir, const std::string& id, std::size_t bytes, int age_days) {
  fs::create_directories(dir / id / "frames");
  std::ofstream(dir / id / "snapshot.jpg") << std::string(bytes, 'x');
  const auto t = fs::file_time_type::clock::now() - std::chrono::hours(24 * age_days);
  fs::last_write_time(dir / id / "snapshot.jpg", t);
  fs::last_write_time(dir / id, t);
}

}  // namespace

TEST_CASE("evidence: a clip holds the seconds before the trigger and after it", "[evidence]") {
  TempDir tmp;
  EvidenceRecorder rec({tmp.path.string(), 2.0, 1.0, 80}, "gate-cam");
  // 5 fps for 4 s; the trigger on the frame at 3,000 ms.
  for (std::int64_t t = 0; t <= 3000; t += 200) rec.frame(t, jpeg(t));
  Event e = intrusion("0190a000-0000-7000-8000-000000000001");
  REQUIRE(rec.trigger(e, 3000));
  CHECK(e.attrs.at("evidence") == e.id);
  const fs::path dir = tmp.path / e.id;
  CHECK(slurp(dir / "snapshot.jpg") == "jpeg@3000");
  auto index = json::parse(slurp(dir / "evidence.json"));
  CHECK(index["complete"] == false);
  CHECK(index["stream"] == "gate-cam");
  CHECK(index["kind"] == "intrusion");
  CHECK(index["ts_ms"] == e.ts_ms);
  // The ring: 2 s before (1,000..3,000 ms), the trigger's frame included.
  REQUIRE(index["frames"].size() == 11);
  CHECK(index["frames"][0]["offset_ms"] == -2000);
  CHECK(index["frames"][10]["offset_ms"] == 0);
  CHECK(slurp(dir / index["frames"][0]["file"].get<std::string>()) == "jpeg@1000");
  CHECK(rec.open_clips() == 1);
  // 1 s after: the clip is complete at 4,000 ms, and later frames are not in it.
  for (std::int64_t t = 3200; t <= 4400; t += 200) rec.frame(t, jpeg(t));
  CHECK(rec.open_clips() == 0);
  index = json::parse(slurp(dir / "evidence.json"));
  CHECK(index["complete"] == true);
  REQUIRE(index["frames"].size() == 16);
  CHECK(index["frames"][15]["offset_ms"] == 1000);
  CHECK(slurp(dir / index["frames"][15]["file"].get<std::string>()) == "jpeg@4000");
  CHECK(rec.failures() == 0);
}

TEST_CASE("evidence: frames are kept at the decoded size, scaled down to fit the box",
          "[evidence]") {
  using anju::drivers::camera::evidence_size;
  using anju::drivers::camera::FrameSize;
  // A frame that fits is kept as it is, never scaled up (a 320x180 camera stays 320x180).
  CHECK(evidence_size({640, 360}, 640, 360) == FrameSize{640, 360});
  CHECK(evidence_size({320, 180}, 640, 360) == FrameSize{320, 180});
  // Larger ones shrink to fit with their aspect ratio: 1080p to 640x360, PAL 4:3 to 480x360
  // (height limits), a 2:1 panorama to 640x320 (width limits).
  CHECK(evidence_size({1920, 1080}, 640, 360) == FrameSize{640, 360});
  CHECK(evidence_size({768, 576}, 640, 360) == FrameSize{480, 360});
  CHECK(evidence_size({2000, 1000}, 640, 360) == FrameSize{640, 320});
  CHECK(evidence_size({1080, 1920}, 640, 360) == FrameSize{203, 360});  // upright, rounded
  // Degenerate sizes give an empty size rather than a division by zero.
  CHECK(evidence_size({0, 0}, 640, 360) == FrameSize{});
  CHECK(evidence_size({640, 360}, 0, 360) == FrameSize{});
  CHECK(evidence_size({100000, 1}, 640, 360) == FrameSize{640, 1});
}

TEST_CASE("evidence: triggers close together share one clip", "[evidence]") {
  TempDir tmp;
  EvidenceOptions o{tmp.path.string(), 1.0, 1.0, 80, 30.0};
  EvidenceRecorder rec(o, "gate-cam");
  rec.frame(0, jpeg(0));
  Event first = intrusion("0190a000-0000-7000-8000-000000000011");
  REQUIRE(rec.trigger(first, 0));
  rec.frame(10'000, jpeg(10'000));
  Event second = intrusion("0190a000-0000-7000-8000-000000000012");
  REQUIRE(rec.trigger(second, 10'000));  // 10 s later: the same clip
  CHECK(second.attrs.at("evidence") == first.id);
  CHECK_FALSE(fs::exists(tmp.path / second.id));
  rec.frame(30'000, jpeg(30'000));
  Event third = intrusion("0190a000-0000-7000-8000-000000000013");
  REQUIRE(rec.trigger(third, 30'000));  // 30 s after the first: a clip of its own
  CHECK(third.attrs.at("evidence") == third.id);
  CHECK(fs::exists(tmp.path / third.id / "snapshot.jpg"));
}

TEST_CASE("evidence: what gets it, and a recorder that cannot write leaves the event alone",
          "[evidence]") {
  CHECK(anju::drivers::camera::wants_evidence(intrusion("a")));
  CHECK_FALSE(anju::drivers::camera::wants_evidence(intrusion("a", false)));  // a clearing
  Event count = intrusion("a", std::nullopt);
  count.kind = EventKind::people_count;
  CHECK_FALSE(anju::drivers::camera::wants_evidence(count));
  Event thrown = intrusion("a", std::nullopt);
  thrown.kind = EventKind::thrown_object;
  CHECK(anju::drivers::camera::wants_evidence(thrown));

  TempDir tmp;
  const fs::path blocked = tmp.path / "not-a-dir";
  std::ofstream(blocked) << "a file where the directory should be";
  EvidenceRecorder rec({blocked.string(), 1.0, 1.0, 80}, "cam");
  rec.frame(0, jpeg(0));
  Event e = intrusion("0190a000-0000-7000-8000-000000000002");
  CHECK_FALSE(rec.trigger(e, 0));
  CHECK_FALSE(e.attrs.contains("evidence"));
  CHECK(rec.failures() == 1);
  // With nothing to show (no frame yet) there is no evidence either.
  EvidenceRecorder empty({tmp.path.string(), 1.0, 1.0, 80}, "cam");
  CHECK_FALSE(empty.trigger(e, 0));
}

TEST_CASE("evidence store: over budget the oldest goes first, open alerts' evidence stays",
          "[evidence]") {
  TempDir tmp;
  const std::string a = "0190a000-0000-7000-8000-00000000000a";  // oldest, an open alert's
  const std::string b = "0190a000-0000-7000-8000-00000000000b";
  const std::string c = "0190a000-0000-7000-8000-00000000000c";
  const std::string d = "0190a000-0000-7000-8000-00000000000d";  // newest
  make_item(tmp.path, a, 1000, 4);
  make_item(tmp.path, b, 1000, 3);
  make_item(tmp.path, c, 1000, 2);
  make_item(tmp.path, d, 1000, 1);
  fs::create_directories(tmp.path / "not-evidence");  // not an id: never touched
  const auto items = anju::edge::scan_evidence(tmp.path);
  REQUIRE(items.size() == 4);
  CHECK(items.front().id == a);
  CHECK(items.back().id == d);
  CHECK(items.front().bytes == 1000);
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();

  // Budget 2,500 bytes: b and c go (the oldest not protected), a stays for its open alert.
  auto r = anju::edge::prune_evidence(tmp.path, 2500, 0, now, {a});
  CHECK(r.deleted == 2);
  CHECK(r.bytes_deleted == 2000);
  CHECK(r.kept == 2);
  CHECK(fs::exists(tmp.path / a));
  CHECK_FALSE(fs::exists(tmp.path / b));
  CHECK_FALSE(fs::exists(tmp.path / c));
  CHECK(fs::exists(tmp.path / d));
  CHECK(fs::exists(tmp.path / "not-evidence"));
  CHECK(r.protected_over_budget == 0);

  // Retention 2 days: a is older, but its alert is open; once closed it goes.
  r = anju::edge::prune_evidence(tmp.path, 0, 2 * 86'400'000LL, now, {a});
  CHECK(r.deleted == 0);
  r = anju::edge::prune_evidence(tmp.path, 0, 2 * 86'400'000LL, now, {});
  CHECK(r.deleted == 1);
  CHECK_FALSE(fs::exists(tmp.path / a));
  CHECK(fs::exists(tmp.path / d));

  // Everything protected and over the budget: nothing deleted, the excess reported.
  r = anju::edge::prune_evidence(tmp.path, 100, 0, now, {d});
  CHECK(r.deleted == 0);
  CHECK(r.protected_over_budget == 900);
}

TEST_CASE("evidence store: only event ids are evidence names", "[evidence]") {
  CHECK(anju::edge::evidence_id_ok("0190a000-0000-7000-8000-00000000000a"));
  CHECK_FALSE(anju::edge::evidence_id_ok(""));
  CHECK_FALSE(anju::edge::evidence_id_ok(".."));
  CHECK_FALSE(anju::edge::evidence_id_ok("../etc"));
  CHECK_FALSE(anju::edge::evidence_id_ok("a/b"));
  CHECK_FALSE(anju::edge::evidence_id_ok(std::string(65, 'a')));
}

TEST_CASE("evidence store: what open alerts refer to, from the journal", "[evidence]") {
  TempDir tmp;
  anju::edge::JournalOptions o;
  o.path = (tmp.path / "anju.db").string();
  o.synchronous_full = false;
  auto j = anju::edge::Journal::open(o, nullptr);
  REQUIRE(j);
  const std::int64_t t0 = 1'764'500'000'000;
  auto camera_event = [&](const std::string& id, std::int64_t ts, const std::string& evidence) {
    Event e = intrusion(id);
    e.ts_ms = ts;
    e.site = "site-a";
    e.device = {"gate-cam", "camera", "", ""};
    e.source = "camera";
    e.attrs["evidence"] = evidence;
    return e;
  };
  // A camera's intrusion alert raised by e1 (its own clip) and repeated by e2, whose clip is
  // e1's (shared); a smoke alert whose covering camera recorded under the smoke event's id; and
  // a closed alert, whose evidence may go.
  const std::string e1 = "0190a000-0000-7000-8000-0000000000e1";
  const std::string e2 = "0190a000-0000-7000-8000-0000000000e2";
  const std::string smoke = "0190a000-0000-7000-8000-0000000000f1";
  const std::string old = "0190a000-0000-7000-8000-0000000000f2";
  j->begin();
  Event a1 = camera_event(e1, t0, e1);
  Event a2 = camera_event(e2, t0 + 20'000, e1);
  Event unrelated = camera_event("0190a000-0000-7000-8000-0000000000e3", t0 + 600'000, "x-later");
  j->append(a1);
  j->append(a2);
  j->append(unrelated);
  anju::edge::Alert cam;
  cam.alert_id = "alert-cam";
  cam.rule = "intrusion";
  cam.kind = EventKind::intrusion;
  cam.device = {"gate-cam", "camera", "", ""};
  cam.first_seen_ms = t0;
  cam.updated_ms = t0 + 20'000;
  cam.event_ids = {e1, e2};
  j->put_alert(cam);
  anju::edge::Alert sm;
  sm.alert_id = "alert-smoke";
  sm.rule = "smoke";
  sm.kind = EventKind::smoke;
  sm.device = {"smoke-1", "smoke_detector", "", ""};
  sm.first_seen_ms = t0;
  sm.updated_ms = t0;
  sm.event_ids = {smoke};
  j->put_alert(sm);
  anju::edge::Alert closed = sm;
  closed.alert_id = "alert-old";
  closed.state = "closed";
  closed.event_ids = {old};
  j->put_alert(closed);
  j->commit();
  const auto keep = anju::edge::evidence_in_use(anju::edge::open_reader(o.path));
  CHECK(keep.count(e1) == 1);
  CHECK(keep.count(e2) == 1);
  CHECK(keep.count(smoke) == 1);
  CHECK(keep.count(old) == 0);
  CHECK(keep.count("x-later") == 0);  // after the alert's time: not its evidence
}
