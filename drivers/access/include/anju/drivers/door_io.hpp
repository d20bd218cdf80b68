// Door hardware on GPIO lines: a Wiegand reader (D0/D1), the door contact, the exit button
// (request to exit), a tamper input and the lock relay, behind one small interface.
//
//   GpioLines            the interface: timestamped edges on named inputs, named outputs
//   SimulatedGpio        deterministic, in memory: tests push edges with the times they choose
//   LibgpiodLines        libgpiod v1.6 (only with ANJU_HAVE_LIBGPIOD): both-edge events with the
//                        kernel's CLOCK_MONOTONIC timestamps, outputs by value
//   DoorController       the logic, single-threaded and deterministic: Wiegand frames from
//                        D0/D1 pulses (BitCollector), software debounce of the inputs, decisions
//                        and the lock pulse; returns events
//   DoorIoDriver         the thread that pumps a GpioLines into a DoorController, and a
//                        dispatcher thread that hands events to the sink
//
// Levels are logical: `true` = active (a line configured active-low is inverted by the
// implementation). Wiegand D0/D1 are active-low on the wire: a pulse is an edge to active.
//
// Thread: GpioLines implementations are used by one thread (DoorIoDriver's), except
// SimulatedGpio, which tests feed from their own thread. DoorController is single-threaded.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "anju/drivers/access_common.hpp"
#include "anju/drivers/access_events.hpp"
#include "anju/drivers/wiegand.hpp"
#include "anju/edge/clock.hpp"

namespace anju::drivers::access {

struct LineEdge {
  std::string line;               // the input's configured name
  bool active = false;            // logical level after the edge
  std::int64_t timestamp_ns = 0;  // CLOCK_MONOTONIC (the kernel's stamp for libgpiod)
};

class GpioLines {
 public:
  virtual ~GpioLines() = default;
  // Edges that arrived, waiting up to timeout_ms for the first one (0: do not wait).
  virtual std::vector<LineEdge> wait_edges(std::int64_t timeout_ms) = 0;
  // Current logical level of an input; nullopt for an unknown line or a read error.
  virtual std::optional<bool> get(const std::string& input) = 0;
  // Drives an output; false for an unknown line or a write error.
  virtual bool set(const std::string& output, bool active) = 0;
  // The clock of the edges' timestamps.
  virtual std::int64_t now_ns() const = 0;
  // Wakes a wait_edges() in progress (used to stop).
  virtual void interrupt() = 0;
};

// In-memory lines for tests: inputs keep their level, edges are queued by push(); time is set by
// the test.
class SimulatedGpio final : public GpioLines {
 public:
  SimulatedGpio(std::vector<std::string> inputs, std::vector<std::string> outputs);
  // Queues an edge and sets the input's level (unknown lines are ignored: returns false).
  bool push(const std::string& input, bool active, std::int64_t timestamp_ns);
  void set_now_ns(std::int64_t t);
  // A Wiegand frame as D0/D1 pulses from `start_ns`, one every `spacing_ns` (pulse and release).
  void push_wiegand(const wiegand::Bits& bits, std::int64_t start_ns,
                    std::int64_t spacing_ns = 2'000'000, const std::string& d0 = "d0",
                    const std::string& d1 = "d1");
  std::optional<bool> output(const std::string& name) const;
  std::vector<std::pair<std::string, bool>> writes() const;  // every set(), in order
  // Waits (real time, up to `timeout_ms`) until the output is driven to `active`.
  bool wait_output(const std::string& name, bool active, std::int64_t timeout_ms);

