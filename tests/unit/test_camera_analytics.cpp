// Unit tests of the camera analytics (drivers/camera/src/analytics.cpp) on synthetic frames made
// in memory: no video decoding, and OpenCV's worker threads off (cv::setNumThreads(0)) so that
// the ASan and TSan runs of this binary see only the calling thread.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "anju/drivers/camera/analytics.hpp"
#include "anju/edge/clock.hpp"

using namespace anju::drivers::camera;
using anju::edge::Event;
using anju::edge::EventKind;

namespace {

const cv::Size kSize{320, 180};
constexpr double kFps = 5;
constexpr std::int64_t kFrameMs = 200;

// A static scene: large areas of different brightness (walls, sky, road), fine texture
// (blurred noise) and outlines, like a real view: contrast survives a blur, detail does not.
cv::Mat scene(cv::Size size = kSize) {
  cv::setNumThreads(0);
  cv::RNG rng(7);
  cv::Mat m(size, CV_8UC3, cv::Scalar(120, 130, 140));
  for (int i = 0; i < 8; ++i) {
    const cv::Point a(rng.uniform(0, size.width), rng.uniform(0, size.height));
    const cv::Point b = a + cv::Point(rng.uniform(size.width / 6, size.width / 2),
                                      rng.uniform(size.height / 6, size.height / 2));
    cv::rectangle(m, a, b, cv::Scalar::all(rng.uniform(30, 230)), cv::FILLED);
  }
  cv::Mat noise(size, CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, cv::Scalar::all(0), cv::Scalar::all(40));
  cv::GaussianBlur(noise, noise, {3, 3}, 0);
  m += noise;
  for (int i = 0; i < 12; ++i) {
    const cv::Point a(rng.uniform(0, size.width), rng.uniform(0, size.height));
    cv::rectangle(m, a, a + cv::Point(rng.uniform(10, 60), rng.uniform(10, 40)),
                  cv::Scalar(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)), 2);
  }
  return m;
}

StreamConfig stream(std::vector<ZoneConfig> zones, bool tamper = false) {
  StreamConfig s;
  s.id = "cam1";
  s.name = "Camera 1";
  s.url = "/dev/null";
  s.width = kSize.width;
  s.height = kSize.height;
  s.fps = kFps;
  s.tamper = tamper;
  s.location.building = "3";
  s.zones = std::move(zones);
  return s;
}

ZoneConfig zone(std::string id, Detector d, std::vector<PointN> poly) {
  ZoneConfig z;
  z.id = std::move(id);
  z.detector = d;
  z.polygon = std::move(poly);
  z.severity = default_severity(d);
  if (d == Detector::thrown_object) z.min_area = 0.0005;
  return z;
}

std::vector<PointN> rect(double x0, double y0, double x1, double y1) {
  return {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}};
}

// Runs `frames` frames through the analyzer: `draw(i, frame)` paints frame i over the scene.
// The first 10 frames are the bare scene (the background is learned).
std::vector<Event> run(StreamAnalyzer& a, int frames,
                       const std::function<void(int, cv::Mat&)>& draw, std::int64_t t0 = 0) {
  const cv::Mat bg = scene();
  std::vector<Event> out;
  for (int i = 0; i < 10 + frames; ++i) {
    cv::Mat f = bg.clone();
    if (i >= 10) draw(i - 10, f);
    for (auto& e : a.process(f, t0 + i * kFrameMs)) out.push_back(std::move(e));
  }
  return out;
}

std::vector<Event> of_kind(const std::vector<Event>& es, EventKind k) {
  std::vector<Event> out;
  for (const auto& e : es)
    if (e.kind == k) out.push_back(e);
  return out;
}

void square(cv::Mat& f, cv::Point2d c, int half, cv::Scalar colour = {0, 0, 230}) {
  cv::rectangle(f, cv::Point(static_cast<int>(c.x) - half, static_cast<int>(c.y) - half),
                cv::Point(static_cast<int>(c.x) + half, static_cast<int>(c.y) + half), colour,
                cv::FILLED);
}

}  // namespace

