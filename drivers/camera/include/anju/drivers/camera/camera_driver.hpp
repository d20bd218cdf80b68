// The camera driver: one capture thread per stream (cv::VideoCapture: RTSP and HTTP through
// FFmpeg, local files, V4L2 devices). The thread grabs every frame so that the decoder and the
// network buffer never fall behind, but converts and analyses only the newest one when the
// analysis is due (the configured fps, on a copy downscaled to the analysis size): there is never
// a queue of frames. Events go to the sink (Pipeline::submit) like every other driver's.
//
// Stream supervision: the first frame after (re)connecting raises device_online (device kind
// "camera"); a stream that cannot be opened, ends, or gives no frame within `read_timeout`
// raises device_offline once with the reason, and is reopened with exponential backoff
// (reconnect_min doubling up to reconnect_max). The rule engine turns device_offline into the
// usual severity-3 alert and the city bridge into a status message, as for any device.
// Every `status_interval` an online stream reports a `measurement` event (fps read/analysed)
// that also keeps the rule engine's heartbeat supervision satisfied.
//
// Local files are analysed in media time (the file's own timestamps, as fast as they decode):
// replays and tests give the same events whatever the CPU. Live sources use the monotonic clock.
// Built into the module anju-camera.so, which anjud loads through camera_service.hpp; tests and
// benchmarks link the library anju_camera directly.
// Thread: start() and stop() from one thread (the daemon's main thread); stats() and
// reset_zone() from any thread. The sink is called on the stream threads (blocking under
// back-pressure is fine: the stream's frames are not analysed meanwhile, never queued).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "anju/drivers/camera/camera_service.hpp"

namespace anju::drivers::camera {

class CameraDriver final : public CameraService {
 public:
  CameraDriver(CameraDriverOptions options, const edge::Clock& clock, Sink sink);
  ~CameraDriver() override;
  CameraDriver(const CameraDriver&) = delete;
  CameraDriver& operator=(const CameraDriver&) = delete;

  void start() override;
  // Stops and joins every stream thread. A thread blocked in a network read returns within
  // read_timeout (FFmpeg's own timeout), so stop() can take that long.
  void stop() override;
  // Re-arms a latched intrusion zone (done by the stream's thread before its next frame).
  bool reset_zone(const std::string& stream_id, const std::string& zone_id) override;
  std::vector<CameraStreamStats> stats() const override;
  bool capture_evidence(const std::string& stream_id, const edge::Event& cause) override;

 private:
  struct Stream;
  void run(Stream& s);
  void stamp(std::vector<edge::Event>& events);
  void emit(Stream& s, std::vector<edge::Event> events, bool stamped = false);
  bool wait_stop(std::chrono::milliseconds d);

  CameraDriverOptions options_;
  const edge::Clock& clock_;
  Sink sink_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool started_ = false;
};

}  // namespace anju::drivers::camera
