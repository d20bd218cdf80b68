// Camera stream config parser. Pure: no I/O, no OpenCV, no exceptions on bad input (the JSON is
// parsed with exceptions disabled and every value is read only after its type was checked).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

#include "anju/drivers/camera/camera_config.hpp"
#include "anju/drivers/camera/camera_service.hpp"

namespace anju::drivers::camera {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxStreams = 256;
constexpr std::size_t kMaxZones = 32;
constexpr std::size_t kMaxCovers = 32;
constexpr std::size_t kMaxPolygonPoints = 64;
constexpr std::size_t kMaxIdBytes = 64;
constexpr std::size_t kMaxUrlBytes = 2048;
constexpr std::size_t kMaxNameBytes = 256;
constexpr std::size_t kMaxPathBytes = 1024;
constexpr std::size_t kMaxWindows = 32;
constexpr std::int64_t kMsPerDay = 86'400'000;

constexpr std::array<std::pair<Detector, std::string_view>, 4> kDetectors{{
    {Detector::intrusion, "intrusion"},
    {Detector::loitering, "loitering"},
    {Detector::line_count, "line_count"},
    {Detector::thrown_object, "thrown_object"},
}};

// A path element and the failure, e.g. "streams[0].zones[1].dwell_s: must be > 0".
struct Ctx {
  std::string path;
  std::string* error;
  bool fail(const std::string& field, const std::string& what) const {
    *error = (path.empty() ? field : (field.empty() ? path : path + "." + field)) + ": " + what;
    return false;
  }
};

bool valid_id(const std::string& s) {
  if (s.empty() || s.size() > kMaxIdBytes) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
  });
}

bool printable(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f; });
}

// A key from the input, shortened and with anything but printable ASCII replaced by '?', so
// that an error is safe to log.
std::string shown_key(const std::string& key) {
  std::string out;
  for (std::size_t i = 0; i < std::min(key.size(), kMaxIdBytes); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  if (key.size() > kMaxIdBytes) out += "...";
  return out;
}

bool check_keys(const json& obj, std::initializer_list<std::string_view> allowed, const Ctx& c) {
  for (const auto& [key, value] : obj.items()) {
    (void)value;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return c.fail(shown_key(key), "unknown key");
  }
  return true;
}

bool get_string(const json& obj, const char* key, std::string& out, const Ctx& c, bool required,
                std::size_t max_bytes) {
  auto it = obj.find(key);
  if (it == obj.end()) return required ? c.fail(key, "missing") : true;
  if (!it->is_string()) return c.fail(key, "must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max_bytes) return c.fail(key, "longer than " + std::to_string(max_bytes));
  if (!printable(s)) return c.fail(key, "contains control characters");
  out = s;
  return true;
}

bool get_number(const json& obj, const char* key, double& out, double lo, double hi, const Ctx& c) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;
  if (!it->is_number()) return c.fail(key, "must be a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return c.fail(key, "must be within " + json(lo).dump() + ".." + json(hi).dump());
  out = v;
  return true;
}

bool get_int(const json& obj, const char* key, int& out, int lo, int hi, const Ctx& c) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;
  if (!it->is_number_integer()) return c.fail(key, "must be an integer");
  const auto v = it->get<std::int64_t>();
  if (v < lo || v > hi)
    return c.fail(key, "must be within " + std::to_string(lo) + ".." + std::to_string(hi));
  out = static_cast<int>(v);
  return true;
}

bool get_bool(const json& obj, const char* key, bool& out, const Ctx& c) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;
  if (!it->is_boolean()) return c.fail(key, "must be true or false");
  out = it->get<bool>();
  return true;
}

bool valid_url(const std::string& url) {
  if (url.empty()) return false;
  if (url.find(' ') != std::string::npos) return false;
  for (std::string_view scheme : {"rtsp://", "rtsps://", "http://", "https://", "file://"})
    if (url.starts_with(scheme)) return url.size() > scheme.size();
  if (url.find("://") != std::string::npos) return false;  // another scheme
  return true;                                             // a local file or /dev/videoN
}

