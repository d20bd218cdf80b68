#include "anju/edge/clock.hpp"

#include <sys/stat.h>
#include <sys/timex.h>
#include <time.h>

#include <fstream>

#include "anju/edge/event.hpp"
#include "anju/edge/uuid.hpp"

namespace anju::edge {

std::int64_t SystemClock::wall_ms() const {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::int64_t SystemClock::mono_ns() const {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool SystemClock::synced() const {
  const std::int64_t now = mono_ns();
  const std::int64_t at = checked_at_ns_.load(std::memory_order_relaxed);
  if (at < 0 || now - at > 1'000'000'000) {
    synced_.store(probe_(), std::memory_order_relaxed);
    checked_at_ns_.store(now, std::memory_order_relaxed);
  }
  return synced_.load(std::memory_order_relaxed);
}

bool SystemClock::kernel_synced() {
  timex tx{};
  const int state = adjtimex(&tx);
  // TIME_ERROR means the kernel considers the clock unsynchronised (STA_UNSYNC).
  if (state >= 0) return state != TIME_ERROR && !(tx.status & STA_UNSYNC);
  // Refused (a sandbox's syscall filter, e.g. systemd's ProtectClock=): systemd-timesyncd's flag
  // file, which it creates once it has synchronised the clock.
  struct stat st {};
  return ::stat("/run/systemd/timesync/synchronized", &st) == 0;
}

const std::string& boot_id() {
  static const std::string id = [] {
    std::ifstream f("/proc/sys/kernel/random/boot_id");
    std::string s;
    std::getline(f, s);
    return s.empty() ? std::string("unknown") : s;
  }();
  return id;
}

Event gateway_event(EventKind kind, const Clock& clock) {
  Event e;
  e.ts_ms = clock.wall_ms();
  e.id = uuid_v7(e.ts_ms);
  e.mono_ns = clock.mono_ns();
  e.boot_id = boot_id();
  e.clock_synced = clock.synced();
  e.kind = kind;
  return e;
}

}  // namespace anju::edge
