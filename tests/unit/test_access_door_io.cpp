// Door I/O (drivers/access/src/door_io.cpp, gpiod_lines.cpp): Wiegand frames from D0/D1 pulses,
// debounced door contact / exit button / tamper, decisions and the lock pulse, all through the
// GpioLines interface with simulated edges and simulated time; the DoorIoDriver thread; and
// libgpiod where the build and the machine have it.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <chrono>
#include <condition_variable>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "anju/drivers/credentials.hpp"
#include "anju/drivers/door_io.hpp"
#include "anju/edge/clock.hpp"

using namespace anju::drivers;
using namespace anju::drivers::access;
using anju::edge::Event;
using anju::edge::EventKind;

namespace {

constexpr std::int64_t kMs = 1'000'000;  // ns
const PseudonymKey kKey{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6,
                        7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};

wiegand::Bits h10301(std::uint32_t facility, std::uint32_t card, bool break_parity = false) {
  wiegand::Bits b(26, false);
  for (int i = 0; i < 8; ++i) b[1 + i] = ((facility >> (7 - i)) & 1) != 0;
  for (int i = 0; i < 16; ++i) b[9 + i] = ((card >> (15 - i)) & 1) != 0;
  int ones = 0;
  for (int i = 1; i <= 12; ++i) ones += b[i] ? 1 : 0;
  b[0] = (ones % 2 == 1) != break_parity;
  ones = 0;
  for (int i = 13; i <= 24; ++i) ones += b[i] ? 1 : 0;
  b[25] = ones % 2 == 0;
  return b;
}

DoorIoConfig config() {
  DoorIoConfig c;
  c.site = {"compound-1", "11010100100100100101"};
  c.door.device = {"door-3-1", "door_controller", "Building 3 unit 1 door", ""};
  c.door.location = {"3", "1", "main door"};
  c.door.door = "b3-u1";
  c.reader.device = {"wiegand-3-1", "card_reader", "", ""};
  c.reader.location = c.door.location;
  c.reader.door = "b3-u1";
  c.pseudonym_key = kKey;
  c.contact = "contact";
  c.exit_button = "exit";
  c.tamper = "tamper";
  c.lock = "lock";
  c.debounce_ms = 50;
  c.lock_pulse_ms = 3000;
  return c;
}

SimulatedGpio gpio() {
  return SimulatedGpio({"d0", "d1", "contact", "exit", "tamper"}, {"lock"});
}

// Feeds every queued edge to the controller, then lets time pass to `until_ns`.
std::vector<Event> drain(SimulatedGpio& g, DoorController& c, std::int64_t until_ns) {
  std::vector<Event> out;
  for (const auto& e : g.wait_edges(0))
    for (auto& ev : c.on_edge(e)) out.push_back(std::move(ev));
  for (auto& ev : c.on_time(until_ns)) out.push_back(std::move(ev));
  return out;
}

std::vector<Event> of(const std::vector<Event>& evs, EventKind k) {
  std::vector<Event> out;
  for (const auto& e : evs)
    if (e.kind == k) out.push_back(e);
  return out;
}

// A gpio-sim chip of 8 lines made through configfs (needs root and the gpio-sim module), taken
// down again at the end. Inputs are driven by the simulated pull; outputs are read back.
struct GpioSimChip {
  std::filesystem::path dir, device;
  std::string chip_name, error;

  GpioSimChip() {
    dir = "/sys/kernel/config/gpio-sim/anju-test-" + std::to_string(::getpid());
    std::error_code ec;
    if (!std::filesystem::create_directory(dir, ec) ||
        !std::filesystem::create_directory(dir / "bank0", ec)) {
      error = "mkdir " + dir.string() + ": " + ec.message();
      return;
    }
    if (!put(dir / "bank0" / "num_lines", "8") || !put(dir / "live", "1")) {
      error = "cannot make " + dir.string() + " live";
      return;
    }
    chip_name = get(dir / "bank0" / "chip_name");
    device = std::filesystem::path("/sys/devices/platform") / get(dir / "dev_name") / chip_name;
    if (chip_name.empty()) error = "no chip_name";
  }
  ~GpioSimChip() {
    put(dir / "live", "0");
    std::error_code ec;
    std::filesystem::remove(dir / "bank0", ec);
    std::filesystem::remove(dir, ec);
  }
  bool pull(unsigned line, bool up) const {
    return put(device / ("sim_gpio" + std::to_string(line)) / "pull", up ? "pull-up" : "pull-down");
  }
  int value(unsigned line) const {
    const std::string v = get(device / ("sim_gpio" + std::to_string(line)) / "value");
    return v.empty() ? -1 : std::stoi(v);
  }
  static bool put(const std::filesystem::path& p, const std::string& v) {
    std::ofstream out(p);
    out << v;
    out.flush();
    return out.good();
  }
  static std::string get(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::string s;
    std::getline(in, s);
    return s;
  }
};

}  // namespace

