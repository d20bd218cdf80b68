// The camera driver against a real RTSP server on loopback: GStreamer's RTSP server
// (tests/support/rtsp_server.py, Debian's gir1.2-gst-rtsp-server-1.0) serving a synthetic MJPG
// video this test writes with cv::VideoWriter, as RTP/JPEG. The server is killed (SIGKILL, by its
// PID) to play a camera that disappears, and started again on the same port.
// Checked: frames analysed and an intrusion over RTSP; device_offline with a reason when the
// server dies; device_online and frames again when it is back; per-stream RTSP transport (a TCP-
// only and a UDP-only mount); credentials from a credentials_file (mode 0600, a password with
// reserved characters), a refused file with mode 0644, and a stream without credentials refused
// by the server; the password nowhere in the log output, events or stats; no thread left over
// after reconnects and after stop(), and stop() bounded.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "anju/drivers/camera/camera_driver.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"
#include "harness.hpp"

using namespace anju::drivers::camera;
using namespace std::chrono_literals;
using anju::edge::Event;
using anju::edge::EventKind;
using anju::it::Child;
using anju::it::TempDir;
namespace fs = std::filesystem;

namespace {

const fs::path kServer = fs::path(__FILE__).parent_path().parent_path() / "support/rtsp_server.py";
// Reserved characters on purpose: they must be percent-encoded in the URL.
const std::string kUser = "viewer";
const std::string kPassword = "pa@ss:w/rd#9";

class Collected {
 public:
  bool add(std::vector<Event> es) {
    {
      std::lock_guard lk(mu_);
      for (auto& e : es) events_.push_back(std::move(e));
    }
    cv_.notify_all();
    return true;
  }
  bool wait(const std::function<bool(const std::vector<Event>&)>& pred,
            std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return pred(events_); });
  }
  std::vector<Event> events() const {
    std::lock_guard lk(mu_);
    return events_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
};

std::size_t count(const std::vector<Event>& es, EventKind k, const std::string& stream) {
  std::size_t n = 0;
  for (const auto& e : es)
    if (e.kind == k && e.device.id == stream) ++n;
  return n;
}

int threads() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

// stdout and stderr (spdlog's console sink, OpenCV's and FFmpeg's messages) go into a file while
// this lives.
class CaptureOutput {
 public:
  explicit CaptureOutput(const fs::path& file) {
    std::fflush(stdout);
    std::fflush(stderr);
    saved_out_ = ::dup(1);
    saved_err_ = ::dup(2);
    std::FILE* f = std::fopen(file.c_str(), "w");
    REQUIRE(f);
    ::dup2(::fileno(f), 1);
    ::dup2(::fileno(f), 2);
    std::fclose(f);
  }
  ~CaptureOutput() {
    spdlog::default_logger()->flush();
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(saved_out_, 1);
    ::dup2(saved_err_, 2);
    ::close(saved_out_);
    ::close(saved_err_);
  }
  CaptureOutput(const CaptureOutput&) = delete;
  CaptureOutput& operator=(const CaptureOutput&) = delete;

 private:
  int saved_out_ = -1;
  int saved_err_ = -1;
};

// A 320x240 MJPG video, 10 fps: a textured wall and a dark disc moving left and right across it
// (through the right half, where the test's intrusion zone is), once every 4 s.
void write_video(const fs::path& path, int frames) {
  const cv::Size size{320, 240};
  cv::VideoWriter w(path.string(), cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10, size);
  REQUIRE(w.isOpened());
  cv::Mat base(size, CV_8UC3, cv::Scalar(150, 160, 170));
  cv::RNG rng(5);
  for (int i = 0; i < 40; ++i) {
    const cv::Point a(rng.uniform(0, size.width), rng.uniform(0, size.height));
    cv::rectangle(base, a, a + cv::Point(rng.uniform(10, 50), rng.uniform(10, 30)),
                  cv::Scalar::all(rng.uniform(40, 220)), cv::FILLED);
  }
  for (int i = 0; i < frames; ++i) {
    cv::Mat f = base.clone();
    const double phase = (i % 40) / 40.0;
    const double x = 30 + 260 * (phase < 0.5 ? 2 * phase : 2 - 2 * phase);
    cv::circle(f, {static_cast<int>(x), 150}, 18, cv::Scalar(25, 25, 30), cv::FILLED);
    w.write(f);
  }
}

