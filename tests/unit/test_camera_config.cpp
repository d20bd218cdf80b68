// Unit tests of the camera stream config parser (drivers/camera/src/camera_parser.cpp): pure, no
// OpenCV.
#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "anju/drivers/camera/camera_config.hpp"

using namespace anju::drivers::camera;
using nlohmann::json;

namespace {

json good() {
  return json::parse(R"({"streams": [
    {"id": "gate-north", "name": "North gate", "url": "rtsp://admin:secret@10.0.0.5/stream1",
     "building": "3", "room": "north gate", "width": 480, "height": 270, "fps": 4,
     "covers": ["gate-north", "smoke_3_2_hall"],
     "zones": [
       {"id": "fence", "detector": "intrusion", "polygon": [[0.1,0.2],[0.9,0.2],[0.9,0.8]],
        "min_area": 0.003, "severity": 1, "latch": true},
       {"id": "bench", "detector": "loitering", "polygon": [[0,0],[0.5,0],[0.5,0.5],[0,0.5]],
        "dwell_s": 45},
       {"id": "door", "detector": "line_count", "polygon": [[0.5,0.1],[0.5,0.9]],
        "door": "gate-north"},
       {"id": "facade", "detector": "thrown_object", "polygon": [[0,0],[1,0],[1,1],[0,1]],
        "max_area": 0.01, "floors": 18}
     ]},
    {"id": "lobby", "url": "/srv/replay/lobby.avi", "tamper": false}
  ]})");
}

std::string error_of(const json& j) {
  auto r = parse_streams_json(j);
  CHECK(r.streams.empty());
  return r.error;
}

}  // namespace

TEST_CASE("camera config: a full example parses with its defaults") {
  auto r = parse_streams(good().dump());
  REQUIRE(r.error.empty());
  REQUIRE(r.streams.size() == 2);
  const auto& s = r.streams[0];
  CHECK(s.id == "gate-north");
  CHECK(s.name == "North gate");
  CHECK(s.location.building == "3");
  CHECK(s.location.room == "north gate");
  CHECK(s.width == 480);
  CHECK(s.height == 270);
  CHECK(s.fps == 4);
  CHECK(s.tamper);
  CHECK(s.covers == std::vector<std::string>{"gate-north", "smoke_3_2_hall"});
  REQUIRE(s.zones.size() == 4);
  CHECK(s.zones[0].detector == Detector::intrusion);
  CHECK(s.zones[0].latch);
  CHECK(s.zones[0].severity == 1);
  CHECK(s.zones[0].min_area == 0.003);
  CHECK(s.zones[0].polygon.size() == 3);
  CHECK(s.zones[0].polygon[1] == PointN{0.9, 0.2});
  CHECK(s.zones[1].detector == Detector::loitering);
  CHECK(s.zones[1].dwell_s == 45);
  CHECK(s.zones[1].severity == 3);  // default by detector
  CHECK(s.zones[2].detector == Detector::line_count);
  CHECK(s.zones[2].severity == 4);
  CHECK(s.zones[3].detector == Detector::thrown_object);
  CHECK(s.zones[3].severity == 2);
  CHECK(s.zones[3].floors == 18);
  CHECK(s.zones[3].max_area == 0.01);
  CHECK(s.zones[3].min_area == 0.0001);  // thrown objects are small: a smaller default

  const auto& l = r.streams[1];
  CHECK(l.name == "lobby");  // default: the id
  CHECK(l.width == 320);     // the default
  CHECK(l.height == 180);
  CHECK(l.fps == 5);
  CHECK_FALSE(l.tamper);
  CHECK(l.covers.empty());
  CHECK(l.zones.empty());
}

