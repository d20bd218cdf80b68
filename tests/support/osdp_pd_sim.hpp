// A simulated OSDP peripheral bus for tests: PdSim answers like one or more readers (PDs) on a
// file descriptor (the master side of a pty pair, or a socket): PDID, PDCAP, ACK to POLL or a
// queued card (osdp_RAW), ACK to LED/BUZ/OUT, the Secure Channel handshake, KEYSET, and the
// repeat of its last reply when the CP resends a command with the same sequence number. It uses
// the codec's peripheral role. Header-only: the unit and the integration tests both use it.
// Thread: PdSim runs one thread; with() and wait() from the test thread.
#pragma once

#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "anju/drivers/osdp.hpp"
#include "anju/drivers/wiegand.hpp"

namespace anju::sim {

using drivers::osdp::Bytes;
namespace osdp = drivers::osdp;
namespace wiegand = drivers::wiegand;

// A 26-bit H10301 frame with correct parities.
inline wiegand::Bits h10301(std::uint32_t facility, std::uint32_t card) {
  wiegand::Bits b(26, false);
  for (int i = 0; i < 8; ++i) b[1 + i] = ((facility >> (7 - i)) & 1) != 0;
  for (int i = 0; i < 16; ++i) b[9 + i] = ((card >> (15 - i)) & 1) != 0;
  int ones = 0;
  for (int i = 1; i <= 12; ++i) ones += b[i] ? 1 : 0;
  b[0] = ones % 2 == 1;  // even parity
  ones = 0;
  for (int i = 13; i <= 24; ++i) ones += b[i] ? 1 : 0;
  b[25] = ones % 2 == 0;  // odd parity
  return b;
}

// osdp_RAW data for a Wiegand frame: reader 0, format 1, bit count, bits MSB first.
inline Bytes raw_reply(const wiegand::Bits& bits) {
  // Sized once (GCC 12 at -O3 warns falsely, -Warray-bounds, on growing an initialised vector).
  Bytes d(4 + (bits.size() + 7) / 8, 0);
  d[1] = 1;
  d[2] = static_cast<std::uint8_t>(bits.size() & 0xFF);
  d[3] = static_cast<std::uint8_t>(bits.size() >> 8);
  for (std::size_t i = 0; i < bits.size(); ++i)
    if (bits[i]) d[4 + i / 8] |= static_cast<std::uint8_t>(0x80 >> (i % 8));
  return d;
}

struct Seen {
  std::uint8_t code = 0;
  std::uint8_t sqn = 0;
  bool secured = false;
  bool repeat = false;  // answered with the stored last reply
};

struct SimPd {
  std::uint8_t address = 1;
  bool answering = true;
  std::optional<osdp::Key> key;         // supports Secure Channel with this key
  bool require_sc = false;              // NAK 6 to anything but ID/CAP outside a session
  bool card_instead_of_ccrypt = false;  // a rogue PD: answers osdp_CHLNG with a plaintext card
  std::deque<Bytes> cards;              // osdp_RAW data to send on the next polls
  std::deque<std::pair<std::uint8_t, Bytes>> replies;  // other replies to the next polls
  int corrupt_replies = 0;                             // damage the CRC of the next N replies
  std::optional<std::uint8_t> nak_next;                // answer the next command with this NAK
  // what happened
  std::vector<Seen> seen;
  std::vector<Bytes> leds, buzzers, outputs;
  // when (steady clock) each card was sent in a poll's reply and each LED command arrived
  std::vector<std::chrono::steady_clock::time_point> card_sent_at, led_at;
  int handshakes = 0;
  int established = 0;
  int ignored = 0;  // commands not answered while silent
  // internal
  std::shared_ptr<osdp::SecureChannel> sc;
  Bytes last_reply;
  int last_sqn = -1;
};

inline SimPd sim_pd(std::uint8_t address, std::optional<osdp::Key> key = std::nullopt,
                    bool require_sc = false) {
  SimPd p;
  p.address = address;
  p.key = key;
  p.require_sc = require_sc;
  return p;
}

class PdSim {
 public:
  PdSim(int fd, std::vector<SimPd> pds) : fd_(fd) {
    for (auto& p : pds) pds_.push_back(std::make_unique<SimPd>(std::move(p)));
    thread_ = std::thread([this] { run(); });
  }
  ~PdSim() {
    stop_ = true;
    thread_.join();
  }
  // Runs f on the simulated PD at `address` under the simulator's lock.
  template <typename F>
  auto with(std::uint8_t address, F f) {
    std::lock_guard lock(mu_);
    return f(pd(address));
  }
  bool wait(std::uint8_t address, const std::function<bool(SimPd&)>& pred,
            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(pd(address)); });
  }

 private:
  SimPd& pd(std::uint8_t address) {
    for (auto& p : pds_)
      if (p->address == address) return *p;
    throw std::logic_error("no simulated PD at address " + std::to_string(address));
  }

  void run() {
    osdp::FrameReader reader;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) != 1) continue;
      std::uint8_t buf[512];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) continue;
      for (auto& r : reader.feed(osdp::ByteView(buf, static_cast<std::size_t>(n))))
        if (r.frame && !r.frame->from_pd) handle(*r.frame);
    }
  }

  void send(const Bytes& b) {
    std::size_t done = 0;
    while (done < b.size()) {
      const ssize_t n = ::write(fd_, b.data() + done, b.size() - done);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }

  void handle(const osdp::Frame& f) {
    std::unique_lock lock(mu_);
    SimPd* p = nullptr;
    for (auto& x : pds_)
      if (x->address == f.address) p = x.get();
    if (!p) return;
    if (!p->answering) {
      ++p->ignored;
      lock.unlock();
      cv_.notify_all();
      return;
    }
    if (f.sqn != 0 && f.sqn == p->last_sqn && !p->last_reply.empty()) {
      p->seen.push_back({f.code, f.sqn, false, true});
      Bytes r = p->last_reply;
      lock.unlock();
      send(r);
      cv_.notify_all();
      return;
    }
    if (f.sqn == 0) p->sc.reset();
    Bytes reply = answer(*p, f);
    p->last_reply = reply;
    p->last_sqn = f.sqn;
    if (p->corrupt_replies > 0 && !reply.empty()) {
      --p->corrupt_replies;
      reply.back() ^= 0x5A;  // CRC no longer matches
    }
    lock.unlock();
    send(reply);
    cv_.notify_all();
  }

  static Bytes encode(SimPd& p, const osdp::Frame& f, std::uint8_t code, const Bytes& data,
                      bool secured) {
    if (secured && p.sc && p.sc->active()) return p.sc->wrap(p.address, f.sqn, code, data).bytes;
    return osdp::encode_reply(p.address, f.sqn, code, data).bytes;
  }

  Bytes answer(SimPd& p, const osdp::Frame& f) {
    if (f.scb && f.scb->type == osdp::scs::chlng) {
      ++p.handshakes;
      p.seen.push_back({f.code, f.sqn, false, false});
      if (p.card_instead_of_ccrypt && !p.cards.empty()) {
        Bytes card = p.cards.front();
        p.cards.pop_front();
        return osdp::encode_reply(p.address, f.sqn, osdp::reply::raw, card).bytes;
      }
      if (!p.key) return osdp::encode_reply(p.address, f.sqn, osdp::reply::nak, Bytes{5}).bytes;
      p.sc = std::make_shared<osdp::SecureChannel>(*p.key, *p.key == osdp::kScbkD,
                                                   osdp::SecureChannel::Role::peripheral);
      return p.sc->answer_chlng(f, {1, 2, 3, 4, 5, 6, 7, 8}, {9, 8, 7, 6, 5, 4, 3, 2}).bytes;
    }
    if (f.scb && f.scb->type == osdp::scs::scrypt) {
      p.seen.push_back({f.code, f.sqn, false, false});
      if (!p.sc) return osdp::encode_reply(p.address, f.sqn, osdp::reply::nak, Bytes{6}).bytes;
      auto r = p.sc->answer_scrypt(f);
      if (!r.error.empty())
        return osdp::encode_reply(
                   p.address, f.sqn, osdp::reply::rmac_i, Bytes(16, 0),
                   {.crc = true, .scb = osdp::SecurityBlock{osdp::scs::rmac_i, {0xFF}}})
            .bytes;
      ++p.established;
      return r.bytes;
    }
    std::uint8_t code = f.code;
    Bytes data = f.data;
    bool secured = false;
    if (f.scb) {
      if (!p.sc || !p.sc->active())
        return osdp::encode_reply(p.address, f.sqn, osdp::reply::nak, Bytes{6}).bytes;
      auto o = p.sc->unwrap(f);
      if (!o.message) return osdp::encode_reply(p.address, f.sqn, osdp::reply::nak, Bytes{1}).bytes;
      code = o.message->code;
      data = o.message->data;
      secured = true;
    }
    p.seen.push_back({code, f.sqn, secured, false});
    if (p.nak_next) {
      const std::uint8_t reason = *p.nak_next;
      p.nak_next.reset();
      return encode(p, f, osdp::reply::nak, {reason}, secured);
    }
    if (p.require_sc && !secured && code != osdp::cmd::id && code != osdp::cmd::cap)
      return encode(p, f, osdp::reply::nak, {6}, false);
    switch (code) {
      case osdp::cmd::id:
        return encode(p, f, osdp::reply::pdid,
                      {0x5C, 0x26, 0x0A, 7, 1, 0x78, 0x56, 0x34, 0x12, 2, 4, 9}, secured);
      case osdp::cmd::cap: {
        Bytes caps{1, 1, 1, 4, 1, 1};
        if (p.key) caps.insert(caps.end(), {9, 1, 0});
        return encode(p, f, osdp::reply::pdcap, caps, secured);
      }
      case osdp::cmd::poll:
        if (!p.cards.empty()) {
          Bytes card = p.cards.front();
          p.cards.pop_front();
          p.card_sent_at.push_back(std::chrono::steady_clock::now());
          return encode(p, f, osdp::reply::raw, card, secured);
        }
        if (!p.replies.empty()) {
          auto reply = p.replies.front();
          p.replies.pop_front();
          return encode(p, f, reply.first, reply.second, secured);
        }
        return encode(p, f, osdp::reply::ack, {}, secured);
      case osdp::cmd::led:
        p.leds.push_back(data);
        p.led_at.push_back(std::chrono::steady_clock::now());
        return encode(p, f, osdp::reply::ack, {}, secured);
      case osdp::cmd::buz:
        p.buzzers.push_back(data);
        return encode(p, f, osdp::reply::ack, {}, secured);
      case osdp::cmd::out:
        p.outputs.push_back(data);
        return encode(p, f, osdp::reply::ack, {}, secured);
      case osdp::cmd::keyset:
        if (!secured || data.size() != 18 || data[0] != 1 || data[1] != 16)
          return encode(p, f, osdp::reply::nak, {6}, secured);
        {
          Bytes ack = encode(p, f, osdp::reply::ack, {}, secured);
          osdp::Key k{};
          std::copy(data.begin() + 2, data.end(), k.begin());
          p.key = k;  // the new key takes effect with the next session
          return ack;
        }
      default:
        return encode(p, f, osdp::reply::nak, {3}, secured);
    }
  }

  int fd_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<SimPd>> pds_;
  std::thread thread_;
};

// A pty pair: the CP opens the slave by name, the simulator holds the master.
struct Pty {
  int master = -1, slave = -1;
  std::string name;
  Pty() {
    char buf[256];
    if (::openpty(&master, &slave, buf, nullptr, nullptr) != 0)
      throw std::runtime_error("openpty failed");
    name = buf;
    termios t{};
    ::tcgetattr(slave, &t);
    ::cfmakeraw(&t);
    ::tcsetattr(slave, TCSANOW, &t);
  }
  ~Pty() {
    ::close(master);
    ::close(slave);
  }
};

}  // namespace anju::sim