TEST_CASE("camera analytics: sigma-delta's vector and scalar paths give the same bytes") {
  // An odd width leaves a scalar tail after the vectors; steps of 0 (mean held), 1 and 16.
  cv::RNG rng(11);
  const cv::Size size(83, 7);
  cv::Mat frame(size, CV_8UC3);
  rng.fill(frame, cv::RNG::UNIFORM, cv::Scalar::all(0), cv::Scalar::all(256));
  cv::Mat mean_v = frame.clone(), mean_s = frame.clone();
  cv::Mat spread_v(size, CV_8UC1, cv::Scalar(SigmaDelta::kInitialSpread)), spread_s;
  spread_v.copyTo(spread_s);
  cv::Mat mask_v, mask_s;
  for (int i = 0; i < 40; ++i) {
    rng.fill(frame, cv::RNG::UNIFORM, cv::Scalar::all(0), cv::Scalar::all(256));
    const int step = i % 3 == 0 ? 0 : (i % 3 == 1 ? 1 : 16);
    SigmaDelta::step(frame, mean_v, spread_v, mask_v, step, true);
    SigmaDelta::step(frame, mean_s, spread_s, mask_s, step, false);
    INFO("frame " << i);
    REQUIRE(cv::norm(mean_v, mean_s, cv::NORM_INF) == 0);
    REQUIRE(cv::norm(spread_v, spread_s, cv::NORM_INF) == 0);
    REQUIRE(cv::norm(mask_v, mask_s, cv::NORM_INF) == 0);
  }
  // Random frames are all foreground to a model that follows them by one level a frame.
  CHECK(cv::countNonZero(mask_s) > static_cast<int>(mask_s.total() / 2));
}

TEST_CASE("camera analytics: sigma-delta follows the frame by its step, spread bounded") {
  const cv::Size size(40, 4);
  cv::Mat mean(size, CV_8UC3, cv::Scalar(100, 100, 100));
  cv::Mat spread(size, CV_8UC1, cv::Scalar(SigmaDelta::kInitialSpread));
  cv::Mat mask;
  const cv::Mat frame(size, CV_8UC3, cv::Scalar(160, 95, 100));
  SigmaDelta::step(frame, mean, spread, mask, 16);
  CHECK(mean.at<cv::Vec3b>(0, 0) == cv::Vec3b(116, 95, 100));  // +16, -5 (no overshoot), =
  // Difference 44 > spread 17 (16 moved up one towards 4 x 44): foreground.
  CHECK(spread.at<std::uint8_t>(0, 0) == SigmaDelta::kInitialSpread + 1);
  CHECK(cv::countNonZero(mask) == static_cast<int>(mask.total()));
  // A steady frame is learned at one level a step; then nothing is foreground.
  for (int i = 0; i < 200; ++i) SigmaDelta::step(frame, mean, spread, mask, 1);
  CHECK(mean.at<cv::Vec3b>(3, 39) == cv::Vec3b(160, 95, 100));
  CHECK(spread.at<std::uint8_t>(3, 39) <= SigmaDelta::kMaxSpread);
  CHECK(cv::countNonZero(mask) == 0);
  // Noise within a few levels stays background; a jump of 60 is foreground.
  cv::Mat noisy = frame.clone();
  noisy.setTo(cv::Scalar(163, 92, 102));
  SigmaDelta::step(noisy, mean, spread, mask, 1);
  CHECK(cv::countNonZero(mask) == 0);
  cv::Mat object = frame.clone();
  object.setTo(cv::Scalar(100, 95, 40));
  SigmaDelta::step(object, mean, spread, mask, 1);
  CHECK(cv::countNonZero(mask) == static_cast<int>(mask.total()));
  CHECK(spread.at<std::uint8_t>(0, 0) >= SigmaDelta::kMinSpread);
}

TEST_CASE("camera analytics: a shadow is not foreground, an object of the same size is") {
  const auto model = GENERATE(BackgroundModel::sigma_delta, BackgroundModel::mog2);
  INFO("model " << (model == BackgroundModel::mog2 ? "mog2" : "sigma_delta"));
  ForegroundExtractor fg(500, model);
  const cv::Mat bg = scene();
  for (int i = 0; i < 20; ++i) fg.apply(bg);
  CHECK(cv::countNonZero(fg.apply(bg)) == 0);
  const cv::Rect r(100, 60, 60, 60);
  cv::Mat shadowed = bg.clone();
  shadowed(r).convertTo(shadowed(r), -1, 0.8);  // the same colours, 20 % darker
  CHECK(cv::countNonZero(fg.apply(shadowed)(r)) < r.area() / 10);
  cv::Mat object = bg.clone();
  object(r).setTo(cv::Scalar(40, 160, 40));
  CHECK(cv::countNonZero(fg.apply(object)(r)) > r.area() * 8 / 10);
}

