// The OSDP Control Panel driver against a PD simulator of our own, over a real pseudo-terminal
// pair (openpty) and over TCP on loopback. The simulator uses the codec's peripheral role; it
// answers like a reader: PDID, PDCAP, ACK to POLL or a queued card (osdp_RAW), ACK to
// LED/BUZ/OUT, the Secure Channel handshake, KEYSET, and repeats its last reply when the CP
// resends a command with the same sequence number.
// Nothing sleeps to wait: tests wait on condition variables with deadlines.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "anju/drivers/access_events.hpp"
#include "anju/drivers/osdp.hpp"
#include "anju/drivers/osdp_cp.hpp"
#include "anju/drivers/wiegand.hpp"
#include "anju/edge/clock.hpp"
#include "osdp_pd_sim.hpp"

using namespace anju::drivers;
using namespace anju::drivers::access;
using anju::edge::Event;
using anju::edge::EventKind;
using osdp::Bytes;
using namespace anju::sim;

namespace {

constexpr auto kWait = std::chrono::seconds(5);

// Collects what the driver hands to its sink; waits on a condition with a deadline.
class Collector {
 public:
  void operator()(std::vector<Event> evs) {
    {
      std::lock_guard lock(mu_);
      for (auto& e : evs) events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  bool wait(const std::function<bool(const std::vector<Event>&)>& pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return pred(events_); });
  }
  bool wait_count(EventKind k, std::size_t n) {
    return wait([&](const auto& evs) { return count(evs, k) >= n; });
  }
  std::size_t count(EventKind k) {
    std::lock_guard lock(mu_);
    return count(events_, k);
  }
  std::vector<Event> of(EventKind k) {
    std::lock_guard lock(mu_);
    std::vector<Event> out;
    for (const auto& e : events_)
      if (e.kind == k) out.push_back(e);
    return out;
  }
  static std::size_t count(const std::vector<Event>& evs, EventKind k) {
    std::size_t n = 0;
    for (const auto& e : evs) n += e.kind == k ? 1 : 0;
    return n;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
};

const PseudonymKey kSiteKey{1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                            17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
const osdp::Key kScbk{0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18,
                      0x29, 0x3A, 0x4B, 0x5C, 0x6D, 0x7E, 0x8F, 0x90};

OsdpReaderConfig reader(std::uint8_t address, std::string door) {
  OsdpReaderConfig r;
  r.address = address;
  r.endpoint.device = {"reader-" + std::to_string(address), "card_reader",
                       "Reader " + std::to_string(address), ""};
  r.endpoint.location = {"3", "1", door};
  r.endpoint.door = door;
  return r;
}

OsdpBusConfig bus(const std::string& device, std::vector<OsdpReaderConfig> readers) {
  OsdpBusConfig c;
  c.name = "test-bus";
  c.device = device;
  c.baud = 115200;
  c.readers = std::move(readers);
  c.site = {"compound-1", "11010100100100100101"};
  c.pseudonym_key = kSiteKey;
  c.reply_timeout_ms = 60;
  c.retries = 2;
  c.poll_interval_ms = 5;
  c.offline_backoff_ms = 30;
  c.max_backoff_ms = 120;
  c.sc_backoff_ms = 30;
  return c;
}

std::string expected_pseudonym(const wiegand::Bits& bits) {
  auto ev = event_from_wiegand(wiegand::decode(bits), kSiteKey, 0);
  REQUIRE(ev);
  return ev->attrs.at("credential").get<std::string>();
}

}  // namespace

TEST_CASE(
    "OSDP CP over a pty: ID and CAP at start, then polls, a card read becomes a card_read "
    "event and the decision's feedback reaches the reader",
    "[access][osdp_cp]") {
  Pty pty;
  PdSim sim(pty.master, {sim_pd(1), sim_pd(2)});
  Collector events;
  anju::edge::SystemClock clock;
  auto cfg = bus(pty.name, {reader(1, "gate-north"), reader(2, "gate-south")});
  cfg.readers[0].controls_lock = true;
  cfg.readers[0].lock_output = 1;
  cfg.readers[0].lock_pulse_ms = 4000;
  std::vector<std::string> asked;
  std::mutex asked_mu;
  OsdpControlPanel cp(cfg, clock, std::ref(events),
                      [&](std::string_view cred, std::string_view door, std::int64_t) {
                        std::lock_guard lock(asked_mu);
                        asked.push_back(std::string(cred) + "@" + std::string(door));
                        return AccessDecision{door == "gate-north",
                                              door == "gate-north" ? "granted" : "unknown", ""};
                      });
  cp.start();
  REQUIRE(events.wait_count(EventKind::device_online, 2));
  // Start-up order and sequence numbers: ID with SQN 0, CAP with 1, then polls 2, 3, 1, ...
  REQUIRE(sim.wait(1, [](SimPd& p) { return p.seen.size() >= 6; }));
  sim.with(1, [](SimPd& p) {
    CHECK(p.seen[0].code == osdp::cmd::id);
    CHECK(p.seen[0].sqn == 0);
    CHECK(p.seen[1].code == osdp::cmd::cap);
    CHECK(p.seen[1].sqn == 1);
    for (std::size_t i = 2; i < 6; ++i) {
      CHECK(p.seen[i].code == osdp::cmd::poll);
      CHECK(p.seen[i].sqn == osdp::next_sqn(p.seen[i - 1].sqn));
    }
  });
  auto online = events.of(EventKind::device_online);
  CHECK(online[0].attrs.at("serial") == 0x12345678);
  CHECK(online[0].site == "compound-1");

  const auto card = h10301(12, 3456);
  sim.with(1, [&](SimPd& p) { p.cards.push_back(raw_reply(card)); });
  REQUIRE(events.wait_count(EventKind::passage_granted, 1));
  auto reads = events.of(EventKind::card_read);
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].device.id == "reader-1");
  CHECK(reads[0].location.room == "gate-north");
  CHECK(reads[0].attrs.at("credential") == expected_pseudonym(card));
  CHECK(reads[0].attrs.at("door") == "gate-north");
  const std::string json = anju::edge::encode(reads[0]);
  CHECK(json.find("3456") == std::string::npos);  // never the card number
  auto granted = events.of(EventKind::passage_granted)[0];
  CHECK(granted.attrs.at("credential") == expected_pseudonym(card));
  CHECK(granted.attrs.at("door") == "gate-north");

