// OSDP Control Panel: the serial/TCP link, the poll loop and the dispatcher (see osdp_cp.hpp).
#include "anju/drivers/osdp_cp.hpp"
#include "anju/edge/thread_name.hpp"

#include <fcntl.h>
#include <linux/serial.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <variant>

namespace anju::drivers::access {
namespace osdp = anju::drivers::osdp;

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

speed_t baud_constant(std::uint32_t baud) {
  switch (baud) {
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 115200:
      return B115200;
    default:
      return B0;
  }
}

bool is_card_or_keys(std::uint8_t code) {
  return code == osdp::reply::raw || code == osdp::reply::fmt || code == osdp::reply::keypad;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Link: a file descriptor (serial port or TCP socket), non-blocking, with timed reads.

class OsdpControlPanel::Link {
 public:
  Link(int fd, bool serial) : fd_(fd), serial_(serial) {}
  ~Link() {
    if (fd_ >= 0) ::close(fd_);
  }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  static std::unique_ptr<Link> open(const OsdpBusConfig& cfg, std::string& err) {
    if (cfg.device.rfind("tcp:", 0) == 0) return open_tcp(cfg, err);
    const int fd = ::open(cfg.device.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      err = "cannot open " + cfg.device + ": " + errno_text(errno);
      return nullptr;
    }
    auto link = std::make_unique<Link>(fd, true);
    termios t{};
    if (::tcgetattr(fd, &t) != 0) {
      err = cfg.device + ": not a serial port (" + errno_text(errno) + ")";
      return nullptr;
    }
    ::cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag &= ~static_cast<tcflag_t>(CSTOPB | CRTSCTS | PARENB);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    ::cfsetispeed(&t, baud_constant(cfg.baud));
    ::cfsetospeed(&t, baud_constant(cfg.baud));
    if (::tcsetattr(fd, TCSANOW, &t) != 0) {
      err = cfg.device + ": cannot set " + std::to_string(cfg.baud) + " baud 8N1 raw (" +
            errno_text(errno) + ")";
      return nullptr;
    }
    if (cfg.rs485_ioctl) {
      serial_rs485 rs{};
      rs.flags = SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND;
      if (::ioctl(fd, TIOCSRS485, &rs) != 0)
        spdlog::warn(
            "osdp {}: {}: RS-485 mode not available ({}); relying on the adapter's "
            "automatic direction control",
            cfg.name, cfg.device, errno_text(errno));
    }
    ::tcflush(fd, TCIOFLUSH);
    return link;
  }

  static std::unique_ptr<Link> open_tcp(const OsdpBusConfig& cfg, std::string& err) {
    const std::string rest = cfg.device.substr(4);
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
      err = "device '" + cfg.device + "': expected tcp:HOST:PORT";
      return nullptr;
    }
    std::string host = rest.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    const std::string port = rest.substr(colon + 1);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      err = cfg.device + ": " + ::gai_strerror(rc);
      return nullptr;
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
    err = cfg.device + ": no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      auto link = std::make_unique<Link>(fd, false);
      if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        err = cfg.device + ": connect: " + errno_text(errno);
        continue;
      }
      pollfd p{fd, POLLOUT, 0};
      const int timeout =
          static_cast<int>(std::clamp<std::int64_t>(cfg.reply_timeout_ms * 10, 1000, 10'000));
      if (::poll(&p, 1, timeout) != 1) {
        err = cfg.device + ": connect timed out";
        continue;
      }
      int soerr = 0;
      socklen_t len = sizeof soerr;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
      if (soerr != 0) {
        err = cfg.device + ": connect: " + errno_text(soerr);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      err.clear();
      return link;
    }
    return nullptr;
  }

  // Writes everything (waiting up to a second for room); on a serial port waits until the
  // bytes are on the wire, so that a half-duplex bus is free for the reply.
  bool write(osdp::ByteView bytes, std::string& err) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, 1000) == 1) continue;
        err = "write timed out";
        return false;
      }
      err = std::string("write: ") + errno_text(errno);
      return false;
    }
    if (serial_) ::tcdrain(fd_);
    return true;
  }

  // > 0 bytes read, 0 nothing within the timeout, -1 the link is gone (err says why).
  int read(std::uint8_t* buf, std::size_t size, std::int64_t timeout_ms, std::string& err) {
    pollfd p{fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(timeout_ms, 0)));
    if (rc < 0) return errno == EINTR ? 0 : (err = "poll: " + errno_text(errno), -1);
    if (rc == 0) return 0;
    const ssize_t n = ::read(fd_, buf, size);
    if (n > 0) return static_cast<int>(n);
    if (n == 0) {
      if (!serial_) {
        err = "connection closed by the peer";
        return -1;
      }
      return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    err = std::string("read: ") + errno_text(errno);
    return -1;
  }

 private:
  int fd_;
  bool serial_;
};