TEST_CASE(
    "Door I/O: a Wiegand frame from D0/D1 pulses is a card read with the pseudonym, a "
    "grant pulses the lock for its time",
    "[access][door_io]") {
  anju::edge::ManualClock clock;
  auto g = gpio();
  std::vector<std::string> asked;
  DoorController c(config(), clock, g,
                   [&](std::string_view cred, std::string_view door, std::int64_t) {
                     asked.push_back(std::string(cred) + "@" + std::string(door));
                     return AccessDecision{true, "granted", "3-1-402"};
                   });
  c.prime();
  const std::int64_t t0 = 10'000 * kMs;
  g.push_wiegand(h10301(12, 3456), t0);  // 26 pulses, 2 ms apart
  // Before the 25 ms gap has passed: nothing yet.
  auto evs = drain(g, c, t0 + 50 * kMs + 24 * kMs);
  CHECK(evs.empty());
  evs = drain(g, c, t0 + 50 * kMs + 26 * kMs);
  auto reads = of(evs, EventKind::card_read);
  REQUIRE(reads.size() == 1);
  const std::string pseudonym = wiegand_pseudonym(kKey, wiegand::Format::h10301_26, 12, 3456);
  CHECK(reads[0].attrs.at("credential") == pseudonym);
  CHECK(reads[0].device.id == "wiegand-3-1");
  CHECK(reads[0].attrs.at("door") == "b3-u1");
  CHECK(anju::edge::encode(reads[0]).find("3456") == std::string::npos);
  REQUIRE(asked.size() == 1);
  CHECK(asked[0] == pseudonym + "@b3-u1");
  auto granted = of(evs, EventKind::passage_granted);
  REQUIRE(granted.size() == 1);
  CHECK(granted[0].attrs.at("label") == "3-1-402");
  // The lock: on now, off after 3 s.
  CHECK(g.output("lock") == true);
  CHECK(c.lock_active());
  const std::int64_t unlocked_at = t0 + 76 * kMs;
  CHECK(drain(g, c, unlocked_at + 2999 * kMs).empty());
  CHECK(g.output("lock") == true);
  drain(g, c, unlocked_at + 3000 * kMs);
  CHECK(g.output("lock") == false);
  CHECK(g.writes() == std::vector<std::pair<std::string, bool>>{{"lock", true}, {"lock", false}});
}

TEST_CASE("Door I/O: a Wiegand frame with bad parity is a reader_fault, not a card read",
          "[access][door_io]") {
  anju::edge::ManualClock clock;
  auto g = gpio();
  int decisions = 0;
  DoorController c(config(), clock, g, [&](std::string_view, std::string_view, std::int64_t) {
    ++decisions;
    return AccessDecision{true, "granted", ""};
  });
  g.push_wiegand(h10301(12, 3456, true), 0);
  auto evs = drain(g, c, 200 * kMs);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].kind == EventKind::reader_fault);
  CHECK(evs[0].attrs.at("reason").get<std::string>().find("parity") != std::string::npos);
  CHECK(decisions == 0);
  CHECK(g.writes().empty());
  // A 2-pulse glitch is noise: no event at all.
  g.push("d0", true, 1000 * kMs);
  g.push("d1", true, 1002 * kMs);
  CHECK(drain(g, c, 1100 * kMs).empty());
}

