// A test build of anjud, never installed, with two things under the test's control through files
// in its data dir:
//   hang          once it exists, the pipeline thread blocks for good in its next tick (a stage
//                 that hangs on purpose: tests/integration/test_watchdog.cpp);
//   clock_synced  "1" when the clock counts as synchronised, anything else or absent when not,
//                 instead of the kernel's NTP state (tests/integration/test_clock_sync.cpp).
// Wall and monotonic time are the system's.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>

#include "anju/firmware/config.hpp"
#include "anju/firmware/daemon.hpp"

namespace {

class HangOnRequest final : public anju::edge::PipelineHook {
 public:
  explicit HangOnRequest(std::filesystem::path trigger) : trigger_(std::move(trigger)) {}
  void on_tick(anju::edge::Journal&, std::int64_t) override {
    if (!std::filesystem::exists(trigger_)) return;
    spdlog::warn("anjud_test: {} exists, the pipeline thread hangs now", trigger_.string());
    std::unique_lock lock(mu_);
    cv_.wait(lock, [] { return false; });  // for good: the test ends the process
  }

 private:
  std::filesystem::path trigger_;
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"anjud_test - anjud with a hang and a clock under a test's control"};
  std::string config_path;
  anju::firmware::DaemonOverrides o;
  app.add_option("-c,--config", config_path, "YAML config file")->required();
  app.add_option("--data-dir", o.data_dir, "data directory")->required();
  CLI11_PARSE(app, argc, argv);
  auto result = anju::firmware::load_config(config_path);
  if (!result.config) {
    for (const auto& e : result.errors) std::cerr << e.to_string() << "\n";
    return 2;
  }
  anju::firmware::Config config = *result.config;
  anju::firmware::apply_overrides(config, o);
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  const std::filesystem::path dir(config.data_dir);
  HangOnRequest hang(dir / "hang");
  anju::edge::SystemClock clock([file = dir / "clock_synced"] {
    std::ifstream in(file);
    std::string s;
    return std::getline(in, s) && s == "1";
  });
  anju::firmware::DaemonExtras extras;
  extras.hooks.push_back(&hang);
  extras.clock = &clock;
  return anju::firmware::run_daemon(config, nullptr, &extras);
}
