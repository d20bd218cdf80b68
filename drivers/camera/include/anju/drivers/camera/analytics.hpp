// Video analytics on single frames: each class takes a frame (cv::Mat, BGR, already at the
// analysis size) and its time, keeps its own state, and returns events. No threads, no I/O, no
// clock: a test or a replay drives them frame by frame (docs/CAMERA.md has the methods and
// their limits).
// Thread: an instance is used by one thread at a time (the stream's capture thread).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/video/background_segm.hpp>

#include "anju/drivers/camera/camera_config.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers::camera {

// A connected foreground region, in pixels of the analysis frame.
struct Blob {
  cv::Rect box;
  cv::Point2d centroid;
  double area = 0;  // pixels
};

// One step of the Σ-Δ background estimate (Manzanera and Richefeu, 2004), on a BGR frame: every
// channel of `mean` moves towards the frame by at most `max_step` levels; `spread` (one byte per
// pixel) moves by one level towards kSpreadFactor times the pixel's largest channel difference
// from the mean, within [kMinSpread, kMaxSpread]; `mask` is 255 where that difference exceeds the
// spread, else 0. Integer arithmetic only, so the vector path (OpenCV's universal intrinsics:
// SSE2, NEON) and the scalar one (`simd` false, or a CPU without them) give the same bytes.
// `mean` and `spread` must already be the frame's size (CV_8UC3 and CV_8UC1).
struct SigmaDelta {
  static constexpr int kSpreadFactor = 4;
  static constexpr int kMinSpread = 8;
  static constexpr int kMaxSpread = 48;
  static constexpr int kInitialSpread = 16;
  static void step(const cv::Mat& bgr, cv::Mat& mean, cv::Mat& spread, cv::Mat& mask, int max_step,
                   bool simd = true);
};

// Foreground extraction: a light blur, a background model, shadows dropped, an opening and a
// closing so that noise specks vanish and a person is one blob, and regions that only changed
// their lighting cleared. The first frame becomes the background. Two models
// (docs/CAMERA.md, "Background models"):
// - sigma_delta (the default): one background per pixel with its own noise level; a tenth of
//   MOG2's cost. A pixel that alternates between two backgrounds (leaves in the wind, a
//   flickering sign) only raises its spread, which makes it less sensitive.
// - mog2: OpenCV's mixture of Gaussians, which learns such pixels' several backgrounds.
class ForegroundExtractor {
 public:
  // What the foreground is for: people and vehicles (the whole pipeline above), or small objects
  // (thrown from height: a few pixels wide), where the background model's mask is only opened.
  // The blur would fade such an object into the background and the closing merge it with its
  // neighbours; what the shadow and lighting tests clear is larger than a small object anyway.
  enum class Targets { people, small_objects };
  // `history` frames: a still object is absorbed into the background after about a tenth of it
  // (sigma_delta: a still object 48 levels away from the background, after about a tenth).
  explicit ForegroundExtractor(int history = 500,
                               BackgroundModel model = BackgroundModel::sigma_delta,
                               double var_threshold = 25, Targets targets = Targets::people);
  // The 0/255 foreground mask of `bgr`.
  const cv::Mat& apply(const cv::Mat& bgr);
  int frames() const { return frames_; }
  static constexpr int kLearnFrames = 10;  // at a fast start-up rate

 private:
  void apply_sigma_delta(const cv::Mat& in);
  void drop_shadows();
  void drop_lighting_changes();
  BackgroundModel model_;
  Targets targets_;
  cv::Ptr<cv::BackgroundSubtractorMOG2> mog_;  // mog2 only
  int history_;
  int mean_every_;  // sigma_delta: frames between steps of the mean after learning
  cv::Mat blurred_, raw_, mask_, open_kernel_, close_kernel_;
  cv::Mat mean_, spread_;  // sigma_delta's background and its per-pixel noise level
  cv::Mat background_, bg_gray_, cur_gray_;
  int frames_ = 0;
  static constexpr int kBackgroundEvery = 8;
  int background_frame_ = 0;  // frames_ when bg_gray_ was taken
};

// The connected regions (8-connected) of a frame's foreground, labelled once for all the zones
// of the frame. A zone's blobs are the parts of these regions inside it: one object partly in a
// zone is one blob there, even where the zone's edge cuts it in two.
class Components {
 public:
  // Labels `mask` (0/255); `pixels`: its non-zero count when the caller has it (-1: unknown).
  void label(const cv::Mat& mask, int pixels = -1);
  // Each region's part inside `region` (0/255, its bounding box `region_box`; an empty region is
  // the whole frame) with an area in [min_area_px, max_area_px].
  std::vector<Blob> blobs(const cv::Mat& region, const cv::Rect& region_box, double min_area_px,
                          double max_area_px = 1e18) const;