TEST_CASE("camera analytics: an object cut in two by a zone's edge is one blob in the zone") {
  cv::Mat mask = cv::Mat::zeros(100, 100, CV_8U);
  // A U: two arms (x 10-19 and 40-49, y 10-69) joined by a base (y 60-69), and a speck apart.
  mask(cv::Rect(10, 10, 10, 60)).setTo(255);
  mask(cv::Rect(40, 10, 10, 60)).setTo(255);
  mask(cv::Rect(10, 60, 40, 10)).setTo(255);
  mask(cv::Rect(80, 80, 5, 5)).setTo(255);
  cv::Mat region = cv::Mat::zeros(100, 100, CV_8U);
  region(cv::Rect(0, 0, 100, 50)).setTo(255);  // y < 50: the arms' upper parts, not the base
  const auto in_zone = find_blobs(mask, region, 1);
  REQUIRE(in_zone.size() == 1);  // the speck is outside the zone
  CHECK(in_zone[0].area == 2 * 10 * 40);
  CHECK(in_zone[0].box == cv::Rect(10, 10, 40, 40));
  CHECK(in_zone[0].centroid.x == Approx(29.5));
  CHECK(in_zone[0].centroid.y == Approx(29.5));
  CHECK(find_blobs(mask, region, 801).empty());  // min_area applies to the part in the zone
  const auto everywhere = find_blobs(mask, {}, 1);
  REQUIRE(everywhere.size() == 2);
  CHECK(everywhere[0].area == 1400);
  CHECK(everywhere[1].area == 25);
  CHECK(find_blobs(mask, {}, 26).size() == 1);
  CHECK(find_blobs(cv::Mat::zeros(100, 100, CV_8U), region, 1).empty());
}

TEST_CASE("camera analytics: intrusion in a zone, none in a zone nothing enters") {
  StreamAnalyzer a(stream({zone("right", Detector::intrusion, rect(0.6, 0, 1, 1)),
                           zone("top", Detector::intrusion, rect(0, 0, 1, 0.15))}));
  // A 24x24 block walks from x=20 to x=300 at mid-height over 40 frames, then leaves the view
  // and the scene stays empty for 8 s.
  const auto es = run(a, 80, [](int i, cv::Mat& f) {
    if (i < 40) square(f, {20.0 + 7 * i, 100}, 12);
  });
  const auto hits = of_kind(es, EventKind::intrusion);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].attrs["zone"] == "right");
  CHECK(hits[0].active == true);
  CHECK(hits[0].severity == 2);
  CHECK(hits[0].device.id == "cam1");
  CHECK(hits[0].device.kind == "camera");
  CHECK(hits[0].device.name == "Camera 1");
  CHECK(hits[0].location.building == "3");
  CHECK(hits[0].source == "camera");
  CHECK(hits[0].attrs["stream"] == "cam1");
  // Its leading edge enters the zone (x >= 192) at frame 23 (x + 12 = 193), its centre at frame
  // 25 (x = 195); raised on the second frame with min_area in the zone. Whether the thin edge
  // already holds min_area at frame 23 rests on the last bits of OpenCV's floating-point
  // background model, which differ between CPUs: raised at frame 25 on x86-64, 24 on arm64.
  const std::int64_t edge_in = (10 + 23) * kFrameMs;
  const std::int64_t entered = (10 + 25) * kFrameMs;
  CHECK(hits[0].attrs["media_ms"].get<std::int64_t>() >= edge_in + kFrameMs);
  CHECK(hits[0].attrs["media_ms"].get<std::int64_t>() <= entered + 2 * kFrameMs);
  CHECK(hits[1].attrs["zone"] == "right");
  CHECK(hits[1].active == false);  // not latched: cleared 5 s after the zone emptied
}