TEST_CASE("camera config: the default analysis size is 320x180, thrown_object zones or not") {
  json j = good();
  j["streams"][0].erase("width");
  j["streams"][0].erase("height");
  auto r = parse_streams_json(j);
  REQUIRE(r.error.empty());
  // With a thrown_object zone too: that zone gets its own finer band (StreamAnalyzer).
  REQUIRE(r.streams[0].zones[3].detector == Detector::thrown_object);
  CHECK(r.streams[0].width == 320);
  CHECK(r.streams[0].height == 180);
  CHECK(kDefaultAnalysisSize == FrameSize{320, 180});
  // A size that is given wins.
  j["streams"][0]["width"] = 1280;
  j["streams"][0]["height"] = 720;
  r = parse_streams_json(j);
  REQUIRE(r.error.empty());
  CHECK(r.streams[0].width == 1280);
  CHECK(r.streams[0].height == 720);
  // Only one of the two is an error that names the missing one.
  j["streams"][0].erase("height");
  CHECK(error_of(j) ==
        "streams[0].height: width and height go together: give both, or neither for the default");
  j["streams"][0].erase("width");
  j["streams"][0]["height"] = 720;
  CHECK(error_of(j).starts_with("streams[0].width: width and height go together"));
}

TEST_CASE("camera config: errors name the field") {
  struct Case {
    std::string pointer;  // JSON pointer to change
    json value;
    std::string expected;
  };
  const Case cases[] = {
      {"/streams/0/id", "gate north", "streams[0].id: only letters"},
      {"/streams/0/url", "", "streams[0].url: must be rtsp://"},
      {"/streams/0/url", "ftp://x/y", "streams[0].url: must be rtsp://"},
      {"/streams/0/fps", 0, "streams[0].fps: must be within 0.5..30"},
      {"/streams/0/fps", "5", "streams[0].fps: must be a number"},
      {"/streams/0/width", 10, "streams[0].width: must be within 32..1920"},
      {"/streams/0/width", 640.5, "streams[0].width: must be an integer"},
      {"/streams/0/tamper", 1, "streams[0].tamper: must be true or false"},
      {"/streams/0/covers", "gate-north", "streams[0].covers: must be a list of door or device"},
      {"/streams/0/covers/1", "", "streams[0].covers[1]: must be a door or device id"},
      {"/streams/0/covers/0", 7, "streams[0].covers[0]: must be a door or device id"},
      {"/streams/0/zones/0/door", "gate-north",
       "streams[0].zones[0].door: only a line_count zone counts passages at a door"},
      {"/streams/0/zones/0/detector", "fire", "streams[0].zones[0].detector: must be intrusion"},
      {"/streams/0/zones/0/polygon/2", json::array({0.9, 1.5}),
       "streams[0].zones[0].polygon[2]: y must be within 0..1"},
      {"/streams/0/zones/0/polygon/0", json::array({-0.1, 0.5}),
       "streams[0].zones[0].polygon[0]: x must be within 0..1"},
      {"/streams/0/zones/0/polygon/1", json::array({0.1}),
       "streams[0].zones[0].polygon[1]: must be [x, y]"},
      {"/streams/0/zones/0/polygon", json::array({json::array({0.1, 0.1}), json::array({1, 1})}),
       "streams[0].zones[0].polygon: needs at least 3 points"},
      {"/streams/0/zones/0/polygon",
       json::array({json::array({0.1, 0.1}), json::array({0.2, 0.2}), json::array({0.3, 0.3})}),
       "streams[0].zones[0].polygon: encloses no area"},
      {"/streams/0/zones/0/severity", 5, "streams[0].zones[0].severity: must be within 1..4"},
      {"/streams/0/zones/0/min_area", 0, "streams[0].zones[0].min_area: must be within"},
      {"/streams/0/zones/0/max_area", 0.1, "streams[0].zones[0].max_area: only for thrown_object"},
      {"/streams/0/zones/1/latch", true, "streams[0].zones[1].latch: only intrusion zones latch"},
      {"/streams/0/zones/1/dwell_s", 0, "streams[0].zones[1].dwell_s: must be > 0"},
      {"/streams/0/zones/0/dwell_s", 5, "streams[0].zones[0].dwell_s: only for loitering"},
      {"/streams/0/zones/2/polygon", json::array({json::array({0.5, 0.1})}),
       "streams[0].zones[2].polygon: a line_count zone is a line: exactly 2 points"},
      {"/streams/0/zones/2/polygon",
       json::array({json::array({0.5, 0.5}), json::array({0.501, 0.5})}),
       "streams[0].zones[2].polygon: the line is shorter than 0.01"},
      {"/streams/0/zones/3/max_area", 0.00001,
       "streams[0].zones[3].max_area: smaller than min_area"},
      {"/streams/0/zones/3/floors", 0, "streams[0].zones[3].floors: must be within 1..200"},
      {"/streams/0/zones/0/floors", 3, "streams[0].zones[0].floors: only for thrown_object"},
      {"/streams/0/zones/0/colour", "red", "streams[0].zones[0].colour: unknown key"},
      {"/streams/0/colour", "red", "streams[0].colour: unknown key"},
      {"/streams/1/id", "gate-north", "streams[1].id: duplicate stream id 'gate-north'"},
      {"/streams/0/zones/1/id", "fence", "streams[0].zones[1].id: duplicate zone id 'fence'"},
      {"/streams/0/name", "a\nb", "streams[0].name: contains control characters"},
      {"/streams/0/zones", json::object(), "streams[0].zones: must be an array"},
      {"/streams/0", 3, "streams[0]: must be an object"},
      {"/streams", json::object(), "streams: must be an array"},
  };
  for (const auto& c : cases) {
    json j = good();
    j[json::json_pointer(c.pointer)] = c.value;
    INFO(c.pointer << " = " << c.value.dump());
    const std::string err = error_of(j);
    CHECK(err.starts_with(c.expected));
  }
  json missing = good();
  missing["streams"][0].erase("url");
  CHECK(error_of(missing) == "streams[0].url: missing");
  missing = good();
  missing["streams"][0]["zones"][1].erase("dwell_s");
  CHECK(error_of(missing) == "streams[0].zones[1].dwell_s: missing (required for loitering)");
  CHECK(error_of(json::object()) == "streams: missing");
  CHECK(error_of(json::array()) == "(root): must be an object with \"streams\"");
  CHECK(parse_streams("{\"streams\": [").error == "(root): not valid JSON");
  CHECK(parse_streams(R"({"streams": []})").error.empty());
}