 private:
  struct Region {  // one label's pixels: bounding box (inclusive), count, sums of coordinates
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    std::int64_t area = 0, sx = 0, sy = 0;
  };
  cv::Mat labels_;
  std::vector<Region> regions_;  // by label; [0] is the background's (unused)
  int count_ = 0;                // labels, the background's included; 0: nothing labelled
};

// Blobs of `mask` (0/255) inside `region` (0/255, empty = everywhere) with area in
// [min_area_px, max_area_px] (labels `mask` afresh: a frame's detectors share one Components).
std::vector<Blob> find_blobs(const cv::Mat& mask, const cv::Mat& region, double min_area_px,
                             double max_area_px = 1e18);

// The 0/255 mask of a normalised polygon at `size`.
cv::Mat polygon_mask(const std::vector<PointN>& polygon, cv::Size size);

struct TrackPoint {
  std::int64_t t_ms = 0;
  cv::Point2d p;
  double area = 0;
};

struct Track {
  int id = 0;
  std::vector<TrackPoint> path;  // oldest first, at most kMaxPath points
  std::int64_t first_ms = 0;
  std::int64_t last_ms = 0;
  bool reported = false;  // a detector's own flag (e.g. counted, alarmed)
  int side = 0;           // line counter: last definite side of the line
  static constexpr std::size_t kMaxPath = 64;
};

// Frame-to-frame association of blob centroids: greedy nearest pairs within a gate around the
// position predicted from the last step (constant velocity), so that a fast object stays one
// track. A track with one point has no velocity yet: its gate is `first_gate_px` when larger
// (something that enters the view already moving fast). A track not seen for `max_gap_ms` ends.
class CentroidTracker {
 public:
  CentroidTracker(double gate_px, std::int64_t max_gap_ms, double velocity_gate = 0.8,
                  double first_gate_px = 0);
  void update(const std::vector<Blob>& blobs, std::int64_t t_ms);
  std::vector<Track>& tracks() { return tracks_; }
  const std::vector<Track>& tracks() const { return tracks_; }
  // Tracks that ended in the last update().
  const std::vector<Track>& ended() const { return ended_; }

 private:
  double gate_px_;
  std::int64_t max_gap_ms_;
  double velocity_gate_;
  double first_gate_px_;
  int next_id_ = 1;
  std::vector<Track> tracks_;
  std::vector<Track> ended_;
};

// What every detector sees of one frame: the whole view (`frame_size`), or a band of it whose
// top left corner is at `origin` (zones analysed finer than the rest, see StreamAnalyzer).
// Blobs and tracks are in the whole view's pixels either way.
struct FrameView {
  const cv::Mat& bgr;
  const cv::Mat& foreground;  // 0/255, bgr's size
  std::int64_t t_ms;
  const Components& components;  // of `foreground`
  cv::Size frame_size;           // the whole view, at this view's scale
  cv::Point origin{};            // bgr's top left corner in it
};

// Events the detectors return carry kind, severity, active, values and attrs ("zone",
// "detector" and the detector's own); StreamAnalyzer adds the device and location, the driver
// the id and times.
class ZoneDetector {
 public:
  virtual ~ZoneDetector() = default;
  virtual void process(const FrameView& f, std::vector<edge::Event>& out) = 0;
  virtual void reset() {}
  // The zone's schedule ended: forget what is being watched and clear what was raised (events
  // with active = false and attrs.reason "disarmed"), so that no alert stays open while the zone
  // is not watched. The detector then starts afresh when the zone is armed again.
  virtual void disarm(std::vector<edge::Event>& out) { (void)out; }
  const ZoneConfig& zone() const { return zone_; }

 protected:
  explicit ZoneDetector(ZoneConfig zone) : zone_(std::move(zone)) {}
  edge::Event make_event(edge::EventKind kind) const;
  // The zone's blobs in `f` with an area in [min_area, max_area] (fractions of the whole view),
  // in the whole view's pixels.
  std::vector<Blob> blobs(const FrameView& f, double min_area, double max_area = 1e18);
  ZoneConfig zone_;

 private:
  cv::Mat mask_;         // the zone's polygon over f's bgr, made at the first frame
  cv::Rect mask_view_;   // where mask_ lies in the whole view
  cv::Size mask_frame_;  // the whole view's size it was made for
  cv::Rect box_;         // mask_'s bounding box
};