class RtspServer {
 public:
  RtspServer(fs::path video, fs::path log, int port)
      : video_(std::move(video)), log_(std::move(log)), port_(port) {}
  void start() {
    child_ = std::make_unique<Child>();
    child_->spawn({"/usr/bin/python3", kServer.string(), "--port", std::to_string(port_), "--file",
                   video_.string(), "--user", kUser + ":" + kPassword},
                  log_);
    const bool up = anju::it::wait_until(
        [&] { return anju::it::read_file(log_).find("listening on") != std::string::npos; }, 15s);
    INFO(anju::it::tail(anju::it::read_file(log_)));
    REQUIRE(up);
  }
  void kill() { child_->kill9(); }  // by its PID, and reaped
  pid_t pid() const { return child_->pid(); }

 private:
  fs::path video_, log_;
  int port_;
  std::unique_ptr<Child> child_;
};

StreamConfig stream(const std::string& id, const std::string& url, const std::string& transport,
                    const std::string& credentials_file) {
  StreamConfig s;
  s.id = id;
  s.name = id;
  s.url = url;
  s.rtsp_transport = transport;
  s.credentials_file = credentials_file;
  s.width = 320;
  s.height = 240;
  s.fps = 5;
  s.tamper = false;
  return s;
}

std::int64_t analysed(const CameraDriver& d, const std::string& id) {
  for (const auto& st : d.stats())
    if (st.id == id) return st.frames_analysed;
  return -1;
}

std::string last_error(const CameraDriver& d, const std::string& id) {
  for (const auto& st : d.stats())
    if (st.id == id) return st.last_error;
  return {};
}

}  // namespace