  // Feedback: green LED, a short beep, and a 4 s pulse of output 1 (the lock).
  REQUIRE(sim.wait(1, [](SimPd& p) { return !p.outputs.empty(); }));
  sim.with(1, [](SimPd& p) {
    REQUIRE(p.leds.size() == 1);
    CHECK(p.leds[0][5] == 2);  // temporary on-colour green
    REQUIRE(p.buzzers.size() == 1);
    CHECK(p.buzzers[0][2] == 1);                // 100 ms on
    CHECK(p.outputs[0] == Bytes{1, 5, 40, 0});  // output 1, temporary on, 40 x 100 ms
  });

  // The other reader: denied, red and a long beep, no lock pulse.
  sim.with(2, [&](SimPd& p) { p.cards.push_back(raw_reply(h10301(12, 999))); });
  REQUIRE(events.wait_count(EventKind::passage_denied, 1));
  CHECK(events.of(EventKind::passage_denied)[0].attrs.at("reason") == "unknown");
  REQUIRE(sim.wait(2, [](SimPd& p) { return !p.buzzers.empty(); }));
  sim.with(2, [](SimPd& p) {
    CHECK(p.leds.at(0)[5] == 1);   // red
    CHECK(p.buzzers[0][2] == 10);  // 1 s
    CHECK(p.outputs.empty());
  });
  cp.stop();
  CHECK(cp.stats().card_reads == 2);
  CHECK(events.count(EventKind::device_offline) == 0);
}

TEST_CASE(
    "OSDP CP: a reply with a bad CRC is resent with the same SQN and the card read arrives "
    "once",
    "[access][osdp_cp]") {
  Pty pty;
  PdSim sim(pty.master, {sim_pd(5)});
  Collector events;
  anju::edge::SystemClock clock;
  OsdpControlPanel cp(bus(pty.name, {reader(5, "lobby")}), clock, std::ref(events));
  cp.start();
  REQUIRE(events.wait_count(EventKind::device_online, 1));
  sim.with(5, [&](SimPd& p) {
    p.cards.push_back(raw_reply(h10301(1, 42)));
    p.corrupt_replies = 1;
  });
  REQUIRE(events.wait_count(EventKind::card_read, 1));
  // Let a few more polls go by: still one card read.
  const auto polls = sim.with(5, [](SimPd& p) { return p.seen.size(); });
  REQUIRE(sim.wait(5, [&](SimPd& p) { return p.seen.size() >= polls + 3; }));
  CHECK(events.count(EventKind::card_read) == 1);
  CHECK(sim.with(5, [](SimPd& p) {
    for (const auto& s : p.seen)
      if (s.repeat) return true;
    return false;
  }));
  const auto st = cp.stats();
  CHECK(st.bad_frames >= 1);
  CHECK(st.resends >= 1);
  CHECK(events.count(EventKind::device_offline) == 0);
}