TEST_CASE("camera analytics: a latched intrusion zone stays raised until reset") {
  StreamConfig cfg = stream({zone("fence", Detector::intrusion, rect(0.6, 0, 1, 1))});
  cfg.zones[0].latch = true;
  StreamAnalyzer b(cfg);
  auto pass = [](int i, cv::Mat& f) {
    if (i < 40) square(f, {20.0 + 7 * i, 100}, 12);
  };
  auto es = run(b, 70, pass);
  auto hits = of_kind(es, EventKind::intrusion);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].active == true);
  CHECK(hits[0].attrs["latched"] == true);
  // A second pass while latched: nothing new.
  es = run(b, 50, pass, 20'000);
  CHECK(of_kind(es, EventKind::intrusion).empty());
  // Reset, then a third pass raises it again.
  CHECK(b.reset_zone("fence"));
  CHECK_FALSE(b.reset_zone("nope"));
  es = run(b, 50, pass, 40'000);
  CHECK(of_kind(es, EventKind::intrusion).size() == 1);
}

TEST_CASE("camera analytics: a scheduled zone is quiet outside its window, armed inside") {
  // Armed every night 22:00-06:00 (local, UTC+08:00); the clock is simulated.
  constexpr std::int64_t kMonday = 20514;  // 2026-03-02
  auto local = [](std::int64_t day, int hh, int mm) {
    return day * 86'400'000 + (static_cast<std::int64_t>(hh) * 60 + mm - 480) * 60'000;
  };
  anju::edge::ManualClock clock(local(kMonday, 21, 58));
  ZoneConfig z = zone("yard", Detector::intrusion, rect(0.5, 0, 1, 1));
  z.schedule = {{0x7F, 22 * 60, 6 * 60}};
  ZoneConfig l = zone("bench", Detector::loitering, rect(0.5, 0, 1, 1));
  l.dwell_s = 2;
  l.schedule = z.schedule;
  StreamAnalyzer a(stream({z, l}), &clock);
  const cv::Mat bg = scene();
  std::vector<Event> es;
  std::vector<int> frame_of;
  // Someone moves about in the zone the whole time; the clock jumps at frames 30 and 60.
  for (int i = 0; i < 90; ++i) {
    if (i == 10 + 20) clock.advance_ms(2 * 60'000);     // 22:00: armed
    if (i == 10 + 50) clock.advance_ms(8 * 3'600'000);  // 06:00: disarmed
    cv::Mat f = bg.clone();
    if (i >= 10) square(f, {230.0 + 40 * std::sin(i / 4.0), 90 + 30 * std::cos(i / 5.0)}, 12);
    for (auto& e : a.process(f, i * kFrameMs)) {
      es.push_back(std::move(e));
      frame_of.push_back(i);
    }
    if (i == 10 + 19) CHECK_FALSE(a.armed("yard"));
    if (i == 10 + 49) CHECK(a.armed("yard"));
  }
  CHECK_FALSE(a.armed("yard"));
  for (std::size_t k = 0; k < es.size(); ++k) {
    INFO(anju::edge::to_string(es[k].kind) << " at frame " << frame_of[k]);
    CHECK(frame_of[k] >= 30);  // nothing before the window opened
    CHECK(frame_of[k] <= 60);  // nothing after it closed, but the clearing on the first frame
  }
  const auto hits = of_kind(es, EventKind::intrusion);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].active == true);
  CHECK(hits[1].active == false);
  CHECK(hits[1].attrs["reason"] == "disarmed");
  const auto loiter = of_kind(es, EventKind::loitering);
  REQUIRE(loiter.size() == 2);
  CHECK(loiter[0].active == true);
  CHECK(loiter[1].active == false);
  CHECK(loiter[1].attrs["reason"] == "disarmed");

  // A latched alarm is not cleared by the schedule: it waits for the reset.
  anju::edge::ManualClock clock2(local(kMonday, 22, 0));
  z.latch = true;
  StreamAnalyzer b(stream({z}), &clock2);
  es.clear();
  for (int i = 0; i < 60; ++i) {
    if (i == 40) clock2.advance_ms(8 * 3'600'000);
    cv::Mat f = bg.clone();
    if (i >= 10) square(f, {230.0 + 40 * std::sin(i / 4.0), 90}, 12);
    for (auto& e : b.process(f, i * kFrameMs)) es.push_back(std::move(e));
  }
  const auto latched = of_kind(es, EventKind::intrusion);
  REQUIRE(latched.size() == 1);
  CHECK(latched[0].active == true);
  CHECK(dynamic_cast<IntrusionDetector*>(b.detector("yard"))->raised());
}

