// anjud: the Anju gateway daemon.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

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
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  try {
    return anju::firmware::run_daemon(config);
  } catch (const std::exception& e) {
    spdlog::critical("anjud: {}", e.what());
    return 1;
  }
}
