#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "anju/drivers/camera/evidence.hpp"

namespace anju::drivers::camera {
namespace fs = std::filesystem;

namespace {

// Writes `bytes` to `path` through a temporary file and a rename: a reader (the dashboard, the
// pruner) never sees half a file. No fsync: evidence is best effort, the journal is not.
bool write_file_atomic(const std::string& path, const void* data, std::size_t size) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return false;
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  const bool ok = ::close(fd) == 0 && left == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

FrameSize evidence_size(FrameSize decoded, int max_width, int max_height) {
  if (decoded.width <= 0 || decoded.height <= 0 || max_width <= 0 || max_height <= 0) return {};
  if (decoded.width <= max_width && decoded.height <= max_height) return decoded;
  // The smaller of the two scales, in integers: w * max_h <= h * max_w means height limits.
  const auto w = static_cast<std::int64_t>(decoded.width);
  const auto h = static_cast<std::int64_t>(decoded.height);
  if (w * max_height <= h * max_width)
    return {static_cast<int>(std::max<std::int64_t>(1, (w * max_height + h / 2) / h)), max_height};
  return {max_width, static_cast<int>(std::max<std::int64_t>(1, (h * max_width + w / 2) / w))};
}

bool wants_evidence(const edge::Event& e) {
  using K = edge::EventKind;
  const bool kind = e.kind == K::intrusion || e.kind == K::loitering ||
                    e.kind == K::thrown_object || e.kind == K::camera_tamper;
  return kind && e.active.value_or(true);
}

EvidenceRecorder::EvidenceRecorder(EvidenceOptions options, std::string stream_id)
    : options_(std::move(options)), stream_(std::move(stream_id)) {}

EvidenceRecorder::~EvidenceRecorder() {
  for (auto& c : clips_) finish(c);
}

bool EvidenceRecorder::add(Clip& c, std::int64_t t_ms, const Jpeg& jpeg) {
  char name[32];
  std::snprintf(name, sizeof name, "%06zu.jpg", c.frames.size());
  if (!write_file_atomic(c.dir + "/frames/" + name, jpeg->data(), jpeg->size())) return false;
  c.frames.emplace_back(std::string("frames/") + name, t_ms - c.trigger_t);
  return true;
}

bool EvidenceRecorder::write_index(const Clip& c, bool complete) {
  nlohmann::json frames = nlohmann::json::array();
  for (const auto& [file, offset] : c.frames)
    frames.push_back({{"file", file}, {"offset_ms", offset}});
  const std::string body = nlohmann::json{
      {"id", c.id},          {"stream", stream_},          {"kind", c.kind},
      {"ts_ms", c.ts_ms},    {"snapshot", "snapshot.jpg"}, {"frames", frames},
      {"complete", complete}}.dump();
  return write_file_atomic(c.dir + "/evidence.json", body.data(), body.size());
}

void EvidenceRecorder::finish(Clip& c) {
  if (!write_index(c, true)) ++failures_;
}

void EvidenceRecorder::frame(std::int64_t t_ms, Jpeg jpeg) {
  if (!jpeg || options_.dir.empty()) return;
  ring_.emplace_back(t_ms, jpeg);
  const auto keep_ms = static_cast<std::int64_t>(options_.pre_s * 1000);
  while (!ring_.empty() && ring_.front().first < t_ms - keep_ms) ring_.pop_front();
  const auto post_ms = static_cast<std::int64_t>(options_.post_s * 1000);
  for (auto it = clips_.begin(); it != clips_.end();) {
    if (t_ms > it->trigger_t && !add(*it, t_ms, jpeg)) ++failures_;
    // Done when its time is up, or when time went back (a replayed file started again).
    if (t_ms >= it->trigger_t + post_ms || t_ms < it->trigger_t) {
      finish(*it);
      it = clips_.erase(it);
    } else {
      ++it;
    }
  }
}

bool EvidenceRecorder::trigger(edge::Event& e, std::int64_t t_ms, bool force) {
  if (options_.dir.empty() || ring_.empty() || e.id.empty()) return false;
  for (const auto& c : clips_)
    if (c.id == e.id) return true;  // already recording for this event
  const auto interval_ms = static_cast<std::int64_t>(options_.min_interval_s * 1000);
  if (!force && !last_id_.empty() && t_ms >= last_t_ && t_ms - last_t_ < interval_ms) {
    e.attrs["evidence"] = last_id_;  // the same scene: its clip
    return true;
  }
  Clip c;
  c.id = e.id;
  c.dir = options_.dir + "/" + e.id;
  c.kind = std::string(edge::to_string(e.kind));
  c.ts_ms = e.ts_ms;
  c.trigger_t = t_ms;
  std::error_code ec;
  fs::create_directories(c.dir + "/frames", ec);
  const Jpeg& snap = ring_.back().second;
  bool ok = !ec && write_file_atomic(c.dir + "/snapshot.jpg", snap->data(), snap->size());
  for (const auto& [t, jpeg] : ring_) {
    if (!ok) break;
    ok = add(c, t, jpeg);
  }
  ok = ok && write_index(c, options_.post_s <= 0);
  if (!ok) {
    ++failures_;
    spdlog::warn("camera {}: evidence for {} not written to {}: {}", stream_, e.id, c.dir,
                 ec ? ec.message() : std::strerror(errno));
    fs::remove_all(c.dir, ec);
    return false;
  }
  e.attrs["evidence"] = e.id;
  last_id_ = e.id;
  last_t_ = t_ms;
  if (options_.post_s > 0) clips_.push_back(std::move(c));
  return true;
}

}  // namespace anju::drivers::camera