TEST_CASE(
    "OSDP CP: a PD that stops answering goes offline once, is retried with backoff, and "
    "comes back online",
    "[access][osdp_cp]") {
  Pty pty;
  PdSim sim(pty.master, {sim_pd(3), sim_pd(4)});
  Collector events;
  anju::edge::SystemClock clock;
  OsdpControlPanel cp(bus(pty.name, {reader(3, "garage"), reader(4, "bike-room")}), clock,
                      std::ref(events));
  cp.start();
  REQUIRE(events.wait_count(EventKind::device_online, 2));
  sim.with(3, [](SimPd& p) { p.answering = false; });
  REQUIRE(events.wait_count(EventKind::device_offline, 1));
  // It keeps being retried (the simulator sees more unanswered commands) but is reported once.
  const int ignored = sim.with(3, [](SimPd& p) { return p.ignored; });
  REQUIRE(sim.wait(3, [&](SimPd& p) { return p.ignored >= ignored + 6; }));
  CHECK(events.count(EventKind::device_offline) == 1);
  auto off = events.of(EventKind::device_offline)[0];
  CHECK(off.device.id == "reader-3");
  CHECK(off.attrs.at("reason").get<std::string>().find("no reply") != std::string::npos);
  CHECK(cp.readers()[0].online == false);
  CHECK(cp.readers()[1].online == true);  // the other PD on the bus is unaffected

  // The retries restart the link with SQN 0 and osdp_ID.
  sim.with(3, [](SimPd& p) {
    p.answering = true;
    p.seen.clear();
  });
  REQUIRE(events.wait_count(EventKind::device_online, 3));
  auto back = events.of(EventKind::device_online).back();
  CHECK(back.device.id == "reader-3");
  CHECK(back.attrs.at("returned") == true);
  sim.with(3, [](SimPd& p) {
    REQUIRE(!p.seen.empty());
    CHECK(p.seen[0].code == osdp::cmd::id);
    CHECK(p.seen[0].sqn == 0);
  });
  CHECK(events.count(EventKind::device_offline) == 1);
}

TEST_CASE(
    "OSDP CP: Secure Channel handshake, then every poll is MACed and the card read "
    "arrives through the session",
    "[access][osdp_cp]") {
  Pty pty;
  PdSim sim(pty.master, {sim_pd(1, kScbk, true)});
  Collector events;
  anju::edge::SystemClock clock;
  auto cfg = bus(pty.name, {reader(1, "gate")});
  cfg.readers[0].secure_channel = true;
  cfg.readers[0].scbk = kScbk;
  OsdpControlPanel cp(cfg, clock, std::ref(events),
                      [](std::string_view, std::string_view, std::int64_t) {
                        return AccessDecision{true, "granted", ""};
                      });
  cp.start();
  REQUIRE(sim.wait(1, [](SimPd& p) { return p.established == 1; }));
  sim.with(1, [&](SimPd& p) { p.cards.push_back(raw_reply(h10301(7, 1234))); });
  REQUIRE(events.wait_count(EventKind::card_read, 1));
  REQUIRE(sim.wait(1, [](SimPd& p) { return !p.leds.empty() && !p.buzzers.empty(); }));
  sim.with(1, [](SimPd& p) {
    bool after_handshake = false;
    int polls = 0;
    for (const auto& s : p.seen) {
      if (s.code == osdp::cmd::scrypt) after_handshake = true;
      if (s.code == osdp::cmd::poll) {
        CHECK(after_handshake);
        CHECK(s.secured);
        ++polls;
      }
      if (s.code == osdp::cmd::led || s.code == osdp::cmd::buz) CHECK(s.secured);
    }
    CHECK(polls >= 1);
  });
  CHECK(events.of(EventKind::card_read)[0].attrs.at("credential") ==
        expected_pseudonym(h10301(7, 1234)));
  CHECK(cp.readers()[0].secure);
  CHECK(events.count(EventKind::security_fault) == 0);
  CHECK(cp.stats().sc_failures == 0);
}

