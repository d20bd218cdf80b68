// Unit tests of camera zone schedules (issue 5): the config keys (drivers/camera/src/
// camera_parser.cpp) and schedule_armed(), the pure function the analyzer asks on each frame.
// The analyzer's behaviour with a simulated clock is in test_camera_analytics.cpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "anju/drivers/camera/camera_config.hpp"

using namespace anju::drivers::camera;
using nlohmann::json;

namespace {

constexpr std::int64_t kMonday = 20514;  // 2026-03-02, days since 1970-01-01
constexpr int kChina = 480;              // UTC+08:00

// Unix ms of local time (UTC+offset) on day `day` (days since 1970-01-01) at hh:mm.
std::int64_t local(std::int64_t day, int hh, int mm, int offset_min = kChina) {
  return day * 86'400'000 + (static_cast<std::int64_t>(hh) * 60 + mm - offset_min) * 60'000;
}

json one_zone(json schedule) {
  json zone = {{"id", "yard"},
               {"detector", "intrusion"},
               {"polygon", json::array({json::array({0.1, 0.1}), json::array({0.9, 0.1}),
                                        json::array({0.9, 0.9})})}};
  if (!schedule.is_null()) zone["schedule"] = std::move(schedule);
  return {
      {"streams",
       json::array({{{"id", "cam"}, {"url", "rtsp://cam/s"}, {"zones", json::array({zone})}}})}};
}

std::string error_of(const json& j) {
  auto r = parse_streams_json(j);
  CHECK(r.streams.empty());
  return r.error;
}

}  // namespace

TEST_CASE("camera schedule: windows parse, with days, overnight and defaults") {
  auto r = parse_streams_json(
      one_zone(json::array({{{"days", json::array({"mon", "tue", "wed", "thu", "fri"})},
                             {"from", "22:00"},
                             {"to", "06:00"}},
                            {{"days", "weekends"}, {"from", "00:00"}, {"to", "24:00"}},
                            {{"from", "12:30"}, {"to", "13:00"}}})));
  REQUIRE(r.error.empty());
  const auto& s = r.streams[0];
  CHECK(s.utc_offset_minutes == 480);  // default, as in the access credentials file
  const auto& w = s.zones[0].schedule;
  REQUIRE(w.size() == 3);
  CHECK(w[0] == ScheduleWindow{0x1F, 22 * 60, 6 * 60});
  CHECK(w[1] == ScheduleWindow{0x60, 0, 1440});
  CHECK(w[2] == ScheduleWindow{0x7F, 12 * 60 + 30, 13 * 60});  // days default: all

  auto none = parse_streams_json(one_zone(nullptr));
  REQUIRE(none.error.empty());
  CHECK(none.streams[0].zones[0].schedule.empty());  // absent: always armed

  json offset = one_zone(nullptr);
  offset["streams"][0]["utc_offset_minutes"] = -300;
  auto o = parse_streams_json(offset);
  REQUIRE(o.error.empty());
  CHECK(o.streams[0].utc_offset_minutes == -300);
}

TEST_CASE("camera schedule: bad windows are errors naming the key") {
  struct Case {
    json schedule;
    std::string expected;
  };
  const std::string at = "streams[0].zones[0].schedule";
  const Case cases[] = {
      {json::array(), at + ": must be a non-empty list"},
      {"22:00-06:00", at + ": must be a non-empty list"},
      {json::array({"22:00"}), at + "[0]: must be an object"},
      {json::array({{{"from", "22:00"}}}), at + "[0].to: missing"},
      {json::array({{{"to", "06:00"}}}), at + "[0].from: missing"},
      {json::array({{{"from", "22:00"}, {"to", 6}}}), at + "[0].to: must be a string"},
      {json::array({{{"from", "24:00"}, {"to", "06:00"}}}), at + "[0].from: must be HH:MM"},
      {json::array({{{"from", "7:00"}, {"to", "08:00"}}}), at + "[0].from: must be HH:MM"},
      {json::array({{{"from", "07:60"}, {"to", "08:00"}}}), at + "[0].from: must be HH:MM"},
      {json::array({{{"from", "07:00"}, {"to", "24:01"}}}), at + "[0].to: must be HH:MM"},
      {json::array({{{"from", "07:00"}, {"to", "07:00"}}}), at + "[0].to: equals from"},
      {json::array({{{"from", "07:00"}, {"to", "08:00"}, {"day", "mon"}}}),
       at + "[0].day: unknown key"},
      {json::array({{{"days", "holidays"}, {"from", "07:00"}, {"to", "08:00"}}}),
       at + "[0].days: must be all, weekdays, weekends"},
      {json::array({{{"days", json::array()}, {"from", "07:00"}, {"to", "08:00"}}}),
       at + "[0].days: must be all, weekdays, weekends"},
      {json::array({{{"days", json::array({"mon", "Tue"})}, {"from", "07:00"}, {"to", "08:00"}}}),
       at + "[0].days[1]: must be one of mon"},
      {json::array({{{"days", json::array({1})}, {"from", "07:00"}, {"to", "08:00"}}}),
       at + "[0].days[0]: must be one of mon"},
  };
  for (const auto& c : cases) {
    INFO(c.schedule.dump());
    CHECK(error_of(one_zone(c.schedule)).starts_with(c.expected));
  }
  // Counting never pauses: a line has no schedule.
  json line = one_zone(json::array({{{"from", "07:00"}, {"to", "08:00"}}}));
  line["streams"][0]["zones"][0]["detector"] = "line_count";
  line["streams"][0]["zones"][0]["polygon"] =
      json::array({json::array({0.5, 0}), json::array({0.5, 1})});
  CHECK(error_of(line) ==
        "streams[0].zones[0].schedule: a line_count zone always counts (no schedule)");
  json offset = one_zone(nullptr);
  offset["streams"][0]["utc_offset_minutes"] = 900;
  CHECK(error_of(offset).starts_with("streams[0].utc_offset_minutes: must be within -720..840"));
}