TEST_CASE("camera analytics: loitering needs the dwell, a passer-by does not loiter") {
  ZoneConfig z = zone("bench", Detector::loitering, rect(0.3, 0.2, 0.8, 0.9));
  z.dwell_s = 6;
  StreamAnalyzer a(stream({z}));
  // Someone wanders inside the zone for 10 s (50 frames), then leaves.
  auto es = run(a, 70, [](int i, cv::Mat& f) {
    if (i < 50) square(f, {160 + 20 * std::sin(i / 5.0), 100 + 10 * std::cos(i / 7.0)}, 12);
  });
  auto hits = of_kind(es, EventKind::loitering);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].active == true);
  REQUIRE(hits[0].value("dwell") != nullptr);
  CHECK(hits[0].value("dwell")->value >= 6);
  CHECK(hits[0].value("dwell")->value < 7);
  CHECK(hits[0].severity == 3);
  CHECK(hits[1].active == false);

  // Someone crossing the zone in 3 s never loiters.
  StreamAnalyzer b(stream({z}));
  es = run(b, 40, [](int i, cv::Mat& f) {
    if (i < 20) square(f, {60.0 + 11 * i, 100}, 12);
  });
  CHECK(of_kind(es, EventKind::loitering).empty());
}

TEST_CASE("camera analytics: line crossings are counted by direction") {
  // A vertical line at x = 0.5 from top to bottom: "in" is right to left.
  StreamAnalyzer a(stream({zone("door", Detector::line_count, {{0.5, 0.05}, {0.5, 0.95}})}));
  const auto es = run(a, 100, [](int i, cv::Mat& f) {
    if (i < 30) square(f, {40.0 + 8 * i, 60}, 12);                      // left → right: out
    if (i >= 40 && i < 70) square(f, {280.0 - 8 * (i - 40), 120}, 12);  // right → left: in
    if (i >= 75 && i < 90) square(f, {120.0 + 2 * (i - 75), 140}, 12);  // stays left: nothing
  });
  const auto counts = of_kind(es, EventKind::people_count);
  REQUIRE(counts.size() == 2);
  CHECK(counts[0].attrs["direction"] == "out");
  CHECK(counts[0].value("out")->value == 1);
  CHECK(counts[0].value("in")->value == 0);
  CHECK(counts[1].attrs["direction"] == "in");
  CHECK(counts[1].value("in")->value == 1);
  CHECK(counts[1].value("out")->value == 1);
  CHECK(counts[1].severity == 4);
  CHECK(counts[1].value("passages") == nullptr);  // the line is not drawn across a door
  auto* lc = dynamic_cast<LineCounter*>(a.detector("door"));
  REQUIRE(lc != nullptr);
  CHECK(lc->count_in() == 1);
  CHECK(lc->count_out() == 1);
}

TEST_CASE("camera analytics: a line across a door reports each entry as a passage there") {
  ZoneConfig z = zone("door", Detector::line_count, {{0.5, 0.05}, {0.5, 0.95}});
  z.door = "gate-north";
  StreamAnalyzer a(stream({z}));
  const auto es = run(a, 100, [](int i, cv::Mat& f) {
    if (i < 30) square(f, {40.0 + 8 * i, 60}, 12);                      // out: not a passage
    if (i >= 40 && i < 70) square(f, {280.0 - 8 * (i - 40), 120}, 12);  // in: one passage
  });
  const auto counts = of_kind(es, EventKind::people_count);
  REQUIRE(counts.size() == 2);
  CHECK(counts[0].value("passages") == nullptr);
  CHECK_FALSE(counts[0].attrs.contains("door"));
  REQUIRE(counts[1].value("passages") != nullptr);
  CHECK(counts[1].value("passages")->value == 1);
  CHECK(counts[1].attrs["door"] == "gate-north");
}