TEST_CASE(
    "OSDP CP: Secure Channel with the wrong key is a security_fault, the reader is never "
    "polled in plaintext and its card reads are not accepted",
    "[access][osdp_cp]") {
  Pty pty;
  osdp::Key other = kScbk;
  other[0] ^= 0xFF;
  SimPd rogue = sim_pd(1, other);  // answers plaintext polls if it gets any
  rogue.cards.push_back(raw_reply(h10301(7, 1234)));
  PdSim sim(pty.master, {std::move(rogue)});
  Collector events;
  anju::edge::SystemClock clock;
  auto cfg = bus(pty.name, {reader(1, "gate")});
  cfg.readers[0].secure_channel = true;
  cfg.readers[0].scbk = kScbk;
  OsdpControlPanel cp(cfg, clock, std::ref(events));
  cp.start();
  REQUIRE(events.wait_count(EventKind::security_fault, 1));
  // The handshake is retried (with backoff), and fails each time. The 4th osdp_CHLNG is sent
  // only after the 3rd failure has been handled.
  REQUIRE(sim.wait(1, [](SimPd& p) { return p.handshakes >= 4; }));
  auto fault = events.of(EventKind::security_fault)[0];
  CHECK(fault.active == true);
  CHECK(fault.severity == 2);
  CHECK(fault.attrs.at("reason").get<std::string>().find("cryptogram mismatch") !=
        std::string::npos);
  CHECK(events.count(EventKind::security_fault) == 1);  // same reason: reported once
  CHECK(events.count(EventKind::card_read) == 0);
  sim.with(1, [](SimPd& p) {
    CHECK(p.established == 0);
    CHECK(p.cards.size() == 1);  // never polled for it
    for (const auto& s : p.seen) CHECK(s.code != osdp::cmd::poll);
  });
  CHECK(cp.stats().sc_failures >= 3);
  CHECK_FALSE(cp.readers()[0].secure);
}

TEST_CASE(
    "OSDP CP: a plaintext card read from a reader configured for Secure Channel is "
    "refused",
    "[access][osdp_cp]") {
  Pty pty;
  SimPd rogue = sim_pd(2, kScbk);
  rogue.card_instead_of_ccrypt = true;
  rogue.cards.push_back(raw_reply(h10301(7, 1234)));
  PdSim sim(pty.master, {std::move(rogue)});
  Collector events;
  anju::edge::SystemClock clock;
  auto cfg = bus(pty.name, {reader(2, "gate")});
  cfg.readers[0].secure_channel = true;
  cfg.readers[0].scbk = kScbk;
  OsdpControlPanel cp(cfg, clock, std::ref(events),
                      [](std::string_view, std::string_view, std::int64_t) {
                        return AccessDecision{true, "granted", ""};
                      });
  cp.start();
  REQUIRE(events.wait_count(EventKind::security_fault, 1));
  // After the rogue card, the PD answers the next handshake properly: the session comes up.
  REQUIRE(sim.wait(2, [](SimPd& p) { return p.established >= 1; }));
  REQUIRE(events.wait([](const auto& evs) {
    for (const auto& e : evs)
      if (e.kind == EventKind::security_fault && e.active == false) return true;
    return false;
  }));
  CHECK(events.count(EventKind::card_read) == 0);
  CHECK(events.count(EventKind::passage_granted) == 0);
  CHECK(cp.stats().refused_reads == 1);
  CHECK(events.of(EventKind::security_fault)[0].attrs.at("reason").get<std::string>().find(
            "osdp_RAW") != std::string::npos);
}

TEST_CASE(
    "OSDP CP: install mode sets up the session with SCBK-D, installs the configured key "
    "with KEYSET and continues with it",
    "[access][osdp_cp]") {
  Pty pty;
  PdSim sim(pty.master, {sim_pd(1, osdp::kScbkD, true)});
  Collector events;
  anju::edge::SystemClock clock;
  auto cfg = bus(pty.name, {reader(1, "gate")});
  cfg.readers[0].secure_channel = true;
  cfg.readers[0].install_mode = true;
  cfg.readers[0].scbk = kScbk;
  OsdpControlPanel cp(cfg, clock, std::ref(events));
  cp.start();
  REQUIRE(sim.wait(1, [](SimPd& p) { return p.established >= 2; }));
  sim.with(1, [](SimPd& p) {
    REQUIRE(p.key);
    CHECK(*p.key == kScbk);  // the PD now holds the site's key
  });
  sim.with(1, [&](SimPd& p) { p.cards.push_back(raw_reply(h10301(7, 77))); });
  REQUIRE(events.wait_count(EventKind::card_read, 1));
  CHECK(events.count(EventKind::security_fault) == 0);
}

