// bench_access: OSDP access control through Anju's control panel (drivers/access/osdp_cp) and the
// tests' simulated readers (tests/support/osdp_pd_sim.hpp) on a pseudo-terminal.
//
// (a) Card read -> local decision -> LED feedback, over 300 reads at one reader: measured at the
//     reader, from the poll reply that carried the card to the arrival of the LED command (the
//     control panel's own path: decode, pseudonym, decision, feedback queued and sent), and from
//     the moment the card is presented (queued at the reader), which adds the wait for the next
//     poll. Issue 4's goal: the decision within 100 ms of the read.
// (b) The poll cycle with 8 readers on one bus, idle: measured on the pty, which has no baud-rate
//     pacing (so it is the software's own cost per cycle), beside the wire time of the same frames
//     at 115200 baud (8N1: 10 bits a byte), the floor a real RS-485 bus puts under it. On a real
//     bus the cycle is about the sum of the two (plus each reader's turnaround).
// Bounded: 300 reads, then 3 s of polling; a watchdog ends the program after 55 s.
#include <spdlog/spdlog.h>

#include <atomic>
#include <iostream>

#include "anju/drivers/osdp_cp.hpp"
#include "anju/edge/clock.hpp"
#include "bench_util.hpp"
#include "osdp_pd_sim.hpp"

namespace {
using namespace anju;
using namespace anju::sim;
using bench::SteadyClock;
namespace acs = drivers::access;

constexpr int kReads = 300;
constexpr int kBusReaders = 8;
constexpr double kPollSeconds = 3.0;
constexpr double kBaud = 115200;

acs::OsdpReaderConfig reader(std::uint8_t address) {
  acs::OsdpReaderConfig r;
  r.address = address;
  r.endpoint.device = {"reader-" + std::to_string(address), "card_reader", "", ""};
  r.endpoint.location = {"3", "1", "gate-" + std::to_string(address)};
  r.endpoint.door = "gate-" + std::to_string(address);
  return r;
}

acs::OsdpBusConfig bus(const std::string& device, int readers, std::int64_t poll_interval_ms) {
  acs::OsdpBusConfig c;
  c.name = "bench";
  c.device = device;
  c.baud = 115200;
  for (int i = 1; i <= readers; ++i) c.readers.push_back(reader(static_cast<std::uint8_t>(i)));
  c.site = {bench::kSite, bench::kGridCode};
  c.pseudonym_key = acs::PseudonymKey{};
  c.reply_timeout_ms = 200;
  c.retries = 2;
  c.poll_interval_ms = poll_interval_ms;
  return c;
}

// Wire time of a frame of `bytes` at 115200 8N1, in ms.
double wire_ms(std::size_t bytes) {
  return static_cast<double>(bytes) * 10.0 / kBaud * 1000.0;
}

struct Latency {
  std::vector<double> cp_ms;     // card sent in a reply -> LED command arrived
  std::vector<double> total_ms;  // card presented -> LED command arrived
  int granted = 0;
};

Latency card_latency(std::int64_t poll_interval_ms) {
  Pty pty;
  PdSim sim(pty.master, {sim_pd(1)});
  edge::SystemClock clock;
  std::atomic<int> granted{0};
  acs::OsdpControlPanel cp(
      bus(pty.name, 1, poll_interval_ms), clock,
      [&](std::vector<edge::Event> evs) {
        for (const auto& e : evs) granted += e.kind == edge::EventKind::passage_granted ? 1 : 0;
      },
      [](std::string_view, std::string_view, std::int64_t) {
        return acs::AccessDecision{true, "granted", ""};
      });
  cp.start();
  if (!sim.wait(
          1, [](SimPd& p) { return p.seen.size() >= 4; }, std::chrono::seconds(10)))
    throw std::runtime_error("the simulated reader was never polled");
  Latency out;
  for (int i = 0; i < kReads; ++i) {
    const auto presented = SteadyClock::now();
    sim.with(1, [&](SimPd& p) {
      p.cards.push_back(raw_reply(h10301(12, static_cast<std::uint32_t>(1000 + i))));
    });
    const bool fed = sim.wait(
        1, [&](SimPd& p) { return p.led_at.size() >= static_cast<std::size_t>(i + 1); },
        std::chrono::seconds(5));
    if (!fed) throw std::runtime_error("no LED feedback for read " + std::to_string(i));
    sim.with(1, [&](SimPd& p) {
      out.cp_ms.push_back(bench::ms_between(p.card_sent_at[i], p.led_at[i]));
      out.total_ms.push_back(bench::ms_between(presented, p.led_at[i]));
    });
  }
  cp.stop();
  out.granted = granted.load();
  return out;
}

// Polls per reader over kPollSeconds with kBusReaders idle readers.
double poll_cycle_ms() {
  Pty pty;
  std::vector<SimPd> pds;
  for (int i = 1; i <= kBusReaders; ++i) pds.push_back(sim_pd(static_cast<std::uint8_t>(i)));
  PdSim sim(pty.master, std::move(pds));
  edge::SystemClock clock;
  acs::OsdpControlPanel cp(bus(pty.name, kBusReaders, 0), clock, [](std::vector<edge::Event>) {});
  cp.start();
  for (int i = 1; i <= kBusReaders; ++i)
    if (!sim.wait(
            static_cast<std::uint8_t>(i), [](SimPd& p) { return p.seen.size() >= 4; },
            std::chrono::seconds(10)))
      throw std::runtime_error("reader " + std::to_string(i) + " was never polled");
  auto polls = [&] {
    std::size_t n = 0;
    sim.with(1, [&](SimPd& p) { n = p.seen.size(); });
    return n;
  };
  const std::size_t p0 = polls();
  const auto t0 = SteadyClock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(kPollSeconds));  // a measuring window
  const std::size_t p1 = polls();
  const double secs = bench::seconds_between(t0, SteadyClock::now());
  cp.stop();
  if (p1 <= p0) throw std::runtime_error("no polls in the measuring window");
  return secs * 1000.0 / static_cast<double>(p1 - p0);
}

