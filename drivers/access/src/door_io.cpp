// Door I/O: SimulatedGpio, DoorController and DoorIoDriver (see door_io.hpp).
#include "anju/drivers/door_io.hpp"
#include "anju/edge/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace anju::drivers::access {

// --- SimulatedGpio -----------------------------------------------------------------------------

SimulatedGpio::SimulatedGpio(std::vector<std::string> inputs, std::vector<std::string> outputs) {
  for (auto& i : inputs) inputs_[i] = false;
  for (auto& o : outputs) outputs_[o] = false;
}

bool SimulatedGpio::push(const std::string& input, bool active, std::int64_t timestamp_ns) {
  {
    std::lock_guard lock(mu_);
    auto it = inputs_.find(input);
    if (it == inputs_.end()) return false;
    it->second = active;
    edges_.push_back({input, active, timestamp_ns});
  }
  cv_.notify_all();
  return true;
}

void SimulatedGpio::push_wiegand(const wiegand::Bits& bits, std::int64_t start_ns,
                                 std::int64_t spacing_ns, const std::string& d0,
                                 const std::string& d1) {
  std::int64_t t = start_ns;
  for (bool b : bits) {
    const std::string& line = b ? d1 : d0;
    push(line, true, t);            // the pulse (line pulled low on the wire)
    push(line, false, t + 50'000);  // released after 50 us
    t += spacing_ns;
  }
}

void SimulatedGpio::set_now_ns(std::int64_t t) {
  std::lock_guard lock(mu_);
  now_ns_ = t;
}

std::optional<bool> SimulatedGpio::output(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = outputs_.find(name);
  if (it == outputs_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, bool>> SimulatedGpio::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

std::vector<LineEdge> SimulatedGpio::wait_edges(std::int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(std::max<std::int64_t>(timeout_ms, 0)),
               [&] { return !edges_.empty() || interrupted_; });
  interrupted_ = false;
  std::vector<LineEdge> out(edges_.begin(), edges_.end());
  edges_.clear();
  return out;
}

std::optional<bool> SimulatedGpio::get(const std::string& input) {
  std::lock_guard lock(mu_);
  auto it = inputs_.find(input);
  if (it == inputs_.end()) return std::nullopt;
  return it->second;
}

bool SimulatedGpio::set(const std::string& output, bool active) {
  {
    std::lock_guard lock(mu_);
    auto it = outputs_.find(output);
    if (it == outputs_.end()) return false;
    it->second = active;
    writes_.emplace_back(output, active);
  }
  cv_.notify_all();
  return true;
}

bool SimulatedGpio::wait_output(const std::string& name, bool active, std::int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    auto it = outputs_.find(name);
    return it != outputs_.end() && it->second == active;
  });
}

std::int64_t SimulatedGpio::now_ns() const {
  std::lock_guard lock(mu_);
  return now_ns_;
}

void SimulatedGpio::interrupt() {
  {
    std::lock_guard lock(mu_);
    interrupted_ = true;
  }
  cv_.notify_all();
}

// --- DoorController ----------------------------------------------------------------------------

