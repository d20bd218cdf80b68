// EventDeriver: the plug-in point for stateful rules that make new events out of accepted ones.
#pragma once

#include <cstdint>
#include <vector>

#include "anju/edge/event.hpp"

namespace anju::edge {

// A stateful stage that derives new events from accepted ones and from time (e.g. the door
// rules: a contact opening with no grant before it is a door_forced event). The pipeline journals
// what it returns right after the event that caused it, in the same transaction, and passes it to
// the rule engine like any other event (not back to the derivers). Pipeline thread only.
class EventDeriver {
 public:
  virtual ~EventDeriver() = default;
  virtual std::vector<Event> on_event(const Event& e) = 0;
  virtual std::vector<Event> on_tick(std::int64_t now_ms) = 0;
  // The earliest wall time on_tick has something to do (INT64_MAX: nothing).
  virtual std::int64_t next_deadline_ms() const = 0;
};
// A deriver's state is not rolled back when a transaction fails (rare: the database refused a
// write) and starts empty after a restart: it learns the doors' states from the next events.

}  // namespace anju::edge
