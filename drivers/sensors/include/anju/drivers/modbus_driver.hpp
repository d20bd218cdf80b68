// The Modbus driver: polls register maps over Modbus TCP and RTU with libmodbus, decodes them with
// the pure modbus::decode and hands the events to the sink (Pipeline::submit).
//
// - One thread per bus: the RTU devices on one serial line share it (one request at a time on the
//   wire), TCP devices at the same host:port share one connection (a gateway with several unit
//   ids); every other TCP device has its own.
// - Each device is polled at its interval, on the injected clock. A poll reads the register map in
//   groups (adjacent entries of the same function in one request, at most 125 registers or 2000
//   bits), each request retried `retries` times on a timeout.
// - Numeric kinds give an event per poll; binary kinds only when they change, and again every
//   `refresh_polls` polls so that supervision sees the device alive.
// - A device none of whose requests is answered (timeout, connection refused or reset, exception
//   reply) raises device_offline once, with the reason ("timeout after 3 attempts", "exception 2
//   (Illegal Data Address) reading holding registers 100..101", "connect to 127.0.0.1:1502:
//   Connection refused"); device_online when it answers again. A request that got an exception
//   while others were answered is logged (once a minute), counted, and kept as the device's
//   last_error.
// - A lost connection is reopened with exponential backoff (backoff_min_ms .. backoff_max_ms).
// - stop() wakes every bus thread (condition variable) and joins them: it returns within one
//   request's timeout.
// Thread: the bus threads call the sink; start(), stop(), wake(), stats() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "anju/drivers/modbus_map.hpp"
#include "anju/drivers/sensors_common.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers {

enum class ModbusTransport { tcp, rtu };

struct ModbusSerial {
  std::string device;  // e.g. "/dev/ttyUSB0"
  int baud = 9600;
  char parity = 'N';  // 'N', 'E' or 'O'
  int data_bits = 8;  // 5..8
  int stop_bits = 1;  // 1 or 2
};

struct ModbusDeviceConfig {
  std::string id;                      // device id in events, unique (e.g. "fire-panel-b3")
  std::string kind = "modbus_device";  // DeviceRef::kind (settings.kind overrides)
  ModbusTransport transport = ModbusTransport::tcp;
  std::string host;          // tcp
  int port = 502;            // tcp
  ModbusSerial serial;       // rtu
  std::uint8_t unit_id = 1;  // used for every entry (RegisterEntry::unit_id ignored)
  std::int64_t poll_interval_ms = 5000;
  std::int64_t timeout_ms = 1000;  // per request
  int retries = 2;                 // extra attempts of a request after a timeout
  int refresh_polls = 12;          // binary kinds re-sent every N polls (0: only changes)
  std::vector<modbus::RegisterEntry> registers;
  sensors::DeviceSettings settings;  // name, location, grid and GB28181 code
};

struct ModbusOptions {
  std::string site;
  std::string grid_code;
  std::vector<ModbusDeviceConfig> devices;
  std::int64_t backoff_min_ms = 500;  // reconnect after a lost connection
  std::int64_t backoff_max_ms = 30'000;
};

// Every problem of the options, each naming its place ("devices[2].registers[0].count: ...",
// "devices[1].serial.parity: must be N, E or O", "devices[0].id: 'x' is used twice"). Empty when
// usable.
std::vector<std::string> validate(const ModbusOptions& options);

struct ModbusDeviceStatus {
  std::string id;
  bool online = false;     // answered its last poll
  bool known = false;      // polled at least once
  std::int64_t polls = 0;  // polls done (answered or not)
  std::int64_t failures = 0;
  std::string last_error;  // the last failure's reason (kept after it recovers)
};

struct ModbusStats {
  std::int64_t polls = 0;          // device polls done
  std::int64_t requests = 0;       // Modbus requests sent (including retries)
  std::int64_t registers = 0;      // registers (or bits) read
  std::int64_t events = 0;         // events handed to the sink
  std::int64_t timeouts = 0;       // requests that timed out
  std::int64_t exceptions = 0;     // exception replies
  std::int64_t decode_errors = 0;  // values modbus::decode refused
  std::int64_t connect_failures = 0;
  std::int64_t sink_refused = 0;
  std::vector<ModbusDeviceStatus> devices;
};

class ModbusDriver {
 public:
  using Sink = std::function<bool(std::vector<edge::Event>)>;
  // Throws std::invalid_argument listing validate()'s problems (config time).
  ModbusDriver(ModbusOptions options, const edge::Clock& clock, Sink sink);
  ~ModbusDriver();
  ModbusDriver(const ModbusDriver&) = delete;
  ModbusDriver& operator=(const ModbusDriver&) = delete;

  void start();  // one thread per bus; the first polls are due at once
  void stop();   // wakes and joins every bus thread; idempotent
  // Makes every bus thread look at the clock again now (tests that advance a ManualClock).
  void wake();
  ModbusStats stats() const;

  struct Bus;  // defined in modbus_driver.cpp

 private:
  void run(Bus& bus);

  ModbusOptions options_;
  const edge::Clock& clock_;
  Sink sink_;
  std::vector<std::unique_ptr<Bus>> buses_;
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;  // stats_, stopping_ with cv_
  std::condition_variable cv_;
  bool stopping_ = false;
  std::uint64_t wakeups_ = 0;
  ModbusStats stats_;
};

}  // namespace anju::drivers
