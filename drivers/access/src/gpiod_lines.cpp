// GpioLines on libgpiod v1.6 (Debian 12). Compiled to a stub that throws when the build did not
// find libgpiod (ANJU_HAVE_LIBGPIOD undefined).
#include <stdexcept>

#include "anju/drivers/door_io.hpp"

#ifdef ANJU_HAVE_LIBGPIOD
#include <gpiod.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#endif

namespace anju::drivers::access {

#ifdef ANJU_HAVE_LIBGPIOD
namespace {

class LibgpiodLines final : public GpioLines {
 public:
  LibgpiodLines(const std::string& chip, const std::vector<GpioLineSpec>& inputs,
                const std::vector<GpioLineSpec>& outputs)
      : chip_name_(chip) {
    chip_ = ::gpiod_chip_open_lookup(chip.c_str());
    if (!chip_)
      throw std::runtime_error("gpio chip '" + chip + "': cannot open: " + std::strerror(errno));
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    try {
      for (const auto& s : inputs) {
        gpiod_line* line = get(s);
        int flags = s.active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
        if (s.pull_up) flags |= GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP;
        if (::gpiod_line_request_both_edges_events_flags(line, "anju", flags) != 0)
          fail(s, "cannot request edge events");
        inputs_.push_back({s.name, line});
      }
      for (const auto& s : outputs) {
        gpiod_line* line = get(s);
        const int flags = s.active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
        if (::gpiod_line_request_output_flags(line, "anju", flags, 0) != 0)
          fail(s, "cannot request as an output");
        outputs_.push_back({s.name, line});
      }
    } catch (...) {
      close_all();
      throw;
    }
  }
  ~LibgpiodLines() override { close_all(); }

  std::vector<LineEdge> wait_edges(std::int64_t timeout_ms) override {
    std::vector<pollfd> fds;
    for (const auto& in : inputs_) fds.push_back({::gpiod_line_event_get_fd(in.line), POLLIN, 0});
    fds.push_back({wake_fd_, POLLIN, 0});
    std::vector<LineEdge> out;
    const int rc =
        ::poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(timeout_ms, 0)));
    if (rc <= 0) return out;
    if (fds.back().revents & POLLIN) {
      std::uint64_t v;
      [[maybe_unused]] auto n = ::read(wake_fd_, &v, sizeof v);
    }
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      std::array<gpiod_line_event, 16> evs{};
      const int n = ::gpiod_line_event_read_multiple(inputs_[i].line, evs.data(),
                                                     static_cast<unsigned>(evs.size()));
      for (int k = 0; k < n; ++k)
        out.push_back(
            {inputs_[i].name,
             evs[static_cast<std::size_t>(k)].event_type == GPIOD_LINE_EVENT_RISING_EDGE,
             static_cast<std::int64_t>(evs[static_cast<std::size_t>(k)].ts.tv_sec) * 1'000'000'000 +
                 evs[static_cast<std::size_t>(k)].ts.tv_nsec});
    }
    // Lines are polled one by one: keep the edges in time order across lines (Wiegand D0/D1).
    std::stable_sort(out.begin(), out.end(), [](const LineEdge& a, const LineEdge& b) {
      return a.timestamp_ns < b.timestamp_ns;
    });
    return out;
  }

  std::optional<bool> get(const std::string& input) override {
    for (const auto& in : inputs_)
      if (in.name == input) {
        const int v = ::gpiod_line_get_value(in.line);
        if (v < 0) return std::nullopt;
        return v == 1;
      }
    return std::nullopt;
  }

  bool set(const std::string& output, bool active) override {
    for (const auto& o : outputs_)
      if (o.name == output) return ::gpiod_line_set_value(o.line, active ? 1 : 0) == 0;
    return false;
  }

  std::int64_t now_ns() const override {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }

  void interrupt() override {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }

 private:
  struct Named {
    std::string name;
    gpiod_line* line;
  };

  gpiod_line* get(const GpioLineSpec& s) {
    gpiod_line* line = ::gpiod_chip_get_line(chip_, s.offset);
    if (!line) fail(s, "no such line");
    return line;
  }
  [[noreturn]] void fail(const GpioLineSpec& s, const std::string& what) {
    throw std::runtime_error("gpio chip '" + chip_name_ + "' line " + std::to_string(s.offset) +
                             " ('" + s.name + "'): " + what + ": " + std::strerror(errno));
  }
  void close_all() {
    for (auto& l : inputs_) ::gpiod_line_release(l.line);
    for (auto& l : outputs_) ::gpiod_line_release(l.line);
    inputs_.clear();
    outputs_.clear();
    if (chip_) ::gpiod_chip_close(chip_);
    chip_ = nullptr;
    if (wake_fd_ >= 0) ::close(wake_fd_);
    wake_fd_ = -1;
  }

  std::string chip_name_;
  gpiod_chip* chip_ = nullptr;
  int wake_fd_ = -1;
  std::vector<Named> inputs_, outputs_;
};

}  // namespace

std::unique_ptr<GpioLines> open_libgpiod(const std::string& chip,
                                         const std::vector<GpioLineSpec>& inputs,
                                         const std::vector<GpioLineSpec>& outputs) {
  return std::make_unique<LibgpiodLines>(chip, inputs, outputs);
}

bool have_libgpiod() {
  return true;
}

#else

std::unique_ptr<GpioLines> open_libgpiod(const std::string& chip, const std::vector<GpioLineSpec>&,
                                         const std::vector<GpioLineSpec>&) {
  throw std::runtime_error("gpio chip '" + chip +
                           "': this build has no libgpiod (install libgpiod-dev and rebuild)");
}

bool have_libgpiod() {
  return false;
}

#endif

}  // namespace anju::drivers::access
