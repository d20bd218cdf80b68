// anjud: the Anju gateway daemon.
#include <fcntl.h>
#include <linux/close_range.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "anju/drivers/camera/camera_config.hpp"
#include "anju/drivers/camera/camera_service.hpp"
#include "anju/edge/clock.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/daemon.hpp"

int main(int argc, char** argv) {
  CLI::App app{"anjud - Anju edge gateway daemon"};
  std::string config_path;
  anju::firmware::DaemonOverrides o;
  bool check_only = false;
  app.add_option("-c,--config", config_path,
                 "YAML config file (default: the embedded demo config)");
  app.add_option("--data-dir", o.data_dir, "data directory (overrides data_dir)");
  app.add_option("--local-broker", o.local_broker, "local broker URI (overrides local_broker.uri)");
  app.add_option("--uplink-broker", o.uplink_broker,
                 "city broker URI (overrides uplink.broker.uri)");
  app.add_flag("--check-config", check_only, "validate the config and exit");
  CLI11_PARSE(app, argc, argv);

  auto result = config_path.empty()
                    ? anju::firmware::parse_config(anju::firmware::demo_config_text(),
                                                   "<embedded demo config>")
                    : anju::firmware::load_config(config_path);
  if (!result.config) {
    for (const auto& e : result.errors) std::cerr << e.to_string() << "\n";
    std::cerr << "anjud: config has " << result.errors.size() << " error(s); not starting\n";
    return 2;
  }
  anju::firmware::Config config = *result.config;
  anju::firmware::apply_overrides(config, o);
  if (check_only) {
    std::cout << "config OK: " << (config_path.empty() ? "<embedded demo config>" : config_path)
              << "\n";
    // A camera's credentials file is read as the driver will read it. A problem is a warning,
    // not a config error: anjud starts without that camera (it stays offline with the same
    // reason) and everything else runs, as with any device that is not there yet.
    for (const auto& stream : config.cameras.streams) {
      if (stream.credentials_file.empty()) continue;
      auto url = anju::drivers::camera::open_url_with_credentials(stream);
      std::fill(url.url.begin(), url.url.end(), '\0');
      if (!url.error.empty())
        std::cerr << "anjud: warning: camera " << stream.id << " will stay offline: " << url.error
                  << "\n";
    }
    // With cameras, the module that watches them must load too (it is made, not started).
    if (!config.cameras.streams.empty()) {
      anju::drivers::camera::CameraDriverOptions co;
      co.streams = config.cameras.streams;
      anju::edge::SystemClock clock;
      auto loaded = anju::drivers::camera::load_camera_driver(
          co, clock, [](std::vector<anju::edge::Event>) { return true; }, config.cameras.module);
      if (!loaded.service) {
        std::cerr << "anjud: " << config.cameras.streams.size()
                  << " camera streams configured, but " << loaded.error << "\n";
        return 1;
      }
      std::cout << "camera module OK: " << loaded.path << "\n";
    }
    return 0;
  }
  // A config the city applied (or one on trial) wins over the file; the command line's overrides
  // apply to it too (firmware/config_trial.hpp).
  auto start = anju::firmware::choose_start_config(
      config, [&o](anju::firmware::Config& c) { anju::firmware::apply_overrides(c, o); });
  spdlog::set_level(spdlog::level::from_str(start.config.log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  for (const auto& w : start.warnings) spdlog::error("config: {}", w);
  if (start.source != "file")
    spdlog::info("config: running with the city's {}config ({})",
                 start.source == "trial" ? "new " : "", start.config.source_file);
  anju::firmware::DaemonExtras extras;
  extras.config_source = start.source;
  extras.config_trial = start.trial;
  int rc = 1;
  try {
    rc = anju::firmware::run_daemon(start.config, nullptr, &extras);
  } catch (const std::exception& e) {
    spdlog::critical("anjud: {}", e.what());
    if (!start.trial) return 1;
    // The new config cannot even start: back to the previous one.
    const auto error = anju::firmware::reject_config_trial(
        start.config.data_dir, std::string("anjud could not start with it: ") + e.what());
    if (!error.empty()) spdlog::error("config: {}", error);
    rc = anju::firmware::kExitRestart;
  }
  if (rc != anju::firmware::kExitRestart) return rc;
  // Start again in this process (same PID, same arguments): every descriptor but the standard
  // three is closed on exec; a signal that arrived meanwhile stays pending and is handled there.
  spdlog::info("anjud: starting again");
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)  // before Linux 5.11: one by one
    for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::execv("/proc/self/exe", argv);
  spdlog::critical("anjud: cannot start again ({}); exiting for the service manager to restart it",
                   std::strerror(errno));
  return rc;
}
