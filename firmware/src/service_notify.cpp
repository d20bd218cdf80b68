#include "anju/firmware/service_notify.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstdlib>

namespace anju::firmware {

ServiceNotifier::ServiceNotifier() {
  under_systemd_ = std::getenv("NOTIFY_SOCKET") != nullptr;
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    interval_ = std::chrono::milliseconds(usec / 2000);  // pet twice per WatchdogSec
}

void ServiceNotifier::ready(const std::string& status) {
  if (under_systemd_) sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void ServiceNotifier::status(const std::string& status) {
  if (under_systemd_) sd_notifyf(0, "STATUS=%s", status.c_str());
}

void ServiceNotifier::stopping() {
  if (under_systemd_) sd_notify(0, "STOPPING=1");
}

void ServiceNotifier::pet() {
  if (under_systemd_) sd_notify(0, "WATCHDOG=1");
}

}  // namespace anju::firmware