// "HH:MM" -> minutes after midnight; "24:00" only when allow_24 (the end of a day).
std::optional<int> parse_hhmm(const std::string& s, bool allow_24) {
  auto digit = [&](std::size_t i) { return s[i] >= '0' && s[i] <= '9'; };
  if (s.size() != 5 || s[2] != ':' || !digit(0) || !digit(1) || !digit(3) || !digit(4))
    return std::nullopt;
  const int h = (s[0] - '0') * 10 + (s[1] - '0');
  const int m = (s[3] - '0') * 10 + (s[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && (!allow_24 || m != 0))) return std::nullopt;
  return h * 60 + m;
}

// "all", "weekdays", "weekends" or a non-empty list of "mon".."sun" -> bit 0 Monday .. 6 Sunday.
bool parse_days(const json& j, std::uint8_t& out, const Ctx& c) {
  static constexpr std::array<std::string_view, 7> kNames{"mon", "tue", "wed", "thu",
                                                          "fri", "sat", "sun"};
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s == "all")
      out = 0x7F;
    else if (s == "weekdays")
      out = 0x1F;
    else if (s == "weekends")
      out = 0x60;
    else
      return c.fail("days", "must be all, weekdays, weekends or a list of mon..sun");
    return true;
  }
  if (!j.is_array() || j.empty() || j.size() > 7)
    return c.fail("days", "must be all, weekdays, weekends or a list of 1 to 7 of mon..sun");
  out = 0;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const auto it = j[i].is_string() ? std::find(kNames.begin(), kNames.end(),
                                                 j[i].get_ref<const std::string&>())
                                     : kNames.end();
    if (it == kNames.end())
      return c.fail("days[" + std::to_string(i) + "]",
                    "must be one of mon, tue, wed, thu, fri, sat, sun");
    out = static_cast<std::uint8_t>(out | (1u << (it - kNames.begin())));
  }
  return true;
}

bool parse_window(const json& w, ScheduleWindow& out, const Ctx& c) {
  if (!w.is_object()) return c.fail("", "must be an object with days, from, to");
  if (!check_keys(w, {"days", "from", "to"}, c)) return false;
  if (auto d = w.find("days"); d != w.end() && !parse_days(*d, out.days, c)) return false;
  std::string from, to;
  if (!get_string(w, "from", from, c, true, 8)) return false;
  if (!get_string(w, "to", to, c, true, 8)) return false;
  const auto f = parse_hhmm(from, false);
  if (!f) return c.fail("from", "must be HH:MM, 00:00..23:59");
  const auto t = parse_hhmm(to, true);
  if (!t) return c.fail("to", "must be HH:MM, 00:00..24:00");
  if (*f == *t) return c.fail("to", "equals from: an empty window (a whole day is 00:00 to 24:00)");
  out.from_min = *f;
  out.to_min = *t;
  return true;
}

bool parse_schedule(const json& j, std::vector<ScheduleWindow>& out, const Ctx& c) {
  if (!j.is_array() || j.empty())
    return c.fail("schedule", "must be a non-empty list of {days, from, to} windows");
  if (j.size() > kMaxWindows)
    return c.fail("schedule", "more than " + std::to_string(kMaxWindows) + " windows");
  for (std::size_t i = 0; i < j.size(); ++i) {
    ScheduleWindow w;
    const Ctx wc{c.path + ".schedule[" + std::to_string(i) + "]", c.error};
    if (!parse_window(j[i], w, wc)) return false;
    out.push_back(w);
  }
  return true;
}

double polygon_area(const std::vector<PointN>& p) {
  double a = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const auto& u = p[i];
    const auto& v = p[(i + 1) % p.size()];
    a += u.x * v.y - v.x * u.y;
  }
  return std::abs(a) / 2;
}