// ---------------------------------------------------------------------------------------------

struct OsdpControlPanel::Pd {
  enum class Phase { identify, capabilities, handshake, keyset, polling };
  OsdpReaderConfig cfg;
  Phase phase = Phase::identify;
  std::uint8_t sqn = 0;
  bool online = false;
  bool offline_reported = false;
  std::int64_t next_at_ms = 0;
  std::int64_t backoff_ms = 0;
  std::int64_t sc_backoff_ms = 0;
  bool sc_fault_active = false;
  std::string sc_fault_reason;
  bool use_default_key = false;  // install mode: this attempt uses SCBK-D
  bool key_installed = false;    // KEYSET done in this run
  std::unique_ptr<osdp::SecureChannel> sc;
  std::optional<osdp::PdId> id;
  std::string last_error;
  osdp::FrameReader reader;
  std::deque<osdp::Command> feedback;  // under mu_
  OsdpReaderStatus status;             // under mu_

  bool secure() const { return sc && sc->active(); }
  std::string phase_name() const {
    switch (phase) {
      case Phase::identify:
        return "identify";
      case Phase::capabilities:
        return "capabilities";
      case Phase::handshake:
        return "handshake";
      case Phase::keyset:
        return "keyset";
      case Phase::polling:
        return "polling";
    }
    return "?";
  }
};

std::string validate(const OsdpBusConfig& cfg) {
  std::vector<std::string> errs;
  if (cfg.device.empty()) errs.push_back("device: empty (a serial device or tcp:HOST:PORT)");
  if (cfg.device.rfind("tcp:", 0) != 0 && baud_constant(cfg.baud) == B0)
    errs.push_back("baud: " + std::to_string(cfg.baud) +
                   " not supported (9600, 19200, 38400, 57600, 115200)");
  if (cfg.readers.empty()) errs.push_back("readers: none configured");
  if (cfg.reply_timeout_ms <= 0) errs.push_back("reply_timeout_ms: must be > 0");
  if (cfg.retries < 0) errs.push_back("retries: must be >= 0");
  if (cfg.poll_interval_ms < 0) errs.push_back("poll_interval_ms: must be >= 0");
  if (cfg.offline_backoff_ms <= 0 || cfg.max_backoff_ms < cfg.offline_backoff_ms)
    errs.push_back(
        "offline_backoff_ms/max_backoff_ms: need 0 < offline_backoff_ms <= "
        "max_backoff_ms");
  if (cfg.sc_backoff_ms <= 0) errs.push_back("sc_backoff_ms: must be > 0");
  std::vector<int> seen;
  for (std::size_t i = 0; i < cfg.readers.size(); ++i) {
    const auto& r = cfg.readers[i];
    const std::string at = "readers[" + std::to_string(i) + "]";
    if (r.address >= osdp::kBroadcast)
      errs.push_back(
          at + ".address: " + std::to_string(r.address) +
          (r.address == osdp::kBroadcast ? " is the broadcast address" : " out of range (0..126)"));
    if (std::find(seen.begin(), seen.end(), r.address) != seen.end())
      errs.push_back(at + ".address: " + std::to_string(r.address) + " used twice on this bus");
    seen.push_back(r.address);
    if (r.endpoint.device.id.empty()) errs.push_back(at + ".device.id: empty");
    if (r.install_mode && !r.secure_channel)
      errs.push_back(at + ".install_mode: needs secure_channel");
    if (r.secure_channel && r.scbk == osdp::Key{})
      errs.push_back(at + ".scbk: all zero; configure the reader's key");
    if (r.secure_channel && !r.install_mode && r.scbk == osdp::kScbkD)
      errs.push_back(at + ".scbk: is the default key SCBK-D; set install_mode to use it");
    if (r.controls_lock && (r.lock_pulse_ms < 100 || r.lock_pulse_ms > 6'553'500))
      errs.push_back(at + ".lock_pulse_ms: " + std::to_string(r.lock_pulse_ms) +
                     " out of range (100..6553500)");
  }
  std::string out;
  for (const auto& e : errs) out += (out.empty() ? "" : "; ") + e;
  return out;
}