TEST_CASE("Door I/O: inputs are debounced, contact, exit button and tamper become events",
          "[access][door_io]") {
  anju::edge::ManualClock clock;
  auto g = gpio();
  DoorController c(config(), clock, g);
  c.prime();
  const std::int64_t t = 5'000 * kMs;

  SECTION("a bouncing contact reports one opening, 50 ms after the last bounce") {
    g.push("contact", true, t);
    g.push("contact", false, t + 3 * kMs);
    g.push("contact", true, t + 8 * kMs);
    CHECK(drain(g, c, t + 57 * kMs).empty());
    CHECK(c.next_deadline_ns() == t + 58 * kMs);
    auto evs = drain(g, c, t + 58 * kMs);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].kind == EventKind::door_open);
    CHECK(evs[0].active == true);
    CHECK(evs[0].device.id == "door-3-1");
    CHECK(evs[0].location.room == "main door");
    CHECK(evs[0].attrs.at("door") == "b3-u1");
    g.push("contact", false, t + 5000 * kMs);
    evs = drain(g, c, t + 5050 * kMs);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].active == false);
  }
  SECTION("a glitch shorter than the debounce time is nothing") {
    g.push("contact", true, t);
    g.push("contact", false, t + 20 * kMs);
    CHECK(drain(g, c, t + 500 * kMs).empty());
  }
  SECTION("exit button: a press is an exit request, the release is not") {
    g.push("exit", true, t);
    auto evs = drain(g, c, t + 60 * kMs);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].kind == EventKind::exit_request);
    g.push("exit", false, t + 300 * kMs);
    CHECK(drain(g, c, t + 400 * kMs).empty());
  }
  SECTION("tamper on and off") {
    g.push("tamper", true, t);
    auto evs = drain(g, c, t + 60 * kMs);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].kind == EventKind::tamper);
    CHECK(evs[0].severity == 2);
    CHECK(evs[0].active == true);
    g.push("tamper", false, t + 1000 * kMs);
    evs = drain(g, c, t + 1060 * kMs);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].active == false);
  }
  SECTION("a door already open at start is not reported as an opening") {
    g.push("contact", true, t);
    g.wait_edges(0);  // the edge happened before the driver started
    c.prime();
    CHECK(drain(g, c, t + 1000 * kMs).empty());
  }
}

TEST_CASE("Door I/O driver: its thread turns edges into events for the sink", "[access][door_io]") {
  anju::edge::ManualClock clock;
  auto owned = std::make_unique<SimulatedGpio>(
      std::vector<std::string>{"d0", "d1", "contact", "exit", "tamper"},
      std::vector<std::string>{"lock"});
  SimulatedGpio& g = *owned;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Event> got;
  DoorIoDriver driver(config(), clock, std::move(owned), [&](std::vector<Event> evs) {
    {
      std::lock_guard lock(mu);
      for (auto& e : evs) got.push_back(std::move(e));
    }
    cv.notify_all();
  });
  driver.start();
  g.set_now_ns(2'000 * kMs + 60 * kMs);  // the simulated clock is already past the debounce
  g.push("contact", true, 2'000 * kMs);
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return !got.empty(); }));
    CHECK(got[0].kind == EventKind::door_open);
    CHECK(got[0].active == true);
  }
  driver.stop();
}