bool parse_zone(const json& z, ZoneConfig& out, const Ctx& c) {
  if (!z.is_object()) return c.fail("", "must be an object");
  if (!check_keys(z,
                  {"id", "detector", "polygon", "min_area", "max_area", "dwell_s", "floors",
                   "severity", "latch", "door", "schedule"},
                  c))
    return false;
  if (!get_string(z, "id", out.id, c, true, kMaxIdBytes)) return false;
  if (!valid_id(out.id)) return c.fail("id", "only letters, digits and _ - . : allowed");
  std::string det;
  if (!get_string(z, "detector", det, c, true, kMaxIdBytes)) return false;
  auto d = detector_from_string(det);
  if (!d) return c.fail("detector", "must be intrusion, loitering, line_count or thrown_object");
  out.detector = *d;
  out.severity = default_severity(*d);

  auto poly = z.find("polygon");
  if (poly == z.end()) return c.fail("polygon", "missing");
  if (!poly->is_array()) return c.fail("polygon", "must be an array of [x, y] points");
  if (poly->size() > kMaxPolygonPoints)
    return c.fail("polygon", "more than " + std::to_string(kMaxPolygonPoints) + " points");
  for (std::size_t i = 0; i < poly->size(); ++i) {
    const json& p = (*poly)[i];
    const std::string field = "polygon[" + std::to_string(i) + "]";
    if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_number())
      return c.fail(field, "must be [x, y] with two numbers");
    const double x = p[0].get<double>();
    const double y = p[1].get<double>();
    if (!std::isfinite(x) || x < 0 || x > 1) return c.fail(field, "x must be within 0..1");
    if (!std::isfinite(y) || y < 0 || y > 1) return c.fail(field, "y must be within 0..1");
    out.polygon.push_back({x, y});
  }
  if (out.detector == Detector::line_count) {
    if (out.polygon.size() != 2)
      return c.fail("polygon", "a line_count zone is a line: exactly 2 points");
    if (std::hypot(out.polygon[0].x - out.polygon[1].x, out.polygon[0].y - out.polygon[1].y) < 0.01)
      return c.fail("polygon", "the line is shorter than 0.01");
  } else {
    if (out.polygon.size() < 3) return c.fail("polygon", "needs at least 3 points");
    if (polygon_area(out.polygon) < 1e-4) return c.fail("polygon", "encloses no area");
  }

  if (out.detector == Detector::thrown_object) {
    out.min_area = 0.0001;
  }
  if (!get_number(z, "min_area", out.min_area, 1e-6, 1, c)) return false;
  if (!get_number(z, "max_area", out.max_area, 1e-6, 1, c)) return false;
  if (z.contains("max_area") && out.detector != Detector::thrown_object)
    return c.fail("max_area", "only for thrown_object zones");
  if (out.detector == Detector::thrown_object && out.max_area < out.min_area)
    return c.fail("max_area", "smaller than min_area");

  if (!get_number(z, "dwell_s", out.dwell_s, 0, 86400, c)) return false;
  if (out.detector == Detector::loitering) {
    if (!z.contains("dwell_s")) return c.fail("dwell_s", "missing (required for loitering)");
    if (out.dwell_s <= 0) return c.fail("dwell_s", "must be > 0");
  } else if (z.contains("dwell_s")) {
    return c.fail("dwell_s", "only for loitering zones");
  }
  if (!get_int(z, "floors", out.floors, 1, 200, c)) return false;
  if (z.contains("floors") && out.detector != Detector::thrown_object)
    return c.fail("floors", "only for thrown_object zones");
  if (!get_int(z, "severity", out.severity, 1, 4, c)) return false;
  if (!get_bool(z, "latch", out.latch, c)) return false;
  if (out.latch && out.detector != Detector::intrusion)
    return c.fail("latch", "only intrusion zones latch");
  if (!get_string(z, "door", out.door, c, false, kMaxIdBytes)) return false;
  if (!out.door.empty() && out.detector != Detector::line_count)
    return c.fail("door", "only a line_count zone counts passages at a door");
  if (auto sch = z.find("schedule"); sch != z.end()) {
    // Counting feeds the door rules' tailgating and the totals: it never pauses.
    if (out.detector == Detector::line_count)
      return c.fail("schedule", "a line_count zone always counts (no schedule)");
    if (!parse_schedule(*sch, out.schedule, c)) return false;
  }
  return true;
}