OsdpControlPanel::OsdpControlPanel(OsdpBusConfig cfg, const edge::Clock& clock, EventSink sink,
                                   Decider decider)
    : cfg_(std::move(cfg)), clock_(clock), sink_(std::move(sink)), decider_(std::move(decider)) {
  if (auto err = validate(cfg_); !err.empty())
    throw std::invalid_argument("osdp bus '" + cfg_.name + "': " + err);
  for (const auto& r : cfg_.readers) {
    auto pd = std::make_unique<Pd>();
    pd->cfg = r;
    pd->use_default_key = r.install_mode;
    pd->status.address = r.address;
    pd->status.device_id = r.endpoint.device.id;
    pd->status.phase = pd->phase_name();
    pds_.push_back(std::move(pd));
  }
}

OsdpControlPanel::~OsdpControlPanel() {
  stop();
}

void OsdpControlPanel::start() {
  if (poll_thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  {
    std::lock_guard lock(out_mu_);
    out_stop_ = false;
  }
  dispatch_thread_ = std::thread([this] {
    anju::edge::name_this_thread("anju-osdp-disp");
    dispatch_loop();
  });
  poll_thread_ = std::thread([this] {
    anju::edge::name_this_thread("anju-osdp-poll");
    run();
  });
}

void OsdpControlPanel::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (poll_thread_.joinable()) poll_thread_.join();
  {
    std::lock_guard lock(out_mu_);
    out_stop_ = true;
  }
  out_cv_.notify_all();
  if (dispatch_thread_.joinable()) dispatch_thread_.join();
}

bool OsdpControlPanel::feedback(std::uint8_t address, bool granted) {
  std::lock_guard lock(mu_);
  for (auto& pd : pds_) {
    if (pd->cfg.address != address) continue;
    osdp::LedControl led{};
    led.reader = 0;
    led.led = pd->cfg.led;
    led.temporary = {.control = 2,
                     .on_100ms = 30,
                     .off_100ms = 0,
                     .on_color = static_cast<std::uint8_t>(granted ? 2 : 1),
                     .off_color = 0,
                     .timer_100ms = 30};
    pd->feedback.push_back(osdp::led({led}));
    pd->feedback.push_back(osdp::buzzer({.reader = 0,
                                         .tone = 2,
                                         .on_100ms = static_cast<std::uint8_t>(granted ? 1 : 10),
                                         .off_100ms = 0,
                                         .count = 1}));
    if (granted && pd->cfg.controls_lock)
      pd->feedback.push_back(osdp::output(
          {{pd->cfg.lock_output, 5, static_cast<std::uint16_t>(pd->cfg.lock_pulse_ms / 100)}}));
    wake_.notify_all();
    return true;
  }
  return false;
}

int OsdpControlPanel::open_door(const std::string& door) {
  std::vector<std::uint8_t> addresses;
  {
    std::lock_guard lock(mu_);
    for (const auto& pd : pds_)
      if (pd->cfg.controls_lock && pd->cfg.endpoint.door == door)
        addresses.push_back(pd->cfg.address);
  }
  for (auto a : addresses) feedback(a, true);
  return static_cast<int>(addresses.size());
}

OsdpStats OsdpControlPanel::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::vector<OsdpReaderStatus> OsdpControlPanel::readers() const {
  std::lock_guard lock(mu_);
  std::vector<OsdpReaderStatus> out;
  for (const auto& pd : pds_) out.push_back(pd->status);
  return out;
}

// --- events ------------------------------------------------------------------------------------

void OsdpControlPanel::emit(const Pd& pd, edge::Event e) {
  stamp(e, clock_, cfg_.site, pd.cfg.endpoint);
  e.source = std::string(kSourceOsdp);
  e.attrs["bus"] = cfg_.name;
  e.attrs["address"] = pd.cfg.address;
  batch_.push_back(std::move(e));
}