namespace {

// A 8x8 object at (x(t), y(t)) in pixels, t in s from its appearance, for `frames` frames.
std::vector<Event> fly(const std::function<cv::Point2d(double)>& path, int frames, int floors = 0) {
  ZoneConfig z = zone("facade", Detector::thrown_object, rect(0, 0, 1, 1));
  z.floors = floors;
  StreamAnalyzer a(stream({z}));
  return of_kind(run(a, frames + 10,
                     [&](int i, cv::Mat& f) {
                       if (i < frames) square(f, path(i / kFps), 4);
                     }),
                 EventKind::thrown_object);
}

}  // namespace

TEST_CASE("camera analytics: an object falling faster and faster is a thrown object") {
  // From (150, 15) it falls with 0.5 frame heights/s² (90 px/s²) for 1.8 s: 146 px.
  const auto hits = fly([](double t) { return cv::Point2d(150 + 3 * t, 15 + 45 * t * t); }, 10, 20);
  REQUIRE(hits.size() == 1);
  const auto& e = hits[0];
  CHECK(e.severity == 2);
  CHECK(e.attrs["zone"] == "facade");
  REQUIRE(e.value("acceleration") != nullptr);
  CHECK(e.value("acceleration")->value > 0.3);
  CHECK(e.value("acceleration")->value < 0.7);
  CHECK(e.attrs["start"]["y"].get<double>() < 0.15);
  CHECK(e.attrs["start"]["x"].get<double>() == Approx(150.0 / 320).margin(0.02));
  // Seen first near the top of a 20-floor zone: the top floors.
  CHECK(e.attrs["floor_estimate"].get<int>() >= 18);
  CHECK(e.attrs["floor_band"].size() == 2);
}

TEST_CASE("camera analytics: an object entering the view already falling fast is thrown") {
  // 60 px/s (12 px per frame) when first seen, then 0.5 frame heights/s² as above.
  const auto hits = fly([](double t) { return cv::Point2d(200, 10 + 60 * t + 45 * t * t); }, 8);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].attrs["start"]["y"].get<double>() < 0.1);
}

TEST_CASE("camera analytics: birds, upward movers, drifters and steady fallers are not thrown") {
  SECTION("a bird crossing sideways, bobbing") {
    CHECK(fly(
              [](double t) {
                return cv::Point2d(20 + 120 * t, 40 + 8 * t * t + 4 * std::sin(6 * t));
              },
              12)
              .empty());
  }
  SECTION("a bird diving sideways, accelerating") {
    CHECK(fly([](double t) { return cv::Point2d(20 + 150 * t, 30 + 30 * t * t); }, 10).empty());
  }
  SECTION("something rising faster and faster") {
    CHECK(fly([](double t) { return cv::Point2d(150, 165 - 45 * t * t); }, 10).empty());
  }
  SECTION("slow drift down (a leaf, a plastic bag)") {
    CHECK(fly([](double t) { return cv::Point2d(150 + 2 * std::sin(t), 30 + 6 * t); }, 25).empty());
  }
  SECTION("steady downward motion, no acceleration") {
    CHECK(fly([](double t) { return cv::Point2d(150, 20 + 60 * t); }, 10).empty());
  }
}