bool parse_stream(const json& s, StreamConfig& out, const Ctx& c) {
  if (!s.is_object()) return c.fail("", "must be an object");
  if (!check_keys(s,
                  {"id", "name", "url", "building", "unit", "room", "width", "height", "fps",
                   "tamper", "zones", "covers", "utc_offset_minutes", "rtsp_transport",
                   "credentials_file", "background"},
                  c))
    return false;
  if (!get_string(s, "id", out.id, c, true, kMaxIdBytes)) return false;
  if (!valid_id(out.id)) return c.fail("id", "only letters, digits and _ - . : allowed");
  out.name = out.id;
  if (!get_string(s, "name", out.name, c, false, kMaxNameBytes)) return false;
  if (!get_string(s, "url", out.url, c, true, kMaxUrlBytes)) return false;
  if (!valid_url(out.url))
    return c.fail("url", "must be rtsp://, rtsps://, http(s)://, file:// or a local path");
  const bool rtsp = out.url.starts_with("rtsp://") || out.url.starts_with("rtsps://");
  const bool network = rtsp || out.url.starts_with("http://") || out.url.starts_with("https://");
  if (!get_string(s, "rtsp_transport", out.rtsp_transport, c, false, kMaxIdBytes)) return false;
  if (s.contains("rtsp_transport")) {
    if (out.rtsp_transport != "tcp" && out.rtsp_transport != "udp")
      return c.fail("rtsp_transport", "must be tcp or udp");
    if (!rtsp) return c.fail("rtsp_transport", "only for rtsp:// and rtsps:// streams");
    if (out.url.starts_with("rtsps://") && out.rtsp_transport == "udp")
      return c.fail("rtsp_transport", "rtsps:// is TLS over TCP: udp is not possible");
  }
  if (!get_string(s, "credentials_file", out.credentials_file, c, false, kMaxPathBytes))
    return false;
  if (s.contains("credentials_file")) {
    if (!out.credentials_file.starts_with("/"))
      return c.fail("credentials_file", "must be an absolute path");
    if (!network)
      return c.fail("credentials_file", "only for rtsp://, rtsps:// and http(s):// streams");
    // Two sources of credentials: which one is meant? The file is, and the URL's must go.
    if (url_has_credentials(out.url))
      return c.fail("url",
                    "has user:password@ and credentials_file is set: keep them in the file only");
  }
  if (!get_string(s, "building", out.location.building, c, false, kMaxNameBytes)) return false;
  if (!get_string(s, "unit", out.location.unit, c, false, kMaxNameBytes)) return false;
  if (!get_string(s, "room", out.location.room, c, false, kMaxNameBytes)) return false;
  // Both or neither: one alone would pair with a default made for another shape.
  if (s.contains("width") != s.contains("height"))
    return c.fail(s.contains("width") ? "height" : "width",
                  "width and height go together: give both, or neither for the default");
  if (!get_int(s, "width", out.width, 32, 1920, c)) return false;
  if (!get_int(s, "height", out.height, 32, 1080, c)) return false;
  if (!get_number(s, "fps", out.fps, 0.5, 30, c)) return false;
  if (!get_bool(s, "tamper", out.tamper, c)) return false;
  std::string background = "sigma_delta";
  if (!get_string(s, "background", background, c, false, kMaxIdBytes)) return false;
  if (background == "mog2")
    out.background = BackgroundModel::mog2;
  else if (background != "sigma_delta")
    return c.fail("background", "must be sigma_delta or mog2");
  if (!get_int(s, "utc_offset_minutes", out.utc_offset_minutes, -720, 840, c)) return false;
  if (auto covers = s.find("covers"); covers != s.end()) {
    if (!covers->is_array()) return c.fail("covers", "must be a list of door or device ids");
    if (covers->size() > kMaxCovers)
      return c.fail("covers", "more than " + std::to_string(kMaxCovers) + " entries");
    for (std::size_t i = 0; i < covers->size(); ++i) {
      const auto& v = (*covers)[i];
      const std::string at = "covers[" + std::to_string(i) + "]";
      if (!v.is_string() || v.get_ref<const std::string&>().empty() ||
          v.get_ref<const std::string&>().size() > kMaxIdBytes ||
          !printable(v.get_ref<const std::string&>()))
        return c.fail(at, "must be a door or device id (1 to " + std::to_string(kMaxIdBytes) +
                              " printable characters)");
      out.covers.push_back(v.get<std::string>());
    }
  }
  if (auto zones = s.find("zones"); zones != s.end()) {
    if (!zones->is_array()) return c.fail("zones", "must be an array");
    if (zones->size() > kMaxZones)
      return c.fail("zones", "more than " + std::to_string(kMaxZones) + " zones");
    std::set<std::string> ids;
    for (std::size_t i = 0; i < zones->size(); ++i) {
      ZoneConfig z;
      const Ctx zc{c.path + ".zones[" + std::to_string(i) + "]", c.error};
      if (!parse_zone((*zones)[i], z, zc)) return false;
      if (!ids.insert(z.id).second) return zc.fail("id", "duplicate zone id '" + z.id + "'");
      out.zones.push_back(std::move(z));
    }
  }
  if (!s.contains("width")) {
    out.width = kDefaultAnalysisSize.width;
    out.height = kDefaultAnalysisSize.height;
  }
  return true;
}

}  // namespace

