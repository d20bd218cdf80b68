// bench_sensors: (a) Modbus TCP poll throughput of the ModbusDriver beside a bare libmodbus client
// in the same run, both against one in-process libmodbus server on 127.0.0.1; (b) the rule
// engine's device registry with 10,000 devices: memory per device and the time heartbeat
// supervision takes (on_tick, next_deadline_ms) beside a bare unordered_map of the same ids;
// (c) the same devices' rows in the journal's devices table: the time load_devices takes (a
// restart reads them).
//
// Workload (a): 200 devices at the same host:port (one bus, one connection, unit ids 1..200, as
// behind a Modbus TCP gateway), each a map of 70 values in 4 requests (20 int16 and 20 uint16
// holding registers, 15 int32 and 15 float32 input registers: 100 registers), polled every 10 ms
// (the least validate() allows) so that the bus never idles. The bare client reads the same 4
// requests per unit id in the same round-robin order over one connection.
#include <malloc.h>
#include <modbus/modbus.h>
#include <spdlog/spdlog.h>

#include <bit>
#include <limits>
#include <unordered_map>

#include "anju/drivers/modbus_driver.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/rules.hpp"
#include "bench_util.hpp"
#include "modbus_server.hpp"

namespace {
using namespace anju;
using bench::SteadyClock;
namespace mb = drivers::modbus;

// ---- (a) Modbus
constexpr int kModbusDevices = 200;    // unit ids 1..200 on one bus
constexpr std::int64_t kPollMs = 10;   // validate(): poll_interval_ms >= 10
constexpr double kRoundSeconds = 2.5;  // bare, Anju, bare, Anju: 5 s each in all
constexpr int kRounds = 2;

struct GroupSpec {
  std::uint8_t function;
  std::uint16_t address;
  mb::DataType type;
  int values;
};
// Gaps between the groups: the driver never bridges them, so each group is one request.
constexpr GroupSpec kGroups[] = {{3, 0, mb::DataType::int16, 20},
                                 {3, 100, mb::DataType::uint16, 20},
                                 {4, 0, mb::DataType::int32, 15},
                                 {4, 100, mb::DataType::float32, 15}};

int group_registers(const GroupSpec& g) {
  return g.values * mb::register_count(g.type);
}

std::vector<mb::RegisterEntry> register_map() {
  std::vector<mb::RegisterEntry> regs;
  for (const auto& g : kGroups) {
    const int n = mb::register_count(g.type);
    for (int i = 0; i < g.values; ++i) {
      mb::RegisterEntry e;
      e.function = g.function;
      e.address = static_cast<std::uint32_t>(g.address + i * n);
      e.type = g.type;
      e.count = static_cast<std::uint16_t>(n);
      e.name = "v" + std::to_string(g.function) + "_" + std::to_string(e.address);
      if (g.type == mb::DataType::int16) {  // temperatures in 0.1 C
        e.kind = edge::EventKind::temperature;
        e.scale = 0.1;
        e.unit = "C";
      } else {
        e.kind = edge::EventKind::measurement;
        e.unit = g.type == mb::DataType::float32 ? "kW" : "";
      }
      regs.push_back(std::move(e));
    }
  }
  return regs;
}

// Plausible values in every register the map reads.
void fill_server(it::ModbusServer& server) {
  for (int i = 0; i < 20; ++i) {
    server.set_holding(i, static_cast<std::uint16_t>(static_cast<std::int16_t>(215 + i - 40)));
    server.set_holding(100 + i, static_cast<std::uint16_t>(1000 + 37 * i));
  }
  for (int i = 0; i < 15; ++i) {
    const auto v = static_cast<std::uint32_t>(-120000 + 9876 * i);
    server.set_input(2 * i, static_cast<std::uint16_t>(v >> 16));
    server.set_input(2 * i + 1, static_cast<std::uint16_t>(v & 0xffff));
    const auto f = std::bit_cast<std::uint32_t>(230.5f + 0.25f * static_cast<float>(i));
    server.set_input(100 + 2 * i, static_cast<std::uint16_t>(f >> 16));
    server.set_input(101 + 2 * i, static_cast<std::uint16_t>(f & 0xffff));
  }
}

drivers::ModbusOptions modbus_options(int port) {
  drivers::ModbusOptions o;
  o.site = bench::kSite;
  o.grid_code = bench::kGridCode;
  const auto regs = register_map();
  for (int i = 0; i < kModbusDevices; ++i) {
    drivers::ModbusDeviceConfig d;
    char id[32];
    std::snprintf(id, sizeof(id), "meter-%03d", i + 1);
    d.id = id;
    d.kind = "power_meter";
    d.host = "127.0.0.1";
    d.port = port;
    d.unit_id = static_cast<std::uint8_t>(i + 1);
    d.poll_interval_ms = kPollMs;
    d.timeout_ms = 1000;
    d.retries = 0;
    d.refresh_polls = 0;
    d.registers = regs;
    d.settings.location = {"3", "B1", "switch room"};
    o.devices.push_back(std::move(d));
  }
  return o;
}

struct PollRun {
  double seconds = 0;
  std::int64_t polls = 0, requests = 0, registers = 0, events = 0, failures = 0;
  std::string failure;  // the first one's reason (bare client)
};

PollRun& operator+=(PollRun& a, const PollRun& b) {
  a.seconds += b.seconds;
  a.polls += b.polls;
  a.requests += b.requests;
  a.registers += b.registers;
  a.events += b.events;
  a.failures += b.failures;
  if (a.failure.empty()) a.failure = b.failure;
  return a;
}

PollRun run_anju_modbus(int port, drivers::ModbusStats& stats_out) {
  std::atomic<std::int64_t> sunk{0};
  edge::SystemClock clock;
  drivers::ModbusDriver driver(modbus_options(port), clock, [&sunk](std::vector<edge::Event> v) {
    sunk += static_cast<std::int64_t>(v.size());
    return true;
  });
  const auto t0 = SteadyClock::now();
  driver.start();
  std::this_thread::sleep_until(t0 + std::chrono::duration<double>(kRoundSeconds));
  const auto st = driver.stats();
  const auto t1 = SteadyClock::now();
  // stop() cuts the poll in progress short, and the driver logs that poll's "connection lost"
  // (a warning): not a fault of the run, so not shown.
  spdlog::set_level(spdlog::level::err);
  driver.stop();
  spdlog::set_level(spdlog::level::warn);
  PollRun r;
  r.seconds = bench::seconds_between(t0, t1);
  r.polls = st.polls;
  r.requests = st.requests;
  r.registers = st.registers;
  r.events = sunk.load();
  r.failures = st.timeouts + st.exceptions + st.decode_errors + st.connect_failures;
  stats_out.polls += st.polls;
  stats_out.timeouts += st.timeouts;
  stats_out.exceptions += st.exceptions;
  stats_out.decode_errors += st.decode_errors;
  stats_out.connect_failures += st.connect_failures;
  stats_out.sink_refused += st.sink_refused;
  stats_out.events += st.events;
  return r;
}

// The bare client: one connection, the same requests per unit id, round robin, no decoding.
PollRun run_bare_modbus(int port) {
  PollRun r;
  modbus_t* ctx = modbus_new_tcp("127.0.0.1", port);
  if (ctx == nullptr) throw std::runtime_error("modbus_new_tcp failed");
  modbus_set_response_timeout(ctx, 1, 0);
  if (modbus_connect(ctx) == -1) {
    const std::string err = modbus_strerror(errno);
    modbus_free(ctx);
    throw std::runtime_error("bare client: connect to 127.0.0.1:" + std::to_string(port) + ": " +
                             err);
  }
  std::vector<std::uint16_t> words(MODBUS_MAX_READ_REGISTERS);
  const auto t0 = SteadyClock::now();
  const auto deadline = t0 + std::chrono::duration<double>(kRoundSeconds);
  auto now = t0;
  while (now < deadline) {
    for (int unit = 1; unit <= kModbusDevices && now < deadline; ++unit) {
      modbus_set_slave(ctx, unit);
      for (const auto& g : kGroups) {
        const int n = group_registers(g);
        ++r.requests;
        const int rc = g.function == 3
                           ? modbus_read_registers(ctx, g.address, n, words.data())
                           : modbus_read_input_registers(ctx, g.address, n, words.data());
        if (rc == n) {
          r.registers += rc;
        } else {
          ++r.failures;
          if (r.failure.empty()) r.failure = modbus_strerror(errno);
        }
      }
      ++r.polls;
      now = SteadyClock::now();
    }
  }
  r.seconds = bench::seconds_between(t0, now);
  modbus_close(ctx);
  modbus_free(ctx);
  return r;
}

// ---- (b) registry
constexpr int kRegistryDevices = 10'000;
constexpr int kRepeats = 5;        // whole registry runs (fresh engine each); medians reported
constexpr int kTickSamples = 200;  // calls per micro-timing

volatile std::int64_t g_sink = 0;  // keeps the bare loops' results alive

std::string device_id(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x00158d00000%05d", i);
  return buf;
}

// A temperature reading of device i as the zigbee2mqtt driver makes it, at ts_ms.
edge::Event registry_event(int i, std::int64_t ts_ms) {
  edge::Event e;
  e.id = edge::uuid_v7(ts_ms);
  e.ts_ms = ts_ms;
  e.mono_ns = 1'000'000'000;
  e.boot_id = edge::boot_id();
  e.clock_synced = true;
  e.site = bench::kSite;
  e.grid_code = bench::kGridCode;
  e.location = {std::to_string(1 + i / 1000), std::to_string(1 + (i / 100) % 10),
                std::to_string(1001 + i % 100)};
  e.device.id = device_id(i);
  e.device.kind = "climate_sensor";
  char name[32];
  std::snprintf(name, sizeof(name), "climate_%05d", i);
  e.device.name = name;
  e.source = "zigbee2mqtt";
  e.attrs = {{"linkquality", 120}};
  e.kind = edge::EventKind::temperature;
  e.severity = 4;
  e.values.push_back({"temperature", 20.0 + 0.1 * (i % 60), "C"});
  return e;
}

// Bytes malloc has handed out and not taken back (every arena, mmapped chunks included).
std::int64_t heap_bytes() {
  const struct mallinfo2 m = ::mallinfo2();
  return static_cast<std::int64_t>(m.uordblks + m.hblkhd);
}

struct Footprint {
  std::int64_t heap = 0, rss_kb = 0;
};
// What `grow` adds to the heap and to the resident set.
template <typename F>
Footprint footprint(F&& grow) {
  const std::int64_t heap0 = heap_bytes();
  const std::int64_t rss0 = bench::read_status_kb("VmRSS");
  grow();
  return {heap_bytes() - heap0, bench::read_status_kb("VmRSS") - rss0};
}

double us_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

template <typename F>
double median_us(int n, F&& f) {
  std::vector<double> v;
  v.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto a = SteadyClock::now();
    f();
    v.push_back(us_between(a, SteadyClock::now()));
  }
  return bench::percentile(std::move(v), 50);
}

