// OSDP v2.2 Control Panel: one bus (a serial port, RS-485 half duplex, or a TCP connection) with
// one or more PDs (readers) by address.
//
// The poll thread owns the port: at start (and after a PD was lost) it sends osdp_ID and osdp_CAP,
// then, for a reader configured for Secure Channel, the handshake (CHLNG/CCRYPT/SCRYPT/RMAC_I),
// then osdp_POLL, sending LED/BUZ/OUT feedback in place of a poll when some is queued. A lost or
// corrupted reply is resent with the same sequence number (the PD repeats its last reply); a PD
// that does not answer after `retries` resends is reported offline once and retried with a
// backoff, and reported online when it answers again. A reader configured for Secure Channel is
// never polled in plaintext: until its handshake succeeds its card reads are refused, a failure is
// a security_fault event and the handshake is retried with a backoff.
//
// Card reads go through the Decider (if any) on the poll thread, so that the LED/buzzer/lock
// feedback goes out on the next exchange with that reader; events go to a dispatcher thread that
// calls the sink, so a slow sink never stalls the bus.
//
// Thread: the constructor, start() and stop() from the owner's thread; feedback(), stats() and
// readers() from any thread; the sink and the decider are called on the driver's threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "anju/drivers/access_common.hpp"
#include "anju/drivers/access_events.hpp"
#include "anju/drivers/osdp.hpp"
#include "anju/edge/clock.hpp"

namespace anju::drivers::access {

struct OsdpReaderConfig {
  std::uint8_t address = 0;  // 0..126 on this bus
  Endpoint endpoint;         // device id/name, door location, door id
  // Secure Channel with the installed key `scbk`. Never falls back to plaintext.
  bool secure_channel = false;
  osdp::Key scbk{};
  // Install mode (explicit choice): the handshake uses the default key SCBK-D, then osdp_KEYSET
  // installs `scbk` and the reader is used with it. If SCBK-D is refused (already installed),
  // `scbk` is tried. Requires secure_channel.
  bool install_mode = false;
  // Feedback on a decision: LED `led` of reader 0 green/red, the buzzer, and when the reader drives
  // the lock relay, output `lock_output` pulsed for `lock_pulse_ms` on a grant.
  std::uint8_t led = 0;
  bool controls_lock = false;
  std::uint8_t lock_output = 0;
  std::int64_t lock_pulse_ms = 3000;  // 100 ms steps on the wire, at most 6553.5 s
};

struct OsdpBusConfig {
  std::string name = "osdp";  // for logs and stats
  // "/dev/ttyUSB0" (serial) or "tcp:HOST:PORT" (a PD or a serial server over TCP).
  std::string device;
  std::uint32_t baud = 9600;  // 9600, 19200, 38400, 57600 or 115200
  bool rs485_ioctl = false;   // ask the kernel for RS-485 mode (TIOCSRS485, RTS on send)
  std::vector<OsdpReaderConfig> readers;
  SiteInfo site;
  PseudonymKey pseudonym_key{};  // the site's credential key (HMAC-SHA-256)

  std::int64_t reply_timeout_ms = 200;     // wait for a reply before resending
  int retries = 2;                         // resends of one command before the PD is lost
  std::int64_t poll_interval_ms = 50;      // pause between polling rounds
  std::int64_t offline_backoff_ms = 1000;  // first retry of a lost PD (and of the port); doubles
  std::int64_t max_backoff_ms = 30'000;
  std::int64_t sc_backoff_ms = 2000;       // first handshake retry after a failure; doubles
  std::int64_t busy_retry_ms = 50;         // after osdp_BUSY
  std::size_t max_queued_events = 10'000;  // waiting for the sink; beyond, the oldest are dropped
};

// "" when the config is usable, else every problem, "; "-separated, naming the field
// (e.g. "readers[1].address: 127 is the broadcast address").
std::string validate(const OsdpBusConfig& cfg);

struct OsdpReaderStatus {
  std::uint8_t address = 0;
  std::string device_id;
  bool online = false;
  bool secure = false;  // Secure Channel active
  std::string phase;    // "identify", "capabilities", "handshake", "keyset", "polling"
  std::string last_error;
  std::optional<osdp::PdId> id;
};

struct OsdpStats {
  std::int64_t commands = 0;    // frames sent, resends included
  std::int64_t replies = 0;     // valid replies
  std::int64_t resends = 0;     // commands resent after a lost or corrupted reply
  std::int64_t bad_frames = 0;  // corrupted or unexpected frames from the bus
  std::int64_t naks = 0;
  std::int64_t card_reads = 0;     // accepted
  std::int64_t refused_reads = 0;  // refused: Secure Channel required but not active
  std::int64_t sc_failures = 0;    // failed handshakes and broken sessions
  std::int64_t offline_events = 0;
  std::int64_t dropped_events = 0;  // queue for the sink overflowed
};

class OsdpControlPanel {
 public:
  // Throws std::invalid_argument with validate()'s text on a bad config. `decider` may be empty:
  // card reads are then only reported.
  OsdpControlPanel(OsdpBusConfig cfg, const edge::Clock& clock, EventSink sink,
                   Decider decider = {});
  ~OsdpControlPanel();
  OsdpControlPanel(const OsdpControlPanel&) = delete;
  OsdpControlPanel& operator=(const OsdpControlPanel&) = delete;

  void start();
  void stop();  // joins the threads; events already queued are delivered first

  // Queues granted/denied feedback for the reader at `address` (LED, buzzer, and the lock pulse
  // on a grant when the reader controls the lock). False for an unknown address.
  bool feedback(std::uint8_t address, bool granted);
  // An operator's remote open: pulses the lock of every reader at `door` that controls it, with
  // the granted LED and beep. Returns how many readers were asked (0: none controls that door).
  int open_door(const std::string& door);

  OsdpStats stats() const;
  std::vector<OsdpReaderStatus> readers() const;

 private:
  struct Pd;
  class Link;
  enum class Outcome { reply, lost, link_down };

  void run();
  void dispatch_loop();
  void service(Pd& pd);
  void poll_once(Pd& pd);
  void handshake(Pd& pd);
  void install_key(Pd& pd);
  Outcome exchange(Pd& pd, const osdp::Bytes& frame, std::uint8_t code, osdp::Frame& reply);
  bool open_link();
  void close_link(const std::string& why);
  void lost(Pd& pd, const std::string& why);
  void answered(Pd& pd);
  void sc_failed(Pd& pd, const std::string& why);
  void handle_reply(Pd& pd, std::uint8_t code, const osdp::Bytes& data, bool secured);
  void emit(const Pd& pd, edge::Event e);
  void flush_events();
  std::int64_t now_ms() const { return clock_.mono_ms(); }

  OsdpBusConfig cfg_;
  const edge::Clock& clock_;
  EventSink sink_;
  Decider decider_;

  std::vector<std::unique_ptr<Pd>> pds_;  // poll thread only (and feedback() under mu_)
  std::unique_ptr<Link> link_;
  std::int64_t link_retry_at_ms_ = 0;
  std::int64_t link_backoff_ms_ = 0;
  std::string link_error_;
  std::vector<edge::Event> batch_;  // poll thread: events of the current round

  mutable std::mutex mu_;  // stats_, status, feedback queues, stop flag
  std::condition_variable wake_;
  bool stopping_ = false;
  OsdpStats stats_;

  std::mutex out_mu_;  // dispatcher queue
  std::condition_variable out_cv_;
  std::deque<edge::Event> out_;
  bool out_stop_ = false;

  std::thread poll_thread_;
  std::thread dispatch_thread_;
};

}  // namespace anju::drivers::access
