// anjud's local control socket (<data_dir>/anjud.sock, reachable only by root and the anju user):
// what `anju status`, `anju outbox --drain-now` and `anju test-event` ask, and the pieces of the
// installer's end-to-end test.
//
// Protocol: one request per connection. The client sends one JSON object and shuts down its
// writing side; anjud answers with one or more JSON lines and closes. A connection that sends
// nothing (older clients) gets the status.
//   {"cmd":"status"}                                  -> the status object
//   {"cmd":"drain-now"}                               -> {"ok":true,...}; the uplink retries now
//   {"cmd":"test-event","target":"smoke_1"[,"kind":"smoke"][,"timeout_ms":30000]}
//                                                     -> one line per hop, then {"done":...}
// Thread: the parser and the planner are pure. The daemon's side of test events: test_event.hpp.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/edge/event.hpp"
#include "anju/edge/journal.hpp"

namespace anju::firmware {

enum class ControlCmd { status, drain_now, test_event };

struct ControlRequest {
  ControlCmd cmd = ControlCmd::status;
  std::string target;       // test-event: a device id or name, or an event kind (e.g. "smoke")
  std::string kind;         // test-event: the alarm it stands for; "" = chosen from the target
  int timeout_ms = 30'000;  // test-event: how long to wait for the city's acknowledgement
};

struct ControlParse {
  std::optional<ControlRequest> request;
  std::string error;  // names what is wrong; empty when request is set
};

inline constexpr std::size_t kMaxControlRequestBytes = 4096;

// Pure. Empty (or only white space) text is a status request. Unknown members are errors.
ControlParse parse_control_request(std::string_view text);

// What a test event is: the device it is reported for and the alarm kind it stands for.
struct TestEventPlan {
  std::optional<edge::Event> event;  // complete but for id and time
  std::string error;                 // what is wrong with the target, and what to do
};

// Pure. `target` names a known device (by id or name: its alarm kind is `kind`, or else the
// first alarm kind it has reported, or gateway_test) or an event kind (reported for the gateway
// itself). `kinds_seen` holds the kinds each device has reported, newest first.
TestEventPlan plan_test_event(const ControlRequest& request,
                              const std::vector<edge::DeviceRecord>& devices,
                              const std::map<std::string, std::vector<std::string>>& kinds_seen,
                              const std::string& site, const std::string& grid_code);

// Client side: sends `request` on anjud's control socket and calls `on_line` with each JSON line
// of the answer until anjud closes the connection or `timeout` passes. False when anjud did not
// answer at all (not running, or no permission on the socket: `why` says which).
bool control_call(const std::string& socket_path, const nlohmann::json& request,
                  std::chrono::milliseconds timeout,
                  const std::function<void(const nlohmann::json&)>& on_line, std::string* why);

}  // namespace anju::firmware