struct RegistryRun {
  std::int64_t timeout_ms = 0;  // next_deadline_ms() - last seen
  double first_event_us = 0, known_event_us = 0;
  double tick_idle_us = 0, deadline_us = 0;
  double tick_all_ms = 0;
  std::size_t tracked = 0, synthesized = 0, offline = 0, changes_idle = 0;
  double feed_back_ms = 0;
  std::size_t alerts = 0;
  double tick_idle_alerts_us = 0;
};

RegistryRun run_registry(const std::vector<edge::Event>& first,
                         const std::vector<edge::Event>& second) {
  RegistryRun r;
  const double n = static_cast<double>(first.size());
  edge::RuleSettings settings;  // defaults: heartbeat supervision on, no thresholds
  std::vector<edge::AlertChange> out;
  std::vector<edge::Event> synthesized;
  synthesized.reserve(first.size());

  auto engine = std::make_unique<edge::RuleEngine>(settings);
  auto a = SteadyClock::now();
  for (const auto& e : first) engine->on_event(e, out);
  auto b = SteadyClock::now();
  r.first_event_us = us_between(a, b) / n;
  r.tracked = engine->tracked_devices();

  a = SteadyClock::now();
  for (const auto& e : second) engine->on_event(e, out);  // 1 s later: every device known
  b = SteadyClock::now();
  r.known_event_us = us_between(a, b) / n;
  r.changes_idle = out.size();

  const std::int64_t last_seen = second.front().ts_ms;
  // When the engine says the first device is due (the same instant for all of them): the
  // effective heartbeat timeout, whatever default applies to their source.
  const std::int64_t deadline = engine->next_deadline_ms();
  if (deadline == std::numeric_limits<std::int64_t>::max())
    throw std::runtime_error("no heartbeat supervision with the default RuleSettings");
  r.timeout_ms = deadline - last_seen;
  const std::int64_t idle_now = last_seen + 1000;  // nothing due yet
  r.tick_idle_us = median_us(kTickSamples, [&] {
    synthesized.clear();
    engine->on_tick(idle_now, synthesized, out);
  });
  r.changes_idle += out.size() + synthesized.size();  // expected 0: nothing due
  r.deadline_us = median_us(kTickSamples, [&] { g_sink = g_sink + engine->next_deadline_ms(); });

  // The first tick past the heartbeat timeout: every device is due at once.
  synthesized.clear();
  out.clear();
  const std::int64_t due_now = deadline + 1000;
  a = SteadyClock::now();
  engine->on_tick(due_now, synthesized, out);
  b = SteadyClock::now();
  r.tick_all_ms = us_between(a, b) / 1000;
  r.synthesized = synthesized.size();
  r.offline = engine->offline_devices();

  // As the pipeline does: the synthesized device_offline events journalled (seq) and fed back.
  std::int64_t seq = 2 * static_cast<std::int64_t>(first.size());
  for (auto& e : synthesized) e.seq = ++seq;
  out.clear();
  a = SteadyClock::now();
  for (const auto& e : synthesized) engine->on_event(e, out);
  b = SteadyClock::now();
  r.feed_back_ms = us_between(a, b) / 1000;
  r.alerts = engine->open_alert_count();

  std::vector<edge::Event> none;
  r.tick_idle_alerts_us = median_us(kTickSamples / 4, [&] {
    none.clear();
    out.clear();
    engine->on_tick(due_now + 1000, none, out);
  });
  return r;
}