std::string validate(const DoorIoConfig& cfg) {
  std::string out;
  auto add = [&](const std::string& e) { out += (out.empty() ? "" : "; ") + e; };
  if (cfg.debounce_ms < 0 || cfg.debounce_ms > 10'000)
    add("debounce_ms: " + std::to_string(cfg.debounce_ms) + " out of range (0..10000)");
  if (!cfg.lock.empty() && (cfg.lock_pulse_ms < 100 || cfg.lock_pulse_ms > 600'000))
    add("lock_pulse_ms: " + std::to_string(cfg.lock_pulse_ms) + " out of range (100..600000)");
  if (cfg.d0.empty() != cfg.d1.empty()) add("d0/d1: a Wiegand reader needs both lines");
  if (!cfg.d0.empty() && cfg.d0 == cfg.d1) add("d0/d1: the same line twice");
  if ((!cfg.contact.empty() || !cfg.exit_button.empty() || !cfg.lock.empty()) &&
      cfg.door.door.empty())
    add("door.door: empty (the door id that events and decisions use)");
  if (!cfg.d0.empty() && cfg.reader.device.id.empty()) add("reader.device.id: empty");
  if (cfg.wiegand.gap_us <= 0) add("wiegand.gap_us: must be > 0");
  return out;
}

DoorController::DoorController(DoorIoConfig cfg, const edge::Clock& clock, GpioLines& gpio,
                               Decider decider)
    : cfg_(std::move(cfg)),
      clock_(clock),
      gpio_(gpio),
      decider_(std::move(decider)),
      collector_(cfg_.wiegand) {
  if (auto err = validate(cfg_); !err.empty())
    throw std::invalid_argument("door I/O '" + cfg_.door.door + "': " + err);
  for (const auto* name : {&cfg_.contact, &cfg_.exit_button, &cfg_.tamper})
    if (!name->empty()) inputs_.push_back({*name, false, false, false, 0});
}

void DoorController::prime() {
  for (auto& in : inputs_) {
    if (auto v = gpio_.get(in.name)) in.level = *v;
    in.pending = false;
  }
}

edge::Event DoorController::stamped(edge::Event e, const Endpoint& ep) const {
  stamp(e, clock_, cfg_.site, ep);
  if (e.source.empty()) e.source = "gpio";
  return e;
}

void DoorController::committed(const Input& in, std::vector<edge::Event>& out) {
  edge::Event e;
  if (in.name == cfg_.contact) {
    e.kind = edge::EventKind::door_open;
    e.severity = 4;
    e.active = in.level;
  } else if (in.name == cfg_.exit_button) {
    if (!in.level) return;  // released
    e.kind = edge::EventKind::exit_request;
    e.severity = 4;
    e.active = true;
  } else if (in.name == cfg_.tamper) {
    e.kind = edge::EventKind::tamper;
    e.severity = in.level ? 2 : 4;
    e.active = in.level;
  } else {
    return;
  }
  e.attrs["input"] = in.name;
  out.push_back(stamped(std::move(e), cfg_.door));
}

void DoorController::settle(Input& in, std::int64_t now_ns, std::vector<edge::Event>& out) {
  if (!in.pending || now_ns - in.pending_since_ns < cfg_.debounce_ms * 1'000'000) return;
  in.pending = false;
  if (in.pending_level == in.level) return;
  in.level = in.pending_level;
  committed(in, out);
}

void DoorController::frame(const wiegand::CollectedFrame& f, std::int64_t now_ns,
                           std::vector<edge::Event>& out) {
  if (!f.ok()) {
    if (f.bit_count < collector_.options().min_bits) {
      spdlog::debug("wiegand {}: {}", cfg_.reader.device.id, f.error);  // a glitch
      return;
    }
    out.push_back(stamped(fault_event(kSourceWiegand, f.error, false), cfg_.reader));
    return;
  }
  auto ev = event_from_wiegand(wiegand::decode(f.bits), cfg_.pseudonym_key, 0);
  if (!ev) return;
  const bool card = ev->kind == edge::EventKind::card_read;
  const std::string credential = card ? ev->attrs.value("credential", "") : "";
  out.push_back(stamped(std::move(*ev), cfg_.reader));
  if (!card || !decider_ || credential.empty()) return;
  const AccessDecision d = decider_(credential, cfg_.door.door, clock_.wall_ms());
  edge::Event p = passage_event(d, credential, cfg_.door.door);
  p.source = std::string(kSourceWiegand);
  out.push_back(stamped(std::move(p), cfg_.reader));
  if (d.granted && !cfg_.lock.empty()) pulse_lock(now_ns);
}

void DoorController::pulse_lock(std::int64_t now_ns) {
  if (cfg_.lock.empty()) return;
  if (!gpio_.set(cfg_.lock, true))
    spdlog::error("door {}: cannot drive the lock output '{}'", cfg_.door.door, cfg_.lock);
  lock_until_ns_ = std::max<std::int64_t>(now_ns + cfg_.lock_pulse_ms * 1'000'000, 1);
}

std::optional<bool> DoorController::contact_open() const {
  for (const auto& in : inputs_)
    if (in.name == cfg_.contact) return in.level;
  return std::nullopt;
}

std::vector<edge::Event> DoorController::on_edge(const LineEdge& e) {
  std::vector<edge::Event> out;
  // Whatever was due before this edge happens first.
  for (auto& ev : on_time(e.timestamp_ns)) out.push_back(std::move(ev));
  if (!cfg_.d0.empty() && (e.line == cfg_.d0 || e.line == cfg_.d1)) {
    if (!e.active) return out;  // the end of a pulse
    last_pulse_ns_ = e.timestamp_ns;
    auto f = collector_.pulse(e.line == cfg_.d0 ? wiegand::Line::d0 : wiegand::Line::d1,
                              e.timestamp_ns / 1000);
    if (f) frame(*f, e.timestamp_ns, out);
    return out;
  }
  for (auto& in : inputs_) {
    if (in.name != e.line) continue;
    if (cfg_.debounce_ms == 0) {
      if (e.active != in.level) {
        in.level = e.active;
        committed(in, out);
      }
      return out;
    }
    // A change starts (or restarts) the debounce time; bouncing back cancels it.
    if (e.active == in.level) {
      in.pending = false;
    } else if (!in.pending || in.pending_level != e.active) {
      in.pending = true;
      in.pending_level = e.active;
      in.pending_since_ns = e.timestamp_ns;
    } else {
      in.pending_since_ns = e.timestamp_ns;  // the same level again after a bounce
    }
    return out;
  }
  return out;
}

std::vector<edge::Event> DoorController::on_time(std::int64_t now_ns) {
  std::vector<edge::Event> out;
  if (auto f = collector_.poll(now_ns / 1000)) frame(*f, now_ns, out);
  for (auto& in : inputs_) settle(in, now_ns, out);
  if (lock_until_ns_ != 0 && now_ns >= lock_until_ns_) {
    lock_until_ns_ = 0;
    gpio_.set(cfg_.lock, false);
  }
  return out;
}

std::int64_t DoorController::next_deadline_ns() const {
  std::int64_t next = std::numeric_limits<std::int64_t>::max();
  for (const auto& in : inputs_)
    if (in.pending) next = std::min(next, in.pending_since_ns + cfg_.debounce_ms * 1'000'000);
  if (lock_until_ns_ != 0) next = std::min(next, lock_until_ns_);
  if (collector_.pending_bits() > 0)
    next = std::min(next, last_pulse_ns_ + collector_.options().gap_us * 1000);
  return next;
}

// --- DoorIoDriver ------------------------------------------------------------------------------

DoorIoDriver::DoorIoDriver(DoorIoConfig cfg, const edge::Clock& clock,
                           std::unique_ptr<GpioLines> gpio, EventSink sink, Decider decider)
    : gpio_(std::move(gpio)),
      door_(cfg.door.door),
      has_lock_(!cfg.lock.empty()),
      controller_(std::move(cfg), clock, *gpio_, std::move(decider)),
      sink_(std::move(sink)) {
  status_.door = door_;
}

DoorIoDriver::~DoorIoDriver() {
  stop();
}

void DoorIoDriver::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  out_stop_ = false;
  controller_.prime();
  dispatcher_ = std::thread([this] {
    anju::edge::name_this_thread("anju-door-disp");
    dispatch();
  });
  thread_ = std::thread([this] {
    anju::edge::name_this_thread("anju-door-io");
    run();
  });
}

void DoorIoDriver::stop() {
  stopping_ = true;
  if (gpio_) gpio_->interrupt();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(mu_);
    out_stop_ = true;
  }
  cv_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
}

int DoorIoDriver::open_door(const std::string& door) {
  if (door != door_ || !has_lock_) return 0;
  ++open_requests_;
  gpio_->interrupt();
  return 1;
}

DoorIoStatus DoorIoDriver::status() const {
  std::lock_guard lock(status_mu_);
  return status_;
}

void DoorIoDriver::count(const std::vector<edge::Event>& evs) {
  std::lock_guard lock(status_mu_);
  for (const auto& e : evs) {
    if (e.kind == edge::EventKind::card_read) ++status_.card_reads;
    if (e.kind == edge::EventKind::passage_granted) ++status_.granted;
    if (e.kind == edge::EventKind::passage_denied) ++status_.denied;
    if (e.kind == edge::EventKind::reader_fault) ++status_.bad_frames;
  }
  status_.open = controller_.contact_open();
  status_.lock_active = controller_.lock_active();
}

void DoorIoDriver::run() {
  while (!stopping_) {
    for (int n = open_requests_.exchange(0); n > 0; --n) {
      controller_.pulse_lock(gpio_->now_ns());
      std::lock_guard lock(status_mu_);
      ++status_.remote_opens;
    }
    std::vector<edge::Event> evs = controller_.on_time(gpio_->now_ns());
    const std::int64_t now = gpio_->now_ns();
    const std::int64_t next = controller_.next_deadline_ns();
    std::int64_t timeout_ms = 200;
    if (next != std::numeric_limits<std::int64_t>::max())
      timeout_ms = std::clamp<std::int64_t>((next - now) / 1'000'000 + 1, 1, 200);
    for (const auto& e : gpio_->wait_edges(timeout_ms))
      for (auto& ev : controller_.on_edge(e)) evs.push_back(std::move(ev));
    for (auto& ev : controller_.on_time(gpio_->now_ns())) evs.push_back(std::move(ev));
    count(evs);
    if (evs.empty()) continue;
    {
      std::lock_guard lock(mu_);
      for (auto& e : evs) out_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
}

void DoorIoDriver::dispatch() {
  for (;;) {
    std::vector<edge::Event> evs;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return out_stop_ || !out_.empty(); });
      if (out_.empty()) return;
      evs.assign(std::make_move_iterator(out_.begin()), std::make_move_iterator(out_.end()));
      out_.clear();
    }
    if (sink_) sink_(std::move(evs));
  }
}

}  // namespace anju::drivers::access
