// What the access-control drivers share: where an event comes from (site, door, device), how it
// is stamped, the local decision a driver asks for when a credential is presented, and the sink
// the events go to.
// Thread: plain values; stamp() is thread-safe (the clock is).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers::access {

struct SiteInfo {
  std::string site;       // compound id
  std::string grid_code;  // CJ/T 349 grid code
};

// A reader, a door input or a lock: the device that reports, and the door it belongs to.
struct Endpoint {
  edge::DeviceRef device;   // id (stable within the site), kind, name, GB/T 28181 code
  edge::Location location;  // building / unit / room = the door's name
  std::string door;         // door id used by decisions and door rules (e.g. "b3-u1-main")
};

// Fills id, times, boot id, site, grid code, location and device; sets attrs.door when the
// endpoint names a door.
void stamp(edge::Event& e, const edge::Clock& clock, const SiteInfo& site, const Endpoint& ep);

// A local decision on a presented credential.
struct AccessDecision {
  bool granted = false;
  // "granted", or why not: "unknown", "expired", "not_yet_valid", "outside_schedule", "holiday",
  // "door_not_in_group", "locked_down", "secure_channel_down".
  std::string reason;
  std::string label;  // the credential's label in the list (e.g. "unit 3-1-402 card 2"), may be ""
};
// Decides on a credential (its pseudonym) at a door at a wall-clock time. Must be fast and must
// not block (in-memory lookups): it runs on the reader's I/O thread.
using Decider = std::function<AccessDecision(std::string_view credential_pseudonym,
                                             std::string_view door, std::int64_t wall_ms)>;

// Where the drivers hand their events (the daemon passes Pipeline::submit). Called from the
// driver's own dispatcher thread, never from the thread that talks to the hardware.
using EventSink = std::function<void(std::vector<edge::Event>)>;

// passage_granted / passage_denied (severity 4, a record): attrs credential (the pseudonym, never
// the card number), door, reason, label when known. The caller stamps it.
edge::Event passage_event(const AccessDecision& d, std::string_view credential_pseudonym,
                          std::string_view door);

}  // namespace anju::drivers::access