  std::vector<LineEdge> wait_edges(std::int64_t timeout_ms) override;
  std::optional<bool> get(const std::string& input) override;
  bool set(const std::string& output, bool active) override;
  std::int64_t now_ns() const override;
  void interrupt() override;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, bool> inputs_;
  std::map<std::string, bool> outputs_;
  std::vector<std::pair<std::string, bool>> writes_;
  std::deque<LineEdge> edges_;
  std::int64_t now_ns_ = 1'000'000'000;
  bool interrupted_ = false;
};

struct GpioLineSpec {
  std::string name;  // e.g. "d0", "contact", "lock"
  unsigned offset = 0;
  bool active_low = false;
  bool pull_up = false;  // inputs: enable the pull-up bias
};

// libgpiod v1.6. Throws std::runtime_error naming the chip and line when a request fails.
std::unique_ptr<GpioLines> open_libgpiod(const std::string& chip,
                                         const std::vector<GpioLineSpec>& inputs,
                                         const std::vector<GpioLineSpec>& outputs);
// True when built with libgpiod.
bool have_libgpiod();

struct DoorIoConfig {
  SiteInfo site;
  Endpoint door;    // the door (contact, exit button, lock, tamper events)
  Endpoint reader;  // the Wiegand reader (card_read, reader_fault)
  PseudonymKey pseudonym_key{};
  // Input names in the GpioLines; empty = not wired.
  std::string d0 = "d0", d1 = "d1";
  std::string contact;  // active = door open
  std::string exit_button;
  std::string tamper;
  std::string lock;  // output; active = unlocked
  std::int64_t debounce_ms = 50;
  std::int64_t lock_pulse_ms = 3000;
  wiegand::CollectorOptions wiegand;
};
// "" or the problems, naming the field.
std::string validate(const DoorIoConfig& cfg);

class DoorController {
 public:
  // `decider` may be empty (reads are reported, no decision, no lock pulse).
  DoorController(DoorIoConfig cfg, const edge::Clock& clock, GpioLines& gpio, Decider decider = {});

  // Reads the inputs' current levels without reporting them (call once before the edges).
  void prime();
  std::vector<edge::Event> on_edge(const LineEdge& e);
  // Debounce deadlines, the end of a Wiegand frame, the end of the lock pulse.
  std::vector<edge::Event> on_time(std::int64_t now_ns);
  std::int64_t next_deadline_ns() const;  // INT64_MAX when nothing is pending
  // Pulses the lock (a grant; or an operator's remote open, which the caller audits).
  void pulse_lock(std::int64_t now_ns);
  bool lock_active() const { return lock_until_ns_ != 0; }
  // The contact's debounced level; nullopt when no contact is wired.
  std::optional<bool> contact_open() const;

 private:
  struct Input {
    std::string name;
    bool level = false;
    bool pending = false;
    bool pending_level = false;
    std::int64_t pending_since_ns = 0;
  };
  void settle(Input& in, std::int64_t now_ns, std::vector<edge::Event>& out);
  void committed(const Input& in, std::vector<edge::Event>& out);
  void frame(const wiegand::CollectedFrame& f, std::int64_t now_ns, std::vector<edge::Event>& out);
  edge::Event stamped(edge::Event e, const Endpoint& ep) const;

  DoorIoConfig cfg_;
  const edge::Clock& clock_;
  GpioLines& gpio_;
  Decider decider_;
  wiegand::BitCollector collector_;
  std::vector<Input> inputs_;
  std::int64_t lock_until_ns_ = 0;
  std::int64_t last_pulse_ns_ = 0;
};

// What `anju status` shows of a door on GPIO lines.
struct DoorIoStatus {
  std::string door;
  std::optional<bool> open;  // the contact's debounced level; nullopt: no contact wired
  bool lock_active = false;  // the lock output is driven open now
  std::uint64_t card_reads = 0, granted = 0, denied = 0, bad_frames = 0, remote_opens = 0;
};

class DoorIoDriver {
 public:
  DoorIoDriver(DoorIoConfig cfg, const edge::Clock& clock, std::unique_ptr<GpioLines> gpio,
               EventSink sink, Decider decider = {});
  ~DoorIoDriver();
  DoorIoDriver(const DoorIoDriver&) = delete;
  DoorIoDriver& operator=(const DoorIoDriver&) = delete;
  void start();
  void stop();  // delivers what is queued, then joins

  const std::string& door() const { return door_; }
  // An operator's remote open: pulses the lock on the driver's thread. Returns 1 when this
  // driver drives the lock of `door`, else 0 (the caller audits the command).
  int open_door(const std::string& door);
  DoorIoStatus status() const;

 private:
  void run();
  void dispatch();
  void count(const std::vector<edge::Event>& evs);

  std::unique_ptr<GpioLines> gpio_;
  const std::string door_;
  const bool has_lock_;
  DoorController controller_;
  std::atomic<int> open_requests_{0};
  mutable std::mutex status_mu_;
  DoorIoStatus status_;
  EventSink sink_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<edge::Event> out_;
  bool out_stop_ = false;
  std::thread thread_, dispatcher_;
};

}  // namespace anju::drivers::access
