// A test build of anjud with a stage that hangs on purpose: its pipeline thread blocks for good
// in its next tick once the file <data dir>/hang exists. The watchdog test runs it under a fake
// systemd notify socket and checks that WATCHDOG=1 stops (tests/integration/test_watchdog.cpp).
// Never installed; built with the tests only.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <filesystem>
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
    spdlog::warn("anjud_stuck: {} exists, the pipeline thread hangs now", trigger_.string());
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
  CLI::App app{"anjud_stuck - anjud with a pipeline that hangs on request (tests only)"};
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
  HangOnRequest hang(std::filesystem::path(config.data_dir) / "hang");
  anju::firmware::DaemonExtras extras;
  extras.hooks.push_back(&hang);
  return anju::firmware::run_daemon(config, nullptr, &extras);
}