std::string_view to_string(Detector d) {
  for (const auto& [det, name] : kDetectors)
    if (det == d) return name;
  return "unknown";
}

std::optional<Detector> detector_from_string(std::string_view s) {
  for (const auto& [det, name] : kDetectors)
    if (name == s) return det;
  return std::nullopt;
}

bool schedule_armed(const std::vector<ScheduleWindow>& schedule, int utc_offset_minutes,
                    std::int64_t wall_ms) {
  if (schedule.empty()) return true;
  const std::int64_t local = wall_ms + static_cast<std::int64_t>(utc_offset_minutes) * 60'000;
  std::int64_t day = local / kMsPerDay;
  if (local % kMsPerDay < 0) --day;  // floor: before 1970 (only a broken clock)
  const int minute = static_cast<int>((local - day * kMsPerDay) / 60'000);
  const int weekday = static_cast<int>(((day % 7) + 7 + 3) % 7);  // 1970-01-01 was a Thursday
  const int yesterday = (weekday + 6) % 7;
  for (const auto& w : schedule) {
    if (w.to_min > w.from_min) {
      if (((w.days >> weekday) & 1) && minute >= w.from_min && minute < w.to_min) return true;
    } else {  // crosses midnight: the evening of a listed day, or the morning after one
      if (((w.days >> weekday) & 1) && minute >= w.from_min) return true;
      if (((w.days >> yesterday) & 1) && minute < w.to_min) return true;
    }
  }
  return false;
}

int default_severity(Detector d) {
  switch (d) {
    case Detector::intrusion:
    case Detector::thrown_object:
      return 2;
    case Detector::loitering:
      return 3;
    case Detector::line_count:
      return 4;
  }
  return 4;
}

ParseResult parse_streams_json(const nlohmann::json& j) {
  ParseResult r;
  const Ctx root{"", &r.error};
  if (!j.is_object()) {
    root.fail("(root)", "must be an object with \"streams\"");
    return r;
  }
  if (!check_keys(j, {"streams"}, root)) return r;
  auto streams = j.find("streams");
  if (streams == j.end()) {
    root.fail("streams", "missing");
    return r;
  }
  if (!streams->is_array()) {
    root.fail("streams", "must be an array");
    return r;
  }
  if (streams->size() > kMaxStreams) {
    root.fail("streams", "more than " + std::to_string(kMaxStreams) + " streams");
    return r;
  }
  std::set<std::string> ids;
  std::vector<StreamConfig> out;
  for (std::size_t i = 0; i < streams->size(); ++i) {
    StreamConfig s;
    const Ctx sc{"streams[" + std::to_string(i) + "]", &r.error};
    if (!parse_stream((*streams)[i], s, sc)) return r;
    if (!ids.insert(s.id).second) {
      sc.fail("id", "duplicate stream id '" + s.id + "'");
      return r;
    }
    out.push_back(std::move(s));
  }
  r.streams = std::move(out);
  return r;
}

ParseResult parse_streams(std::string_view json_text) {
  const json j = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (j.is_discarded()) {
    ParseResult r;
    r.error = "(root): not valid JSON";
    return r;
  }
  return parse_streams_json(j);
}

std::string redact_url(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const auto host_start = scheme + 3;
  const auto path_start = url.find('/', host_start);
  const auto authority =
      url.substr(host_start, path_start == std::string_view::npos ? std::string_view::npos
                                                                  : path_start - host_start);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  std::string out(url.substr(0, host_start));
  out += "***";
  out += url.substr(host_start + at);
  return out;
}

bool url_has_credentials(std::string_view url) {
  return redact_url(url) != url;
}

CredentialUrl url_with_credentials(std::string_view url, std::string_view text) {
  CredentialUrl r;
  // One line: a final LF (or CRLF) and blanks around the line are ignored.
  auto blank = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; };
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  if (text.empty()) {
    r.error = "empty (expected one line user:password)";
    return r;
  }
  if (text.size() > 1024) {
    r.error = "longer than 1024 bytes (expected one line user:password)";
    return r;
  }
  if (text.find('\n') != std::string_view::npos) {
    r.error = "more than one line (expected one line user:password)";
    return r;
  }
  if (std::any_of(text.begin(), text.end(),
                  [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; })) {
    r.error = "contains control characters";
    return r;
  }
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    r.error = "not user:password (no ':' after a user name)";
    return r;
  }
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos || url_has_credentials(url)) {
    r.error = "the URL is not a network URL without credentials";
    return r;
  }
  // RFC 3986 userinfo, percent-encoded but for the unreserved characters.
  auto encode = [](std::string_view v) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : v) {
      const auto u = static_cast<unsigned char>(ch);
      if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || ch == '-' ||
          ch == '.' || ch == '_' || ch == '~') {
        out += ch;
      } else {
        out += '%';
        out += kHex[u >> 4];
        out += kHex[u & 15];
      }
    }
    return out;
  };
  r.url = std::string(url.substr(0, scheme + 3)) + encode(text.substr(0, colon)) + ":" +
          encode(text.substr(colon + 1)) + "@" + std::string(url.substr(scheme + 3));
  return r;
}

