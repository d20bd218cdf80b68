// The daemon's view of the camera driver. The driver and its analytics live in a module,
// anju-camera.so, because they need OpenCV: Debian's OpenCV brings some 250 shared objects (gdal,
// gdcm, poppler, dnn, ...) whose relocated pages cost anjud tens of MB even with no camera. anjud
// maps the module, and with it OpenCV, only when `cameras.streams` is set (load_camera_driver).
// Nothing in this header or in the loader depends on OpenCV.
//
// The module is found at <directory of the running executable>/../lib/anju/anju-camera.so: in a
// build tree build/bin/anjud -> build/lib/anju/, installed /usr/bin/anjud -> /usr/lib/anju/. It is
// built from the same sources as anjud and refuses to load into a different version (the objects
// cross the boundary as C++ types, so both sides must agree on their layout).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "anju/drivers/camera/camera_config.hpp"
#include "anju/drivers/camera/evidence.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers::camera {

struct CameraDriverOptions {
  std::string site;
  std::string grid_code;
  std::vector<StreamConfig> streams;
  std::chrono::milliseconds reconnect_min{1000};
  std::chrono::milliseconds reconnect_max{60000};
  std::chrono::milliseconds open_timeout{10000};  // FFmpeg sources
  std::chrono::milliseconds read_timeout{5000};   // no frame for this long: offline
  std::chrono::seconds status_interval{600};      // 0: no periodic status event
  bool reopen_files = true;                       // a local file that ended is played again
  // cv::setNumThreads() at start(): 0 = OpenCV runs each call on the calling stream thread (the
  // streams are the parallelism); -1 = leave OpenCV's setting. Process-wide.
  int opencv_threads = 0;
  // Snapshots and clips of the alert-raising events (evidence.hpp); evidence.dir empty: none.
  EvidenceOptions evidence;
};

struct CameraStreamStats {
  std::string id;
  bool online = false;
  std::int64_t frames_read = 0;
  std::int64_t frames_analysed = 0;
  std::int64_t events = 0;
  std::int64_t connects = 0;  // successful opens
  std::int64_t failures = 0;  // failed opens and lost streams
  std::string last_error;
};

class CameraService {
 public:
  // Called on the stream threads; false means the pipeline is stopping.
  using Sink = std::function<bool(std::vector<edge::Event>)>;
  virtual ~CameraService() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  // Re-arms a latched intrusion zone (done by the stream's thread before its next frame).
  virtual bool reset_zone(const std::string& stream_id, const std::string& zone_id) = 0;
  virtual std::vector<CameraStreamStats> stats() const = 0;
  // Evidence for an alert another source raised where this stream looks (its `covers`): the
  // stream writes a snapshot and clip named by `cause`'s id on its next analysed frame. Does not
  // block (it queues). False for an unknown stream or when evidence is off.
  virtual bool capture_evidence(const std::string& stream_id, const edge::Event& cause) = 0;
};

// The stream's device_online / device_offline / measurement event, as the driver reports it
// (device kind "camera", source "camera", the URL without credentials).
edge::Event stream_status_event(const StreamConfig& stream, edge::EventKind kind,
                                const std::string& reason);

struct CameraLoad {
  std::unique_ptr<CameraService> service;  // null when the module could not be used
  std::string path;                        // the module's path, tried or loaded
  std::string error;                       // why not: names the path and the cause
};

// Loads the module (once per process; it stays mapped) and makes a driver for `options`.
// `module_path` empty: the default path above. The clock must outlive the service.
CameraLoad load_camera_driver(CameraDriverOptions options, const edge::Clock& clock,
                              CameraService::Sink sink, const std::string& module_path = {});

// What both sides of the module boundary must agree on: Anju's version, the revision of the
// CameraService interface (kCameraInterface: raise it when a virtual function changes) and the
// sizes of the types that cross it. The module answers with its own (anju_camera_module_abi); a
// mismatch is refused.
inline constexpr int kCameraInterface = 2;
std::string camera_module_abi();

// The default module path for this executable.
std::string default_camera_module_path();

}  // namespace anju::drivers::camera
