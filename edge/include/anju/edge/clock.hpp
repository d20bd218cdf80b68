// Time as data. Everything that needs "now" takes a Clock&, so tests drive time by hand.
// Thread: SystemClock is thread-safe; ManualClock is safe to read from any thread while one
// thread advances it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace anju::edge {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t wall_ms() const = 0;  // ms since the Unix epoch
  virtual std::int64_t mono_ns() const = 0;  // monotonic, ns
  virtual bool synced() const = 0;           // wall clock known to be synchronised
  std::int64_t mono_ms() const { return mono_ns() / 1'000'000; }
};

class SystemClock final : public Clock {
 public:
  // `sync_probe` says whether the clock is synchronised; by default the kernel's NTP state
  // (adjtimex: systemd-timesyncd and chrony clear STA_UNSYNC once they have synchronised it).
  explicit SystemClock(std::function<bool()> sync_probe = kernel_synced)
      : probe_(std::move(sync_probe)) {}
  std::int64_t wall_ms() const override;
  std::int64_t mono_ns() const override;
  // The probe's answer, asked at most once a second.
  bool synced() const override;
  static bool kernel_synced();

 private:
  std::function<bool()> probe_;
  mutable std::atomic<std::int64_t> checked_at_ns_{-1};
  mutable std::atomic<bool> synced_{false};
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t wall_ms = 1'760'000'000'000, bool synced = true)
      : wall_ms_(wall_ms), synced_(synced) {}
  std::int64_t wall_ms() const override { return wall_ms_.load(); }
  std::int64_t mono_ns() const override { return mono_ns_.load(); }
  bool synced() const override { return synced_.load(); }
  void advance_ms(std::int64_t ms) {
    wall_ms_ += ms;
    mono_ns_ += ms * 1'000'000;
  }
  void set_synced(bool s) { synced_ = s; }

 private:
  std::atomic<std::int64_t> wall_ms_;
  std::atomic<std::int64_t> mono_ns_{1'000'000'000};
  std::atomic<bool> synced_;
};

// The kernel's boot id (/proc/sys/kernel/random/boot_id), read once.
const std::string& boot_id();

}  // namespace anju::edge