void OsdpControlPanel::flush_events() {
  if (batch_.empty()) return;
  std::size_t dropped = 0;
  {
    std::lock_guard lock(out_mu_);
    for (auto& e : batch_) out_.push_back(std::move(e));
    while (out_.size() > cfg_.max_queued_events) {
      out_.pop_front();
      ++dropped;
    }
  }
  batch_.clear();
  out_cv_.notify_one();
  if (dropped > 0) {
    std::lock_guard lock(mu_);
    if (stats_.dropped_events == 0)
      spdlog::error("osdp {}: the event sink is not keeping up; dropping the oldest events",
                    cfg_.name);
    stats_.dropped_events += static_cast<std::int64_t>(dropped);
  }
}

void OsdpControlPanel::dispatch_loop() {
  for (;;) {
    std::vector<edge::Event> events;
    {
      std::unique_lock lock(out_mu_);
      out_cv_.wait(lock, [&] { return out_stop_ || !out_.empty(); });
      if (out_.empty()) return;  // stopping and drained
      events.assign(std::make_move_iterator(out_.begin()), std::make_move_iterator(out_.end()));
      out_.clear();
    }
    if (sink_) sink_(std::move(events));
  }
}

// --- the poll loop -----------------------------------------------------------------------------

bool OsdpControlPanel::open_link() {
  std::string err;
  link_ = Link::open(cfg_, err);
  if (link_) {
    spdlog::info("osdp {}: {} open", cfg_.name, cfg_.device);
    link_backoff_ms_ = 0;
    link_error_.clear();
    return true;
  }
  if (err != link_error_) spdlog::error("osdp {}: {}", cfg_.name, err);
  link_error_ = err;
  link_backoff_ms_ = link_backoff_ms_ == 0 ? cfg_.offline_backoff_ms
                                           : std::min(link_backoff_ms_ * 2, cfg_.max_backoff_ms);
  link_retry_at_ms_ = now_ms() + link_backoff_ms_;
  for (auto& pd : pds_) lost(*pd, err);
  return false;
}

void OsdpControlPanel::close_link(const std::string& why) {
  spdlog::error("osdp {}: {}: {}", cfg_.name, cfg_.device, why);
  link_.reset();
  link_error_ = why;
  link_backoff_ms_ = cfg_.offline_backoff_ms;
  link_retry_at_ms_ = now_ms() + link_backoff_ms_;
  for (auto& pd : pds_) lost(*pd, why);
}

void OsdpControlPanel::run() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    if (!link_ && now_ms() >= link_retry_at_ms_) open_link();
    if (link_) {
      for (auto& pd : pds_) {
        {
          std::lock_guard lock(mu_);
          if (stopping_) break;
        }
        service(*pd);
        flush_events();
        if (!link_) break;
      }
    }
    flush_events();
    std::unique_lock lock(mu_);
    for (auto& pd : pds_) {
      pd->status.online = pd->online;
      pd->status.secure = pd->secure();
      pd->status.phase = pd->phase_name();
      pd->status.last_error = pd->last_error;
      pd->status.id = pd->id;
    }
    const auto wait = std::chrono::milliseconds(link_ ? cfg_.poll_interval_ms : 20);
    wake_.wait_for(lock, wait, [&] {
      if (stopping_) return true;
      for (const auto& pd : pds_)
        if (!pd->feedback.empty() && pd->phase == Pd::Phase::polling) return true;
      return false;
    });
  }
  flush_events();
  link_.reset();
}