TEST_CASE("camera analytics: a thrown object too small for 320x180 is found in the zone's band") {
  // A 640x360 camera analysed at 320x180, its façade zone the middle 60 % of the width. A 6x6
  // object, 60 levels darker than the wall behind it, falls from (300, 30) with 0.5 frame
  // heights/s² (180 px/s²). (Before the band, the whole view analysed at 640x360 missed it too:
  // its blur faded the object, and the same object 120 levels darker was found by all three.)
  const cv::Size full{640, 360};
  ZoneConfig z = zone("facade", Detector::thrown_object, rect(0.2, 0, 0.8, 1));
  z.min_area = 0.0001;  // the default: 23 px at 640x360
  z.floors = 20;
  const cv::Mat bg = scene(full);
  auto play = [&](StreamAnalyzer& a, cv::Size given) {
    std::vector<Event> out;
    cv::Mat f, small;
    for (int i = 0; i < 22; ++i) {
      f = bg.clone();
      const double t = (i - 10) / kFps;
      if (i >= 10) {
        cv::Mat object = f(cv::Rect(cv::Point(300 + 4 * t, 30 + 90 * t * t), cv::Size(6, 6)) &
                           cv::Rect(cv::Point(), full));
        if (!object.empty()) object -= cv::Scalar::all(60);
      }
      if (given != full) cv::resize(f, small, given, 0, 0, cv::INTER_AREA);
      for (auto& e : a.process(given == full ? f : small, i * kFrameMs)) out.push_back(e);
    }
    return of_kind(out, EventKind::thrown_object);
  };
  SECTION("given the decoded 640x360 frames, the zone's band is analysed at 640x360") {
    StreamAnalyzer a(stream({z}));
    const auto hits = play(a, full);
    CHECK(a.band() == cv::Rect(128, 0, 384, 360));
    CHECK(a.band_frame_size() == full);
    CHECK(a.analysed().size() == kSize);
    REQUIRE(hits.size() == 1);
    // In the whole view's coordinates, not the band's.
    CHECK(hits[0].attrs["start"]["x"].get<double>() == Approx(300.0 / 640).margin(0.01));
    CHECK(hits[0].attrs["start"]["y"].get<double>() < 0.15);
    CHECK(hits[0].attrs["floor_estimate"].get<int>() >= 18);
  }
  SECTION("given 1280x720 frames, the band is cut from them and analysed at 640x360") {
    StreamAnalyzer a(stream({z}));
    const auto hits = play(a, {1280, 720});
    CHECK(a.band() == cv::Rect(128, 0, 384, 360));
    CHECK(a.band_frame_size() == full);
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].attrs["start"]["x"].get<double>() == Approx(300.0 / 640).margin(0.01));
  }
  SECTION("given 320x180 frames there is no finer band, and the opening erases the object") {
    StreamAnalyzer a(stream({z}));
    CHECK(play(a, kSize).empty());
    CHECK(a.band().empty());
  }
}

namespace {

// Ten frames of the scene (the reference), then `frames` made by `make`. Each event gets the
// index of the frame (after the reference) that raised it in attrs["frame"]. `view_changed` is
// what the caller tells the detector about the foreground (StreamAnalyzer: over 1/8 of the view).
std::vector<Event> tamper_run(const std::function<cv::Mat(int, const cv::Mat&)>& make, int frames,
                              bool view_changed = true) {
  TamperDetector d;
  const cv::Mat bg = scene({640, 360});
  std::vector<Event> out;
  for (int i = 0; i < 10 + frames; ++i) {
    cv::Mat f = i < 10 ? bg.clone() : make(i - 10, bg);
    for (auto& e : d.process(f, i * kFrameMs, view_changed)) {
      e.attrs["frame"] = i - 10;
      out.push_back(std::move(e));
    }
  }
  return out;
}

cv::Mat shifted(const cv::Mat& bg, double dx, double dy) {
  cv::Mat f;
  const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, dx, 0, 1, dy);
  cv::warpAffine(bg, f, m, bg.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  return f;
}

}  // namespace

