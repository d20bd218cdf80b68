// libFuzzer target for the credentials file parser and decide()
// (drivers/access/src/credentials_parser.cpp), and the site key parser. Whatever the text, the
// parser returns a list or errors (never both, never neither), and a parsed list answers
// decide() with one of the documented reasons.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "anju/drivers/credentials.hpp"

namespace ac = anju::drivers::access;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

const std::set<std::string> kReasons{"granted", "locked_down",       "unknown", "not_yet_valid",
                                     "expired", "door_not_in_group", "holiday", "outside_schedule"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto key = ac::parse_site_key(text);
  check(key.key.has_value() == key.error.empty());

  auto r = ac::parse_credentials(text, "fuzz");
  check(r.list.has_value() == r.errors.empty());
  for (const auto& e : r.errors) check(e.rfind("fuzz: ", 0) == 0);
  if (!r.list) return 0;
  // Ask about every credential at every door, at a few times, plus an unknown hash.
  const std::int64_t times[] = {0, 1'760'000'000'000, 1'798'000'000'000, -86'400'000,
                                4'102'444'800'000};
  std::set<std::string> doors{"nowhere"};
  for (const auto& [g, ds] : r.list->door_groups) doors.insert(ds.begin(), ds.end());
  std::size_t asked = 0;
  for (const auto& [hash, cred] : r.list->credentials) {
    check(hash.size() == 32 && cred.hash == hash);
    for (const auto& door : doors)
      for (auto t : times) {
        if (++asked > 2000) return 0;
        const auto d = ac::decide(*r.list, hash, door, t);
        check(kReasons.count(d.reason) == 1);
        check(d.granted == (d.reason == "granted"));
      }
  }
  check(ac::decide(*r.list, "not a hash", "nowhere", 0).granted == false);
  return 0;
}