OsdpControlPanel::Outcome OsdpControlPanel::exchange(Pd& pd, const osdp::Bytes& frame,
                                                     std::uint8_t code, osdp::Frame& reply) {
  std::string why = "no reply to " + osdp::command_name(code);
  int busy = 0;
  for (int attempt = 0; attempt <= cfg_.retries; ++attempt) {
    std::string err;
    if (attempt > 0) {
      std::lock_guard lock(mu_);
      ++stats_.resends;
    }
    pd.reader.reset();
    if (!link_->write(frame, err)) {
      close_link(err);
      return Outcome::link_down;
    }
    {
      std::lock_guard lock(mu_);
      ++stats_.commands;
    }
    const std::int64_t deadline = now_ms() + cfg_.reply_timeout_ms;
    bool corrupted = false;
    bool resend_busy = false;
    while (!corrupted && !resend_busy) {
      const std::int64_t left = deadline - now_ms();
      if (left <= 0) break;
      std::array<std::uint8_t, 512> buf{};
      const int n = link_->read(buf.data(), buf.size(), left, err);
      if (n < 0) {
        close_link(err);
        return Outcome::link_down;
      }
      if (n == 0) continue;
      for (auto& r : pd.reader.feed(osdp::ByteView(buf.data(), static_cast<std::size_t>(n)))) {
        if (!r.frame) {
          std::lock_guard lock(mu_);
          ++stats_.bad_frames;
          why = "corrupted reply to " + osdp::command_name(code) + ": " + r.error;
          corrupted = true;
          continue;
        }
        osdp::Frame& f = *r.frame;
        if (!f.from_pd) continue;  // our own command echoed by a two-wire adapter
        if (f.address != pd.cfg.address || f.sqn != pd.sqn) {
          std::lock_guard lock(mu_);
          ++stats_.bad_frames;
          why = "unexpected reply (address " + std::to_string(f.address) + ", sqn " +
                std::to_string(f.sqn) + ") to " + osdp::command_name(code) + " for address " +
                std::to_string(pd.cfg.address) + " sqn " + std::to_string(pd.sqn);
          continue;
        }
        if (f.code == osdp::reply::busy && !f.scb && ++busy <= 20) {
          // The PD is busy: ask again with the same sequence number (not a lost reply).
          std::unique_lock lock(mu_);
          wake_.wait_for(lock, std::chrono::milliseconds(cfg_.busy_retry_ms),
                         [&] { return stopping_; });
          --attempt;
          resend_busy = true;
          break;
        }
        {
          std::lock_guard lock(mu_);
          ++stats_.replies;
        }
        reply = std::move(f);
        return Outcome::reply;
      }
    }
    if (!corrupted && !resend_busy) {
      spdlog::debug("osdp {}: address {}: {} (attempt {})", cfg_.name, pd.cfg.address, why,
                    attempt + 1);
    }
  }
  pd.last_error = why;
  return Outcome::lost;
}

void OsdpControlPanel::lost(Pd& pd, const std::string& why) {
  pd.online = false;
  pd.last_error = why;
  if (!pd.offline_reported) {
    pd.offline_reported = true;
    spdlog::warn("osdp {}: reader {} (address {}) offline: {}", cfg_.name,
                 pd.cfg.endpoint.device.id, pd.cfg.address, why);
    edge::Event e;
    e.kind = edge::EventKind::device_offline;
    e.severity = 3;
    e.attrs["reason"] = why;
    emit(pd, std::move(e));
    std::lock_guard lock(mu_);
    ++stats_.offline_events;
  }
  pd.phase = Pd::Phase::identify;
  pd.sqn = 0;
  if (pd.sc) pd.sc->reset();
  pd.backoff_ms = pd.backoff_ms == 0 ? cfg_.offline_backoff_ms
                                     : std::min(pd.backoff_ms * 2, cfg_.max_backoff_ms);
  pd.next_at_ms = now_ms() + pd.backoff_ms;
  std::lock_guard lock(mu_);
  pd.feedback.clear();  // a grant's feedback minutes later would mislead
}

void OsdpControlPanel::answered(Pd& pd) {
  if (pd.online) return;
  pd.online = true;
  pd.backoff_ms = 0;
  edge::Event e;
  e.kind = edge::EventKind::device_online;
  e.severity = 4;
  if (pd.id) {
    char oui[16];
    std::snprintf(oui, sizeof oui, "%06x", static_cast<unsigned>(pd.id->vendor_oui));
    e.attrs["vendor_oui"] = oui;
    e.attrs["model"] = pd.id->model;
    e.attrs["serial"] = pd.id->serial;
    e.attrs["firmware"] = std::to_string(pd.id->fw_major) + "." + std::to_string(pd.id->fw_minor) +
                          "." + std::to_string(pd.id->fw_build);
  }
  if (pd.offline_reported) {
    e.attrs["returned"] = true;
    spdlog::info("osdp {}: reader {} (address {}) back online", cfg_.name,
                 pd.cfg.endpoint.device.id, pd.cfg.address);
  }
  pd.offline_reported = false;
  emit(pd, std::move(e));
}