TEST_CASE("camera analytics: tamper: covered, blinded, defocused, moved, and back") {
  SECTION("a normal view with movement raises nothing") {
    const auto es = tamper_run(
        [](int i, const cv::Mat& bg) {
          cv::Mat f = bg.clone();
          square(f, {40.0 + 10 * i, 180}, 30);
          return f;
        },
        50);
    CHECK(es.empty());
  }
  SECTION("covered, then uncovered") {
    const auto es = tamper_run(
        [](int i, const cv::Mat& bg) {
          if (i >= 10) return bg.clone();
          cv::Mat f(bg.size(), CV_8UC3, cv::Scalar::all(18));
          cv::randn(f, cv::Scalar::all(18), cv::Scalar::all(2));
          return f;
        },
        20);
    REQUIRE(es.size() == 2);
    CHECK(es[0].kind == EventKind::camera_tamper);
    CHECK(es[0].active == true);
    CHECK(es[0].attrs["reason"] == "covered");
    CHECK(es[0].severity == 3);
    CHECK(es[1].active == false);
    CHECK(es[1].attrs["reason"] == "covered");
  }
  SECTION("blinded by a light") {
    const auto es = tamper_run(
        [](int, const cv::Mat& bg) {
          cv::Mat f = bg.clone();
          f.setTo(cv::Scalar::all(255));
          return f;
        },
        5);
    REQUIRE(es.size() == 1);
    CHECK(es[0].attrs["reason"] == "blinded");
  }
  SECTION("defocused") {
    const auto es = tamper_run(
        [](int, const cv::Mat& bg) {
          cv::Mat f;
          cv::GaussianBlur(bg, f, {0, 0}, 4);
          return f;
        },
        5);
    REQUIRE(es.size() == 1);
    CHECK(es[0].attrs["reason"] == "defocused");
  }
  SECTION("moved by 40 px to the right and 20 px up") {
    const auto es = tamper_run([](int, const cv::Mat& bg) { return shifted(bg, 40, -20); }, 5);
    REQUIRE(es.size() == 1);
    CHECK(es[0].attrs["reason"] == "moved");
    CHECK(es[0].attrs["shift"]["x"].get<int>() == Approx(40).margin(6));
    CHECK(es[0].attrs["shift"]["y"].get<int>() == Approx(-20).margin(6));
  }
  SECTION("moved, in a view the caller says is quiet: found by the periodic check") {
    // A slow turn that the background model absorbed shows as no foreground: the move is still
    // looked for every `moved_every` frames, then confirmed on the frames after.
    const TamperDetector::Params p;
    const auto es = tamper_run([](int, const cv::Mat& bg) { return shifted(bg, 40, -20); },
                               2 * p.moved_every, /*view_changed=*/false);
    REQUIRE(es.size() == 1);
    CHECK(es[0].attrs["reason"] == "moved");
    CHECK(es[0].attrs["frame"].get<int>() < p.moved_every + p.confirm_frames);
    CHECK(es[0].attrs["shift"]["x"].get<int>() == Approx(40).margin(6));
  }
  SECTION("a view that jumps a different way every frame is not a moved camera") {
    // Each frame is far from the reference, but no two agree on the shift (a shaking mast, a
    // busy scene whose correlation peak wanders): nothing to confirm.
    const auto es = tamper_run(
        [](int i, const cv::Mat& bg) {
          const double d[4][2] = {{40, -20}, {-40, 20}, {0, 35}, {35, 0}};
          return shifted(bg, d[i % 4][0], d[i % 4][1]);
        },
        12);
    CHECK(es.empty());
  }
  SECTION("a change shorter than the confirmation raises nothing") {
    const auto es = tamper_run(
        [](int i, const cv::Mat& bg) {
          if (i != 3 && i != 4) return bg.clone();
          return cv::Mat(bg.size(), CV_8UC3, cv::Scalar::all(10));
        },
        10);
    CHECK(es.empty());
  }
}

TEST_CASE("camera analytics: a lost stream clears what it raised, latches stay") {
  StreamConfig cfg = stream({zone("yard", Detector::intrusion, rect(0.6, 0, 1, 1)),
                             zone("fence", Detector::intrusion, rect(0.6, 0, 1, 1))});
  cfg.zones[1].latch = true;
  StreamAnalyzer a(cfg);
  // Someone walks into both zones and stays there when the stream drops.
  auto es = run(a, 36, [](int i, cv::Mat& f) { square(f, {20.0 + 7 * std::min(i, 30), 100}, 12); });
  auto hits = of_kind(es, EventKind::intrusion);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].active == true);
  CHECK(hits[1].active == true);
  const auto cleared = a.stream_lost();
  REQUIRE(cleared.size() == 1);  // the yard; the fence latches
  CHECK(cleared[0].kind == EventKind::intrusion);
  CHECK(cleared[0].active == false);
  CHECK(cleared[0].attrs["zone"] == "yard");
  CHECK(cleared[0].attrs["reason"] == "stream lost");
  CHECK(cleared[0].device.id == "cam1");
  CHECK(a.stream_lost().empty());  // cleared once
  // Back: the background is learned again (no alarm from the old one), the fence stays latched
  // and silent, the yard raises again when someone walks in.
  es = run(
      a, 36,
      [](int i, cv::Mat& f) {
        square(f, {20.0 + 7 * std::min(i, 30), 100}, 12);
      },
      60'000);
  hits = of_kind(es, EventKind::intrusion);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].attrs["zone"] == "yard");
  CHECK(hits[0].active == true);
  CHECK(a.reset_zone("fence"));
}
