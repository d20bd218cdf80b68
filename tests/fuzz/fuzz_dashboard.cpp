// libFuzzer target: what browsers and administrators hand the dashboard. The first byte picks the
// parser; the rest is its input:
//   0: the login body          1: an action's body         2: a query string (event search)
//   3: the users file          4: a Cookie header          5: a stored password hash
//   6: SSE framing and Prometheus label escaping (checks the output's shape)
// None may crash or throw; every refusal carries a reason; accepted values obey their limits.
// Seeds: tests/fuzz/corpus/dashboard/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "anju/edge/lifecycle.hpp"
#include "anju/firmware/dashboard_logic.hpp"
#include "anju/firmware/users.hpp"

using namespace anju::firmware;

namespace {

std::multimap<std::string, std::string> split_query(const std::string& q) {
  std::multimap<std::string, std::string> out;
  std::size_t pos = 0;
  while (pos <= q.size()) {
    auto amp = q.find('&', pos);
    std::string part = q.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    auto eq = part.find('=');
    out.emplace(part.substr(0, eq), eq == std::string::npos ? "" : part.substr(eq + 1));
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 7) {
    case 0: {
      auto r = parse_login(in);
      if (r.request.has_value() == !r.error.empty()) std::abort();
      if (r.request && (r.request->user.empty() || r.request->password.empty() ||
                        r.request->user.size() > 1024 || r.request->password.size() > 1024))
        std::abort();
      break;
    }
    case 1: {
      auto r = parse_action_body(in);
      if (r.note.has_value() == !r.error.empty()) std::abort();
      if (r.note && r.note->size() > anju::edge::kMaxNoteChars * 4) std::abort();
      break;
    }
    case 2: {
      auto r = parse_event_search(split_query(in));
      if (r.search.has_value() == !r.error.empty()) std::abort();
      if (r.search && (r.search->limit < 1 || r.search->limit > 1000)) std::abort();
      if (r.search && r.search->from_ms && r.search->to_ms &&
          *r.search->to_ms <= *r.search->from_ms)
        std::abort();
      break;
    }
    case 3: {
      auto r = parse_users(in);
      if (r.users.has_value() == !r.error.empty()) std::abort();
      if (r.users) {
        for (const auto& u : *r.users)
          if (!check_user_name(u.name).empty() || !valid_password_hash(u.password_hash))
            std::abort();
        // What was read renders back to a file that reads the same.
        auto again = parse_users(render_users(*r.users));
        if (!again.users || *again.users != *r.users) std::abort();
      }
      break;
    }
    case 4: {
      const std::string v = cookie_value(in, "anju_session");
      if (v.size() > in.size()) std::abort();
      break;
    }
    case 5: {
      std::string why;
      if (!valid_password_hash(in, &why) && why.empty()) std::abort();
      break;
    }
    case 6: {
      const auto mid = in.size() / 2;
      const std::string frame = sse_frame(in.substr(0, mid), in.substr(mid));
      // A frame ends with one blank line and holds no other.
      if (frame.size() < 2 || frame.compare(frame.size() - 2, 2, "\n\n") != 0) std::abort();
      if (frame.find("\n\n") != frame.size() - 2) std::abort();
      if (frame.find('\r') != std::string::npos) std::abort();
      const std::string esc = prom_escape(in);
      if (esc.find('\n') != std::string::npos) std::abort();
      break;
    }
  }
  return 0;
}