void OsdpControlPanel::sc_failed(Pd& pd, const std::string& why) {
  {
    std::lock_guard lock(mu_);
    ++stats_.sc_failures;
  }
  pd.last_error = "Secure Channel: " + why;
  if (!pd.sc_fault_active || pd.sc_fault_reason != why) {
    spdlog::error(
        "osdp {}: reader {} (address {}): Secure Channel failed: {}; card reads are "
        "refused until it is established",
        cfg_.name, pd.cfg.endpoint.device.id, pd.cfg.address, why);
    edge::Event e;
    e.kind = edge::EventKind::security_fault;
    e.severity = 2;
    e.active = true;
    e.attrs["reason"] = why;
    e.attrs["fault"] = "secure_channel";
    emit(pd, std::move(e));
  }
  pd.sc_fault_active = true;
  pd.sc_fault_reason = why;
  if (pd.sc) pd.sc->reset();
  pd.sc.reset();
  pd.phase = Pd::Phase::handshake;
  if (pd.cfg.install_mode && !pd.key_installed)
    pd.use_default_key = !pd.use_default_key;  // SCBK-D refused: maybe already installed
  pd.sc_backoff_ms = pd.sc_backoff_ms == 0 ? cfg_.sc_backoff_ms
                                           : std::min(pd.sc_backoff_ms * 2, cfg_.max_backoff_ms);
  pd.next_at_ms = now_ms() + pd.sc_backoff_ms;
}

void OsdpControlPanel::service(Pd& pd) {
  if (now_ms() < pd.next_at_ms) return;
  osdp::Frame reply;
  auto plain = [&](const osdp::Command& c) -> Outcome {
    auto enc = osdp::encode_command(pd.cfg.address, pd.sqn, c.code, c.data);
    if (!enc.error.empty()) {
      pd.last_error = enc.error;
      return Outcome::lost;
    }
    return exchange(pd, enc.bytes, c.code, reply);
  };
  switch (pd.phase) {
    case Pd::Phase::identify: {
      pd.sqn = 0;  // a (re)start of the link
      const Outcome o = plain(osdp::id_report());
      if (o == Outcome::lost) lost(pd, pd.last_error);
      if (o != Outcome::reply) return;
      pd.sqn = osdp::next_sqn(pd.sqn);
      if (reply.code == osdp::reply::pdid) {
        if (auto r = osdp::parse_pdid(reply.data); r.reply) pd.id = std::get<osdp::PdId>(*r.reply);
      }
      answered(pd);
      if (reply.code == osdp::reply::nak) handle_reply(pd, reply.code, reply.data, false);
      if (pd.phase == Pd::Phase::identify) pd.phase = Pd::Phase::capabilities;
      return;
    }
    case Pd::Phase::capabilities: {
      const Outcome o = plain(osdp::capabilities());
      if (o == Outcome::lost) lost(pd, pd.last_error);
      if (o != Outcome::reply) return;
      pd.sqn = osdp::next_sqn(pd.sqn);
      if (reply.code == osdp::reply::pdcap) {
        auto r = osdp::parse_pdcap(reply.data);
        if (r.reply && pd.cfg.secure_channel &&
            !std::get<osdp::PdCap>(*r.reply).supports_secure_channel())
          spdlog::warn("osdp {}: reader {} does not report Secure Channel support; trying anyway",
                       cfg_.name, pd.cfg.endpoint.device.id);
      } else if (reply.code == osdp::reply::nak) {
        handle_reply(pd, reply.code, reply.data, false);
      }
      if (pd.phase == Pd::Phase::capabilities)
        pd.phase = pd.cfg.secure_channel ? Pd::Phase::handshake : Pd::Phase::polling;
      return;
    }
    case Pd::Phase::handshake:
      handshake(pd);
      return;
    case Pd::Phase::keyset:
      install_key(pd);
      return;
    case Pd::Phase::polling:
      poll_once(pd);
      return;
  }
}

