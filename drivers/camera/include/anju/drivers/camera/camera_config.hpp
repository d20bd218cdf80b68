// Camera stream configuration: what to read (URL), how to analyse it (size, rate) and where to
// look (zones with their detector). Pure: parsing has no I/O and does not touch OpenCV, so it is
// in anju_drivers_parsers and fuzzed (tests/fuzz/fuzz_camera.cpp).
//
// The input is JSON (the daemon's YAML section converts to it one to one):
//   {"streams": [{
//      "id": "gate-north",                 // [A-Za-z0-9_.:-], 1..64 chars, unique
//      "name": "North gate",               // optional, default = id
//      "url": "rtsp://cam1/stream1",       // rtsp://, rtsps://, http(s)://, file path, /dev/videoN
//      "rtsp_transport": "tcp",            // rtsp:// only: tcp (default) or udp (rtsps: tcp only)
//      "credentials_file": "/etc/anju/cameras/gate-north.cred",  // network URLs only, optional:
//                                          // "user:password", mode 0600, read at each open and
//                                          // put into the URL then; never with user:pass@ in url
//      "building": "3", "unit": "", "room": "north gate",   // optional location
//      "width": 640, "height": 360,        // analysis size, 32..1920 x 32..1080, both or
//                                          // neither; default 320x180 (kDefaultAnalysisSize)
//      "fps": 5,                           // analysis rate, 0.5..30
//      "tamper": true,                     // camera tamper detection, default true
//      "utc_offset_minutes": 480,          // local time of the zones' schedules, -720..840,
//                                          // default 480 (China, +08:00; no daylight saving)
//      "zones": [{
//        "id": "fence",                    // as stream ids, unique within the stream
//        "detector": "intrusion",          // intrusion | loitering | line_count | thrown_object
//        "polygon": [[0.1,0.2],[0.9,0.2],[0.9,0.8]],  // normalised 0..1, 3..64 points;
//                                          // line_count: exactly 2 points (the line)
//        "min_area": 0.002,                // smallest blob, fraction of the frame (0..1)
//        "max_area": 0.02,                 // thrown_object only: largest blob
//        "dwell_s": 30,                    // loitering only (required, > 0)
//        "floors": 18,                     // thrown_object only, optional: floors the zone spans
//        "severity": 2,                    // 1..4, default by detector
//        "latch": true,                    // intrusion only: stays raised until reset
//        "schedule": [                     // optional: when the zone is armed (local time).
//          {"days": ["mon","tue"],         // "all" (default), "weekdays", "weekends" or a list
//           "from": "22:00", "to": "06:00"}// [from, to); to <= from crosses midnight (the
//        ]                                 // window starts on `days`); "24:00" only as `to`.
//                                          // Not for line_count (counting always runs).
//      }]
//   }]}
// Unknown keys are errors; the first error is returned, naming the field by its path
// ("streams[0].zones[1].polygon[2]: x must be within 0..1").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/edge/event.hpp"