struct BareRegistryRun {
  double first_event_us = 0, known_event_us = 0;
  double tick_idle_us = 0, deadline_us = 0, tick_all_ms = 0;
  std::size_t due = 0;
};

// The bare registry: id → last seen, and loops over it.
BareRegistryRun run_bare_registry(const std::vector<std::string>& ids, std::int64_t t0,
                                  std::int64_t timeout) {
  BareRegistryRun r;
  const double n = static_cast<double>(ids.size());
  auto map = std::make_unique<std::unordered_map<std::string, std::int64_t>>();
  auto a = SteadyClock::now();
  for (const auto& id : ids) map->emplace(id, t0);
  auto b = SteadyClock::now();
  r.first_event_us = us_between(a, b) / n;

  const std::int64_t last_seen = t0 + 1000;
  a = SteadyClock::now();
  for (const auto& id : ids) {
    auto& v = (*map)[id];
    v = std::max(v, last_seen);
  }
  b = SteadyClock::now();
  r.known_event_us = us_between(a, b) / n;

  const std::int64_t idle_now = last_seen + 1000;
  r.tick_idle_us = median_us(kTickSamples, [&] {
    std::int64_t due = 0;
    for (const auto& [id, seen] : *map) due += (idle_now - seen >= timeout) ? 1 : 0;
    g_sink = g_sink + due;
  });
  r.deadline_us = median_us(kTickSamples, [&] {
    std::int64_t next = std::numeric_limits<std::int64_t>::max();
    for (const auto& [id, seen] : *map) next = std::min(next, seen + timeout);
    g_sink = g_sink + next;
  });
  const std::int64_t due_now = last_seen + timeout + 1000;
  std::vector<std::string> due;
  due.reserve(ids.size());
  a = SteadyClock::now();
  for (const auto& [id, seen] : *map)
    if (due_now - seen >= timeout) due.push_back(id);
  b = SteadyClock::now();
  r.tick_all_ms = us_between(a, b) / 1000;
  r.due = due.size();
  return r;
}

