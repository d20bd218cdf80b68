#include "anju/drivers/modbus_driver.hpp"
#include "anju/edge/thread_name.hpp"

#include <modbus/modbus.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "anju/drivers/generic_mqtt.hpp"

namespace anju::drivers {

namespace {

constexpr std::uint16_t kMaxRegistersPerRead = 125;  // Modbus spec, functions 3/4
constexpr std::uint16_t kMaxBitsPerRead = 2000;      // functions 1/2

bool is_bits(std::uint8_t function) {
  return function == 1 || function == 2;
}

const char* function_name(std::uint8_t f) {
  switch (f) {
    case 1:
      return "coils";
    case 2:
      return "discrete inputs";
    case 3:
      return "holding registers";
    case 4:
      return "input registers";
    default:
      return "?";
  }
}

std::string bus_key(const ModbusDeviceConfig& d) {
  if (d.transport == ModbusTransport::rtu) return "rtu " + d.serial.device;
  return "tcp " + d.host + ":" + std::to_string(d.port);
}

struct Group {
  std::uint8_t function = 3;
  std::uint16_t address = 0;
  std::uint16_t count = 0;
  std::vector<std::size_t> entries;  // indexes into the device's registers
};

// Adjacent (or overlapping) entries of one function in one request. Gaps are not bridged: an
// address between two entries may not exist on the device and would fail the whole request.
std::vector<Group> make_groups(const std::vector<modbus::RegisterEntry>& regs) {
  std::vector<std::size_t> order(regs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&regs](std::size_t a, std::size_t b) {
    if (regs[a].function != regs[b].function) return regs[a].function < regs[b].function;
    return regs[a].address < regs[b].address;
  });
  std::vector<Group> groups;
  for (std::size_t i : order) {
    const auto& e = regs[i];
    const std::uint32_t end = e.address + e.count;
    if (!groups.empty()) {
      Group& g = groups.back();
      const std::uint32_t g_end = g.address + g.count;
      const std::uint32_t limit = is_bits(e.function) ? kMaxBitsPerRead : kMaxRegistersPerRead;
      if (g.function == e.function && e.address <= g_end &&
          std::max(end, g_end) - g.address <= limit) {
        g.count = static_cast<std::uint16_t>(std::max(end, g_end) - g.address);
        g.entries.push_back(i);
        continue;
      }
    }
    groups.push_back(Group{e.function, static_cast<std::uint16_t>(e.address), e.count, {i}});
  }
  return groups;
}

std::string range_text(const Group& g) {
  return std::string(function_name(g.function)) + " " + std::to_string(g.address) + ".." +
         std::to_string(g.address + g.count - 1);
}

struct DeviceRun {
  const ModbusDeviceConfig* cfg = nullptr;
  std::size_t index = 0;  // in options_.devices and stats_.devices
  std::vector<Group> groups;
  std::int64_t next_due_ms = 0;
  enum class State { unknown, online, offline } state = State::unknown;
  std::vector<std::optional<bool>> last_active;  // per register entry
  std::int64_t polls = 0;
};

}  // namespace

struct ModbusDriver::Bus {
  std::string name;
  ModbusDeviceConfig first;  // transport parameters
  modbus_t* ctx = nullptr;
  bool connected = false;
  std::int64_t reconnect_at_ms = 0;
  std::int64_t backoff_ms = 0;
  std::string connect_error;
  std::vector<DeviceRun> devices;
  std::uint64_t seen_wakeups = 0;
  sensors::ErrorLog log{"modbus"};

  ~Bus() { close(); }
  void close() {
    if (ctx != nullptr) {
      modbus_close(ctx);
      modbus_free(ctx);
      ctx = nullptr;
    }
    connected = false;
  }
};

