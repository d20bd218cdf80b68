#include "anju/firmware/control.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>

namespace anju::firmware {
namespace {

using nlohmann::json;

// Alarm kinds a test can stand for, in the order a device's history is searched for one.
constexpr edge::EventKind kTestKinds[] = {
    edge::EventKind::smoke,           edge::EventKind::gas,
    edge::EventKind::water_leak,      edge::EventKind::manhole_open,
    edge::EventKind::equipment_alarm, edge::EventKind::door_forced,
    edge::EventKind::door_held_open,  edge::EventKind::intrusion,
    edge::EventKind::thrown_object,   edge::EventKind::loitering,
    edge::EventKind::camera_tamper,   edge::EventKind::tamper,
    edge::EventKind::equipment_fault, edge::EventKind::gateway_test};

bool testable(edge::EventKind k) {
  return std::find(std::begin(kTestKinds), std::end(kTestKinds), k) != std::end(kTestKinds);
}

std::string testable_list() {
  std::string s;
  for (auto k : kTestKinds) s += (s.empty() ? "" : ", ") + std::string(to_string(k));
  return s;
}

bool printable(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
}

}  // namespace

ControlParse parse_control_request(std::string_view text) {
  ControlParse r;
  auto fail = [&](std::string why) {
    r.error = std::move(why);
    return r;
  };
  if (text.size() > kMaxControlRequestBytes)
    return fail("request of " + std::to_string(text.size()) + " bytes, at most " +
                std::to_string(kMaxControlRequestBytes));
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    r.request = ControlRequest{};
    return r;
  }
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return fail("the request is not JSON");
  if (!j.is_object()) return fail("the request must be a JSON object");
  ControlRequest req;
  auto cmd = j.find("cmd");
  if (cmd == j.end() || !cmd->is_string())
    return fail("member 'cmd' (status, drain-now or test-event) is missing or not a string");
  const auto name = cmd->get<std::string>();
  if (name == "status")
    req.cmd = ControlCmd::status;
  else if (name == "drain-now")
    req.cmd = ControlCmd::drain_now;
  else if (name == "test-event")
    req.cmd = ControlCmd::test_event;
  else
    return fail("unknown cmd '" + name.substr(0, 64) + "' (status, drain-now or test-event)");
  for (const auto& [key, value] : j.items()) {
    if (key == "cmd") continue;
    if (req.cmd != ControlCmd::test_event)
      return fail("member '" + key.substr(0, 64) + "' is not taken by " + name);
    if (key == "target" || key == "kind") {
      if (!value.is_string()) return fail("member '" + key + "' must be a string");
      auto s = value.get<std::string>();
      if (s.size() > 128 || !printable(s))
        return fail("member '" + key + "' must be at most 128 printable characters");
      (key == "target" ? req.target : req.kind) = std::move(s);
    } else if (key == "timeout_ms") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1000 ||
          value.get<std::int64_t>() > 600'000)
        return fail("member 'timeout_ms' must be an integer from 1000 to 600000");
      req.timeout_ms = value.get<int>();
    } else {
      return fail("unknown member '" + key.substr(0, 64) + "' (target, kind, timeout_ms)");
    }
  }
  if (req.cmd == ControlCmd::test_event && req.target.empty())
    return fail("test-event needs a 'target': a device id or name, or an event kind");
  r.request = std::move(req);
  return r;
}

TestEventPlan plan_test_event(const ControlRequest& request,
                              const std::vector<edge::DeviceRecord>& devices,
                              const std::map<std::string, std::vector<std::string>>& kinds_seen,
                              const std::string& site, const std::string& grid_code) {
  TestEventPlan p;
  std::optional<edge::EventKind> kind;
  if (!request.kind.empty()) {
    kind = edge::event_kind_from_string(request.kind);
    if (!kind || !testable(*kind)) {
      p.error = "kind '" + request.kind + "' cannot be tested; one of: " + testable_list();
      return p;
    }
  }
  edge::Event e;
  e.kind = edge::EventKind::gateway_test;
  e.site = site;
  e.grid_code = grid_code;
  e.severity = 4;
  e.source = "anju test-event";
  const auto dev = std::find_if(devices.begin(), devices.end(), [&](const edge::DeviceRecord& d) {
    return d.device.id == request.target ||
           (!d.device.name.empty() && d.device.name == request.target);
  });
  if (dev != devices.end()) {
    e.device = dev->device;
    e.location = dev->location;
    if (!kind) {
      kind = edge::EventKind::gateway_test;
      if (auto it = kinds_seen.find(dev->device.id); it != kinds_seen.end())
        for (const auto& seen : it->second)
          if (auto k = edge::event_kind_from_string(seen); k && testable(*k)) {
            kind = *k;
            break;
          }
    }
  } else if (auto k = edge::event_kind_from_string(request.target)) {
    if (!testable(*k)) {
      p.error = "'" + request.target +
                "' is an event kind that raises no alarm; one of: " + testable_list();
      return p;
    }
    if (kind && *kind != *k) {
      p.error = "target kind '" + request.target + "' and --kind '" + request.kind + "' differ";
      return p;
    }
    kind = *k;
    e.device = {"gateway", "gateway", "Anju gateway", ""};
  } else {
    p.error = "no device or event kind named '" + request.target +
              "' (anju devices lists the devices; kinds: " + testable_list() + ")";
    return p;
  }
  e.attrs = {{"test", true}, {"alert_kind", std::string(to_string(*kind))}};
  p.event = std::move(e);
  return p;
}

bool control_call(const std::string& socket_path, const json& request,
                  std::chrono::milliseconds timeout,
                  const std::function<void(const json&)>& on_line, std::string* why) {
  auto fail = [&](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof(addr.sun_path)) return fail("socket path too long");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    const std::string w = errno == EACCES
                              ? "no permission on " + socket_path + " (run as root)"
                              : "anjud is not running (no answer on " + socket_path + ")";
    ::close(fd);
    return fail(w);
  }
  const std::string text = request.dump();
  (void)!::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::string buf;
  bool any = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char chunk[4096];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
      const json j = json::parse(buf.substr(0, nl), nullptr, false);
      buf.erase(0, nl + 1);
      if (j.is_discarded()) continue;
      any = true;
      on_line(j);
    }
  }
  ::close(fd);
  if (!any) return fail("no answer from anjud within " + std::to_string(timeout.count()) + " ms");
  return true;
}

}  // namespace anju::firmware
