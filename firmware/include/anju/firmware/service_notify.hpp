// systemd service notifications (sd_notify): READY once every stage has started, STATUS lines,
// STOPPING, and the watchdog. anjud pets the watchdog only while its stages are alive, so a stuck
// stage gets it restarted (WatchdogSec in anjud.service). Outside systemd every call is a no-op.
// Thread: any; the calls are independent datagrams.
#pragma once

#include <chrono>
#include <string>

namespace anju::firmware {

class ServiceNotifier {
 public:
  ServiceNotifier();
  bool under_systemd() const { return under_systemd_; }
  // The interval systemd expects pets at (half of WatchdogSec), or zero when there is no watchdog.
  std::chrono::milliseconds watchdog_interval() const { return interval_; }
  void ready(const std::string& status);
  void status(const std::string& status);
  void stopping();
  void pet();

 private:
  bool under_systemd_ = false;
  std::chrono::milliseconds interval_{0};
};

}  // namespace anju::firmware