// ---- (c) the journal's devices table
struct JournalRun {
  double load_ms = 0, bare_load_ms = 0;
  std::size_t rows = 0, bare_rows = 0;
};

JournalRun run_journal(std::vector<edge::Event> events) {
  bench::TempDir dir("bench-sensors");
  edge::JournalOptions jo;
  jo.path = dir / "anju.db";
  jo.synchronous_full = false;
  edge::OpenReport report;
  auto journal = edge::Journal::open(jo, &report);
  journal->begin();
  for (auto& e : events) journal->append(e);
  journal->commit();

  JournalRun r;
  std::vector<edge::DeviceRecord> records;
  std::vector<double> load, bare;
  for (int i = 0; i < kRepeats; ++i) {
    auto a = SteadyClock::now();
    records = edge::load_devices(journal->db());
    load.push_back(bench::ms_between(a, SteadyClock::now()));
    // Bare: the two columns a registry needs, into the bare map.
    a = SteadyClock::now();
    std::unordered_map<std::string, std::int64_t> map;
    auto st = journal->db().prepare("SELECT device_id, last_seen_ms FROM devices");
    while (st.step()) map.emplace(st.str(0), st.i64(1));
    bare.push_back(bench::ms_between(a, SteadyClock::now()));
    r.bare_rows = map.size();
  }
  r.rows = records.size();
  r.load_ms = bench::percentile(load, 50);
  r.bare_load_ms = bench::percentile(bare, 50);

  journal.reset();
  return r;
}