TEST_CASE("camera config: credentials are redacted from URLs") {
  CHECK(redact_url("rtsp://admin:secret@10.0.0.5:554/stream1") ==
        "rtsp://***@10.0.0.5:554/stream1");
  CHECK(redact_url("rtsp://user@cam/s") == "rtsp://***@cam/s");
  CHECK(redact_url("rtsp://cam/s?a=b@c") == "rtsp://cam/s?a=b@c");  // '@' after the host
  CHECK(redact_url("rtsp://10.0.0.5/stream1") == "rtsp://10.0.0.5/stream1");
  CHECK(redact_url("/srv/a@b.avi") == "/srv/a@b.avi");
  CHECK(redact_url("http://u:p@host") == "http://***@host");
}

TEST_CASE("camera config: detector names round-trip") {
  for (auto d :
       {Detector::intrusion, Detector::loitering, Detector::line_count, Detector::thrown_object})
    CHECK(detector_from_string(to_string(d)) == d);
  CHECK_FALSE(detector_from_string("motion"));
}

TEST_CASE("camera config: rtsp_transport and credentials_file") {
  json j = good();
  j["streams"][0]["url"] = "rtsp://10.0.0.5/stream1";
  j["streams"][0]["rtsp_transport"] = "udp";
  j["streams"][0]["credentials_file"] = "/etc/anju/cameras/gate-north.cred";
  auto r = parse_streams_json(j);
  REQUIRE(r.error.empty());
  CHECK(r.streams[0].rtsp_transport == "udp");
  CHECK(r.streams[0].credentials_file == "/etc/anju/cameras/gate-north.cred");
  CHECK(r.streams[1].rtsp_transport == "tcp");  // the default
  CHECK(r.streams[1].credentials_file.empty());

  struct Case {
    std::string url;
    json transport, file;
    std::string expected;
  };
  const Case cases[] = {
      {"rtsp://cam/s", "quic", nullptr, "streams[0].rtsp_transport: must be tcp or udp"},
      {"rtsp://cam/s", 1, nullptr, "streams[0].rtsp_transport: must be a string"},
      {"http://cam/s", "tcp", nullptr,
       "streams[0].rtsp_transport: only for rtsp:// and rtsps:// streams"},
      {"rtsps://cam/s", "udp", nullptr,
       "streams[0].rtsp_transport: rtsps:// is TLS over TCP: udp is not possible"},
      {"rtsp://cam/s", nullptr, "cam.cred",
       "streams[0].credentials_file: must be an absolute path"},
      {"rtsp://cam/s", nullptr, 5, "streams[0].credentials_file: must be a string"},
      {"/srv/replay/a.avi", nullptr, "/etc/a.cred",
       "streams[0].credentials_file: only for rtsp://, rtsps:// and http(s):// streams"},
      {"rtsp://admin:secret@cam/s", nullptr, "/etc/a.cred",
       "streams[0].url: has user:password@ and credentials_file is set: keep them in the file "
       "only"},
  };
  for (const auto& c : cases) {
    json k = good();
    k["streams"][0]["url"] = c.url;
    if (!c.transport.is_null()) k["streams"][0]["rtsp_transport"] = c.transport;
    if (!c.file.is_null()) k["streams"][0]["credentials_file"] = c.file;
    INFO(k["streams"][0].dump());
    CHECK(error_of(k) == c.expected);
  }
  // A URL with credentials and no file still parses (the driver warns): refusing it would stop
  // the cameras of every gateway configured that way before credentials_file existed.
  CHECK(parse_streams_json(good()).error.empty());
}

