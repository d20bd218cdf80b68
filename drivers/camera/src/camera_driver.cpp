#include "anju/drivers/camera/camera_driver.hpp"
#include "anju/edge/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "anju/drivers/camera/analytics.hpp"
#include "anju/drivers/camera/evidence.hpp"
#include "anju/edge/evidence_store.hpp"
#include "anju/edge/uuid.hpp"

namespace anju::drivers::camera {

struct CameraDriver::Stream {
  StreamConfig cfg;
  std::thread thread;
  mutable std::mutex mu;  // stats, pending resets
  CameraStreamStats stats;
  std::vector<std::string> pending_resets;
  std::vector<edge::Event> pending_evidence;  // other sources' alerts to capture
  bool offline_reported = false;
  bool sink_refused = false;
};

namespace {

bool is_network(const std::string& url) {
  return url.find("://") != std::string::npos;
}
bool is_device(const std::string& url) {
  return url.starts_with("/dev/video");
}

std::string source_path(const std::string& url) {
  if (url.starts_with("file://")) return url.substr(7);
  return url;
}

bool is_rtsp(const std::string& url) {
  return url.starts_with("rtsp://") || url.starts_with("rtsps://");
}

// The RTSP transport of each open. OpenCV 4.6's FFmpeg backend has no capture parameter for it:
// it reads the environment variable OPENCV_FFMPEG_CAPTURE_OPTIONS ("key;value|key;value") when a
// capture is opened, and without it FFmpeg tries UDP first and TCP after a timeout. The variable
// is process-wide, so every RTSP open passes this gate: opens that want the value the variable
// holds run together; one that wants the other value waits until they are done (each is bounded
// by open_timeout), and while it waits no newcomer with the held value is let in, so neither
// transport starves. Any other options the operator put into the variable are kept.
// The variable is only ever overwritten, never removed: after its first setenv() glibc replaces
// the string in place, so a getenv() on another thread (localtime_r reads TZ) never sees the
// environment array moved. The first setenv() happens at the driver's start().
class TransportGate {
 public:
  static TransportGate& instance() {
    static TransportGate gate;
    return gate;
  }
  void enter(const std::string& transport) {
    std::unique_lock lk(mu_);
    ++waiting_[transport];
    cv_.wait(lk, [&] {
      if (users_ == 0) return true;
      if (transport != current_) return false;
      for (const auto& [t, n] : waiting_)
        if (t != transport && n > 0) return false;
      return true;
    });
    --waiting_[transport];
    if (transport != current_) set_locked(transport);
    ++users_;
  }
  void leave() {
    std::lock_guard lk(mu_);
    if (--users_ == 0) cv_.notify_all();
  }
  // Sets the variable for `transport` when nothing has set it yet (start(), before the threads).
  void prime(const std::string& transport) {
    std::lock_guard lk(mu_);
    if (current_.empty()) set_locked(transport);
  }