namespace anju::drivers::camera {

enum class Detector { intrusion, loitering, line_count, thrown_object };
std::string_view to_string(Detector d);
std::optional<Detector> detector_from_string(std::string_view s);

struct PointN {  // normalised: 0..1 of the frame's width (x) and height (y), origin top left
  double x = 0;
  double y = 0;
  bool operator==(const PointN&) const = default;
};

// A weekly window of a zone's schedule, in the stream's local time. It starts on each of `days`
// at from_min; to_min <= from_min means it ends the next day at to_min (a night watch).
struct ScheduleWindow {
  std::uint8_t days = 0x7F;  // bit 0 Monday .. bit 6 Sunday
  int from_min = 0;          // minutes after local midnight, inclusive, 0..1439
  int to_min = 1440;         // exclusive, 0..1440; <= from_min: on the next day
  bool operator==(const ScheduleWindow&) const = default;
};

// Whether `schedule` arms its zone at `wall_ms` (Unix ms) in local time UTC+utc_offset_minutes.
// An empty schedule is always armed. Pure: the caller passes the clock's wall time.
bool schedule_armed(const std::vector<ScheduleWindow>& schedule, int utc_offset_minutes,
                    std::int64_t wall_ms);

struct ZoneConfig {
  std::string id;
  Detector detector = Detector::intrusion;
  std::vector<PointN> polygon;  // line_count: the two end points of the counting line
  double min_area = 0.002;      // fraction of the analysis frame
  double max_area = 0.02;       // thrown_object: a larger blob is not a thrown object
  double dwell_s = 0;           // loitering
  int floors = 0;               // thrown_object: floors between the zone's top and bottom edge
  // line_count: the door this line is drawn across. Each "in" crossing then also reports one
  // passage at that door (value "passages", attrs.door), which the door rules' tailgating uses.
  std::string door;
  int severity = 2;
  bool latch = false;
  // When the zone is armed; empty: always. Intrusion, loitering and thrown_object only: outside
  // its windows the zone's detector does not run (StreamAnalyzer clears what it had raised).
  std::vector<ScheduleWindow> schedule;
  bool operator==(const ZoneConfig&) const = default;
};

// How a stream's analytics tell the foreground from the background (analytics.hpp,
// ForegroundExtractor; docs/CAMERA.md, "Background models").
enum class BackgroundModel {
  sigma_delta,  // one background per pixel and its noise level: cheap (the default)
  mog2,         // OpenCV's MOG2: several backgrounds per pixel (swaying trees), ~10x the cost
};

struct StreamConfig {
  std::string id;
  std::string name;
  std::string url;  // never with credentials from credentials_file (those are added at open)
  std::string rtsp_transport = "tcp";  // rtsp(s):// only: "tcp" or "udp"
  std::string credentials_file;        // absolute path; empty: none
  edge::Location location;
  // The analysis size. The parser's default is kDefaultAnalysisSize; a config made in code gets
  // 640x360 unless it says otherwise.
  int width = 640;
  int height = 360;
  double fps = 5;
  bool tamper = true;
  BackgroundModel background = BackgroundModel::sigma_delta;
  int utc_offset_minutes = 480;  // local time of the zones' schedules
  std::vector<ZoneConfig> zones;
  // Doors (attrs.door) or devices (id or name) whose alerts this camera watches: when one of them
  // raises an alert, this stream's snapshot and clip become its evidence.
  std::vector<std::string> covers;
  bool operator==(const StreamConfig&) const = default;
};

struct ParseResult {
  std::vector<StreamConfig> streams;
  std::string error;  // empty on success; otherwise names the field
};

ParseResult parse_streams(std::string_view json_text);
ParseResult parse_streams_json(const nlohmann::json& j);

// The URL with any user:password replaced by "***", for logs and events (credentials never
// appear in either).
std::string redact_url(std::string_view url);
// Whether the URL carries a user (and password) before its host.
bool url_has_credentials(std::string_view url);

// The URL to open: `url` (network, without credentials) with the user and password of a
// credentials file's text inserted, percent-encoded (FFmpeg decodes them). The text is one line
// "user:password" (the password is everything after the first ':'); a final newline and blanks
// around it are ignored. The result must never be logged or put into an event. An error
// describes the text without quoting any of it.
struct CredentialUrl {
  std::string url;
  std::string error;  // empty on success
};
CredentialUrl url_with_credentials(std::string_view url, std::string_view file_text);
// The stream's credentials_file read (a regular file readable by its owner only: mode 0600 or
// stricter) and put into its URL. Errors name the file and never its content.
CredentialUrl open_url_with_credentials(const StreamConfig& cfg);

// Default severity of a detector's events (DOMAIN.md): intrusion 2, loitering 3, line_count 4,
// thrown_object 2.
int default_severity(Detector d);

struct FrameSize {  // a frame's size in pixels: the analysis size, the evidence size
  int width = 0;
  int height = 0;
  bool operator==(const FrameSize&) const = default;
};
// The analysis size of a stream whose config gives none: 320x180. A person at a gate is tens of
// pixels tall there, and background subtraction, the bulk of the analytics' cost, scales with
// the pixels (docs/CAMERA.md, "Analysis size").
inline constexpr FrameSize kDefaultAnalysisSize{320, 180};
// Thrown-object zones are analysed at least this fine, in their own band of the frame: a falling
// object is a few pixels wide even here, and the opening of a 320x180 analysis would erase it.
inline constexpr FrameSize kDetailSize{640, 360};

}  // namespace anju::drivers::camera