std::vector<std::string> validate(const ModbusOptions& o) {
  std::vector<std::string> errors;
  std::set<std::string> ids;
  std::map<std::string, const ModbusDeviceConfig*> serial_lines;
  if (o.backoff_min_ms <= 0 || o.backoff_max_ms < o.backoff_min_ms)
    errors.push_back("backoff_min_ms/backoff_max_ms: need 0 < min <= max");
  for (std::size_t i = 0; i < o.devices.size(); ++i) {
    const auto& d = o.devices[i];
    const std::string where = "devices[" + std::to_string(i) + "].";
    if (d.id.empty())
      errors.push_back(where + "id: must not be empty");
    else if (!ids.insert(d.id).second)
      errors.push_back(where + "id: '" + d.id + "' is used twice");
    if (d.transport == ModbusTransport::tcp) {
      if (d.host.empty()) errors.push_back(where + "host: must not be empty for tcp");
      if (d.port < 1 || d.port > 65535) errors.push_back(where + "port: must be 1..65535");
    } else {
      const auto& s = d.serial;
      if (s.device.empty()) errors.push_back(where + "serial.device: must not be empty for rtu");
      if (s.baud <= 0) errors.push_back(where + "serial.baud: must be positive");
      if (s.parity != 'N' && s.parity != 'E' && s.parity != 'O')
        errors.push_back(where + "serial.parity: must be N, E or O");
      if (s.data_bits < 5 || s.data_bits > 8)
        errors.push_back(where + "serial.data_bits: must be 5..8");
      if (s.stop_bits != 1 && s.stop_bits != 2)
        errors.push_back(where + "serial.stop_bits: must be 1 or 2");
      auto [it, fresh] = serial_lines.try_emplace(s.device, &d);
      if (!fresh) {
        const auto& o2 = it->second->serial;
        if (o2.baud != s.baud || o2.parity != s.parity || o2.data_bits != s.data_bits ||
            o2.stop_bits != s.stop_bits)
          errors.push_back(where + "serial: line " + s.device + " is configured differently by '" +
                           it->second->id + "'");
      }
    }
    if (d.unit_id == 0 || (d.unit_id > 247 && d.unit_id != 255))
      errors.push_back(where + "unit_id: must be 1..247 or 255");
    if (d.poll_interval_ms < 10) errors.push_back(where + "poll_interval_ms: must be >= 10");
    if (d.timeout_ms < 1 || d.timeout_ms > 60'000)
      errors.push_back(where + "timeout_ms: must be 1..60000");
    if (d.retries < 0 || d.retries > 10) errors.push_back(where + "retries: must be 0..10");
    if (d.refresh_polls < 0) errors.push_back(where + "refresh_polls: must be >= 0");
    if (d.registers.empty()) errors.push_back(where + "registers: at least one is needed");
    for (std::size_t r = 0; r < d.registers.size(); ++r) {
      auto e = d.registers[r];
      e.unit_id = d.unit_id;  // the device's unit id is what is used
      for (const auto& msg : modbus::validate(e))
        errors.push_back(where + "registers[" + std::to_string(r) + "]." + msg);
    }
  }
  return errors;
}

ModbusDriver::ModbusDriver(ModbusOptions options, const edge::Clock& clock, Sink sink)
    : options_(std::move(options)), clock_(clock), sink_(std::move(sink)) {
  const auto errors = validate(options_);
  if (!errors.empty()) {
    std::string all = "modbus: ";
    for (std::size_t i = 0; i < errors.size(); ++i) all += (i ? "; " : "") + errors[i];
    throw std::invalid_argument(all);
  }
  std::map<std::string, Bus*> by_key;
  for (std::size_t i = 0; i < options_.devices.size(); ++i) {
    const auto& d = options_.devices[i];
    Bus*& bus = by_key[bus_key(d)];
    if (bus == nullptr) {
      buses_.push_back(std::make_unique<Bus>());
      bus = buses_.back().get();
      bus->name = bus_key(d);
      bus->first = d;
      bus->backoff_ms = options_.backoff_min_ms;
    }
    DeviceRun run;
    run.cfg = &d;
    run.index = i;
    run.groups = make_groups(d.registers);
    run.last_active.resize(d.registers.size());
    bus->devices.push_back(std::move(run));
    ModbusDeviceStatus st;
    st.id = d.id;
    stats_.devices.push_back(st);
  }
}

ModbusDriver::~ModbusDriver() {
  stop();
}

void ModbusDriver::start() {
  {
    std::lock_guard lock(mu_);
    if (!threads_.empty()) return;
    stopping_ = false;
  }
  const std::int64_t now = clock_.mono_ms();
  for (auto& bus : buses_) {
    for (auto& d : bus->devices) d.next_due_ms = now;
    threads_.emplace_back([this, b = bus.get()] {
      anju::edge::name_this_thread("anju-modbus");
      run(*b);
    });
  }
}

void ModbusDriver::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  for (auto& bus : buses_) bus->close();
}

