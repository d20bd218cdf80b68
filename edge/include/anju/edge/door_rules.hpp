// Door rules: what a compound's doors need beyond single events. Stateful, driven by accepted
// events and by time that tests drive by hand; returns new events, touches nothing else.
//
// - door_forced (severity 2): the contact opens (door_open, active = true) with no grant
//   (passage_granted) and no request to exit (exit_request) at that door in the
//   `forced_window_ms` before it. Each grant or exit request covers one opening, and so does an
//   operator's remote open that anjud carried out (the audit event of the door command: action
//   door_open, ok true, attrs.door). Cleared (active = false) when the door closes.
// - door_held_open (severity 3): open longer than `held_open_ms`; cleared when the door closes.
//   Checked at every event and every tick, so a close reported late still counts.
// - tailgating (severity 3): in one door cycle (from the previous close to this close, plus
//   `passage_grace_ms` for a counter that reports late) more passages than authorisations
//   (grants + exit requests). Passages come from any event at the door with a measurement named
//   "passages" (the number counted since its last report: a beam or a camera line counter).
//   Reported once per cycle.
// - repeated_denial (severity 3): `denial_count` consecutive denials (passage_denied) at one door,
//   or for one credential, within `denial_window_ms`; a grant there ends the streak. Reported when
//   the streak reaches the count and again (with the new count) at every further denial.
//
// A door is named by attrs.door; events without it are keyed by their location
// (building/unit/room). Emitted events carry the door's site, location and device (the contact's,
// or the reader's for denials), attrs.door, attrs.rule, source "door_rules", and are stamped from
// the injected clock; their ts_ms is the time the condition arose (event time or tick time).
//
// Thread: owned by one thread (the pipeline's rule stage): an EventDeriver the pipeline calls.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "anju/edge/clock.hpp"
#include "anju/edge/deriver.hpp"
#include "anju/edge/event.hpp"

namespace anju::edge {

struct DoorRuleSettings {
  std::int64_t forced_window_ms = 10'000;  // a grant / exit request this recent covers an opening
  std::int64_t held_open_ms = 30'000;      // no standard value; 30 s is the usual default
  std::map<std::string, std::int64_t> held_open_overrides;  // door -> ms (0 = not supervised)
  std::int64_t passage_grace_ms = 2'000;  // passages reported this long after the close still count
  int denial_count = 5;                   // GB 50396-2007: at most 5
  std::int64_t denial_window_ms = 5 * 60'000;
  // Severities per ../shared/design/DOMAIN.md.
  int forced_severity = 2;
  int held_open_severity = 3;
  int tailgating_severity = 3;
  int repeated_denial_severity = 3;
};

// "" when usable, else what is wrong, naming the field.
std::string validate(const DoorRuleSettings& s);

class DoorRules final : public EventDeriver {
 public:
  // Throws std::invalid_argument on bad settings.
  DoorRules(DoorRuleSettings settings, const Clock& clock);

  // One accepted event; returns the events the rules derive from it (possibly none).
  std::vector<Event> on_event(const Event& e) override;
  // Time passes (wall ms, like RuleEngine::on_tick).
  std::vector<Event> on_tick(std::int64_t now_ms) override;
  // The earliest time on_tick has something to do, or INT64_MAX.
  std::int64_t next_deadline_ms() const override;

  std::size_t tracked_doors() const { return doors_.size(); }
  bool is_open(const std::string& door) const;

 private:
  struct Origin {
    std::string site, grid_code;
    Location location;
    DeviceRef device;
  };
  struct Door {
    Origin origin;  // from the contact's events when seen, else from any event at the door
    bool have_contact_origin = false;
    bool open = false;
    std::int64_t opened_ms = 0;
    std::int64_t closed_ms = 0;
    std::deque<std::int64_t> grants;  // unconsumed grants (times)
    std::deque<std::int64_t> exits;   // unconsumed exit requests
    bool forced = false;              // the current opening was forced
    bool held_reported = false;
    // the current cycle
    bool cycle_closed = false;  // closed, waiting for late passages until closed_ms + grace
    int cycle_authorised = 0;
    int cycle_passages = 0;
    std::int64_t early_passage_ms = 0;  // first passage counted before the contact opened
    bool tailgate_reported = false;
    // denials at this door
    std::deque<std::int64_t> denials;
  };
  struct Streak {
    std::deque<std::int64_t> denials;
  };

  static std::string door_key(const Event& e);
  std::int64_t held_limit(const std::string& door) const;
  void expire(const std::string& key, Door& d, std::int64_t now_ms, std::vector<Event>& out);
  void end_cycle(Door& d);
  Event make(const Origin& o, const std::string& door, EventKind kind, int severity,
             std::int64_t ts_ms, const char* rule) const;
  void check_tailgating(const std::string& key, Door& d, std::int64_t ts_ms,
                        std::vector<Event>& out);
  void denial(const Event& e, const std::string& key, Door& d, std::vector<Event>& out);

  DoorRuleSettings s_;
  const Clock& clock_;
  std::map<std::string, Door> doors_;
  std::map<std::string, Streak> credentials_;  // by pseudonym
};

}  // namespace anju::edge