 private:
  TransportGate() {
    const char* v = std::getenv(kVar);
    // The operator's own options, without any rtsp_transport (ours is per stream).
    std::string text = v ? v : "";
    std::size_t at = 0;
    while (at <= text.size()) {
      const auto end = std::min(text.find('|', at), text.size());
      const std::string pair = text.substr(at, end - at);
      if (!pair.empty() && !pair.starts_with("rtsp_transport;"))
        base_ += (base_.empty() ? "" : "|") + pair;
      at = end + 1;
    }
  }
  void set_locked(const std::string& transport) {
    const std::string value = (base_.empty() ? "" : base_ + "|") + "rtsp_transport;" + transport;
    ::setenv(kVar, value.c_str(), 1);
    current_ = transport;
  }
  static constexpr const char* kVar = "OPENCV_FFMPEG_CAPTURE_OPTIONS";
  std::mutex mu_;
  std::condition_variable cv_;
  std::string base_;
  std::string current_;  // the transport the variable says; empty: not set by us yet
  int users_ = 0;
  std::map<std::string, int> waiting_;
};

}  // namespace

CameraDriver::CameraDriver(CameraDriverOptions options, const edge::Clock& clock, Sink sink)
    : options_(std::move(options)), clock_(clock), sink_(std::move(sink)) {
  for (const auto& cfg : options_.streams) {
    auto s = std::make_unique<Stream>();
    s->cfg = cfg;
    s->stats.id = cfg.id;
    streams_.push_back(std::move(s));
  }
}

CameraDriver::~CameraDriver() {
  stop();
}

void CameraDriver::start() {
  if (started_) return;
  started_ = true;
  stopping_ = false;
  if (options_.opencv_threads >= 0) cv::setNumThreads(options_.opencv_threads);
  for (const auto& s : streams_) {
    if (is_rtsp(s->cfg.url)) TransportGate::instance().prime(s->cfg.rtsp_transport);
    if (url_has_credentials(s->cfg.url))
      spdlog::warn(
          "camera {}: the url carries a user and password ({}): move them to a "
          "credentials_file (mode 0600); the config file is readable more widely",
          s->cfg.id, redact_url(s->cfg.url));
  }
  for (auto& s : streams_) {
    Stream* sp = s.get();
    s->thread = std::thread([this, sp] {
      anju::edge::name_this_thread("cam-" + sp->cfg.id);
      run(*sp);
    });
  }
}

void CameraDriver::stop() {
  {
    std::lock_guard lk(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  for (auto& s : streams_)
    if (s->thread.joinable()) s->thread.join();
  started_ = false;
}

bool CameraDriver::wait_stop(std::chrono::milliseconds d) {
  std::unique_lock lk(stop_mu_);
  return stop_cv_.wait_for(lk, d, [this] { return stopping_.load(); });
}

bool CameraDriver::reset_zone(const std::string& stream_id, const std::string& zone_id) {
  for (auto& s : streams_) {
    if (s->cfg.id != stream_id) continue;
    const bool known = std::any_of(s->cfg.zones.begin(), s->cfg.zones.end(),
                                   [&](const ZoneConfig& z) { return z.id == zone_id; });
    if (!known) return false;
    std::lock_guard lk(s->mu);
    s->pending_resets.push_back(zone_id);
    return true;
  }
  return false;
}

std::vector<CameraStreamStats> CameraDriver::stats() const {
  std::vector<CameraStreamStats> out;
  for (const auto& s : streams_) {
    std::lock_guard lk(s->mu);
    out.push_back(s->stats);
  }
  return out;
}

bool CameraDriver::capture_evidence(const std::string& stream_id, const edge::Event& cause) {
  if (options_.evidence.dir.empty() || !edge::evidence_id_ok(cause.id)) return false;
  for (auto& s : streams_) {
    if (s->cfg.id != stream_id) continue;
    std::lock_guard lk(s->mu);
    if (s->pending_evidence.size() < 16) s->pending_evidence.push_back(cause);
    return true;
  }
  return false;
}

void CameraDriver::stamp(std::vector<edge::Event>& events) {
  const std::int64_t now = clock_.wall_ms();
  for (auto& e : events) {
    e.id = edge::uuid_v7(now);
    e.ts_ms = now;
    e.mono_ns = clock_.mono_ns();
    e.boot_id = edge::boot_id();
    e.clock_synced = clock_.synced();
    e.site = options_.site;
    e.grid_code = options_.grid_code;
  }
}

void CameraDriver::emit(Stream& s, std::vector<edge::Event> events, bool stamped) {
  if (events.empty()) return;
  if (!stamped) stamp(events);
  {
    std::lock_guard lk(s.mu);
    s.stats.events += static_cast<std::int64_t>(events.size());
  }
  if (!sink_(std::move(events)) && !s.sink_refused) {
    s.sink_refused = true;
    spdlog::error("camera {}: pipeline refused events (stopping)", s.cfg.id);
  }
}

void CameraDriver::run(Stream& s) {
  const std::string shown = redact_url(s.cfg.url);
  auto backoff = options_.reconnect_min;
  const bool network = is_network(s.cfg.url);
  const bool device = is_device(s.cfg.url);
  const bool media_time = !network && !device;
  const double period_ms = 1000.0 / s.cfg.fps;

  auto went_offline = [&](const std::string& reason) {
    bool report = false;
    {
      std::lock_guard lk(s.mu);
      s.stats.online = false;
      ++s.stats.failures;
      s.stats.last_error = reason;
      report = !s.offline_reported;
      s.offline_reported = true;
    }
    if (report) {
      spdlog::warn("camera {}: offline ({}): {}", s.cfg.id, shown, reason);
      emit(s, {stream_status_event(s.cfg, edge::EventKind::device_offline, reason)});
    }
  };

  // Evidence outlives a reconnect (a clip in progress is finished when the stream comes back or
  // the driver stops).
  std::unique_ptr<EvidenceRecorder> evidence;
  if (!options_.evidence.dir.empty())
    evidence = std::make_unique<EvidenceRecorder>(options_.evidence, s.cfg.id);

  std::optional<StreamAnalyzer> analyzer;
  while (!stopping_) {
    cv::VideoCapture cap;
    bool opened = false;
    // The URL opened: with the credentials file's user and password when there is one. It is
    // never logged and never leaves this block; `shown` is what logs and events get.
    std::string url = source_path(s.cfg.url);
    std::string cannot_open = "cannot open the stream";
    if (!s.cfg.credentials_file.empty()) {
      auto with = open_url_with_credentials(s.cfg);
      if (!with.error.empty()) cannot_open = with.error;
      url = std::move(with.url);
    }
    if (!url.empty()) {
      const bool gate = is_rtsp(s.cfg.url);
      if (gate) TransportGate::instance().enter(s.cfg.rtsp_transport);
      try {
        if (device) {
          opened = cap.open(url, cv::CAP_V4L2);
        } else {
          const std::vector<int> params{
              cv::CAP_PROP_OPEN_TIMEOUT_MSEC, static_cast<int>(options_.open_timeout.count()),
              cv::CAP_PROP_READ_TIMEOUT_MSEC, static_cast<int>(options_.read_timeout.count())};
          opened = cap.open(url, cv::CAP_FFMPEG, params);
        }
      } catch (const cv::Exception& ex) {
        opened = false;
        // OpenCV's message could quote what it was given: not logged when that has a password.
        spdlog::debug("camera {}: open: {}", s.cfg.id,
                      s.cfg.credentials_file.empty() && !url_has_credentials(url)
                          ? std::string(ex.what())
                          : std::string("(exception text withheld: the URL has credentials)"));
      }
      if (gate) TransportGate::instance().leave();
      std::fill(url.begin(), url.end(), '\0');
    }
    if (!opened) {
      went_offline(cannot_open);
    } else {
      // One analyzer for the stream's life: latched zones and the tamper reference outlive a
      // reconnect; what a lost stream leaves raised is cleared when it is lost (below).
      if (!analyzer) analyzer.emplace(s.cfg, &clock_);
      cv::Mat frame, evidence_frame;
      bool first = true;
      double next_analysis = -1;
      std::int64_t status_due = clock_.mono_ms() + options_.status_interval.count() * 1000;
      std::int64_t read_at_status = 0, analysed_at_status = 0;
      std::int64_t status_since = clock_.mono_ms();
      std::string reason;
      while (!stopping_) {
        bool got = false;
        try {
          got = cap.grab();
        } catch (const cv::Exception& ex) {
          reason = std::string("decoder error: ") + ex.what();
        }
        if (!got) {
          if (reason.empty())
            reason = media_time
                         ? "end of stream"
                         : "no frame within " + std::to_string(options_.read_timeout.count()) +
                               " ms (stream stalled or closed)";
          break;
        }
        const double t =
            media_time ? cap.get(cv::CAP_PROP_POS_MSEC) : static_cast<double>(clock_.mono_ms());
        {
          std::lock_guard lk(s.mu);
          ++s.stats.frames_read;
        }
        if (first) {
          first = false;
          backoff = options_.reconnect_min;
          edge::Event e = stream_status_event(s.cfg, edge::EventKind::device_online, "connected");
          e.attrs["backend"] = cap.getBackendName();
          e.attrs["width"] = static_cast<int>(cap.get(cv::CAP_PROP_FRAME_WIDTH));
          e.attrs["height"] = static_cast<int>(cap.get(cv::CAP_PROP_FRAME_HEIGHT));
          e.attrs["source_fps"] = cap.get(cv::CAP_PROP_FPS);
          if (is_rtsp(s.cfg.url)) e.attrs["rtsp_transport"] = s.cfg.rtsp_transport;
          {
            std::lock_guard lk(s.mu);
            s.stats.online = true;
            ++s.stats.connects;
            s.offline_reported = false;
          }
          spdlog::info("camera {}: online ({})", s.cfg.id, shown);
          emit(s, {std::move(e)});
        }
        std::vector<std::string> resets;
        {
          std::lock_guard lk(s.mu);
          resets.swap(s.pending_resets);
        }
        for (const auto& z : resets) analyzer->reset_zone(z);

        if (t >= next_analysis) {
          // Only this, the newest frame, is converted and analysed; the ones grabbed since the
          // last analysis were decoded (to keep the stream current) and dropped.
          if (!cap.retrieve(frame) || frame.empty()) continue;
          next_analysis = (next_analysis < 0 || t - next_analysis > period_ms)
                              ? t + period_ms
                              : next_analysis + period_ms;
          // The analyser downscales the frame to the analysis size (and cuts out the band of
          // its thrown-object zones at their finer size).
          const auto t_ms = static_cast<std::int64_t>(t);
          auto events = analyzer->process(frame, t_ms);
          const cv::Mat& small = analyzer->analysed();
          {
            std::lock_guard lk(s.mu);
            ++s.stats.frames_analysed;
          }
          if (evidence) {
            // The evidence keeps the frame as decoded, scaled to fit its own box: what a person
            // looks at later, which the analysis copy may be too small for.
            const FrameSize ev =
                evidence_size({frame.cols, frame.rows}, options_.evidence.max_width,
                              options_.evidence.max_height);
            const cv::Mat* kept = &frame;
            if (ev == FrameSize{small.cols, small.rows} || ev.width <= 0 || ev.height <= 0) {
              kept = &small;
            } else if (ev != FrameSize{frame.cols, frame.rows}) {
              cv::resize(frame, evidence_frame, {ev.width, ev.height}, 0, 0, cv::INTER_AREA);
              kept = &evidence_frame;
            }
            auto jpeg = std::make_shared<std::vector<unsigned char>>();
            cv::imencode(".jpg", *kept, *jpeg,
                         {cv::IMWRITE_JPEG_QUALITY, options_.evidence.jpeg_quality});
            evidence->frame(t_ms, std::move(jpeg));
            stamp(events);
            for (auto& e : events)
              if (wants_evidence(e)) evidence->trigger(e, t_ms);
            std::vector<edge::Event> asked;
            {
              std::lock_guard lk(s.mu);
              asked.swap(s.pending_evidence);
            }
            // A request the ring no longer covers (the stream was down, or slow) would show a
            // later moment as the alert's: dropped, with a log line.
            const std::int64_t covered_ms =
                clock_.wall_ms() - static_cast<std::int64_t>(options_.evidence.pre_s * 1000);
            for (auto& cause : asked)
              if (cause.ts_ms < covered_ms)
                spdlog::warn("camera {}: no evidence for {}: its moment is no longer in the ring",
                             s.cfg.id, cause.id);
              else if (evidence->trigger(cause, t_ms, /*force=*/true))
                spdlog::info("camera {}: evidence {} for {} at {}", s.cfg.id, cause.id,
                             edge::to_string(cause.kind), cause.device.id);
            emit(s, std::move(events), true);
          } else {
            emit(s, std::move(events));
          }
        }
        if (options_.status_interval.count() > 0 && clock_.mono_ms() >= status_due) {
          const std::int64_t now = clock_.mono_ms();
          CameraStreamStats st;
          {
            std::lock_guard lk(s.mu);
            st = s.stats;
          }
          const double secs = std::max<double>(static_cast<double>(now - status_since), 1) / 1000;
          edge::Event e = stream_status_event(s.cfg, edge::EventKind::measurement, "");
          e.values.push_back(
              {"fps_read", static_cast<double>(st.frames_read - read_at_status) / secs, "1/s"});
          e.values.push_back({"fps_analysed",
                              static_cast<double>(st.frames_analysed - analysed_at_status) / secs,
                              "1/s"});
          read_at_status = st.frames_read;
          analysed_at_status = st.frames_analysed;
          status_since = now;
          status_due = now + options_.status_interval.count() * 1000;
          emit(s, {std::move(e)});
        }
      }
      cap.release();
      if (stopping_) break;
      if (auto cleared = analyzer->stream_lost(); !cleared.empty()) emit(s, std::move(cleared));
      went_offline(reason);
      if (media_time && !options_.reopen_files) break;
    }
    if (wait_stop(backoff)) break;
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
  std::lock_guard lk(s.mu);
  s.stats.online = false;
}

}  // namespace anju::drivers::camera