// Foreground blob of at least min_area inside the zone for `confirm_frames` frames in a row:
// intrusion (active = true). Not latched: active = false after `clear_ms` with nothing in the
// zone. Latched: raised once, then silent until reset().
class IntrusionDetector final : public ZoneDetector {
 public:
  explicit IntrusionDetector(ZoneConfig zone, int confirm_frames = 2, std::int64_t clear_ms = 5000);
  void process(const FrameView& f, std::vector<edge::Event>& out) override;
  void reset() override;
  // A latched alarm stays raised (it waits for reset()); an unlatched one is cleared.
  void disarm(std::vector<edge::Event>& out) override;
  bool raised() const { return raised_; }

 private:
  int confirm_frames_;
  std::int64_t clear_ms_;
  int occupied_run_ = 0;
  bool raised_ = false;
  std::int64_t last_occupied_ms_ = 0;
};

// A tracked blob whose track has lasted `dwell_s` inside the zone: loitering (active = true,
// value "dwell" in s), once per track; active = false when no loitering track is left.
class LoiteringDetector final : public ZoneDetector {
 public:
  explicit LoiteringDetector(ZoneConfig zone, std::int64_t max_gap_ms = 2000);
  void process(const FrameView& f, std::vector<edge::Event>& out) override;
  void disarm(std::vector<edge::Event>& out) override;

 private:
  std::optional<CentroidTracker> tracker_;
  std::int64_t max_gap_ms_;
  int loitering_ = 0;
};

// Blobs tracked across the line A→B: a track whose centroid goes from one side to the other
// (beyond a small margin, and within the segment's span) is one passage. Direction "in" is from
// the right-hand side of A→B to its left-hand side as seen on the image (A above B: right to
// left). Each passage is a people_count event with the running totals "in" and "out".
class LineCounter final : public ZoneDetector {
 public:
  explicit LineCounter(ZoneConfig zone, std::int64_t max_gap_ms = 1000);
  void process(const FrameView& f, std::vector<edge::Event>& out) override;
  std::int64_t count_in() const { return in_; }
  std::int64_t count_out() const { return out_; }

 private:
  int side_of(const cv::Point2d& p, cv::Size size, bool& within_span) const;
  std::optional<CentroidTracker> tracker_;
  std::int64_t max_gap_ms_;
  std::int64_t in_ = 0;
  std::int64_t out_ = 0;
};

// Objects thrown from height, for an upright image of a façade (top floors at the top): a small
// blob (min_area..max_area) tracked over at least `min_points` frames inside the zone, moving
// down in every step, mostly vertically, far enough, and faster and faster (a quadratic fit
// gives a positive acceleration and the later steps are clearly faster than the earlier ones).
// Sideways or upward movers and slow drifters fail one of these. One thrown_object event per
// track, with the first point seen and, when the zone has `floors`, the estimated floor band.
class ThrownObjectDetector final : public ZoneDetector {
 public:
  struct Params {
    int min_points = 4;
    double min_drop = 0.08;         // of the frame height, first to last point
    double max_slope = 0.5;         // |dx| / dy over the track
    double min_accel = 0.1;         // frame heights / s², from the fit
    double min_speed_ratio = 1.25;  // later half's mean speed / earlier half's
    double min_end_speed = 0.15;    // frame heights / s, the last step
  };
  ThrownObjectDetector(ZoneConfig zone, double fps);
  ThrownObjectDetector(ZoneConfig zone, double fps, Params p);
  void process(const FrameView& f, std::vector<edge::Event>& out) override;
  void disarm(std::vector<edge::Event>& out) override;

 private:
  std::optional<edge::Event> judge(const Track& t, cv::Size size) const;
  double fps_;
  Params p_;
  std::optional<CentroidTracker> tracker_;
};

// Camera tamper on the whole view: covered or blinded (the grey-level histogram's entropy and
// contrast collapse), defocused (variance of the Laplacian far below the reference's), moved
// (phase correlation with the reference finds a shift). The reference is learned over the
// first `learn_frames` frames and follows slow changes while the view is normal. A condition
// must hold for `confirm_frames` frames to raise camera_tamper (active = true, attrs "reason":
// covered | blinded | defocused | moved) and be gone as long to clear it (active = false).
// Phase correlation is most of the cost, so "moved" is looked for only when the caller says
// the view changed (a turned camera shows as foreground over much of the view), while a move
// is being confirmed or is raised, and otherwise on every `moved_every`-th frame.
class TamperDetector {
 public:
  struct Params {
    int learn_frames = 10;
    int confirm_frames = 3;
    double covered_entropy = 0.75;        // entropy below this share of the reference's
    double covered_stddev = 12;           // and grey-level standard deviation below this
    double blur_ratio = 0.3;              // Laplacian variance below this share of the reference's
    double min_reference_sharpness = 20;  // a reference this blurry cannot judge defocus
    double moved_px = 0.03;               // shift above this share of the width (small image)
    double adapt = 0.02;                  // reference update weight per normal frame
    int moved_every = 8;                  // frames between "moved" checks in a quiet view
  };
  TamperDetector();
  explicit TamperDetector(Params p);
  // `view_changed`: much of the view is foreground in this frame (see the class comment).
  std::vector<edge::Event> process(const cv::Mat& bgr, std::int64_t t_ms, bool view_changed = true);
  void reset_reference();  // learn again (after a camera was deliberately re-aimed)
  bool raised() const { return raised_; }
  const std::string& reason() const { return reason_; }

