// Evidence for camera alerts (issue 5, "Evidence"): a snapshot and a short clip per alert-raising
// event, kept on the gateway's disk and never sent anywhere by the camera driver.
//
// Each stream keeps the analysed frames (as decoded, scaled to fit max_width x max_height; the
// analyser itself may see a smaller copy) of the last `pre_s` seconds as JPEG (a ring of encoded
// frames: no raw frame is kept). An event that raises an alert (intrusion, loitering, a thrown
// object, camera tamper) triggers: its evidence directory, named by the event's id, gets at once
//   snapshot.jpg       the frame that triggered
//   frames/NNNNNN.jpg  the ring's frames (the seconds before), then each analysed frame for
//                      `post_s` seconds after
//   evidence.json      {"id", "stream", "kind", "ts_ms", "snapshot", "frames": [{"file",
//                      "offset_ms"}], "complete"}: rewritten (atomically) at the trigger and when
//                      the clip is complete
// and the event carries attrs.evidence = its id. A trigger within min_interval_s of the last clip
// shares it (attrs.evidence names that clip), which bounds what a busy stream writes to one clip
// per interval. The clip is an image sequence: the frames are
// already JPEG, so nothing is decoded or encoded twice; a browser shows them one after another.
// The budget and the retention of what is on disk are anjud's (edge/evidence_store.hpp).
// Thread: one recorder per stream, used by its thread only. No OpenCV here: frames come encoded.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "anju/drivers/camera/camera_config.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers::camera {

struct EvidenceOptions {
  std::string dir;    // empty: no evidence
  double pre_s = 10;  // seconds of frames before the trigger
  double post_s = 5;  // seconds of frames after it
  int jpeg_quality = 80;
  // A trigger within this many seconds of the last clip's shares that clip (the same scene; a
  // busy gate would otherwise write a clip per passer-by).
  double min_interval_s = 60;
  // The frames are the decoded ones scaled down to fit this box, aspect kept (evidence_size); not
  // the analysis copy, which may be smaller than a person can read.
  int max_width = 640;
  int max_height = 360;
};

// The size evidence frames are kept at: `decoded` scaled down to fit max_width x max_height with
// its aspect ratio kept, never scaled up (a frame that fits is kept as it is).
FrameSize evidence_size(FrameSize decoded, int max_width, int max_height);

// True for the kinds whose events get evidence (those that raise an alert; not their clearing).
bool wants_evidence(const edge::Event& e);

class EvidenceRecorder {
 public:
  using Jpeg = std::shared_ptr<const std::vector<unsigned char>>;
  EvidenceRecorder(EvidenceOptions options, std::string stream_id);
  ~EvidenceRecorder();  // finishes the open clips as they are

  // Each analysed frame, encoded, with its time (media or monotonic ms; the same clock as the
  // trigger's frame). Adds it to the ring and to the open clips, and finishes those whose time is
  // up.
  void frame(std::int64_t t_ms, Jpeg jpeg);
  // `e` (stamped: its id is the evidence id) was raised on the frame of time t_ms, the newest
  // given to frame(). Writes the snapshot and the frames before; sets e.attrs.evidence. False
  // (and the event unchanged) when it cannot write: the event goes on without evidence.
  // `force`: a clip of its own even within min_interval_s (another source's alert, which finds
  // its evidence by its own event id).
  bool trigger(edge::Event& e, std::int64_t t_ms, bool force = false);
  std::size_t open_clips() const { return clips_.size(); }
  std::int64_t failures() const { return failures_; }

 private:
  struct Clip {
    std::string id, dir, kind;
    std::int64_t ts_ms = 0;                                    // the event's wall time
    std::int64_t trigger_t = 0;                                // frame time of the trigger
    std::vector<std::pair<std::string, std::int64_t>> frames;  // file, offset from the trigger
  };
  bool add(Clip& c, std::int64_t t_ms, const Jpeg& jpeg);
  bool write_index(const Clip& c, bool complete);
  void finish(Clip& c);

  EvidenceOptions options_;
  std::string stream_;
  std::deque<std::pair<std::int64_t, Jpeg>> ring_;
  std::vector<Clip> clips_;
  std::string last_id_;  // the newest clip, and the frame time of its trigger
  std::int64_t last_t_ = 0;
  std::int64_t failures_ = 0;
};

}  // namespace anju::drivers::camera