edge::Event stream_status_event(const StreamConfig& stream, edge::EventKind kind,
                                const std::string& reason) {
  edge::Event e;
  e.kind = kind;
  e.severity = kind == edge::EventKind::device_offline ? 3 : 4;
  e.device.id = stream.id;
  e.device.kind = "camera";
  e.device.name = stream.name;
  e.location = stream.location;
  e.source = "camera";
  e.attrs = {{"stream", stream.id}, {"url", redact_url(stream.url)}};
  if (!reason.empty()) e.attrs["reason"] = reason;
  return e;
}

std::string camera_module_abi() {
  return std::string("anju ") + ANJU_VERSION + "; interface " + std::to_string(kCameraInterface) +
         "; options " + std::to_string(sizeof(CameraDriverOptions)) + ", stream " +
         std::to_string(sizeof(StreamConfig)) + ", zone " + std::to_string(sizeof(ZoneConfig)) +
         ", event " + std::to_string(sizeof(edge::Event)) + ", stats " +
         std::to_string(sizeof(CameraStreamStats)) + ", sink " +
         std::to_string(sizeof(CameraService::Sink));
}

// The one function here that reads a file (anjud --check-config and the driver share it).
CredentialUrl open_url_with_credentials(const StreamConfig& cfg) {
  const std::string& path = cfg.credentials_file;
  CredentialUrl r;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    r.error = "credentials_file " + path + ": cannot open: " + std::strerror(errno);
    return r;
  }
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    r.error = "credentials_file " + path + ": not a regular file";
  } else if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    r.error = "credentials_file " + path + ": mode " + mode +
              " lets others read the camera's password; it must be readable by its owner only "
              "(chmod 600)";
  } else {
    char buf[2048];
    ssize_t n = 0;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() <= 4096)
      text.append(buf, static_cast<std::size_t>(n));
    if (n < 0) r.error = "credentials_file " + path + ": cannot read: " + std::strerror(errno);
  }
  ::close(fd);
  if (!r.error.empty()) return r;
  r = url_with_credentials(cfg.url, text);
  std::fill(text.begin(), text.end(), '\0');
  if (!r.error.empty()) r.error = "credentials_file " + path + ": " + r.error;
  return r;
}

}  // namespace anju::drivers::camera