 private:
  Params p_;
  int learned_ = 0;
  cv::Mat ref_small_;  // CV_32F, small grey reference for phase correlation
  cv::Mat window_;
  double ref_entropy_ = 0;
  double ref_sharpness_ = 0;
  std::string candidate_;
  int candidate_run_ = 0;
  int normal_run_ = 0;
  int since_moved_check_ = 0;
  cv::Point2d candidate_shift_;  // of the first frame of a "moved" candidate
  bool raised_ = false;
  std::string reason_;
};

// Everything one stream runs on a frame: the foreground once, its zone detectors, and tamper.
// Thrown-object zones are analysed at kDetailSize when that is finer than the analysis size and
// the frame given has the pixels (docs/CAMERA.md, "Analysis size"): in a band of the frame that
// covers them, with a foreground of their own (ForegroundExtractor::Targets::small_objects).
// Events come back with device (id = stream id, kind "camera", name), location, source
// "camera" and severity set; the driver stamps ids and times.
// Zone schedules: a zone with a schedule runs its detector only while `clock`'s wall time is in
// one of its windows (local time: the stream's utc_offset_minutes); it is disarmed (see
// ZoneDetector::disarm) on the first frame outside them. Line counting has no schedule. The
// clock must outlive the analyzer; null: the system clock.
class StreamAnalyzer {
 public:
  explicit StreamAnalyzer(StreamConfig cfg, const edge::Clock* clock = nullptr);
  // `bgr`: the frame as decoded (it is resized to the analysis size, and its band cut out, here);
  // t_ms: the frame's time.
  std::vector<edge::Event> process(const cv::Mat& bgr, std::int64_t t_ms);
  // The last frame analysed, at the analysis size (it may share the pixels of the frame given).
  const cv::Mat& analysed() const { return analysed_; }
  // The band's rectangle at the band's scale, and that scale's whole view (empty: no band, the
  // thrown-object zones are analysed with the rest).
  cv::Rect band() const { return band_ ? band_->rect : cv::Rect(); }
  cv::Size band_frame_size() const { return band_ ? band_->size : cv::Size(); }
  bool reset_zone(const std::string& zone_id);  // re-arms a latched intrusion zone
  // The stream was lost: what the zones had raised and does not latch is cleared (events with
  // active = false, attrs.reason "stream lost"), tracks end, and the background is learned again
  // from the next frame. Latched zones stay raised and the tamper reference stays, so one
  // analyzer serves a stream across its reconnects (a fence alarm is not forgotten because the
  // camera dropped, and a camera moved while it was down is still found moved).
  std::vector<edge::Event> stream_lost();
  void reset_tamper_reference() { tamper_.reset_reference(); }
  const StreamConfig& config() const { return cfg_; }
  ZoneDetector* detector(const std::string& zone_id);
  // Whether the zone was armed at the last process() (true before the first).
  bool armed(const std::string& zone_id) const;

 private:
  // Zones analysed finer than the rest, in the band of the frame that covers them.
  struct Band {
    std::vector<std::size_t> zones;  // indices into zones_
    cv::Rect2d area;                 // normalised: the union of the zones' bounding boxes
    std::optional<ForegroundExtractor> fg;
    Components components;
    cv::Size size;  // the whole view at the band's scale; empty: the band is not used
    cv::Rect rect;  // the band in it
    cv::Mat frame;  // the band's pixels (a view of the frame given, or resized from it)
  };
  // Names the stream on an event: the camera as its device, its location and source.
  void label(edge::Event& e) const;
  // Cuts the band out of `bgr`; false when the band is not finer than the analysis size.
  bool cut_band(const cv::Mat& bgr, std::vector<edge::Event>& out);
  StreamConfig cfg_;
  const edge::Clock* clock_;
  ForegroundExtractor fg_;
  std::vector<std::unique_ptr<ZoneDetector>> zones_;
  std::vector<bool> armed_;    // per zone, as at the last frame
  std::vector<bool> in_band_;  // per zone: analysed in the band, when it is used
  std::optional<Band> band_;
  TamperDetector tamper_;
  Components components_;
  cv::Mat resized_;
  cv::Mat analysed_;
};

}  // namespace anju::drivers::camera