void OsdpControlPanel::handshake(Pd& pd) {
  pd.sc = std::make_unique<osdp::SecureChannel>(pd.cfg.scbk, pd.use_default_key);
  osdp::Random rnd_a{};
  if (RAND_bytes(rnd_a.data(), static_cast<int>(rnd_a.size())) != 1) {
    sc_failed(pd, "no random numbers from libcrypto");
    return;
  }
  osdp::Frame reply;
  auto chlng = pd.sc->start(pd.cfg.address, pd.sqn, rnd_a);
  if (!chlng.error.empty()) {
    sc_failed(pd, chlng.error);
    return;
  }
  Outcome o = exchange(pd, chlng.bytes, osdp::cmd::chlng, reply);
  if (o == Outcome::lost) lost(pd, pd.last_error);
  if (o != Outcome::reply) return;
  pd.sqn = osdp::next_sqn(pd.sqn);
  if (is_card_or_keys(reply.code)) {
    std::lock_guard lock(mu_);
    ++stats_.refused_reads;
  }
  if (auto err = pd.sc->accept_ccrypt(reply); !err.empty()) {
    sc_failed(pd, err);
    return;
  }
  auto scrypt = pd.sc->scrypt(pd.cfg.address, pd.sqn);
  if (!scrypt.error.empty()) {
    sc_failed(pd, scrypt.error);
    return;
  }
  o = exchange(pd, scrypt.bytes, osdp::cmd::scrypt, reply);
  if (o == Outcome::lost) lost(pd, pd.last_error);
  if (o != Outcome::reply) return;
  pd.sqn = osdp::next_sqn(pd.sqn);
  if (auto err = pd.sc->accept_rmac_i(reply); !err.empty()) {
    sc_failed(pd, err);
    return;
  }
  spdlog::info("osdp {}: reader {} (address {}): Secure Channel established{}", cfg_.name,
               pd.cfg.endpoint.device.id, pd.cfg.address,
               pd.use_default_key ? " with the default key SCBK-D (install mode)" : "");
  pd.sc_backoff_ms = 0;
  if (pd.sc_fault_active) {
    edge::Event e;
    e.kind = edge::EventKind::security_fault;
    e.severity = 4;
    e.active = false;
    e.attrs["fault"] = "secure_channel";
    e.attrs["reason"] = "Secure Channel established";
    emit(pd, std::move(e));
    pd.sc_fault_active = false;
    pd.sc_fault_reason.clear();
  }
  pd.last_error.clear();
  pd.phase = pd.use_default_key ? Pd::Phase::keyset : Pd::Phase::polling;
}

void OsdpControlPanel::install_key(Pd& pd) {
  osdp::Frame reply;
  auto frame = pd.sc->wrap(pd.cfg.address, pd.sqn, osdp::keyset(pd.cfg.scbk));
  if (!frame.error.empty()) {
    sc_failed(pd, frame.error);
    return;
  }
  const Outcome o = exchange(pd, frame.bytes, osdp::cmd::keyset, reply);
  if (o == Outcome::lost) lost(pd, pd.last_error);
  if (o != Outcome::reply) return;
  pd.sqn = osdp::next_sqn(pd.sqn);
  auto opened = pd.sc->unwrap(reply);
  if (!opened.message) {
    sc_failed(pd, opened.error);
    return;
  }
  if (opened.message->code != osdp::reply::ack) {
    std::string why = "osdp_KEYSET refused";
    if (opened.message->code == osdp::reply::nak && !opened.message->data.empty())
      why += ": " + osdp::nak_reason_text(opened.message->data[0]);
    pd.key_installed = false;
    pd.use_default_key = false;  // sc_failed flips it back to true for the next attempt
    sc_failed(pd, why);
    return;
  }
  spdlog::warn("osdp {}: reader {} (address {}): new SCBK installed; set install_mode off for it",
               cfg_.name, pd.cfg.endpoint.device.id, pd.cfg.address);
  pd.key_installed = true;
  pd.use_default_key = false;
  pd.sc.reset();
  pd.phase = Pd::Phase::handshake;  // a new session with the installed key, right away
}