TEST_CASE("camera schedule: armed inside a window, not outside") {
  const std::vector<ScheduleWindow> office{{0x1F, 8 * 60, 18 * 60}};  // weekdays 08:00-18:00
  CHECK(schedule_armed(office, kChina, local(kMonday, 8, 0)));
  CHECK(schedule_armed(office, kChina, local(kMonday, 17, 59)));
  CHECK_FALSE(schedule_armed(office, kChina, local(kMonday, 18, 0)));  // [from, to)
  CHECK_FALSE(schedule_armed(office, kChina, local(kMonday, 7, 59)));
  CHECK_FALSE(schedule_armed(office, kChina, local(kMonday + 5, 12, 0)));  // Saturday
  CHECK(schedule_armed(office, kChina, local(kMonday + 4, 12, 0)));        // Friday
  // The offset is the local time: 08:00 in Beijing is 00:00 UTC; in UTC it is not yet 08:00.
  CHECK_FALSE(schedule_armed(office, 0, local(kMonday, 8, 0)));
  CHECK(schedule_armed(office, 0, local(kMonday, 8, 0, 0)));
  CHECK(schedule_armed({}, kChina, local(kMonday, 3, 0)));  // no schedule: always armed
  const std::vector<ScheduleWindow> whole{{0x7F, 0, 1440}};
  CHECK(schedule_armed(whole, kChina, local(kMonday, 0, 0)));
  CHECK(schedule_armed(whole, kChina, local(kMonday, 23, 59)));
}

TEST_CASE("camera schedule: a window crossing midnight belongs to the day it starts") {
  // Friday and Saturday nights, 22:00 to 06:00.
  const std::vector<ScheduleWindow> nights{{0x30, 22 * 60, 6 * 60}};
  const std::int64_t fri = kMonday + 4, sat = kMonday + 5, sun = kMonday + 6;
  CHECK_FALSE(schedule_armed(nights, kChina, local(fri, 21, 59)));
  CHECK(schedule_armed(nights, kChina, local(fri, 22, 0)));
  CHECK(schedule_armed(nights, kChina, local(fri, 23, 59)));
  CHECK(schedule_armed(nights, kChina, local(sat, 0, 0)));  // Friday night, after midnight
  CHECK(schedule_armed(nights, kChina, local(sat, 5, 59)));
  CHECK_FALSE(schedule_armed(nights, kChina, local(sat, 6, 0)));
  CHECK_FALSE(schedule_armed(nights, kChina, local(sat, 12, 0)));
  CHECK(schedule_armed(nights, kChina, local(sat, 22, 30)));
  CHECK(schedule_armed(nights, kChina, local(sun, 3, 0)));          // Saturday night
  CHECK_FALSE(schedule_armed(nights, kChina, local(sun, 22, 30)));  // Sunday is not listed
  CHECK_FALSE(schedule_armed(nights, kChina, local(kMonday + 7, 3, 0)));
  CHECK_FALSE(schedule_armed(nights, kChina, local(fri, 3, 0)));  // Thursday night: not listed
  // Sunday night runs into Monday across the week's end.
  const std::vector<ScheduleWindow> sunday{{0x40, 23 * 60, 1 * 60}};
  CHECK(schedule_armed(sunday, kChina, local(kMonday, 0, 30)));
  CHECK_FALSE(schedule_armed(sunday, kChina, local(kMonday + 1, 0, 30)));
}