TEST_CASE("camera rtsp: real server: frames, killed -> offline, restarted -> online, clean stop") {
  REQUIRE(fs::exists(kServer));
  TempDir dir("anju-cam-rtsp");
  const fs::path video = dir / "walk.avi";
  write_video(video, 900);  // 90 s: longer than any one session of this test
  const fs::path good_cred = dir / "good.cred";
  anju::it::write_file(good_cred, kUser + ":" + kPassword + "\n");
  REQUIRE(::chmod(good_cred.c_str(), 0600) == 0);
  const fs::path loose_cred = dir / "loose.cred";
  anju::it::write_file(loose_cred, kUser + ":" + kPassword + "\n");
  REQUIRE(::chmod(loose_cred.c_str(), 0644) == 0);

  const int port = anju::it::pick_free_port();
  const std::string base = "rtsp://127.0.0.1:" + std::to_string(port);
  RtspServer server(video, dir / "server.log", port);
  server.start();

  CameraDriverOptions o;
  o.site = "test-site";
  // gate: TCP from a TCP-only mount, with a zone on the disc's path. yard: UDP from a UDP-only
  // mount. wrong: UDP asked of the TCP-only mount (refused). nocred: no credentials (401).
  // loose: a credentials file others may read (refused before any connection).
  o.streams = {stream("gate", base + "/tcp", "tcp", good_cred.string()),
               stream("yard", base + "/udp", "udp", good_cred.string()),
               stream("wrong", base + "/tcp", "udp", good_cred.string()),
               stream("nocred", base + "/any", "tcp", ""),
               stream("loose", base + "/any", "tcp", loose_cred.string())};
  ZoneConfig z;
  z.id = "right";
  z.detector = Detector::intrusion;
  z.polygon = {{0.6, 0.3}, {1, 0.3}, {1, 1}, {0.6, 1}};
  z.severity = 2;
  o.streams[0].zones = {z};
  o.open_timeout = 3000ms;
  o.read_timeout = 2000ms;
  o.reconnect_min = 200ms;
  o.reconnect_max = 1000ms;
  o.status_interval = 0s;

  cv::setNumThreads(0);  // as the driver does: OpenCV's own pool is not counted against it
  const int threads_before = threads();
  auto got = std::make_shared<Collected>();
  anju::edge::SystemClock clock;
  const fs::path output = dir / "output.log";
  std::vector<int> threads_online;
  std::chrono::milliseconds stop_took{0};
  {
    const auto level = spdlog::get_level();
    spdlog::set_level(spdlog::level::debug);  // the driver's every line, for the password check
    std::optional<CaptureOutput> capture;
    capture.emplace(output);
    CameraDriver driver(o, clock, [got](std::vector<Event> es) { return got->add(std::move(es)); });
    driver.start();

    // 1. Online, frames analysed, the disc seen in the zone.
    const bool online = got->wait(
        [](const auto& es) {
          return count(es, EventKind::device_online, "gate") == 1 &&
                 count(es, EventKind::device_online, "yard") == 1 &&
                 count(es, EventKind::intrusion, "gate") >= 1;
        },
        30s);
    const bool frames = anju::it::wait_until(
        [&] { return analysed(driver, "gate") >= 10 && analysed(driver, "yard") >= 10; }, 20s);
    threads_online.push_back(threads());
    // The refused ones: offline with a reason, never online.
    const bool refused = got->wait(
        [](const auto& es) {
          return count(es, EventKind::device_offline, "wrong") == 1 &&
                 count(es, EventKind::device_offline, "nocred") == 1 &&
                 count(es, EventKind::device_offline, "loose") == 1;
        },
        20s);

    // 2. The camera disappears.
    server.kill();
    const bool offline = got->wait(
        [](const auto& es) {
          return count(es, EventKind::device_offline, "gate") == 1 &&
                 count(es, EventKind::device_offline, "yard") == 1;
        },
        15s);
    const std::int64_t gate_before = analysed(driver, "gate");

    // 3. And comes back on the same port.
    server.start();
    const bool back = got->wait(
        [](const auto& es) {
          return count(es, EventKind::device_online, "gate") == 2 &&
                 count(es, EventKind::device_online, "yard") == 2;
        },
        30s);
    const bool frames_again =
        anju::it::wait_until([&] { return analysed(driver, "gate") >= gate_before + 10; }, 20s);
    threads_online.push_back(threads());
    const std::string loose_error = last_error(driver, "loose");

    const auto t0 = std::chrono::steady_clock::now();
    driver.stop();
    stop_took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    const auto stats = driver.stats();
    spdlog::set_level(level);
    capture.reset();  // Catch2 reports failures on stdout: restored before the checks
    CHECK(online);
    CHECK(frames);
    CHECK(refused);
    CHECK(offline);
    CHECK(back);
    CHECK(frames_again);
    CHECK(loose_error.find("mode 0644") != std::string::npos);
    for (const auto& st : stats) {
      INFO(st.id);
      CHECK_FALSE(st.online);
      CHECK(st.last_error.find(kPassword) == std::string::npos);
    }
  }
  server.kill();

  const auto es = got->events();
  // Offline events carry a reason; the refused streams never came online.
  for (const auto& e : es) {
    if (e.kind == EventKind::device_offline) {
      INFO(e.device.id);
      CHECK_FALSE(e.attrs.value("reason", "").empty());
    }
  }
  CHECK(count(es, EventKind::device_online, "wrong") == 0);
  CHECK(count(es, EventKind::device_online, "nocred") == 0);
  CHECK(count(es, EventKind::device_online, "loose") == 0);
  for (const auto& e : es)
    if (e.kind == EventKind::device_online && e.device.id == "yard")
      CHECK(e.attrs["rtsp_transport"] == "udp");

  // The password: nowhere in the events, nor in what the driver, OpenCV and FFmpeg printed.
  const std::string printed = anju::it::read_file(output);
  INFO(anju::it::tail(printed));
  CHECK(printed.find("camera gate: online") != std::string::npos);  // the capture worked
  for (const std::string& secret : {kPassword, std::string("pa%40ss"), std::string("w%2Frd")}) {
    CHECK(printed.find(secret) == std::string::npos);
    for (const auto& e : es) CHECK(anju::edge::encode(e).find(secret) == std::string::npos);
  }

  // No thread left by the reconnects (the same count online before and after) or by stop().
  REQUIRE(threads_online.size() == 2);
  CHECK(threads_online[1] == threads_online[0]);
  CHECK(anju::it::wait_until([&] { return threads() == threads_before; }, 5s));
  // stop() joins within the read timeout (plus an open's, for a thread inside one).
  CHECK(stop_took < o.read_timeout + o.open_timeout);
}