void ModbusDriver::wake() {
  {
    std::lock_guard lock(mu_);
    ++wakeups_;
  }
  cv_.notify_all();
}

ModbusStats ModbusDriver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

namespace {

// What one poll of one device found.
struct PollOutcome {
  bool answered = false;      // at least one request got its data
  std::string first_failure;  // reason of the first request that did not
  std::vector<edge::Event> events;
};

}  // namespace

void ModbusDriver::run(Bus& bus) {
  auto stopping = [this] {
    std::lock_guard lock(mu_);
    return stopping_;
  };
  auto count = [this](std::int64_t ModbusStats::*field, std::int64_t n = 1) {
    std::lock_guard lock(mu_);
    stats_.*field += n;
  };

  // Opens the bus's connection (or serial line). Empty when connected, else why not.
  auto connect = [&](std::int64_t now) -> std::string {
    if (bus.connected) return {};
    if (now < bus.reconnect_at_ms) return bus.connect_error;
    bus.close();
    const auto& c = bus.first;
    if (c.transport == ModbusTransport::tcp)
      bus.ctx = modbus_new_tcp(c.host.c_str(), c.port);
    else
      bus.ctx = modbus_new_rtu(c.serial.device.c_str(), c.serial.baud, c.serial.parity,
                               c.serial.data_bits, c.serial.stop_bits);
    std::string error;
    if (bus.ctx == nullptr) {
      error = "cannot create a libmodbus context for " + bus.name + ": " + std::strerror(errno);
    } else {
      // The connect timeout (TCP) is the response timeout of the bus's first device.
      modbus_set_response_timeout(bus.ctx, static_cast<std::uint32_t>(c.timeout_ms / 1000),
                                  static_cast<std::uint32_t>((c.timeout_ms % 1000) * 1000));
      if (modbus_connect(bus.ctx) == -1) {
        const int err = errno;
        error = (c.transport == ModbusTransport::tcp
                     ? "connect to " + c.host + ":" + std::to_string(c.port)
                     : "open " + c.serial.device) +
                ": " + modbus_strerror(err);
      }
    }
    if (!error.empty()) {
      count(&ModbusStats::connect_failures);
      bus.close();
      bus.connect_error = error;
      bus.reconnect_at_ms = now + bus.backoff_ms;
      bus.backoff_ms = std::min(bus.backoff_ms * 2, options_.backoff_max_ms);
      return error;
    }
    bus.connected = true;
    bus.backoff_ms = options_.backoff_min_ms;
    bus.connect_error.clear();
    spdlog::info("modbus: {}: connected", bus.name);
    return {};
  };

  auto base_event = [&](const DeviceRun& d, edge::EventKind kind) {
    edge::Event e;
    e.kind = kind;
    e.device.id = d.cfg->id;
    e.device.kind = d.cfg->kind;
    e.device.name = d.cfg->id;
    e.source = "modbus";
    sensors::stamp(e, clock_, options_.site, options_.grid_code, &d.cfg->settings, {});
    return e;
  };

  auto poll = [&](DeviceRun& d, std::int64_t now) {
    PollOutcome out;
    const auto& cfg = *d.cfg;
    ++d.polls;
    const bool refresh = cfg.refresh_polls > 0 && (d.polls - 1) % cfg.refresh_polls == 0;
    if (auto err = connect(now); !err.empty()) {
      out.first_failure = err;
      return out;
    }
    modbus_set_slave(bus.ctx, cfg.unit_id);
    modbus_set_response_timeout(bus.ctx, static_cast<std::uint32_t>(cfg.timeout_ms / 1000),
                                static_cast<std::uint32_t>((cfg.timeout_ms % 1000) * 1000));
    for (const Group& g : d.groups) {
      if (!bus.connected || stopping()) {
        if (out.first_failure.empty()) out.first_failure = "connection lost";
        break;
      }
      std::vector<std::uint16_t> words(g.count);
      std::vector<std::uint8_t> bits(is_bits(g.function) ? g.count : 0);
      std::string failure;
      for (int attempt = 0; attempt <= cfg.retries; ++attempt) {
        if (attempt > 0 && stopping()) break;
        count(&ModbusStats::requests);
        int rc = -1;
        switch (g.function) {
          case 1:
            rc = modbus_read_bits(bus.ctx, g.address, g.count, bits.data());
            break;
          case 2:
            rc = modbus_read_input_bits(bus.ctx, g.address, g.count, bits.data());
            break;
          case 3:
            rc = modbus_read_registers(bus.ctx, g.address, g.count, words.data());
            break;
          default:
            rc = modbus_read_input_registers(bus.ctx, g.address, g.count, words.data());
            break;
        }
        if (rc == g.count) {
          failure.clear();
          break;
        }
        const int err = rc == -1 ? errno : EMBBADDATA;
        if (err > MODBUS_ENOBASE && err <= EMBXGTAR) {
          // The device answered with an exception: retrying will not change its mind.
          const auto code = static_cast<std::uint8_t>(err - MODBUS_ENOBASE);
          count(&ModbusStats::exceptions);
          failure = "exception " + std::to_string(code) + " (" + modbus::exception_text(code) +
                    ") reading " + range_text(g);
          break;
        }
        if (err == ETIMEDOUT) {
          count(&ModbusStats::timeouts);
          failure = "no answer within " + std::to_string(cfg.timeout_ms) + " ms reading " +
                    range_text(g) + " (" + std::to_string(attempt + 1) + " attempt" +
                    (attempt > 0 ? "s" : "") + ")";
          modbus_flush(bus.ctx);
          continue;
        }
        failure = std::string(modbus_strerror(err)) + " reading " + range_text(g);
        if (err == EMBBADCRC || err == EMBBADDATA || err == EMBBADEXC || err == EMBUNKEXC ||
            err == EMBMDATA || err == EMBBADSLAVE) {
          modbus_flush(bus.ctx);  // garbled or stray frame: the line is still usable
          continue;
        }
        // Anything else is the connection itself (reset, broken pipe, closed by the peer).
        spdlog::warn("modbus: {}: connection lost: {}", bus.name, failure);
        bus.close();
        bus.reconnect_at_ms = now + bus.backoff_ms;
        bus.connect_error = failure;
        bus.backoff_ms = std::min(bus.backoff_ms * 2, options_.backoff_max_ms);
        break;
      }
      if (!failure.empty()) {
        if (out.first_failure.empty()) out.first_failure = failure;
        continue;
      }
      out.answered = true;
      count(&ModbusStats::registers, g.count);
      if (is_bits(g.function))
        for (std::size_t i = 0; i < bits.size(); ++i) words[i] = bits[i] ? 1 : 0;
      for (std::size_t idx : g.entries) {
        const auto& entry = cfg.registers[idx];
        const auto dec = modbus::decode_view(entry, std::span<const std::uint16_t>(words).subspan(
                                                        entry.address - g.address, entry.count));
        if (!dec.error.empty()) {
          count(&ModbusStats::decode_errors);
          bus.log.warn(now, cfg.id + " registers[" + std::to_string(idx) + "]",
                       range_text(g) + ": " + dec.error);
          continue;
        }
        edge::Event e = base_event(d, entry.kind);
        if (dec.active) {
          auto& last = d.last_active[idx];
          const bool changed = !last || *last != *dec.active;
          last = dec.active;
          if (!changed && !refresh) continue;
          e.active = dec.active;
          // Which input it is: a panel may have several alarm inputs of one kind. (A reading
          // is named by its value instead; a JSON object per reading cost ~10 % of the poll
          // rate in bench_sensors.)
          e.attrs = {
              {"unit_id", cfg.unit_id}, {"function", entry.function}, {"address", entry.address}};
          if (!changed) e.attrs["refresh"] = true;
        } else if (dec.value) {
          e.values.push_back(*dec.value);
        }
        e.severity = generic_mqtt::default_severity(entry.kind, e.active);
        out.events.push_back(std::move(e));
      }
    }
    return out;
  };

  while (true) {
    std::int64_t now = clock_.mono_ms();
    DeviceRun* due = nullptr;
    for (auto& d : bus.devices)
      if (due == nullptr || d.next_due_ms < due->next_due_ms) due = &d;
    if (due == nullptr) return;
    if (due->next_due_ms > now) {
      // Wait for the next poll, a wake() or stop(). At most a second at a time: with an
      // injected clock that is not the system's, the due time is re-checked regularly.
      std::unique_lock lock(mu_);
      const auto wait_ms = std::min<std::int64_t>(due->next_due_ms - now, 1000);
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                   [&] { return stopping_ || wakeups_ != bus.seen_wakeups; });
      bus.seen_wakeups = wakeups_;
      if (stopping_) return;
      continue;
    }
    if (stopping()) return;

    DeviceRun& d = *due;
    PollOutcome out = poll(d, now);
    now = clock_.mono_ms();
    d.next_due_ms += d.cfg->poll_interval_ms;
    if (d.next_due_ms <= now) d.next_due_ms = now + d.cfg->poll_interval_ms;  // fell behind

    const auto previous = d.state;
    if (out.answered) {
      d.state = DeviceRun::State::online;
      if (previous == DeviceRun::State::offline) {
        edge::Event e = base_event(d, edge::EventKind::device_online);
        e.severity = 4;
        e.attrs = {{"reason", "answers again"}, {"bus", bus.name}};
        out.events.insert(out.events.begin(), std::move(e));
        spdlog::info("modbus: {}: online again", d.cfg->id);
      }
      if (!out.first_failure.empty()) bus.log.warn(now, d.cfg->id, out.first_failure);
    } else {
      d.state = DeviceRun::State::offline;
      if (previous != DeviceRun::State::offline) {
        edge::Event e = base_event(d, edge::EventKind::device_offline);
        e.severity = 3;
        e.attrs = {{"reason", out.first_failure}, {"bus", bus.name}};
        out.events.push_back(std::move(e));
        spdlog::warn("modbus: {}: offline: {}", d.cfg->id, out.first_failure);
      }
    }
    {
      std::lock_guard lock(mu_);
      ++stats_.polls;
      auto& st = stats_.devices[d.index];
      st.known = true;
      st.online = out.answered;
      ++st.polls;
      if (!out.first_failure.empty()) {
        ++st.failures;
        st.last_error = out.first_failure;
      }
      stats_.events += static_cast<std::int64_t>(out.events.size());
    }
    if (!out.events.empty() && !sink_(std::move(out.events))) {
      count(&ModbusStats::sink_refused);
      spdlog::error("modbus: pipeline refused events (stopping)");
    }
  }
}

}  // namespace anju::drivers