int run() {
  const Latency lat = card_latency(10);
  const double cycle = poll_cycle_ms();
  // The frames of one idle cycle: POLL and its ACK per reader. Of a read: the reply with the
  // card (26-bit RAW), and the LED command with its ACK.
  const std::size_t poll_bytes = osdp::encode_command(1, 1, osdp::cmd::poll, {}).bytes.size();
  const std::size_t ack_bytes = osdp::encode_reply(1, 1, osdp::reply::ack, {}).bytes.size();
  const Bytes card = raw_reply(h10301(12, 1000));
  const std::size_t raw_bytes = osdp::encode_reply(1, 1, osdp::reply::raw, card).bytes.size();
  const std::size_t led_bytes =
      osdp::encode_command(1, 1, osdp::cmd::led, Bytes(14, 0)).bytes.size();
  const double wire_cycle = kBusReaders * wire_ms(poll_bytes + ack_bytes);
  const double wire_read = wire_ms(led_bytes + ack_bytes);  // after the card's reply

  bench::Table t("bench_access: OSDP card read -> decision -> LED, and the poll cycle");
  const double p50 = bench::percentile(lat.cp_ms, 50);
  const double p99 = bench::percentile(lat.cp_ms, 99);
  t.add("card reply -> LED command at the reader, p50 (ms)", bench::fmt(p50, 2),
        bench::fmt(wire_read, 2) + " (LED+ACK wire time)", "-", "-", "-");
  t.add("card reply -> LED command at the reader, p99 (ms)", bench::fmt(p99, 2), "-", "-",
        "<= 100 ms", bench::met(p99 <= 100));
  t.add("card presented -> LED command, p50 / p99 / max (ms)",
        bench::fmt(bench::percentile(lat.total_ms, 50), 2) + " / " +
            bench::fmt(bench::percentile(lat.total_ms, 99), 2) + " / " +
            bench::fmt(bench::percentile(lat.total_ms, 100), 2),
        "-", "-", "<= 100 ms", bench::met(bench::percentile(lat.total_ms, 99) <= 100));
  t.add("poll cycle, 8 readers, idle (ms)", bench::fmt(cycle, 2),
        bench::fmt(wire_cycle, 2) + " (wire time at 115200)", "-", "-", "-");
  t.note(std::to_string(kReads) + " reads at one reader polled every 10 ms, " +
         std::to_string(lat.granted) + " granted; frames: POLL " + std::to_string(poll_bytes) +
         " B, ACK " + std::to_string(ack_bytes) + " B, RAW (26 bits) " + std::to_string(raw_bytes) +
         " B, LED " + std::to_string(led_bytes) + " B");
  t.note(
      "the pty has no baud pacing: its figures are the software's cost; a real bus adds the "
      "wire time beside them (and each reader's turnaround)");
  t.note(bench::machine_line());
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
    std::cerr << "bench_access: " << e.what() << "\n";
    return 1;
  }
}