void OsdpControlPanel::poll_once(Pd& pd) {
  if (pd.cfg.secure_channel && !pd.secure()) {  // never poll such a reader in plaintext
    pd.phase = Pd::Phase::handshake;
    return;
  }
  osdp::Command c = osdp::poll();
  {
    std::lock_guard lock(mu_);
    if (!pd.feedback.empty()) {
      c = std::move(pd.feedback.front());
      pd.feedback.pop_front();
    }
  }
  osdp::EncodeResult enc = pd.secure()
                               ? pd.sc->wrap(pd.cfg.address, pd.sqn, c)
                               : osdp::encode_command(pd.cfg.address, pd.sqn, c.code, c.data);
  if (!enc.error.empty()) {
    pd.last_error = "cannot encode " + osdp::command_name(c.code) + ": " + enc.error;
    spdlog::error("osdp {}: {}", cfg_.name, pd.last_error);
    return;
  }
  osdp::Frame reply;
  const Outcome o = exchange(pd, enc.bytes, c.code, reply);
  if (o == Outcome::lost) lost(pd, pd.last_error);
  if (o != Outcome::reply) return;
  pd.sqn = osdp::next_sqn(pd.sqn);
  if (pd.secure()) {
    auto opened = pd.sc->unwrap(reply);
    if (!opened.message) {
      if (is_card_or_keys(reply.code)) {
        std::lock_guard lock(mu_);
        ++stats_.refused_reads;
      }
      sc_failed(pd, opened.error);
      return;
    }
    handle_reply(pd, opened.message->code, opened.message->data, opened.message->secured);
    return;
  }
  if (reply.scb && osdp::scb_has_mac(reply.scb->type)) {
    pd.last_error = "a MACed reply outside a Secure Channel";
    std::lock_guard lock(mu_);
    ++stats_.bad_frames;
    return;
  }
  handle_reply(pd, reply.code, reply.data, false);
}

void OsdpControlPanel::handle_reply(Pd& pd, std::uint8_t code, const osdp::Bytes& data,
                                    bool secured) {
  if (code == osdp::reply::nak) {
    {
      std::lock_guard lock(mu_);
      ++stats_.naks;
    }
    const std::uint8_t reason = data.empty() ? 0 : data[0];
    const std::string text = osdp::nak_reason_text(reason);
    pd.last_error = "NAK: " + text;
    switch (reason) {
      case 1:  // check character error: the command was damaged on the way; the next one goes
        spdlog::debug("osdp {}: address {}: NAK {}", cfg_.name, pd.cfg.address, text);
        return;
      case 4:  // unexpected sequence number: the PD restarted; start the link again
        spdlog::warn("osdp {}: address {}: NAK {}; restarting the link", cfg_.name, pd.cfg.address,
                     text);
        pd.phase = Pd::Phase::identify;
        pd.sqn = 0;
        if (pd.sc) pd.sc.reset();
        return;
      case 5:
      case 6:
        if (pd.cfg.secure_channel) {
          sc_failed(pd, "NAK " + text);
        } else {
          edge::Event e = fault_event(kSourceOsdp,
                                      "the reader requires a Secure Channel, which is not "
                                      "configured for it (NAK: " +
                                          text + ")",
                                      true);
          emit(pd, std::move(e));
        }
        return;
      default:
        break;
    }
  }
  auto parsed = osdp::parse_reply(code, data);
  if (!parsed.reply) {
    {
      std::lock_guard lock(mu_);
      ++stats_.bad_frames;
    }
    pd.last_error = parsed.error;
    emit(pd, fault_event(kSourceOsdp, parsed.error, false));
    return;
  }
  for (auto& ev : events_from_reply(*parsed.reply, cfg_.pseudonym_key)) {
    const bool credential =
        ev.kind == edge::EventKind::card_read || ev.kind == edge::EventKind::keypad_entry;
    if (credential && pd.cfg.secure_channel && !secured) {
      {
        std::lock_guard lock(mu_);
        ++stats_.refused_reads;
      }
      emit(pd, fault_event(kSourceOsdp, "card read refused: not received over the Secure Channel",
                           true));
      continue;
    }
    if (ev.kind != edge::EventKind::card_read) {
      emit(pd, std::move(ev));
      continue;
    }
    {
      std::lock_guard lock(mu_);
      ++stats_.card_reads;
    }
    const std::string credential_id = ev.attrs.value("credential", "");
    emit(pd, std::move(ev));
    if (!decider_ || credential_id.empty()) continue;
    const AccessDecision d = decider_(credential_id, pd.cfg.endpoint.door, clock_.wall_ms());
    feedback(pd.cfg.address, d.granted);
    emit(pd, passage_event(d, credential_id, pd.cfg.endpoint.door));
  }
}

}  // namespace anju::drivers::access
