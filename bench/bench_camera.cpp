// bench_camera: frames per second per core at 640x360, decode only (the baseline) vs decode +
// the camera analytics (drivers/camera: the foreground (sigma_delta, or `--background mog2`), an
// intrusion zone, a loitering zone, a
// counting line, a thrown-object zone in its own 640x360 band, tamper; the same camera analysed
// whole at 640x360 for comparison), how many 5 fps streams one core sustains, and
// RSS per stream. The video is Debian's opencv-doc vtest.avi (people walking, 10 fps) resized to
// 640x360 and re-encoded in a temp dir (H.264 in MP4 when this FFmpeg has an encoder, else MJPG).
// Per core = frames / CPU seconds of this process (CLOCK_PROCESS_CPUTIME_ID), so decoder threads
// are counted; OpenCV's own worker threads are off (cv::setNumThreads(0)), as in one stream thread.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "anju/drivers/camera/analytics.hpp"
#include "bench_util.hpp"

using namespace anju::bench;
namespace cam = anju::drivers::camera;

namespace {

const std::string kVtest = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
const cv::Size kSize{640, 360};
const cv::Size kSmall{320, 180};
cam::BackgroundModel g_background = cam::BackgroundModel::sigma_delta;

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Re-encodes vtest.avi at 640x360; returns the codec used ("" on failure).
std::string make_video(const std::string& dir, std::string& path) {
  cv::VideoCapture in(kVtest);
  if (!in.isOpened()) return "";
  const double fps = in.get(cv::CAP_PROP_FPS);
  struct Try {
    const char* codec;
    int fourcc;
    const char* ext;
  };
  const Try tries[] = {{"H.264 (avc1/MP4)", cv::VideoWriter::fourcc('a', 'v', 'c', '1'), ".mp4"},
                       {"MJPG (AVI)", cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), ".avi"}};
  for (const auto& t : tries) {
    path = dir + "/bench" + t.ext;
    cv::VideoWriter out(path, cv::CAP_FFMPEG, t.fourcc, fps, kSize);
    if (!out.isOpened()) continue;
    in.set(cv::CAP_PROP_POS_FRAMES, 0);
    cv::Mat f, small;
    while (in.read(f)) {
      cv::resize(f, small, kSize, 0, 0, cv::INTER_AREA);
      out.write(small);
    }
    return t.codec;
  }
  return "";
}

// The gate camera of the benchmark: intrusion, loitering and a counting line, and, when `facade`,
// a thrown-object zone over the top of the view. Analysed at `size` (at the default 320x180 the
// thrown-object zone has its own band at 640x360).
cam::StreamConfig config(cv::Size size = kSmall, bool facade = true) {
  cam::StreamConfig s;
  s.id = "bench";
  s.url = "bench";
  s.width = size.width;
  s.height = size.height;
  s.fps = 10;
  s.background = g_background;
  auto z = [](std::string id, cam::Detector d, std::vector<cam::PointN> p) {
    cam::ZoneConfig zc;
    zc.id = std::move(id);
    zc.detector = d;
    zc.polygon = std::move(p);
    zc.severity = cam::default_severity(d);
    if (d == cam::Detector::loitering) zc.dwell_s = 30;
    if (d == cam::Detector::thrown_object) zc.min_area = 0.0002;
    return zc;
  };
  s.zones.push_back(z("walkway", cam::Detector::intrusion,
                      {{0.0, 0.30}, {0.55, 0.30}, {1.0, 0.45}, {1.0, 0.75}, {0.0, 0.60}}));
  s.zones.push_back(
      z("lawn", cam::Detector::loitering, {{0.0, 0.6}, {0.6, 0.6}, {0.6, 1.0}, {0.0, 1.0}}));
  s.zones.push_back(z("line", cam::Detector::line_count, {{0.30, 0.28}, {0.30, 0.62}}));
  if (facade)
    s.zones.push_back(
        z("sky", cam::Detector::thrown_object, {{0.0, 0.0}, {1.0, 0.0}, {1.0, 0.3}, {0.0, 0.3}}));
  return s;
}

struct Run {
  int frames = 0;
  int analysed = 0;
  std::int64_t jpeg_bytes = 0;  // encode runs: the evidence ring's JPEGs
  double cpu = 0;
  double wall = 0;
};

