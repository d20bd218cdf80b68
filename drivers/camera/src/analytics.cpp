#include "anju/drivers/camera/analytics.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include <opencv2/core/hal/intrin.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video.hpp>

namespace anju::drivers::camera {
namespace {

using edge::Event;
using edge::EventKind;
using nlohmann::json;

double round3(double v) {
  return std::round(v * 1000) / 1000;
}

json point_json(const cv::Point2d& p, cv::Size size) {
  return {{"x", round3(p.x / size.width)}, {"y", round3(p.y / size.height)}};
}

json box_json(const cv::Rect& r, cv::Size size) {
  return {{"x", round3(static_cast<double>(r.x) / size.width)},
          {"y", round3(static_cast<double>(r.y) / size.height)},
          {"w", round3(static_cast<double>(r.width) / size.width)},
          {"h", round3(static_cast<double>(r.height) / size.height)}};
}

double frame_area(cv::Size s) {
  return static_cast<double>(s.width) * s.height;
}

// Least-squares fit y = c0 + c1 t + c2 t²; returns c2 (0 when degenerate).
double quadratic_c2(const std::vector<double>& t, const std::vector<double>& y) {
  cv::Mat a(static_cast<int>(t.size()), 3, CV_64F);
  cv::Mat b(static_cast<int>(t.size()), 1, CV_64F);
  for (std::size_t i = 0; i < t.size(); ++i) {
    const int r = static_cast<int>(i);
    a.at<double>(r, 0) = 1;
    a.at<double>(r, 1) = t[i];
    a.at<double>(r, 2) = t[i] * t[i];
    b.at<double>(r, 0) = y[i];
  }
  cv::Mat c;
  if (!cv::solve(a, b, c, cv::DECOMP_SVD)) return 0;
  return c.at<double>(2, 0);
}

}  // namespace

// ---- foreground -------------------------------------------------------------------------------

void SigmaDelta::step(const cv::Mat& bgr, cv::Mat& mean, cv::Mat& spread, cv::Mat& mask,
                      int max_step, bool simd) {
  CV_Assert(bgr.type() == CV_8UC3 && mean.type() == CV_8UC3 && spread.type() == CV_8UC1);
  CV_Assert(bgr.size() == mean.size() && bgr.size() == spread.size());
  mask.create(bgr.size(), CV_8UC1);
  const int s = std::clamp(max_step, 0, 255);
  for (int y = 0; y < bgr.rows; ++y) {
    const std::uint8_t* in = bgr.ptr<std::uint8_t>(y);
    std::uint8_t* m = mean.ptr<std::uint8_t>(y);
    std::uint8_t* v = spread.ptr<std::uint8_t>(y);
    std::uint8_t* out = mask.ptr<std::uint8_t>(y);
    int x = 0;
#if CV_SIMD
    if (simd) {
      constexpr int kLanes = cv::v_uint8::nlanes;
      const cv::v_uint8 vs = cv::vx_setall_u8(static_cast<std::uint8_t>(s));
      const cv::v_uint8 zero = cv::vx_setzero_u8();
      const cv::v_uint8 lo = cv::vx_setall_u8(kMinSpread);
      const cv::v_uint8 hi = cv::vx_setall_u8(kMaxSpread);
      // Towards the frame by at most s: saturating differences are 0 on the other side.
      auto follow = [&](const cv::v_uint8& i, cv::v_uint8& mm) {
        mm = cv::v_sub_wrap(cv::v_add_wrap(mm, cv::v_min(i - mm, vs)), cv::v_min(mm - i, vs));
      };
      for (; x + kLanes <= bgr.cols; x += kLanes) {
        cv::v_uint8 ib, ig, ir, mb, mg, mr;
        cv::v_load_deinterleave(in + 3 * x, ib, ig, ir);
        cv::v_load_deinterleave(m + 3 * x, mb, mg, mr);
        follow(ib, mb);
        follow(ig, mg);
        follow(ir, mr);
        cv::v_store_interleave(m + 3 * x, mb, mg, mr);
        const cv::v_uint8 o = cv::v_max(cv::v_absdiff(ib, mb),
                                        cv::v_max(cv::v_absdiff(ig, mg), cv::v_absdiff(ir, mr)));
        static_assert(kSpreadFactor == 4, "the vectors multiply by adding twice");
        const cv::v_uint8 o2 = o + o;  // saturating: min(255, 4 o)
        const cv::v_uint8 n = o2 + o2;
        cv::v_uint8 vv = cv::vx_load(v + x);
        const cv::v_uint8 moved = o > zero;
        // A lane mask is 0xff: subtracting it adds one, adding it takes one away.
        vv = cv::v_sub_wrap(vv, (n > vv) & moved);
        vv = cv::v_add_wrap(vv, (n < vv) & moved);
        vv = cv::v_min(cv::v_max(vv, lo), hi);
        cv::v_store(v + x, vv);
        cv::v_store(out + x, o > vv);
      }
    }
#else
    (void)simd;
#endif
    for (; x < bgr.cols; ++x) {
      int o = 0;
      for (int c = 0; c < 3; ++c) {
        const int i = in[3 * x + c];
        int mm = m[3 * x + c];
        mm += std::min(std::max(i - mm, 0), s) - std::min(std::max(mm - i, 0), s);
        m[3 * x + c] = static_cast<std::uint8_t>(mm);
        o = std::max(o, std::abs(i - mm));
      }
      int vv = v[x];
      if (o > 0) {
        const int n = std::min(255, kSpreadFactor * o);
        vv += (n > vv) - (n < vv);
        vv = std::clamp(vv, kMinSpread, kMaxSpread);
      }
      v[x] = static_cast<std::uint8_t>(vv);
      out[x] = o > vv ? 255 : 0;
    }
  }
}

ForegroundExtractor::ForegroundExtractor(int history, BackgroundModel model, double var_threshold,
                                         Targets targets)
    : model_(model),
      targets_(targets),
      history_(history),
      // A still object 48 levels from the background is absorbed after about history/10 frames,
      // as in MOG2 (docs/CAMERA.md, "Background models").
      mean_every_(std::max(1, history / (10 * 48))),
      // For small objects a square: it keeps a 5x5 object whole, where the cross would take its
      // corners and leave it under the default min_area at 640x360.
      open_kernel_(cv::getStructuringElement(
          targets == Targets::people ? cv::MORPH_ELLIPSE : cv::MORPH_RECT, {3, 3})),
      close_kernel_(cv::getStructuringElement(cv::MORPH_ELLIPSE, {7, 7})) {
  if (model_ == BackgroundModel::mog2)
    mog_ = cv::createBackgroundSubtractorMOG2(history, var_threshold, /*detectShadows=*/true);
}

const cv::Mat& ForegroundExtractor::apply(const cv::Mat& bgr) {
  // A light blur first: sensor and compression noise on textured surfaces (brick, foliage)
  // would otherwise come through as dense speckle that the morphology joins into blobs.
  const bool people = targets_ == Targets::people;
  if (people) cv::GaussianBlur(bgr, blurred_, {5, 5}, 0);
  const cv::Mat& in = people ? blurred_ : bgr;
  if (model_ == BackgroundModel::mog2) {
    // MOG2's automatic rate is 1/(2n) for the first history/2 frames: right for learning the
    // first background, but it would absorb anything still for a few seconds during that time.
    // After the first frames, the rate is the history's.
    mog_->apply(in, raw_, frames_ < kLearnFrames ? -1.0 : 1.0 / history_);
    // 255 = foreground, 127 = shadow (dropped), 0 = background.
    cv::threshold(raw_, mask_, 200, 255, cv::THRESH_BINARY);
  } else {
    apply_sigma_delta(in);
  }
  ++frames_;
  cv::morphologyEx(mask_, mask_, cv::MORPH_OPEN, open_kernel_);
  if (!people) return mask_;
  cv::morphologyEx(mask_, mask_, cv::MORPH_CLOSE, close_kernel_);
  if (frames_ > kLearnFrames) drop_lighting_changes();
  return mask_;
}

void ForegroundExtractor::apply_sigma_delta(const cv::Mat& in) {
  if (mean_.size() != in.size()) {
    in.copyTo(mean_);
    spread_.create(in.size(), CV_8UC1);
    spread_.setTo(SigmaDelta::kInitialSpread);
    frames_ = 0;
  }
  // Learning: the mean moves in steps of 16, 8, 4, 2, then 1 level, which settles it on the
  // frames' median, so that someone walking through the first frames leaves no ghost. Then one
  // level every mean_every_ frames.
  const int left = kLearnFrames - frames_;
  const int step = left > 0 ? 1 << std::min(4, left / 2) : (frames_ % mean_every_ == 0 ? 1 : 0);
  SigmaDelta::step(in, mean_, spread_, mask_, step);
  if (targets_ == Targets::people) drop_shadows();
}

// A shadow darkens the background without changing its colour: a foreground pixel whose colour
// is the mean's scaled by a in [0.7, 1), within 1.5 a times the pixel's spread, is dropped
// (MOG2's test, after Prati et al. 2003, with the spread standing for MOG2's deviation). MOG2
// takes a down to 0.5; here that took people in grey over grey pavement for shadows (vtest.avi's
// line count fell from 14 to 9; docs/CAMERA.md, "Background models"), so only the lighter
// shadows go. In integers, exact on every CPU: with d = I.M and m = M.M, a = d/m, and the
// distance from the scaled colour is |I - aM|^2 = (|I|^2 m - d^2) / m.
void ForegroundExtractor::drop_shadows() {
  for (int y = 0; y < mask_.rows; ++y) {
    std::uint8_t* out = mask_.ptr<std::uint8_t>(y);
    const std::uint8_t* in = blurred_.ptr<std::uint8_t>(y);
    const std::uint8_t* mean = mean_.ptr<std::uint8_t>(y);
    const std::uint8_t* v = spread_.ptr<std::uint8_t>(y);
    for (int x = 0; x < mask_.cols; ++x) {
      if (!out[x]) continue;
      std::int64_t d = 0, m = 0, ii = 0;
      for (int c = 0; c < 3; ++c) {
        const std::int64_t i = in[3 * x + c], b = mean[3 * x + c];
        d += i * b;
        m += b * b;
        ii += i * i;
      }
      if (m == 0 || 10 * d < 7 * m || d >= m) continue;  // a outside [0.7, 1)
      // (|I|^2 m - d^2) / m < (1.5 v d / m)^2  <=>  4 (|I|^2 m - d^2) m < 9 v^2 d^2
      const std::int64_t vv = v[x];
      if (4 * (ii * m - d * d) * m < 9 * vv * vv * d * d) out[x] = 0;
    }
  }
}

// A region that only got brighter or darker (sun on a wall, a cloud, a lamp) still shows the
// background's texture: its pixels correlate with the background image's; an object in front of
// the background does not. Judged per 16x16 tile (a lit wall and the people in front of it are
// often one connected region): a tile whose foreground pixels correlate with the background above
// kSameTexture is cleared. Tiles with few foreground pixels, or too flat to judge, are kept.
void ForegroundExtractor::drop_lighting_changes() {
  constexpr int kTile = 16;
  constexpr double kSameTexture = 0.75;
  constexpr int kMinPixels = 24;
  constexpr double kMinStddev = 3;
  if (cv::countNonZero(mask_) == 0) return;
  bool grey = false;  // bg_gray_ and cur_gray_ made, at the first tile that needs them
  for (int y = 0; y < mask_.rows; y += kTile) {
    for (int x = 0; x < mask_.cols; x += kTile) {
      const cv::Rect r(x, y, std::min(kTile, mask_.cols - x), std::min(kTile, mask_.rows - y));
      const int n = cv::countNonZero(mask_(r));
      if (n < kMinPixels) continue;
      if (!grey) {
        // sigma_delta's background is its mean. MOG2's background image costs about as much as
        // the subtraction itself (2.1 vs 2.7 ms at 640x360) and moves by at most 1/history per
        // frame (history >= 200): taken again every kBackgroundEvery frames, it is never more
        // than 4 % behind.
        if (model_ == BackgroundModel::sigma_delta) {
          cv::cvtColor(mean_, bg_gray_, cv::COLOR_BGR2GRAY);
        } else if (bg_gray_.empty() || frames_ - background_frame_ >= kBackgroundEvery) {
          mog_->getBackgroundImage(background_);
          if (background_.empty()) return;
          cv::cvtColor(background_, bg_gray_, cv::COLOR_BGR2GRAY);
          background_frame_ = frames_;
        }
        cv::cvtColor(blurred_, cur_gray_, cv::COLOR_BGR2GRAY);
        grey = true;
      }
      // The correlation of background and frame over the tile's foreground pixels, in one pass.
      std::int64_t sb = 0, sc = 0, sbb = 0, scc = 0, sbc = 0;
      for (int yy = r.y; yy < r.y + r.height; ++yy) {
        const std::uint8_t* m = mask_.ptr<std::uint8_t>(yy);
        const std::uint8_t* pb = bg_gray_.ptr<std::uint8_t>(yy);
        const std::uint8_t* pc = cur_gray_.ptr<std::uint8_t>(yy);
        for (int xx = r.x; xx < r.x + r.width; ++xx) {
          if (!m[xx]) continue;
          const std::int64_t b = pb[xx], c = pc[xx];
          sb += b;
          sc += c;
          sbb += b * b;
          scc += c * c;
          sbc += b * c;
        }
      }
      const double cnt = n;
      const double mb = static_cast<double>(sb) / cnt, mc = static_cast<double>(sc) / cnt;
      const double vb = static_cast<double>(sbb) / cnt - mb * mb;
      const double vc = static_cast<double>(scc) / cnt - mc * mc;
      if (vb < kMinStddev * kMinStddev || vc < kMinStddev * kMinStddev) continue;
      const double cov = static_cast<double>(sbc) / cnt - mb * mc;
      if (cov / std::sqrt(vb * vc) > kSameTexture) mask_(r).setTo(0);
    }
  }
}

void Components::label(const cv::Mat& mask, int pixels) {
  if (pixels < 0) pixels = cv::countNonZero(mask);
  regions_.clear();
  if (pixels == 0) {
    count_ = 0;
    return;
  }
  // The labels only: OpenCV's statistics pass visits every pixel, the background's too, and cost
  // three times the labelling on a sparse mask (bench_camera); ours visits the foreground only.
  count_ = cv::connectedComponents(mask, labels_, 8, CV_32S);
  regions_.resize(static_cast<std::size_t>(count_));
  for (int y = 0; y < mask.rows; ++y) {
    const std::uint8_t* m = mask.ptr<std::uint8_t>(y);
    const int* lab = labels_.ptr<int>(y);
    int x = 0;
    while (x < mask.cols) {
      // Eight background pixels at a time.
      if (x + 8 <= mask.cols) {
        std::uint64_t eight;
        std::memcpy(&eight, m + x, sizeof eight);
        if (eight == 0) {
          x += 8;
          continue;
        }
      }
      if (m[x]) {
        Region& r = regions_[static_cast<std::size_t>(lab[x])];
        if (r.area == 0) {
          r.x0 = r.x1 = x;
          r.y0 = r.y1 = y;
        }
        r.x0 = std::min(r.x0, x);
        r.x1 = std::max(r.x1, x);
        r.y1 = y;
        ++r.area;
        r.sx += x;
        r.sy += y;
      }
      ++x;
    }
  }
}

std::vector<Blob> Components::blobs(const cv::Mat& region, const cv::Rect& region_box,
                                    double min_area_px, double max_area_px) const {
  std::vector<Blob> out;
  for (int i = 1; i < count_; ++i) {
    const Region& c = regions_[static_cast<std::size_t>(i)];
    if (c.area == 0) continue;
    const cv::Rect box(c.x0, c.y0, c.x1 - c.x0 + 1, c.y1 - c.y0 + 1);
    Blob b;
    if (region.empty()) {
      b.box = box;
      b.centroid = {static_cast<double>(c.sx) / static_cast<double>(c.area),
                    static_cast<double>(c.sy) / static_cast<double>(c.area)};
      b.area = static_cast<double>(c.area);
    } else {
      // The region's part: only the pixels of the region's box and the component's are looked at.
      const cv::Rect r = box & region_box;
      if (r.empty()) continue;
      std::int64_t area = 0, sx = 0, sy = 0;
      int x0 = r.x + r.width, y0 = r.y + r.height, x1 = -1, y1 = -1;
      for (int y = r.y; y < r.y + r.height; ++y) {
        const int* lab = labels_.ptr<int>(y);
        const std::uint8_t* in = region.ptr<std::uint8_t>(y);
        for (int x = r.x; x < r.x + r.width; ++x) {
          if (lab[x] != i || !in[x]) continue;
          ++area;
          sx += x;
          sy += y;
          x0 = std::min(x0, x);
          x1 = std::max(x1, x);
          y0 = std::min(y0, y);
          y1 = std::max(y1, y);
        }
      }
      if (area == 0) continue;
      b.box = {x0, y0, x1 - x0 + 1, y1 - y0 + 1};
      b.centroid = {static_cast<double>(sx) / static_cast<double>(area),
                    static_cast<double>(sy) / static_cast<double>(area)};
      b.area = static_cast<double>(area);
    }
    if (b.area < min_area_px || b.area > max_area_px) continue;
    out.push_back(b);
  }
  return out;
}

std::vector<Blob> find_blobs(const cv::Mat& mask, const cv::Mat& region, double min_area_px,
                             double max_area_px) {
  Components c;
  c.label(mask);
  return c.blobs(region, region.empty() ? cv::Rect() : cv::boundingRect(region), min_area_px,
                 max_area_px);
}

cv::Mat polygon_mask(const std::vector<PointN>& polygon, cv::Size size) {
  cv::Mat m = cv::Mat::zeros(size, CV_8U);
  std::vector<cv::Point> pts;
  for (const auto& p : polygon)
    pts.emplace_back(static_cast<int>(std::lround(p.x * (size.width - 1))),
                     static_cast<int>(std::lround(p.y * (size.height - 1))));
  if (pts.size() >= 3) cv::fillPoly(m, std::vector<std::vector<cv::Point>>{pts}, cv::Scalar(255));
  return m;
}

// ---- tracking -------------------------------------------------------------------------------

CentroidTracker::CentroidTracker(double gate_px, std::int64_t max_gap_ms, double velocity_gate,
                                 double first_gate_px)
    : gate_px_(gate_px),
      max_gap_ms_(max_gap_ms),
      velocity_gate_(velocity_gate),
      first_gate_px_(first_gate_px) {}

void CentroidTracker::update(const std::vector<Blob>& blobs, std::int64_t t_ms) {
  ended_.clear();
  struct Pair {
    double d;
    std::size_t track;
    std::size_t blob;
  };
  std::vector<Pair> pairs;
  for (std::size_t ti = 0; ti < tracks_.size(); ++ti) {
    const auto& path = tracks_[ti].path;
    cv::Point2d predicted = path.back().p;
    double step = 0;
    if (path.size() >= 2) {
      const auto& a = path[path.size() - 2];
      const auto& b = path.back();
      const double dt = static_cast<double>(b.t_ms - a.t_ms);
      if (dt > 0) {
        const cv::Point2d v = (b.p - a.p) * (static_cast<double>(t_ms - b.t_ms) / dt);
        predicted += v;
        step = std::hypot(v.x, v.y);
      }
    }
    const double gate =
        path.size() == 1 ? std::max(gate_px_, first_gate_px_) : gate_px_ + velocity_gate_ * step;
    for (std::size_t bi = 0; bi < blobs.size(); ++bi) {
      const double d =
          std::hypot(blobs[bi].centroid.x - predicted.x, blobs[bi].centroid.y - predicted.y);
      if (d <= gate) pairs.push_back({d, ti, bi});
    }
  }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.d < b.d; });
  std::vector<bool> track_used(tracks_.size()), blob_used(blobs.size());
  for (const auto& pr : pairs) {
    if (track_used[pr.track] || blob_used[pr.blob]) continue;
    track_used[pr.track] = blob_used[pr.blob] = true;
    Track& t = tracks_[pr.track];
    t.path.push_back({t_ms, blobs[pr.blob].centroid, blobs[pr.blob].area});
    if (t.path.size() > Track::kMaxPath) t.path.erase(t.path.begin());
    t.last_ms = t_ms;
  }
  for (std::size_t bi = 0; bi < blobs.size(); ++bi) {
    if (blob_used[bi]) continue;
    Track t;
    t.id = next_id_++;
    t.first_ms = t.last_ms = t_ms;
    t.path.push_back({t_ms, blobs[bi].centroid, blobs[bi].area});
    tracks_.push_back(std::move(t));
  }
  for (auto it = tracks_.begin(); it != tracks_.end();) {
    if (t_ms - it->last_ms > max_gap_ms_) {
      ended_.push_back(std::move(*it));
      it = tracks_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---- zone detectors -------------------------------------------------------------------------

Event ZoneDetector::make_event(EventKind kind) const {
  Event e;
  e.kind = kind;
  e.severity = zone_.severity;
  e.attrs = {{"zone", zone_.id}, {"detector", std::string(to_string(zone_.detector))}};
  return e;
}

std::vector<Blob> ZoneDetector::blobs(const FrameView& f, double min_area, double max_area) {
  const cv::Rect view(f.origin, f.foreground.size());
  if (mask_frame_ != f.frame_size || mask_view_ != view) {
    mask_ = polygon_mask(zone_.polygon, f.frame_size)(view).clone();
    mask_frame_ = f.frame_size;
    mask_view_ = view;
    box_ = cv::boundingRect(mask_);
  }
  if (box_.empty()) return {};  // a polygon too thin to cover a pixel
  const double area = frame_area(f.frame_size);
  auto found = f.components.blobs(mask_, box_, min_area * area, max_area * area);
  if (f.origin != cv::Point()) {
    for (auto& b : found) {
      b.box += f.origin;
      b.centroid += cv::Point2d(f.origin);
    }
  }
  return found;
}

IntrusionDetector::IntrusionDetector(ZoneConfig zone, int confirm_frames, std::int64_t clear_ms)
    : ZoneDetector(std::move(zone)), confirm_frames_(confirm_frames), clear_ms_(clear_ms) {}

void IntrusionDetector::process(const FrameView& f, std::vector<Event>& out) {
  const cv::Size size = f.frame_size;
  const auto blobs = this->blobs(f, zone_.min_area);
  const bool occupied = !blobs.empty();
  if (occupied) {
    ++occupied_run_;
    last_occupied_ms_ = f.t_ms;
  } else {
    occupied_run_ = 0;
  }
  if (!raised_ && occupied_run_ >= confirm_frames_) {
    raised_ = true;
    const auto largest = std::max_element(blobs.begin(), blobs.end(),
                                          [](auto& a, auto& b) { return a.area < b.area; });
    Event e = make_event(EventKind::intrusion);
    e.active = true;
    e.attrs["blobs"] = blobs.size();
    e.attrs["box"] = box_json(largest->box, size);
    e.attrs["area"] = round3(largest->area / frame_area(size));
    e.attrs["latched"] = zone_.latch;
    out.push_back(std::move(e));
  } else if (raised_ && !zone_.latch && !occupied && f.t_ms - last_occupied_ms_ >= clear_ms_) {
    raised_ = false;
    Event e = make_event(EventKind::intrusion);
    e.active = false;
    out.push_back(std::move(e));
  }
}

void IntrusionDetector::reset() {
  raised_ = false;
  occupied_run_ = 0;
}

void IntrusionDetector::disarm(std::vector<Event>& out) {
  occupied_run_ = 0;
  if (!raised_ || zone_.latch) return;
  raised_ = false;
  Event e = make_event(EventKind::intrusion);
  e.active = false;
  e.attrs["reason"] = "disarmed";
  out.push_back(std::move(e));
}

LoiteringDetector::LoiteringDetector(ZoneConfig zone, std::int64_t max_gap_ms)
    : ZoneDetector(std::move(zone)), max_gap_ms_(max_gap_ms) {}

void LoiteringDetector::process(const FrameView& f, std::vector<Event>& out) {
  const cv::Size size = f.frame_size;
  if (!tracker_) tracker_.emplace(0.1 * std::hypot(size.width, size.height), max_gap_ms_, 0.5);
  tracker_->update(blobs(f, zone_.min_area), f.t_ms);
  const auto dwell_ms = static_cast<std::int64_t>(zone_.dwell_s * 1000);
  for (auto& t : tracker_->tracks()) {
    if (t.reported || t.last_ms != f.t_ms || t.last_ms - t.first_ms < dwell_ms) continue;
    t.reported = true;
    ++loitering_;
    Event e = make_event(EventKind::loitering);
    e.active = true;
    e.values.push_back({"dwell", static_cast<double>(t.last_ms - t.first_ms) / 1000.0, "s"});
    e.attrs["track"] = t.id;
    e.attrs["position"] = point_json(t.path.back().p, size);
    out.push_back(std::move(e));
  }
  for (const auto& t : tracker_->ended()) {
    if (!t.reported) continue;
    if (--loitering_ == 0) {
      Event e = make_event(EventKind::loitering);
      e.active = false;
      e.attrs["track"] = t.id;
      out.push_back(std::move(e));
    }
  }
}

void LoiteringDetector::disarm(std::vector<Event>& out) {
  if (loitering_ > 0) {
    Event e = make_event(EventKind::loitering);
    e.active = false;
    e.attrs["reason"] = "disarmed";
    out.push_back(std::move(e));
  }
  loitering_ = 0;
  tracker_.reset();
}

LineCounter::LineCounter(ZoneConfig zone, std::int64_t max_gap_ms)
    : ZoneDetector(std::move(zone)), max_gap_ms_(max_gap_ms) {}

int LineCounter::side_of(const cv::Point2d& p, cv::Size size, bool& within_span) const {
  const cv::Point2d a(zone_.polygon[0].x * size.width, zone_.polygon[0].y * size.height);
  const cv::Point2d b(zone_.polygon[1].x * size.width, zone_.polygon[1].y * size.height);
  const cv::Point2d d = b - a;
  const cv::Point2d r = p - a;
  const double len2 = d.dot(d);
  const double len = std::sqrt(len2);
  const double along = r.dot(d) / len2;
  within_span = along >= -0.05 && along <= 1.05;
  const double dist = (d.x * r.y - d.y * r.x) / len;
  const double margin = std::max(2.0, 0.01 * std::hypot(size.width, size.height));
  return dist > margin ? 1 : (dist < -margin ? -1 : 0);
}

void LineCounter::process(const FrameView& f, std::vector<Event>& out) {
  const cv::Size size = f.frame_size;
  if (!tracker_) tracker_.emplace(0.08 * std::hypot(size.width, size.height), max_gap_ms_, 0.8);
  tracker_->update(f.components.blobs({}, {}, zone_.min_area * frame_area(size)), f.t_ms);
  for (auto& t : tracker_->tracks()) {
    if (t.last_ms != f.t_ms) continue;
    bool within = false;
    const int s = side_of(t.path.back().p, size, within);
    if (s == 0) continue;
    if (t.side != 0 && s != t.side && within) {
      const bool in = t.side < 0;
      (in ? in_ : out_) += 1;
      Event e = make_event(EventKind::people_count);
      e.values.push_back({"in", static_cast<double>(in_), ""});
      e.values.push_back({"out", static_cast<double>(out_), ""});
      e.attrs["direction"] = in ? "in" : "out";
      if (in && !zone_.door.empty()) {  // one passage through the door, for its tailgating rule
        e.values.push_back({"passages", 1, "count"});
        e.attrs["door"] = zone_.door;
      }
      e.attrs["track"] = t.id;
      e.attrs["position"] = point_json(t.path.back().p, size);
      out.push_back(std::move(e));
    }
    t.side = s;
  }
}

ThrownObjectDetector::ThrownObjectDetector(ZoneConfig zone, double fps)
    : ThrownObjectDetector(std::move(zone), fps, Params{}) {}

ThrownObjectDetector::ThrownObjectDetector(ZoneConfig zone, double fps, Params p)
    : ZoneDetector(std::move(zone)), fps_(fps), p_(p) {}

std::optional<Event> ThrownObjectDetector::judge(const Track& t, cv::Size size) const {
  if (t.reported || t.path.size() < static_cast<std::size_t>(p_.min_points)) return std::nullopt;
  const std::size_t n = std::min<std::size_t>(t.path.size(), 12);
  const auto first = t.path.end() - static_cast<std::ptrdiff_t>(n);
  const double h = size.height;
  std::vector<double> ts, ys, speeds;
  for (auto it = first; it != t.path.end(); ++it) {
    ts.push_back(static_cast<double>(it->t_ms - first->t_ms) / 1000.0);
    ys.push_back(it->p.y / h);
  }
  for (std::size_t i = 1; i < n; ++i) {
    const double dt = ts[i] - ts[i - 1];
    const double dy = ys[i] - ys[i - 1];
    if (dt <= 0 || dy < -0.002) return std::nullopt;  // up (or still, beyond noise): not falling
    speeds.push_back(dy / dt);
  }
  const double drop = ys.back() - ys.front();
  if (drop < p_.min_drop) return std::nullopt;
  const double dx = std::abs(t.path.back().p.x - first->p.x) / h;
  if (dx > p_.max_slope * drop) return std::nullopt;  // sideways
  const double accel = 2 * quadratic_c2(ts, ys);
  if (accel < p_.min_accel) return std::nullopt;
  const std::size_t half = speeds.size() / 2;
  const double early = std::accumulate(speeds.begin(), speeds.begin() + half, 0.0) /
                       static_cast<double>(std::max<std::size_t>(half, 1));
  const double late =
      std::accumulate(speeds.end() - static_cast<std::ptrdiff_t>(half), speeds.end(), 0.0) /
      static_cast<double>(std::max<std::size_t>(half, 1));
  if (late < p_.min_speed_ratio * std::max(early, 0.0) || late <= 0) return std::nullopt;
  if (speeds.back() < p_.min_end_speed) return std::nullopt;

  Event e = make_event(EventKind::thrown_object);
  e.values.push_back({"acceleration", round3(accel), "frame_heights/s2"});
  e.values.push_back({"speed", round3(speeds.back()), "frame_heights/s"});
  e.attrs["start"] = point_json(t.path.front().p, size);
  e.attrs["end"] = point_json(t.path.back().p, size);
  e.attrs["frames"] = t.path.size();
  e.attrs["track"] = t.id;
  if (zone_.floors > 0) {
    double top = 1, bottom = 0;
    for (const auto& p : zone_.polygon) {
      top = std::min(top, p.y);
      bottom = std::max(bottom, p.y);
    }
    const double y0 = t.path.front().p.y / h;
    const double frac = std::clamp((y0 - top) / std::max(bottom - top, 1e-6), 0.0, 1.0);
    const int floor =
        std::clamp(zone_.floors - static_cast<int>(frac * zone_.floors), 1, zone_.floors);
    e.attrs["floor_estimate"] = floor;
    e.attrs["floor_band"] = {std::max(1, floor - 1), std::min(zone_.floors, floor + 1)};
  }
  return e;
}

void ThrownObjectDetector::process(const FrameView& f, std::vector<Event>& out) {
  const cv::Size size = f.frame_size;
  const auto frame_ms = static_cast<std::int64_t>(1000.0 / std::max(fps_, 0.1));
  // An object may enter the zone already falling fast: a wide gate for the second point.
  if (!tracker_) tracker_.emplace(0.05 * size.height, frame_ms * 5 / 2, 0.8, 0.2 * size.height);
  tracker_->update(blobs(f, zone_.min_area, zone_.max_area), f.t_ms);
  for (auto& t : tracker_->tracks()) {
    if (t.last_ms != f.t_ms) continue;
    if (auto e = judge(t, size)) {
      t.reported = true;
      out.push_back(std::move(*e));
    }
  }
}

void ThrownObjectDetector::disarm(std::vector<Event>& out) {
  (void)out;  // one event per object, nothing to clear
  tracker_.reset();
}

// ---- tamper ---------------------------------------------------------------------------------

TamperDetector::TamperDetector() : TamperDetector(Params{}) {}
TamperDetector::TamperDetector(Params p) : p_(p) {}

void TamperDetector::reset_reference() {
  learned_ = 0;
  candidate_.clear();
  candidate_run_ = normal_run_ = since_moved_check_ = 0;
}

std::vector<Event> TamperDetector::process(const cv::Mat& bgr, std::int64_t t_ms,
                                           bool view_changed) {
  (void)t_ms;
  std::vector<Event> out;
  cv::Mat gray;
  if (bgr.channels() == 3)
    cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
  else
    gray = bgr;
  const int sw = 160;
  const int sh = std::max(16, gray.rows * sw / std::max(gray.cols, 1));
  cv::Mat small, small_f;
  cv::resize(gray, small, {sw, sh}, 0, 0, cv::INTER_AREA);
  small.convertTo(small_f, CV_32F);

  // Entropy of the grey-level histogram, in bits; contrast; share of saturated pixels.
  cv::Mat hist;
  const int channels[] = {0};
  const int bins[] = {256};
  const float range[] = {0, 256};
  const float* ranges[] = {range};
  cv::calcHist(&gray, 1, channels, cv::Mat(), hist, 1, bins, ranges);
  const double total = static_cast<double>(gray.total());
  double entropy = 0;
  for (int i = 0; i < 256; ++i) {
    const double p = hist.at<float>(i) / total;
    if (p > 0) entropy -= p * std::log2(p);
  }
  double saturated = 0;
  for (int i = 250; i < 256; ++i) saturated += hist.at<float>(i);
  saturated /= total;
  cv::Scalar mean, stddev;
  cv::meanStdDev(gray, mean, stddev);
  cv::Mat lap;
  cv::Laplacian(gray, lap, CV_16S);  // exact for 8-bit input (|value| <= 1020), a third cheaper
  cv::Scalar lap_mean, lap_std;
  cv::meanStdDev(lap, lap_mean, lap_std);
  const double sharpness = lap_std[0] * lap_std[0];

  if (learned_ < p_.learn_frames) {
    const double w = 1.0 / (learned_ + 1);
    if (learned_ == 0) {
      ref_small_ = small_f.clone();
      ref_entropy_ = entropy;
      ref_sharpness_ = sharpness;
      cv::createHanningWindow(window_, small_f.size(), CV_32F);
    } else {
      cv::accumulateWeighted(small_f, ref_small_, w);
      ref_entropy_ += (entropy - ref_entropy_) * w;
      ref_sharpness_ += (sharpness - ref_sharpness_) * w;
    }
    ++learned_;
    return out;
  }
  if (small_f.size() != ref_small_.size()) {  // the stream changed size: learn again
    reset_reference();
    return out;
  }

  std::string cond;
  json detail;
  cv::Point2d shift(0, 0);
  const bool flat = entropy < p_.covered_entropy * ref_entropy_ && stddev[0] < p_.covered_stddev;
  if (saturated > 0.6 || (flat && mean[0] > 170)) {
    cond = "blinded";
  } else if (flat) {
    cond = "covered";
  } else if (ref_sharpness_ >= p_.min_reference_sharpness &&
             sharpness < p_.blur_ratio * ref_sharpness_) {
    cond = "defocused";
  } else if (view_changed || raised_ || !candidate_.empty() ||
             ++since_moved_check_ >= p_.moved_every) {
    // 0.28 of tamper's 0.49 ms a frame at 320x180: not on every frame of a quiet view.
    since_moved_check_ = 0;
    double response = 0;
    shift = cv::phaseCorrelate(ref_small_, small_f, window_, &response);
    if (std::hypot(shift.x, shift.y) > p_.moved_px * sw) cond = "moved";
  }

  auto make = [&](bool active, const std::string& reason) {
    Event e;
    e.kind = EventKind::camera_tamper;
    e.severity = 3;
    e.active = active;
    e.attrs = {{"reason", reason}};
    e.values.push_back({"entropy", round3(entropy), "bit"});
    e.values.push_back({"sharpness", round3(sharpness / std::max(ref_sharpness_, 1e-9)), ""});
    if (reason == "moved") {
      const double scale = static_cast<double>(gray.cols) / sw;
      e.attrs["shift"] = {{"x", std::lround(shift.x * scale)}, {"y", std::lround(shift.y * scale)}};
    }
    return e;
  };

  if (!raised_) {
    if (!cond.empty()) {
      // A turned camera shifts the view by the same amount frame after frame; the peak of a
      // busy scene (a crowd, a passing bus) jumps around: a move is confirmed only by frames
      // that agree on the shift.
      const bool same_shift =
          cond != "moved" || std::hypot(shift.x - candidate_shift_.x,
                                        shift.y - candidate_shift_.y) <= p_.moved_px * sw / 2;
      if (cond == candidate_ && same_shift) {
        ++candidate_run_;
      } else {
        candidate_ = cond;
        candidate_run_ = 1;
        candidate_shift_ = shift;
      }
      if (candidate_run_ >= p_.confirm_frames) {
        raised_ = true;
        reason_ = cond;
        normal_run_ = 0;
        out.push_back(make(true, cond));
      }
    } else {
      candidate_.clear();
      candidate_run_ = 0;
      // A normal view: follow slow changes (light, season) so that they never look like tamper.
      cv::accumulateWeighted(small_f, ref_small_, p_.adapt);
      ref_entropy_ += (entropy - ref_entropy_) * p_.adapt;
      ref_sharpness_ += (sharpness - ref_sharpness_) * p_.adapt;
    }
  } else {
    if (cond.empty()) {
      if (++normal_run_ >= p_.confirm_frames) {
        raised_ = false;
        candidate_.clear();
        candidate_run_ = 0;
        out.push_back(make(false, reason_));
        reason_.clear();
      }
    } else {
      normal_run_ = 0;
    }
  }
  return out;
}

// ---- stream ---------------------------------------------------------------------------------

namespace {

int history_for(const StreamConfig& cfg) {
  // A still object is absorbed into the background after ~history/10 frames: keep that at least
  // 20 s, and twice the longest loitering dwell, so that someone standing still stays visible.
  double keep_s = 20;
  for (const auto& z : cfg.zones)
    if (z.detector == Detector::loitering) keep_s = std::max(keep_s, 2 * z.dwell_s);
  return static_cast<int>(std::clamp(keep_s * cfg.fps * 10, 200.0, 20000.0));
}

}  // namespace

StreamAnalyzer::StreamAnalyzer(StreamConfig cfg, const edge::Clock* clock)
    : cfg_(std::move(cfg)), clock_(clock), fg_(history_for(cfg_), cfg_.background) {
  if (!clock_) {
    static const edge::SystemClock system_clock;
    clock_ = &system_clock;
  }
  for (const auto& z : cfg_.zones) {
    switch (z.detector) {
      case Detector::intrusion:
        zones_.push_back(std::make_unique<IntrusionDetector>(z));
        break;
      case Detector::loitering:
        zones_.push_back(std::make_unique<LoiteringDetector>(z));
        break;
      case Detector::line_count:
        zones_.push_back(std::make_unique<LineCounter>(z));
        break;
      case Detector::thrown_object:
        zones_.push_back(std::make_unique<ThrownObjectDetector>(z, cfg_.fps));
        break;
    }
  }
  armed_.assign(zones_.size(), true);
  in_band_.assign(zones_.size(), false);
  // Thrown-object zones are analysed finer than the rest when the analysis size is coarser than
  // kDetailSize, in the band of the view that covers them all.
  if (cfg_.width < kDetailSize.width || cfg_.height < kDetailSize.height) {
    Band band;
    for (std::size_t i = 0; i < zones_.size(); ++i) {
      const ZoneConfig& z = zones_[i]->zone();
      if (z.detector != Detector::thrown_object || z.polygon.empty()) continue;
      double x0 = 1, y0 = 1, x1 = 0, y1 = 0;
      for (const auto& p : z.polygon) {
        x0 = std::min(x0, p.x);
        y0 = std::min(y0, p.y);
        x1 = std::max(x1, p.x);
        y1 = std::max(y1, p.y);
      }
      const cv::Rect2d box(x0, y0, std::max(0.0, x1 - x0), std::max(0.0, y1 - y0));
      band.area = band.zones.empty() ? box : (band.area | box);
      band.zones.push_back(i);
      in_band_[i] = true;
    }
    if (!band.zones.empty()) band_ = std::move(band);
  }
}

bool StreamAnalyzer::armed(const std::string& zone_id) const {
  for (std::size_t i = 0; i < zones_.size(); ++i)
    if (zones_[i]->zone().id == zone_id) return armed_[i];
  return false;
}

ZoneDetector* StreamAnalyzer::detector(const std::string& zone_id) {
  for (auto& z : zones_)
    if (z->zone().id == zone_id) return z.get();
  return nullptr;
}

bool StreamAnalyzer::reset_zone(const std::string& zone_id) {
  auto* z = detector(zone_id);
  if (!z) return false;
  z->reset();
  return true;
}

void StreamAnalyzer::label(Event& e) const {
  e.device.id = cfg_.id;
  e.device.kind = "camera";
  e.device.name = cfg_.name;
  e.location = cfg_.location;
  e.source = "camera";
  e.attrs["stream"] = cfg_.id;
}

std::vector<Event> StreamAnalyzer::stream_lost() {
  std::vector<Event> out;
  for (auto& z : zones_) z->disarm(out);
  for (auto& e : out) {
    e.attrs["reason"] = "stream lost";
    label(e);
  }
  fg_ = ForegroundExtractor(history_for(cfg_), cfg_.background);
  if (band_) band_->fg.reset();
  return out;
}

bool StreamAnalyzer::cut_band(const cv::Mat& bgr, std::vector<Event>& out) {
  Band& b = *band_;
  // The band's scale: kDetailSize, or the frame's own size when that is smaller (no upscaling).
  const cv::Size size(std::min(kDetailSize.width, bgr.cols),
                      std::min(kDetailSize.height, bgr.rows));
  const bool finer = size.width > cfg_.width || size.height > cfg_.height;
  const cv::Size used = finer ? size : cv::Size();
  if (used != b.size) {
    // The band's zones change scale (the first frame, or a stream that came back at another
    // size): their tracks are in the old scale's pixels.
    for (std::size_t i : b.zones) zones_[i]->disarm(out);
    b.fg.reset();
    b.size = used;
    if (finer) {
      const int x0 = static_cast<int>(std::floor(b.area.x * size.width));
      const int y0 = static_cast<int>(std::floor(b.area.y * size.height));
      const int x1 = static_cast<int>(std::ceil(b.area.br().x * size.width));
      const int y1 = static_cast<int>(std::ceil(b.area.br().y * size.height));
      b.rect = cv::Rect(cv::Point(x0, y0), cv::Point(x1, y1)) & cv::Rect(cv::Point(), size);
    } else {
      b.rect = cv::Rect();
    }
  }
  if (!finer || b.rect.empty()) return false;
  if (bgr.size() == size) {
    b.frame = bgr(b.rect);  // no copy
  } else {
    const double sx = static_cast<double>(bgr.cols) / size.width;
    const double sy = static_cast<double>(bgr.rows) / size.height;
    const cv::Rect source = cv::Rect(cv::Point(static_cast<int>(std::floor(b.rect.x * sx)),
                                               static_cast<int>(std::floor(b.rect.y * sy))),
                                     cv::Point(static_cast<int>(std::ceil(b.rect.br().x * sx)),
                                               static_cast<int>(std::ceil(b.rect.br().y * sy)))) &
                            cv::Rect(cv::Point(), bgr.size());
    cv::resize(bgr(source), b.frame, b.rect.size(), 0, 0, cv::INTER_AREA);
  }
  if (!b.fg)
    b.fg.emplace(history_for(cfg_), cfg_.background, 25,
                 ForegroundExtractor::Targets::small_objects);
  return true;
}

std::vector<Event> StreamAnalyzer::process(const cv::Mat& bgr, std::int64_t t_ms) {
  const cv::Mat* frame = &bgr;
  if (bgr.cols != cfg_.width || bgr.rows != cfg_.height) {
    cv::resize(bgr, resized_, {cfg_.width, cfg_.height}, 0, 0, cv::INTER_AREA);
    frame = &resized_;
  }
  analysed_ = *frame;
  const cv::Mat& fg = fg_.apply(*frame);
  const int foreground = cv::countNonZero(fg);
  std::vector<Event> out;
  // A camera turned or covered shows as foreground over much of the view: the tamper detector's
  // costly "moved" check runs on such frames (and on every few otherwise).
  if (cfg_.tamper)
    out = tamper_.process(*frame, t_ms, foreground > static_cast<int>(fg.total() / 8));
  const bool banded = band_ && cut_band(bgr, out);
  // Schedules, on the wall clock (not the frame's time: a replayed file has media time).
  std::optional<std::int64_t> wall;
  for (std::size_t i = 0; i < zones_.size(); ++i) {
    const ZoneConfig& z = zones_[i]->zone();
    if (z.schedule.empty() || z.detector == Detector::line_count) continue;  // always armed
    if (!wall) wall = clock_->wall_ms();
    const bool now = schedule_armed(z.schedule, cfg_.utc_offset_minutes, *wall);
    if (armed_[i] && !now) zones_[i]->disarm(out);
    armed_[i] = now;
  }
  // The first frames only teach the background. A foreground over half the view is a global
  // change (light switched, lens covered, camera moved), not an intruder: the zones skip it.
  const bool global_change = foreground > static_cast<int>(fg.total() / 2) || tamper_.raised();
  if (fg_.frames() > 5 && !global_change) {
    components_.label(fg, foreground);  // once for all the zones
    const FrameView view{*frame, fg, t_ms, components_, frame->size()};
    for (std::size_t i = 0; i < zones_.size(); ++i)
      if (armed_[i] && !(banded && in_band_[i])) zones_[i]->process(view, out);
  }
  if (banded) {
    Band& b = *band_;
    const cv::Mat& band_fg = b.fg->apply(b.frame);
    const int band_pixels = cv::countNonZero(band_fg);
    if (b.fg->frames() > 5 && band_pixels <= static_cast<int>(band_fg.total() / 2) &&
        !tamper_.raised()) {
      b.components.label(band_fg, band_pixels);
      const FrameView view{b.frame, band_fg, t_ms, b.components, b.size, b.rect.tl()};
      for (std::size_t i : b.zones)
        if (armed_[i]) zones_[i]->process(view, out);
    }
  }
  for (auto& e : out) {
    label(e);
    e.attrs["media_ms"] = t_ms;
  }
  return out;
}

}  // namespace anju::drivers::camera