TEST_CASE("Door I/O driver: an operator's remote open pulses the lock of its own door only",
          "[access][door_io]") {
  anju::edge::ManualClock clock;
  auto owned = std::make_unique<SimulatedGpio>(
      std::vector<std::string>{"d0", "d1", "contact", "exit", "tamper"},
      std::vector<std::string>{"lock"});
  SimulatedGpio& g = *owned;
  DoorIoDriver driver(config(), clock, std::move(owned), {});
  driver.start();
  CHECK(driver.door() == "b3-u1");
  CHECK(driver.open_door("b3-u2") == 0);
  CHECK(g.writes().empty());
  g.set_now_ns(5'000 * kMs);
  REQUIRE(driver.open_door("b3-u1") == 1);
  REQUIRE(g.wait_output("lock", true, 5000));
  // Released when the pulse (3 s of the driver's clock) is over.
  g.set_now_ns(8'001 * kMs);
  REQUIRE(g.wait_output("lock", false, 5000));
  driver.stop();
  const auto st = driver.status();
  CHECK(st.remote_opens == 1);
  CHECK(st.open == false);
  CHECK_FALSE(st.lock_active);
  CHECK(g.writes() == std::vector<std::pair<std::string, bool>>{{"lock", true}, {"lock", false}});

  auto no_lock = config();
  no_lock.lock.clear();
  DoorIoDriver without(
      no_lock, clock,
      std::make_unique<SimulatedGpio>(std::vector<std::string>{"d0", "d1", "contact"},
                                      std::vector<std::string>{}),
      {});
  CHECK(without.open_door("b3-u1") == 0);  // nothing to open it with
}

TEST_CASE("Door I/O config errors name the field", "[access][door_io]") {
  auto c = config();
  c.debounce_ms = -1;
  c.d1.clear();
  c.lock_pulse_ms = 10;
  c.door.door.clear();
  const std::string err = validate(c);
  CHECK(err.find("debounce_ms: -1 out of range") != std::string::npos);
  CHECK(err.find("d0/d1: a Wiegand reader needs both lines") != std::string::npos);
  CHECK(err.find("lock_pulse_ms: 10 out of range") != std::string::npos);
  CHECK(err.find("door.door: empty") != std::string::npos);
  anju::edge::ManualClock clock;
  auto g = gpio();
  CHECK_THROWS_WITH(DoorController(c, clock, g), Catch::Contains("debounce_ms"));
}

TEST_CASE(
    "Door I/O on libgpiod: a missing chip is a clear error, gpio-sim when the kernel has "
    "it",
    "[access][door_io][gpiod]") {
  if (!have_libgpiod()) {
    CHECK_THROWS_WITH(open_libgpiod("gpiochip99", {}, {}), Catch::Contains("no libgpiod"));
    WARN("SKIPPED: this build has no libgpiod (install libgpiod-dev)");
    return;
  }
  CHECK_THROWS_WITH(open_libgpiod("anju-no-such-chip", {{"contact", 0, false, false}}, {}),
                    Catch::Contains("gpio chip 'anju-no-such-chip': cannot open"));
  if (!std::filesystem::exists("/sys/kernel/config/gpio-sim")) {
    WARN(
        "SKIPPED: real libgpiod edges need the kernel's gpio-sim (configfs "
        "/sys/kernel/config/gpio-sim is not available on this machine)");
    return;
  }
  GpioSimChip sim;
  if (!sim.error.empty()) {
    WARN("SKIPPED: gpio-sim is present but a chip cannot be made: " << sim.error);
    return;
  }
  // Lines 0/1 are the Wiegand reader's D0/D1 (active-low, idle pulled up), 2 the contact, 3 the
  // lock relay.
  REQUIRE(sim.pull(0, true));
  REQUIRE(sim.pull(1, true));
  REQUIRE(sim.pull(2, false));
  auto lines = open_libgpiod(
      sim.chip_name, {{"d0", 0, true, false}, {"d1", 1, true, false}, {"contact", 2, false, false}},
      {{"lock", 3, false, false}});
  anju::edge::ManualClock clock;
  auto cfg = config();
  cfg.exit_button.clear();
  cfg.tamper.clear();
  cfg.lock_pulse_ms = 200;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Event> got;
  const std::string hash = wiegand_pseudonym(kKey, wiegand::Format::h10301_26, 7, 4242);
  DoorIoDriver driver(
      cfg, clock, std::move(lines),
      [&](std::vector<Event> evs) {
        {
          std::lock_guard lock(mu);
          for (auto& e : evs) got.push_back(std::move(e));
        }
        cv.notify_all();
      },
      [&](std::string_view credential, std::string_view, std::int64_t) {
        AccessDecision d;
        d.granted = credential == hash;
        d.reason = d.granted ? "granted" : "unknown";
        return d;
      });
  driver.start();
  auto wait_for = [&](EventKind k) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] {
      for (const auto& e : got)
        if (e.kind == k) return true;
      return false;
    });
  };
  // The contact: a real both-edges event from the kernel, debounced.
  REQUIRE(sim.pull(2, true));
  REQUIRE(wait_for(EventKind::door_open));
  // A card: 26 pulses written to the lines one by one, stamped by the kernel.
  for (bool bit : h10301(7, 4242)) {
    REQUIRE(sim.pull(bit ? 1 : 0, false));
    REQUIRE(sim.pull(bit ? 1 : 0, true));
  }
  REQUIRE(wait_for(EventKind::passage_granted));
  // The lock relay is driven for its pulse, then released.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool unlocked = false, relocked = false;
  while (std::chrono::steady_clock::now() < deadline && !relocked) {
    const auto v = sim.value(3);
    unlocked = unlocked || v == 1;
    relocked = unlocked && v == 0;
    std::this_thread::yield();
  }
  CHECK(unlocked);
  CHECK(relocked);
  driver.stop();
  std::lock_guard lock(mu);
  const auto reads = of(got, EventKind::card_read);
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].attrs.value("credential", "") == hash);
}