TEST_CASE(
    "OSDP CP: keypad entries carry only their length, tamper reports become tamper "
    "events",
    "[access][osdp_cp]") {
  Pty pty;
  PdSim sim(pty.master, {sim_pd(6)});
  Collector events;
  anju::edge::SystemClock clock;
  OsdpControlPanel cp(bus(pty.name, {reader(6, "lobby")}), clock, std::ref(events));
  cp.start();
  REQUIRE(events.wait_count(EventKind::device_online, 1));
  sim.with(6, [](SimPd& p) {
    p.replies.push_back({osdp::reply::keypad, Bytes{0, 5, '9', '8', '7', '6', 0x0D}});
    p.replies.push_back({osdp::reply::lstatr, Bytes{1, 0}});
  });
  REQUIRE(events.wait_count(EventKind::tamper, 1));
  REQUIRE(events.count(EventKind::keypad_entry) == 1);
  const auto key = events.of(EventKind::keypad_entry)[0];
  CHECK(key.attrs.at("digits") == 5);
  CHECK(anju::edge::encode(key).find("9876") == std::string::npos);
  const auto tamper = events.of(EventKind::tamper)[0];
  CHECK(tamper.active == true);
  CHECK(tamper.device.id == "reader-6");
}

TEST_CASE("OSDP CP: NAK 'unexpected sequence number' restarts the link with SQN 0",
          "[access][osdp_cp]") {
  Pty pty;
  PdSim sim(pty.master, {sim_pd(1)});
  Collector events;
  anju::edge::SystemClock clock;
  OsdpControlPanel cp(bus(pty.name, {reader(1, "gate")}), clock, std::ref(events));
  cp.start();
  REQUIRE(events.wait_count(EventKind::device_online, 1));
  sim.with(1, [](SimPd& p) {
    p.seen.clear();
    p.nak_next = 4;
  });
  REQUIRE(sim.wait(1, [](SimPd& p) {
    for (std::size_t i = 1; i < p.seen.size(); ++i)
      if (p.seen[i].code == osdp::cmd::id && p.seen[i].sqn == 0) return true;
    return false;
  }));
  CHECK(cp.stats().naks == 1);
  CHECK(events.count(EventKind::device_offline) == 0);
}

TEST_CASE("OSDP CP over TCP: the same polling and card reads through a socket",
          "[access][osdp_cp]") {
  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  REQUIRE(::listen(lfd, 1) == 0);
  Collector events;
  anju::edge::SystemClock clock;
  OsdpControlPanel cp(
      bus("tcp:127.0.0.1:" + std::to_string(ntohs(a.sin_port)), {reader(9, "gate")}), clock,
      std::ref(events));
  cp.start();
  pollfd pl{lfd, POLLIN, 0};
  REQUIRE(::poll(&pl, 1, 5000) == 1);  // the CP connects at once
  const int conn = ::accept(lfd, nullptr, nullptr);
  REQUIRE(conn >= 0);
  {
    PdSim sim(conn, {sim_pd(9)});
    REQUIRE(events.wait_count(EventKind::device_online, 1));
    sim.with(9, [&](SimPd& p) { p.cards.push_back(raw_reply(h10301(3, 3))); });
    REQUIRE(events.wait_count(EventKind::card_read, 1));
    cp.stop();
  }
  ::close(conn);
  ::close(lfd);
}

TEST_CASE("OSDP CP config errors name the field", "[access][osdp_cp]") {
  OsdpBusConfig c = bus("/dev/null", {reader(1, "a"), reader(1, "b"), reader(127, "c")});
  c.baud = 12345;
  c.readers[0].secure_channel = true;  // no key
  c.readers[1].install_mode = true;    // without secure_channel
  const std::string err = validate(c);
  CHECK(err.find("baud: 12345 not supported") != std::string::npos);
  CHECK(err.find("readers[0].scbk: all zero") != std::string::npos);
  CHECK(err.find("readers[1].address: 1 used twice") != std::string::npos);
  CHECK(err.find("readers[1].install_mode: needs secure_channel") != std::string::npos);
  CHECK(err.find("readers[2].address: 127 is the broadcast address") != std::string::npos);
  anju::edge::SystemClock clock;
  CHECK_THROWS_WITH(OsdpControlPanel(c, clock, [](std::vector<Event>) {}),
                    Catch::Contains("osdp bus 'test-bus'"));
  OsdpBusConfig sc = bus("/dev/null", {reader(1, "a")});
  sc.readers[0].secure_channel = true;
  sc.readers[0].scbk = osdp::kScbkD;
  CHECK(validate(sc).find("default key SCBK-D; set install_mode") != std::string::npos);
}