TEST_CASE("camera config: the background model") {
  json j = good();
  j["streams"][0]["background"] = "mog2";
  auto r = parse_streams_json(j);
  REQUIRE(r.error.empty());
  CHECK(r.streams[0].background == BackgroundModel::mog2);
  CHECK(r.streams[1].background == BackgroundModel::sigma_delta);  // the default
  j["streams"][0]["background"] = "sigma_delta";
  CHECK(parse_streams_json(j).streams.at(0).background == BackgroundModel::sigma_delta);
  j["streams"][0]["background"] = "gmm";
  CHECK(error_of(j) == "streams[0].background: must be sigma_delta or mog2");
  j["streams"][0]["background"] = 2;
  CHECK(error_of(j) == "streams[0].background: must be a string");
}

TEST_CASE("camera config: credentials from a file go into the URL, encoded, never redacted out") {
  auto r = url_with_credentials("rtsp://10.0.0.5:554/stream1", "admin:s3cret\n");
  REQUIRE(r.error.empty());
  CHECK(r.url == "rtsp://admin:s3cret@10.0.0.5:554/stream1");
  CHECK(redact_url(r.url) == "rtsp://***@10.0.0.5:554/stream1");
  // Reserved characters are percent-encoded (FFmpeg decodes them); ':' in the password is kept
  // as part of it (only the first ':' separates the user).
  r = url_with_credentials("rtsp://cam/s", "  op er:p@ss/w:rd#%\r\n");
  REQUIRE(r.error.empty());
  CHECK(r.url == "rtsp://op%20er:p%40ss%2Fw%3Ard%23%25@cam/s");
  CHECK(redact_url(r.url) == "rtsp://***@cam/s");
  r = url_with_credentials("http://cam/video.mjpg", "viewer:");
  REQUIRE(r.error.empty());
  CHECK(r.url == "http://viewer:@cam/video.mjpg");

  struct Case {
    std::string text;
    std::string expected;
  };
  const Case cases[] = {
      {"", "empty (expected one line user:password)"},
      {" \n", "empty (expected one line user:password)"},
      {"admin", "not user:password (no ':' after a user name)"},
      {":secret", "not user:password (no ':' after a user name)"},
      {"admin:secret\nother:line", "more than one line (expected one line user:password)"},
      {"admin:sec\x01ret", "contains control characters"},
      {std::string(1100, 'a') + ":b", "longer than 1024 bytes (expected one line user:password)"},
  };
  for (const auto& c : cases) {
    r = url_with_credentials("rtsp://cam/s", c.text);
    CHECK(r.error == c.expected);
    CHECK(r.url.empty());
    // The error never quotes the text.
    CHECK(r.error.find("secret") == std::string::npos);
  }
  CHECK_FALSE(url_with_credentials("rtsp://a:b@cam/s", "admin:secret").error.empty());
  CHECK_FALSE(url_with_credentials("/srv/a.avi", "admin:secret").error.empty());
  CHECK(url_has_credentials("rtsp://a:b@cam/s"));
  CHECK_FALSE(url_has_credentials("rtsp://cam/s?x=a@b"));
}