std::string times(double r) {
  return std::isnan(r) || std::isinf(r) ? "-" : bench::fmt(r, r < 10 ? 1 : 0) + " x";
}
std::string us(double v) {
  return bench::fmt(v, v >= 100 ? 0 : 2) + " us";
}
std::string ms(double v) {
  return bench::fmt(v, v >= 100 ? 0 : 2) + " ms";
}
double median_of(const std::vector<RegistryRun>& runs, double RegistryRun::*field) {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(r.*field);
  return bench::percentile(std::move(v), 50);
}
double median_of(const std::vector<BareRegistryRun>& runs, double BareRegistryRun::*field) {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(r.*field);
  return bench::percentile(std::move(v), 50);
}

int run() {
  bench::Table t(
      "bench_sensors: Modbus TCP polling vs bare libmodbus; the rule engine's registry "
      "of " +
      bench::fmt(kRegistryDevices) + " devices vs a bare map");

  // ---- (b) and (c) first, on a heap nothing else has used yet.
  const std::int64_t t0 = edge::SystemClock{}.wall_ms();
  std::vector<edge::Event> first, second;
  std::vector<std::string> ids;
  first.reserve(kRegistryDevices);
  second.reserve(kRegistryDevices);
  ids.reserve(kRegistryDevices);
  for (int i = 0; i < kRegistryDevices; ++i) {
    first.push_back(registry_event(i, t0));
    second.push_back(registry_event(i, t0 + 1000));
    first.back().seq = i + 1;
    second.back().seq = kRegistryDevices + i + 1;
    ids.push_back(device_id(i));
  }
  // Memory first, on a heap that nothing has been freed into yet, both registries alive until
  // both are measured (neither reuses what the other freed).
  Footprint mem_anju, mem_bare;
  {
    std::unordered_map<std::string, std::int64_t> map;
    mem_bare = footprint([&] {
      for (const auto& id : ids) map.emplace(id, t0);
    });
    edge::RuleEngine engine{edge::RuleSettings{}};
    std::vector<edge::AlertChange> out;
    mem_anju = footprint([&] {
      for (const auto& e : first) engine.on_event(e, out);
    });
  }
  std::vector<RegistryRun> reg;
  std::vector<BareRegistryRun> bare_reg;
  for (int i = 0; i < kRepeats; ++i) {
    reg.push_back(run_registry(first, second));
    bare_reg.push_back(run_bare_registry(ids, t0, reg.back().timeout_ms));
  }
  const std::int64_t timeout = reg.front().timeout_ms;
  const JournalRun jr = run_journal(first);

  // ---- (a)
  it::ModbusServer server(8, 8, 256, 256);
  server.start();
  fill_server(server);
  PollRun anju, bare;
  drivers::ModbusStats anju_stats;
  for (int round = 0; round < kRounds; ++round) {
    bare += run_bare_modbus(server.port());
    anju += run_anju_modbus(server.port(), anju_stats);
  }
  const std::int64_t served = server.requests();
  server.stop();

  // ---- report
  const double regs_anju = static_cast<double>(anju.registers) / anju.seconds;
  const double regs_bare = static_cast<double>(bare.registers) / bare.seconds;
  const double ratio = regs_anju / regs_bare;
  t.add("(a) Modbus registers/s", bench::fmt(regs_anju), bench::fmt(regs_bare) + " (bare client)",
        bench::pct(ratio), ">= 80 % of bare", bench::met(anju.registers > 0 && ratio >= 0.8));
  const double req_anju = static_cast<double>(anju.requests) / anju.seconds;
  const double req_bare = static_cast<double>(bare.requests) / bare.seconds;
  t.add("(a) Modbus requests/s", bench::fmt(req_anju), bench::fmt(req_bare) + " (bare client)",
        bench::pct(req_anju / req_bare), "-", "-");
  t.add("(a) device polls/s", bench::fmt(static_cast<double>(anju.polls) / anju.seconds),
        bench::fmt(static_cast<double>(bare.polls) / bare.seconds) + " (bare client)",
        bench::pct((static_cast<double>(anju.polls) / anju.seconds) /
                   (static_cast<double>(bare.polls) / bare.seconds)),
        "-", "-");
  t.add("(a) events/s to the sink", bench::fmt(static_cast<double>(anju.events) / anju.seconds),
        "-", "-", "-", "-");

  const RegistryRun& r0 = reg.front();
  const BareRegistryRun& b0 = bare_reg.front();
  const double nd = kRegistryDevices;
  const double heap_dev = static_cast<double>(mem_anju.heap) / nd;
  const double heap_bare = static_cast<double>(mem_bare.heap) / nd;
  t.add("(b) heap bytes/device (mallinfo2)", bench::fmt(heap_dev),
        bench::fmt(heap_bare) + " (bare map)", times(heap_dev / heap_bare), "-", "-");
  const double rss_dev = static_cast<double>(mem_anju.rss_kb) * 1024 / nd;
  const double rss_bare = static_cast<double>(mem_bare.rss_kb) * 1024 / nd;
  t.add("(b) RSS bytes/device (VmRSS)", bench::fmt(rss_dev), bench::fmt(rss_bare) + " (bare map)",
        times(rss_dev / rss_bare), "-", "-");
  auto row_us = [&](const std::string& name, double RegistryRun::*f, double BareRegistryRun::*g,
                    const std::string& what) {
    const double x = median_of(reg, f), y = median_of(bare_reg, g);
    t.add(name, us(x), us(y) + " (" + what + ")", times(x / y), "-", "-");
  };
  row_us("(b) on_event, a device's first event", &RegistryRun::first_event_us,
         &BareRegistryRun::first_event_us, "emplace");
  row_us("(b) on_event, a known device", &RegistryRun::known_event_us,
         &BareRegistryRun::known_event_us, "lookup+store");
  row_us("(b) on_tick, nothing due", &RegistryRun::tick_idle_us, &BareRegistryRun::tick_idle_us,
         "loop");
  row_us("(b) next_deadline_ms()", &RegistryRun::deadline_us, &BareRegistryRun::deadline_us,
         "min loop");
  {
    const double x = median_of(reg, &RegistryRun::tick_all_ms);
    const double y = median_of(bare_reg, &BareRegistryRun::tick_all_ms);
    t.add("(b) on_tick, all " + bench::fmt(nd) + " due (device_offline made)", ms(x),
          ms(y) + " (loop+collect ids)", times(x / y), "-", "-");
  }
  t.add("(b) " + bench::fmt(nd) + " device_offline fed back (on_event)",
        ms(median_of(reg, &RegistryRun::feed_back_ms)), "-", "-", "-", "-");
  t.add("(b) on_tick, nothing due, " + bench::fmt(static_cast<double>(r0.alerts)) + " alerts open",
        us(median_of(reg, &RegistryRun::tick_idle_alerts_us)), "-", "-", "-", "-");
  t.add("(c) load_devices, " + bench::fmt(static_cast<double>(jr.rows)) + " rows", ms(jr.load_ms),
        ms(jr.bare_load_ms) + " (bare SELECT)", times(jr.load_ms / jr.bare_load_ms), "-", "-");

  const double demand = kModbusDevices * 1000.0 / kPollMs;
  const double polls_s = static_cast<double>(anju.polls) / anju.seconds;
  t.note("(a) " + std::to_string(kModbusDevices) + " devices (unit ids 1.." +
         std::to_string(kModbusDevices) + ") on one bus, one connection, each 4 requests of " +
         "20/20/30/30 registers (int16, uint16 holding; int32, float32 input) = 100 registers, " +
         "70 values, per poll; poll_interval_ms " + std::to_string(kPollMs) +
         " (the minimum): " + bench::fmt(demand) + " polls/s asked, " + bench::fmt(polls_s) +
         " done" + (polls_s < 0.95 * demand ? " (saturated)" : " (NOT saturated: the bus idled)") +
         "; " + std::to_string(kRounds) + " rounds of " + bench::fmt(kRoundSeconds, 1) +
         " s each, bare then Anju: " + bench::fmt(anju.seconds, 2) + " s Anju, " +
         bench::fmt(bare.seconds, 2) + " s bare");
  t.note("(a) Anju: " + bench::fmt(static_cast<double>(anju_stats.polls)) + " polls, " +
         bench::fmt(static_cast<double>(anju.events)) + " events (" +
         std::to_string(anju_stats.sink_refused) + " refused), " +
         std::to_string(anju_stats.timeouts) + " timeouts, " +
         std::to_string(anju_stats.exceptions) + " exceptions, " +
         std::to_string(anju_stats.decode_errors) + " decode errors, " +
         std::to_string(anju_stats.connect_failures) +
         " connect failures; bare: " + std::to_string(bare.failures) + " failed requests" +
         (bare.failure.empty() ? "" : " (" + bare.failure + ")") + "; server answered " +
         bench::fmt(static_cast<double>(served)) + " requests (one thread, libmodbus " +
         LIBMODBUS_VERSION_STRING + ")");
  t.note(
      "(b) RuleEngine with default RuleSettings (heartbeat " + bench::fmt(timeout / 1000.0) +
      " s, no thresholds); one temperature event per device (18-char zigbee ids, location, site, "
      "grid code); " +
      bench::fmt(static_cast<double>(r0.tracked)) + " devices tracked; the due tick made " +
      bench::fmt(static_cast<double>(r0.synthesized)) + " device_offline events, " +
      bench::fmt(static_cast<double>(r0.offline)) + " offline, feeding them back opened " +
      bench::fmt(static_cast<double>(r0.alerts)) +
      " alerts; bare: " + bench::fmt(static_cast<double>(b0.due)) + " ids collected; " +
      std::to_string(r0.changes_idle) + " alert changes where none were expected");
  t.note("(b) memory: growth of mallinfo2 uordblks+hblkhd and of VmRSS while the " +
         bench::fmt(nd) + " first events went in, / " + bench::fmt(nd) +
         ", measured before anything else, both registries alive (engine: " +
         bench::fmt(static_cast<double>(mem_anju.heap) / 1e6, 2) + " MB heap, " +
         bench::fmt(static_cast<double>(mem_anju.rss_kb) / 1024, 2) +
         " MB RSS; bare unordered_map<string, int64>: " +
         bench::fmt(static_cast<double>(mem_bare.heap) / 1e6, 2) + " MB heap, " +
         bench::fmt(static_cast<double>(mem_bare.rss_kb) / 1024, 2) +
         " MB RSS); times: median of " + std::to_string(kRepeats) +
         " runs, each tick/deadline figure a median of " + std::to_string(kTickSamples) +
         " calls (" + std::to_string(kTickSamples / 4) +
         " with alerts open); per event = the 10,000 calls / 10,000");
  t.note("(c) " + bench::fmt(static_cast<double>(jr.rows)) +
         " rows of the journal's devices table (" + bench::fmt(static_cast<double>(jr.bare_rows)) +
         " bare), median of " + std::to_string(kRepeats) +
         "; bare = SELECT device_id, last_seen_ms into an unordered_map");
  t.note("machine: " + bench::machine_line());
  t.print();
  return 0;
}

}  // namespace

int main() {
  bench::Watchdog watchdog(std::chrono::seconds(55));
  spdlog::set_level(spdlog::level::warn);
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << "bench_sensors: " << e.what() << "\n";
    return 1;
  }
}