// Decodes the whole file (grab); retrieves (converts to BGR) every `every`-th frame, none when
// `every` is 0, as the driver does for the frames it analyses; analyses those with `cfg` when
// `analyse` (the analyzer downscales them, as in the driver); JPEG-encodes each frame at
// quality 80 when `encode` (what the evidence ring adds per analysed frame).
Run run(const std::string& path, bool analyse, int every, bool encode = false,
        const cam::StreamConfig& cfg = config()) {
  Run r;
  cv::VideoCapture cap(path, cv::CAP_FFMPEG);
  if (!cap.isOpened()) return r;
  std::optional<cam::StreamAnalyzer> a;
  if (analyse) a.emplace(cfg);
  cv::Mat f;
  const double c0 = cpu_seconds();
  const auto w0 = SteadyClock::now();
  while (cap.grab()) {
    const bool due = every > 0 && r.frames % every == 0;
    if (due) {
      if (!cap.retrieve(f)) break;
      if (analyse) {
        (void)a->process(f, r.frames * 100);
        ++r.analysed;
      }
      if (encode) {
        std::vector<unsigned char> jpeg;
        cv::imencode(".jpg", f, jpeg, {cv::IMWRITE_JPEG_QUALITY, 80});
        r.jpeg_bytes += static_cast<std::int64_t>(jpeg.size());
      }
    }
    ++r.frames;
  }
  r.cpu = cpu_seconds() - c0;
  r.wall = seconds_between(w0, SteadyClock::now());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--background" && i + 1 < argc && std::string(argv[i + 1]) == "mog2") {
      g_background = cam::BackgroundModel::mog2;
      ++i;
    } else if (a == "--background" && i + 1 < argc && std::string(argv[i + 1]) == "sigma_delta") {
      ++i;
    } else {
      std::fprintf(stderr, "usage: bench_camera [--background sigma_delta|mog2]\n");
      return 2;
    }
  }
  Watchdog watchdog(std::chrono::seconds(58));
  cv::setNumThreads(0);
  TempDir dir("bench-camera");
  std::string path;
  const std::string codec = make_video(dir.path(), path);
  if (codec.empty()) {
    std::fprintf(stderr, "bench_camera: cannot read %s or write a video (opencv-doc?)\n",
                 kVtest.c_str());
    return 1;
  }
  (void)run(path, false, 1);  // warm the page cache and the codec
  const Run dec = run(path, false, 1);
  const Run all = run(path, true, 1);
  const Run half = run(path, true, 2);
  const Run enc = run(path, false, 1, true);
  // A camera with no façade zone, analysed at the default size for it (320x180, a quarter of
  // the pixels), every frame and every 5th (a 25 fps camera analysed at 5 fps).
  const cam::StreamConfig gate = config(kSmall, false);
  const Run s_all = run(path, true, 1, false, gate);
  // The baseline, decoding alone with no conversion to BGR (what a stream costs that is read and
  // not analysed; the driver converts only the frames it analyses), and the two 5-of-25 rows the
  // goal is about: measured in kRounds interleaved rounds, the median of each kept. One run of
  // each swung the 320x180 row between 61 % and 84 % on this shared VM.
  constexpr int kRounds = 5;
  // The façade camera analysed as a whole at 640x360, as it was before the thrown-object zone
  // had its own band (3 December): the comparison for the façade row.
  const cam::StreamConfig whole = config(kSize, true);
  std::vector<Run> grabs, fifths, s_fifths, w_fifths;
  for (int i = 0; i < kRounds; ++i) {
    grabs.push_back(run(path, false, 0));
    fifths.push_back(run(path, true, 5));
    s_fifths.push_back(run(path, true, 5, false, gate));
    w_fifths.push_back(run(path, true, 5, false, whole));
  }
  auto median = [](std::vector<Run> rs) {
    std::sort(rs.begin(), rs.end(),
              [](const Run& a, const Run& b) { return a.cpu / a.frames < b.cpu / b.frames; });
    return rs[rs.size() / 2];
  };
  const Run grab = median(grabs);
  const Run fifth = median(fifths);
  const Run s_fifth = median(s_fifths);
  const Run w_fifth = median(w_fifths);
  if (dec.frames == 0 || all.frames == 0) {
    std::fprintf(stderr, "bench_camera: cannot decode %s\n", path.c_str());
    return 1;
  }
  const double grab_fps = grab.frames / grab.cpu;
  const double t_grab = grab.cpu / grab.frames;  // CPU s per decoded frame
  const double t_dec = dec.cpu / dec.frames;     // CPU s per decoded and converted frame
  const double t_ana = std::max(0.0, (all.cpu - dec.cpu) / all.analysed);
  const double t_ana_s = std::max(0.0, (s_all.cpu - dec.cpu) / s_all.analysed);
  auto streams_per_core = [&](double source_fps, double ana) {
    return 1.0 / (source_fps * t_grab + 5 * (t_dec - t_grab + ana));
  };
  auto ratio_row = [&](Table& t, const std::string& what, const Run& r) {
    const double fps = r.frames / r.cpu;
    t.add(what, fmt(fps, 0), fmt(grab_fps, 0) + " decode only", pct(fps / grab_fps), ">= 80 %",
          met(fps / grab_fps >= 0.8));
  };

  // RSS per stream: 4 open captures with their analyzers, 30 frames through each.
  const std::int64_t rss0 = read_status_kb("VmRSS");
  {
    std::vector<cv::VideoCapture> caps(4);
    std::vector<std::unique_ptr<cam::StreamAnalyzer>> analyzers;
    for (auto& c : caps) c.open(path, cv::CAP_FFMPEG);
    for (int i = 0; i < 4; ++i)
      analyzers.push_back(std::make_unique<cam::StreamAnalyzer>(config()));
    cv::Mat f;
    for (int k = 0; k < 30; ++k)
      for (int i = 0; i < 4; ++i)
        if (caps[i].read(f)) (void)analyzers[i]->process(f, k * 100);
    const std::int64_t rss1 = read_status_kb("VmRSS");
    const double per_stream_mb = static_cast<double>(rss1 - rss0) / 4 / 1024;

    Table t(std::string("bench_camera (background ") +
            (g_background == cam::BackgroundModel::mog2 ? "mog2" : "sigma_delta") + "): 640x360, " +
            codec + ", " + std::to_string(dec.frames) + " frames of vtest.avi (10 fps)");
    ratio_row(t, "facade camera (320x180, band 640x360): decode + analytics on every frame", all);
    ratio_row(t, "facade camera: decode all + analytics on every 2nd (5 of 10 fps)", half);
    ratio_row(t, "facade camera: decode all + analytics on every 5th (5 of 25 fps)", fifth);
    ratio_row(t, "facade camera analysed whole at 640x360 (before): every 5th (5 of 25 fps)",
              w_fifth);
    ratio_row(t, "no facade zone: decode + analytics (320x180) on every frame", s_all);
    ratio_row(t, "no facade zone: decode all + analytics (320x180) on every 5th (5 of 25 fps)",
              s_fifth);
    t.add("ms CPU per frame: decode / BGR / analytics facade camera / no facade zone",
          fmt(t_grab * 1000, 2) + " / " + fmt((t_dec - t_grab) * 1000, 2) + " / " +
              fmt(t_ana * 1000, 2) + " / " + fmt(t_ana_s * 1000, 2),
          "-", "-", "-", "-");
    t.add("5 fps streams per core, 10 fps source, facade camera",
          fmt(streams_per_core(10, t_ana), 1), "-", "-", ">= 8",
          met(streams_per_core(10, t_ana) >= 8));
    t.add("5 fps streams per core, 25 fps source (estimate), facade camera",
          fmt(streams_per_core(25, t_ana), 1), "-", "-", ">= 8",
          met(streams_per_core(25, t_ana) >= 8));
    t.add("5 fps streams per core, 25 fps source (estimate), 320x180, no facade zone",
          fmt(streams_per_core(25, t_ana_s), 1), "-", "-", ">= 8",
          met(streams_per_core(25, t_ana_s) >= 8));
    t.add("RSS per stream (capture + analyzer)", fmt(per_stream_mb, 1) + " MB", "-", "-", "-", "-");
    // Evidence: the JPEG of each analysed frame, beside the analytics' own cost.
    const double t_jpeg = std::max(0.0, (enc.cpu - dec.cpu) / enc.frames);
    t.add("ms CPU per analysed frame: evidence JPEG (q80) / analytics",
          fmt(t_jpeg * 1000, 2) + " / " + fmt(t_ana * 1000, 2), "-", "-", "-", "-");
    t.add("evidence JPEG bytes per frame (q80)",
          fmt(static_cast<double>(enc.jpeg_bytes) / enc.frames, 0), "-", "-", "-", "-");
    t.note(machine_line());
    t.note("per core = frames / CPU seconds of the process; wall: decode " + fmt(dec.wall, 2) +
           " s, decode+analytics " + fmt(all.wall, 2) + " s");
    t.note("baseline and the every-5th rows: median of " + std::to_string(kRounds) +
           " interleaved runs each");
    t.note(
        "every 5th: vtest.avi's own frames, analysed one in five, stand for a 25 fps camera "
        "analysed at 5 fps (the decode cost per frame is vtest's, not a 25 fps camera's)");
    t.note(
        "streams per core = 1 / (source fps x decode cost + 5 x (BGR + analytics cost)); the 25 "
        "fps row "
        "assumes a 25 fps frame costs what a 10 fps one does to decode (H.264 cost grows with "
        "motion and bitrate)");
    t.print();
  }
  return 0;
}
