// libFuzzer target for the camera stream config parser. The whole input is the JSON text.
// Nothing may crash or throw; an error names a field and is safe to log; a config that parses
// is written back as JSON and must parse again to the same streams; URLs are redacted safely.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "anju/drivers/camera/camera_config.hpp"

namespace cam = anju::drivers::camera;
using nlohmann::json;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

json to_json(const cam::StreamConfig& s) {
  json j = {{"id", s.id},
            {"name", s.name},
            {"url", s.url},
            {"building", s.location.building},
            {"unit", s.location.unit},
            {"room", s.location.room},
            {"width", s.width},
            {"height", s.height},
            {"fps", s.fps},
            {"tamper", s.tamper},
            {"background", s.background == cam::BackgroundModel::mog2 ? "mog2" : "sigma_delta"},
            {"utc_offset_minutes", s.utc_offset_minutes},
            {"covers", s.covers},
            {"zones", json::array()}};
  if (s.url.starts_with("rtsp://") || s.url.starts_with("rtsps://"))
    j["rtsp_transport"] = s.rtsp_transport;
  if (!s.credentials_file.empty()) j["credentials_file"] = s.credentials_file;
  for (const auto& z : s.zones) {
    json pts = json::array();
    for (const auto& p : z.polygon) pts.push_back({p.x, p.y});
    json jz = {{"id", z.id},
               {"detector", std::string(cam::to_string(z.detector))},
               {"polygon", pts},
               {"min_area", z.min_area},
               {"severity", z.severity}};
    if (z.detector == cam::Detector::thrown_object) {
      jz["max_area"] = z.max_area;
      if (z.floors > 0) jz["floors"] = z.floors;
    }
    if (z.detector == cam::Detector::loitering) jz["dwell_s"] = z.dwell_s;
    if (z.detector == cam::Detector::intrusion) jz["latch"] = z.latch;
    if (!z.door.empty()) jz["door"] = z.door;
    if (!z.schedule.empty()) {
      static constexpr const char* kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
      auto hhmm = [](int m) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "%02d:%02d", m / 60, m % 60);
        return std::string(buf);
      };
      json windows = json::array();
      for (const auto& w : z.schedule) {
        json days = json::array();
        for (int d = 0; d < 7; ++d)
          if ((w.days >> d) & 1) days.push_back(kDays[d]);
        windows.push_back({{"days", days}, {"from", hhmm(w.from_min)}, {"to", hhmm(w.to_min)}});
      }
      jz["schedule"] = windows;
    }
    j["zones"].push_back(jz);
  }
  return j;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto r = cam::parse_streams(text);
  if (!r.error.empty()) {
    check(r.streams.empty());
    check(r.error.find(": ") != std::string::npos);  // "<field>: <what>"
    check(!json(r.error).dump(-1, ' ', false, json::error_handler_t::replace).empty());
    return 0;
  }
  json all = {{"streams", json::array()}};
  for (const auto& s : r.streams) {
    check(!s.id.empty());
    check(s.width >= 32 && s.height >= 32 && s.fps > 0);
    for (const auto& z : s.zones) {
      check(z.severity >= 1 && z.severity <= 4);
      check(z.detector == cam::Detector::line_count ? z.polygon.size() == 2
                                                    : z.polygon.size() >= 3);
      for (const auto& p : z.polygon) check(p.x >= 0 && p.x <= 1 && p.y >= 0 && p.y <= 1);
      check(z.detector != cam::Detector::line_count || z.schedule.empty());
      for (const auto& w : z.schedule) {
        check(w.days != 0 && w.days <= 0x7F);
        check(w.from_min >= 0 && w.from_min < 1440 && w.to_min >= 0 && w.to_min <= 1440);
        check(w.from_min != w.to_min);
      }
      // Any time of any day, in any offset: a defined answer, no crash.
      (void)cam::schedule_armed(z.schedule, s.utc_offset_minutes,
                                static_cast<std::int64_t>(size) * 7'919'000'000LL);
    }
    const std::string shown = cam::redact_url(s.url);
    check(shown == s.url || shown.find("***@") != std::string::npos);
    check(s.rtsp_transport == "tcp" || s.rtsp_transport == "udp");
    if (!s.credentials_file.empty()) check(!cam::url_has_credentials(s.url));
    // Credentials put into any URL that parsed never show through the redaction.
    const auto with = cam::url_with_credentials(s.url, "op:pa@ss/w:rd\n");
    if (with.error.empty()) {
      check(cam::url_has_credentials(with.url));
      // The redaction hides exactly the inserted user:password, whatever the rest of the URL
      // holds (its path may itself contain "pa%40ss"; that is not a leak).
      const auto authority = s.url.find("://") + 3;
      check(cam::redact_url(with.url) ==
            s.url.substr(0, authority) + "***@" + s.url.substr(authority));
      check(with.url.find("pa%40ss%2Fw%3Ard@") != std::string::npos);
    }
    all["streams"].push_back(to_json(s));
  }
  const auto again = cam::parse_streams(all.dump());
  check(again.error.empty());
  check(again.streams == r.streams);
  return 0;
}
