// A test build of anjud, never installed, with two things under the test's control through files
// in its data dir:
//   hang          once it exists, the pipeline thread blocks for good in its next tick (a stage
//                 that hangs on purpose: tests/integration/test_watchdog.cpp);
//   clock_synced  "1" when the clock counts as synchronised, anything else or absent when not,
//                 instead of the kernel's NTP state (tests/integration/test_clock_sync.cpp).
//   gpio-<chip>.in   a FIFO standing in for a GPIO chip's inputs (access.gpio_doors): each line
//                 "<line> <0|1>" is an edge stamped now; "wiegand <bits>" is a Wiegand frame, its
//                 D0/D1 pulses 2 ms apart from now (stamped ahead: the driver sees them at once,
//                 as if they had come over 2 ms each) (tests/integration/test_access_gateway.cpp);
//   gpio-<chip>.out  every write to the chip's outputs, a line "<line> <0|1>" each.
//                 A chip named /dev/... is opened with the real libgpiod instead.
// Wall and monotonic time are the system's.
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "anju/drivers/door_io.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/daemon.hpp"

namespace {

namespace acs = anju::drivers::access;

std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// GPIO lines behind two files in the data dir (see the top of this file). Levels and the edge
// queue are a SimulatedGpio's; time is CLOCK_MONOTONIC, like libgpiod's edge stamps.
class FifoGpio final : public acs::GpioLines {
 public:
  FifoGpio(const std::filesystem::path& dir, const std::string& chip,
           const std::vector<acs::GpioLineSpec>& inputs,
           const std::vector<acs::GpioLineSpec>& outputs)
      : sim_(names(inputs), names(outputs)), out_path_(dir / ("gpio-" + chip + ".out")) {
    const auto in_path = dir / ("gpio-" + chip + ".in");
    if (::mkfifo(in_path.c_str(), 0600) != 0 && errno != EEXIST)
      throw std::runtime_error(in_path.string() + ": " + std::strerror(errno));
    // Read and write: the FIFO never reports end of file, and the destructor can wake the reader.
    fd_ = ::open(in_path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error(in_path.string() + ": " + std::strerror(errno));
    reader_ = std::thread([this] { read_lines(); });
  }
  ~FifoGpio() override {
    const char quit[] = "\n.quit\n";
    [[maybe_unused]] auto n = ::write(fd_, quit, sizeof quit - 1);
    reader_.join();
    ::close(fd_);
  }

  std::vector<acs::LineEdge> wait_edges(std::int64_t timeout_ms) override {
    return sim_.wait_edges(timeout_ms);
  }
  std::optional<bool> get(const std::string& input) override { return sim_.get(input); }
  bool set(const std::string& output, bool active) override {
    if (!sim_.set(output, active)) return false;
    std::ofstream(out_path_, std::ios::app) << output << ' ' << (active ? 1 : 0) << std::endl;
    return true;
  }
  std::int64_t now_ns() const override { return monotonic_ns(); }
  void interrupt() override { sim_.interrupt(); }

 private:
  static std::vector<std::string> names(const std::vector<acs::GpioLineSpec>& specs) {
    std::vector<std::string> out;
    for (const auto& s : specs) out.push_back(s.name);
    return out;
  }
  void read_lines() {
    std::string buf;
    char chunk[256];
    for (;;) {
      const auto n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      buf.append(chunk, static_cast<std::size_t>(n));
      for (auto nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n')) {
        const std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        if (line == ".quit") return;
        std::istringstream in(line);
        std::string name, value;
        if (!(in >> name >> value)) continue;
        if (name == "wiegand") {
          anju::drivers::wiegand::Bits bits;
          for (char c : value) bits.push_back(c == '1');
          sim_.push_wiegand(bits, monotonic_ns(), 2'000'000);
        } else if (!sim_.push(name, value == "1", monotonic_ns())) {
          spdlog::warn("anjud_test: gpio: no input line '{}'", name);
        }
      }
    }
  }

  acs::SimulatedGpio sim_;
  std::filesystem::path out_path_;
  int fd_ = -1;
  std::thread reader_;
};

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
  extras.open_gpio = [dir](const std::string& chip, const std::vector<acs::GpioLineSpec>& inputs,
                           const std::vector<acs::GpioLineSpec>& outputs) {
    if (chip.rfind("/dev/", 0) == 0) return acs::open_libgpiod(chip, inputs, outputs);
    return std::unique_ptr<acs::GpioLines>(new FifoGpio(dir, chip, inputs, outputs));
  };
  return anju::firmware::run_daemon(config, nullptr, &extras);
}
