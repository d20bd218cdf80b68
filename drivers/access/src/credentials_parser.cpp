// The credentials file and local decisions (see credentials.hpp). Pure: text and time in,
// a list or errors / a decision out.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "anju/drivers/credentials.hpp"

namespace anju::drivers::access {
namespace {

using nlohmann::json;

constexpr std::int64_t kMsPerDay = 86'400'000;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

bool valid_date(int y, int m, int d) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= kDays[m - 1] + (m == 2 && leap ? 1 : 0);
}

// "YYYY-MM-DD" -> local day number.
std::optional<std::int64_t> parse_date(std::string_view s) {
  int y, m, d;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 0, 4, y) || !digits(s, 5, 2, m) ||
      !digits(s, 8, 2, d) || !valid_date(y, m, d))
    return std::nullopt;
  return days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
}

// "HH:MM" -> minutes; "24:00" only when allow_24.
std::optional<int> parse_hhmm(std::string_view s, bool allow_24) {
  int h, m;
  if (s.size() != 5 || s[2] != ':' || !digits(s, 0, 2, h) || !digits(s, 3, 2, m) || m > 59)
    return std::nullopt;
  if (h > 24 || (h == 24 && (!allow_24 || m != 0))) return std::nullopt;
  return h * 60 + m;
}

// "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" local -> UTC ms. `end_of_day`: a bare date means the end of
// that day (for valid_until, inclusive dates).
std::optional<std::int64_t> parse_local_time(std::string_view s, int offset_min, bool end_of_day) {
  auto day = parse_date(s.substr(0, std::min<std::size_t>(s.size(), 10)));
  if (!day) return std::nullopt;
  std::int64_t minutes = 0;
  if (s.size() == 10) {
    if (end_of_day) minutes = 1440;
  } else if (s.size() == 16 && s[10] == 'T') {
    auto hm = parse_hhmm(s.substr(11), false);
    if (!hm) return std::nullopt;
    minutes = *hm;
  } else {
    return std::nullopt;
  }
  return *day * kMsPerDay + (minutes - offset_min) * 60'000;
}

bool is_hash(const std::string& s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

struct Ctx {
  std::string origin;
  std::vector<std::string> errors;
  void err(const std::string& where, const std::string& what) {
    errors.push_back(origin + ": " + where + ": " + what);
  }
  // Unknown keys are errors (a typo must not silently widen or narrow access).
  void only(const json& obj, const std::string& where, std::initializer_list<const char*> keys) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      bool known = false;
      for (const char* k : keys) known = known || it.key() == k;
      if (!known)
        err(
            where.empty() ? it.key() : where + "." + it.key(),
            "unknown key (expected one of: " +
                [&] {
                  std::string s;
                  for (const char* k : keys) s += (s.empty() ? "" : ", ") + std::string(k);
                  return s;
                }() +
                ")");
    }
  }
};

std::string type_name(const json& j) {
  return std::string(j.type_name());
}

std::optional<std::uint8_t> parse_days(Ctx& c, const json& j, const std::string& where) {
  static constexpr const char* kNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == "all") return 0x7F;
    if (s == "weekdays") return 0x1F;
    if (s == "weekends") return 0x60;
    c.err(where, "'" + s + "' is not all, weekdays, weekends or a list of mon..sun");
    return std::nullopt;
  }
  if (!j.is_array() || j.empty()) {
    c.err(where, "expected \"all\", \"weekdays\", \"weekends\" or a non-empty list of mon..sun");
    return std::nullopt;
  }
  std::uint8_t mask = 0;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!j[i].is_string()) {
      c.err(at, "expected a day name, got " + type_name(j[i]));
      return std::nullopt;
    }
    const auto s = j[i].get<std::string>();
    int found = -1;
    for (int d = 0; d < 7; ++d)
      if (s == kNames[d]) found = d;
    if (found < 0) {
      c.err(at, "'" + s + "' is not a day (mon, tue, wed, thu, fri, sat, sun)");
      return std::nullopt;
    }
    mask = static_cast<std::uint8_t>(mask | (1u << found));
  }
  return mask;
}

std::optional<std::string> get_string(Ctx& c, const json& obj, const char* key,
                                      const std::string& where, bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) c.err(where + "." + key, "missing");
    return std::nullopt;
  }
  if (!it->is_string()) {
    c.err(where + "." + key, "expected a string, got " + type_name(*it));
    return std::nullopt;
  }
  return it->get<std::string>();
}

}  // namespace

CredentialsResult parse_credentials(std::string_view text, std::string_view origin) {
  CredentialsResult out;
  Ctx c{std::string(origin), {}};
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    out.errors.push_back(c.origin + ": not valid JSON at byte " + std::to_string(e.byte) + ": " +
                         e.what());
    return out;
  } catch (const json::exception& e) {  // e.g. a number out of range
    out.errors.push_back(c.origin + ": not valid JSON: " + e.what());
    return out;
  }
  if (!root.is_object()) {
    out.errors.push_back(c.origin + ": expected a JSON object at the top, got " + type_name(root));
    return out;
  }
  c.only(root, "",
         {"version", "sync_version", "utc_offset_minutes", "door_groups", "schedules", "holidays",
          "locked_down", "credentials"});
  CredentialList list;

  if (auto it = root.find("version"); it == root.end() || !it->is_number_integer() || *it != 1)
    c.err("version", "missing or not 1 (the only version this gateway reads)");
  if (auto it = root.find("sync_version"); it != root.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0)
      c.err("sync_version", "expected an integer >= 0");
    else
      list.sync_version = it->get<std::int64_t>();
  }
  if (auto it = root.find("utc_offset_minutes"); it != root.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < -720 || it->get<std::int64_t>() > 840)
      c.err("utc_offset_minutes", "expected an integer in -720..840");
    else
      list.utc_offset_minutes = it->get<int>();
  }

  if (auto it = root.find("door_groups"); it != root.end()) {
    if (!it->is_object()) {
      c.err("door_groups", "expected an object of group name -> list of door ids");
    } else {
      for (auto g = it->begin(); g != it->end(); ++g) {
        const std::string at = "door_groups." + g.key();
        if (!g->is_array()) {
          c.err(at, "expected a list of door ids, got " + type_name(*g));
          continue;
        }
        auto& doors = list.door_groups[g.key()];
        for (std::size_t i = 0; i < g->size(); ++i) {
          if (!(*g)[i].is_string() || (*g)[i].get<std::string>().empty())
            c.err(at + "[" + std::to_string(i) + "]", "expected a non-empty door id");
          else
            doors.insert((*g)[i].get<std::string>());
        }
      }
    }
  }

  if (auto it = root.find("schedules"); it != root.end()) {
    if (!it->is_object()) {
      c.err("schedules", "expected an object of schedule name -> {windows, on_holidays}");
    } else {
      for (auto s = it->begin(); s != it->end(); ++s) {
        const std::string at = "schedules." + s.key();
        if (!s->is_object()) {
          c.err(at, "expected an object with \"windows\"");
          continue;
        }
        c.only(*s, at, {"windows", "on_holidays"});
        Schedule sched;
        if (auto h = s->find("on_holidays"); h != s->end()) {
          if (!h->is_boolean())
            c.err(at + ".on_holidays", "expected true or false");
          else
            sched.on_holidays = h->get<bool>();
        }
        auto w = s->find("windows");
        if (w == s->end() || !w->is_array() || w->empty()) {
          c.err(at + ".windows", "expected a non-empty list of {days, from, to}");
          continue;
        }
        for (std::size_t i = 0; i < w->size(); ++i) {
          const std::string wat = at + ".windows[" + std::to_string(i) + "]";
          const json& win = (*w)[i];
          if (!win.is_object()) {
            c.err(wat, "expected {days, from, to}");
            continue;
          }
          c.only(win, wat, {"days", "from", "to"});
          TimeWindow tw;
          auto days = win.contains("days") ? parse_days(c, win["days"], wat + ".days")
                                           : (c.err(wat + ".days", "missing"), std::nullopt);
          auto from = get_string(c, win, "from", wat, true);
          auto to = get_string(c, win, "to", wat, true);
          int f = -1, t = -1;  // minutes, -1 = missing or malformed
          if (from) f = parse_hhmm(*from, false).value_or(-1);
          if (to) t = parse_hhmm(*to, true).value_or(-1);
          if (from && f < 0) c.err(wat + ".from", "'" + *from + "' is not HH:MM (00:00..23:59)");
          if (to && t < 0) c.err(wat + ".to", "'" + *to + "' is not HH:MM (00:01..24:00)");
          if (f >= 0 && t >= 0 && f >= t)
            c.err(wat, "from " + *from + " is not before to " + *to +
                           " (write an overnight window as two)");
          if (!days || f < 0 || t < 0 || f >= t) continue;
          tw.days = *days;
          tw.from_min = f;
          tw.to_min = t;
          sched.windows.push_back(tw);
        }
        list.schedules[s.key()] = std::move(sched);
      }
    }
  }

  if (auto it = root.find("holidays"); it != root.end()) {
    if (!it->is_array()) {
      c.err("holidays", "expected a list of dates YYYY-MM-DD");
    } else {
      for (std::size_t i = 0; i < it->size(); ++i) {
        const json& h = (*it)[i];
        auto d = h.is_string() ? parse_date(h.get<std::string>()) : std::nullopt;
        if (!d)
          c.err("holidays[" + std::to_string(i) + "]", "expected a date YYYY-MM-DD");
        else
          list.holidays.insert(*d);
      }
    }
  }

  if (auto it = root.find("locked_down"); it != root.end()) {
    if (!it->is_array()) {
      c.err("locked_down", "expected a list of door group names");
    } else {
      for (std::size_t i = 0; i < it->size(); ++i) {
        const json& g = (*it)[i];
        const std::string at = "locked_down[" + std::to_string(i) + "]";
        if (!g.is_string())
          c.err(at, "expected a door group name");
        else if (!list.door_groups.count(g.get<std::string>()))
          c.err(at, "unknown door group '" + g.get<std::string>() + "'");
        else
          list.locked_down.insert(g.get<std::string>());
      }
    }
  }

  auto creds = root.find("credentials");
  if (creds == root.end() || !creds->is_array()) {
    c.err("credentials", "missing or not a list");
  } else {
    for (std::size_t i = 0; i < creds->size(); ++i) {
      const std::string at = "credentials[" + std::to_string(i) + "]";
      const json& cj = (*creds)[i];
      if (!cj.is_object()) {
        c.err(at, "expected an object");
        continue;
      }
      c.only(cj, at, {"hash", "label", "valid_from", "valid_until", "access"});
      Credential cred;
      bool ok = true;
      if (auto h = get_string(c, cj, "hash", at, true); h) {
        if (!is_hash(*h)) {
          c.err(at + ".hash",
                "expected 32 lowercase hex digits (the keyed hash of the card, never the card "
                "number), got " +
                    std::to_string(h->size()) + " characters");
          ok = false;
        } else {
          cred.hash = *h;
        }
      } else {
        ok = false;
      }
      if (auto l = get_string(c, cj, "label", at, false); l) cred.label = *l;
      if (auto v = get_string(c, cj, "valid_from", at, false); v) {
        cred.valid_from_ms = parse_local_time(*v, list.utc_offset_minutes, false);
        if (!cred.valid_from_ms) {
          c.err(at + ".valid_from", "'" + *v + "' is not YYYY-MM-DD or YYYY-MM-DDTHH:MM");
          ok = false;
        }
      }
      if (auto v = get_string(c, cj, "valid_until", at, false); v) {
        cred.valid_until_ms = parse_local_time(*v, list.utc_offset_minutes, true);
        if (!cred.valid_until_ms) {
          c.err(at + ".valid_until", "'" + *v + "' is not YYYY-MM-DD or YYYY-MM-DDTHH:MM");
          ok = false;
        }
      }
      if (cred.valid_from_ms && cred.valid_until_ms && *cred.valid_from_ms >= *cred.valid_until_ms)
        c.err(at, "valid_from is not before valid_until");
      auto acc = cj.find("access");
      if (acc == cj.end() || !acc->is_array() || acc->empty()) {
        c.err(at + ".access", "expected a non-empty list of {doors, schedule}");
        ok = false;
      } else {
        for (std::size_t k = 0; k < acc->size(); ++k) {
          const std::string aat = at + ".access[" + std::to_string(k) + "]";
          const json& a = (*acc)[k];
          if (!a.is_object()) {
            c.err(aat, "expected {doors, schedule}");
            ok = false;
            continue;
          }
          c.only(a, aat, {"doors", "schedule"});
          auto g = get_string(c, a, "doors", aat, true);
          auto s = get_string(c, a, "schedule", aat, true);
          if (g && !list.door_groups.count(*g))
            c.err(aat + ".doors", "unknown door group '" + *g + "'");
          if (s && !list.schedules.count(*s))
            c.err(aat + ".schedule", "unknown schedule '" + *s + "'");
          if (g && s) cred.access.push_back({*g, *s});
        }
      }
      if (!ok) continue;
      if (list.credentials.count(cred.hash)) {
        c.err(at + ".hash", "listed twice");
        continue;
      }
      list.credentials.emplace(cred.hash, std::move(cred));
    }
  }

  out.errors = std::move(c.errors);
  if (out.errors.empty()) out.list = std::move(list);
  return out;
}

AccessDecision decide(const CredentialList& list, std::string_view credential_hash,
                      std::string_view door, std::int64_t wall_ms,
                      const std::set<std::string>* extra_locked_down) {
  const std::string door_s(door);
  auto locked = [&](const std::string& g) {
    return list.locked_down.count(g) || (extra_locked_down && extra_locked_down->count(g));
  };
  for (const auto& [group, doors] : list.door_groups)
    if (doors.count(door_s) && locked(group)) return {false, "locked_down", ""};
  auto it = list.credentials.find(std::string(credential_hash));
  if (it == list.credentials.end()) return {false, "unknown", ""};
  const Credential& c = it->second;
  if (c.valid_from_ms && wall_ms < *c.valid_from_ms) return {false, "not_yet_valid", c.label};
  if (c.valid_until_ms && wall_ms >= *c.valid_until_ms) return {false, "expired", c.label};

  const std::int64_t local_ms =
      wall_ms + static_cast<std::int64_t>(list.utc_offset_minutes) * 60'000;
  const std::int64_t day = floor_div(local_ms, kMsPerDay);
  const int minute = static_cast<int>((local_ms - day * kMsPerDay) / 60'000);
  const int weekday = static_cast<int>(((day % 7) + 7 + 3) % 7);  // 1970-01-01 was a Thursday
  const bool holiday = list.holidays.count(day) > 0;

  bool in_group = false;
  bool holiday_blocked = false;
  for (const auto& rule : c.access) {
    auto g = list.door_groups.find(rule.door_group);
    if (g == list.door_groups.end() || !g->second.count(door_s)) continue;
    in_group = true;
    auto s = list.schedules.find(rule.schedule);
    if (s == list.schedules.end()) continue;
    if (holiday && !s->second.on_holidays) {
      holiday_blocked = true;
      continue;
    }
    for (const auto& w : s->second.windows)
      if ((w.days >> weekday) & 1 && minute >= w.from_min && minute < w.to_min)
        return {true, "granted", c.label};
  }
  if (!in_group) return {false, "door_not_in_group", c.label};
  return {false, holiday_blocked ? "holiday" : "outside_schedule", c.label};
}

SiteKeyResult parse_site_key(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.size() != 64)
    return {std::nullopt, "site key: expected 64 hex digits (32 bytes), got " +
                              std::to_string(text.size()) + " characters"};
  PseudonymKey k{};
  for (std::size_t i = 0; i < 32; ++i) {
    int v = 0;
    for (int j = 0; j < 2; ++j) {
      const char ch = text[i * 2 + static_cast<std::size_t>(j)];
      int d;
      if (ch >= '0' && ch <= '9')
        d = ch - '0';
      else if (ch >= 'a' && ch <= 'f')
        d = ch - 'a' + 10;
      else if (ch >= 'A' && ch <= 'F')
        d = ch - 'A' + 10;
      else
        return {std::nullopt,
                "site key: character " + std::to_string(i * 2 + j + 1) + " is not a hex digit"};
      v = v * 16 + d;
    }
    k[i] = static_cast<std::uint8_t>(v);
  }
  if (k == PseudonymKey{}) return {std::nullopt, "site key: all zero"};
  return {k, ""};
}

std::string wiegand_pseudonym(const PseudonymKey& key, wiegand::Format format,
                              std::uint32_t facility, std::uint32_t number) {
  int fac_bits = 0, num_bits = 0;
  switch (format) {
    case wiegand::Format::h10301_26:
      fac_bits = 8, num_bits = 16;
      break;
    case wiegand::Format::h10306_34:
      fac_bits = 16, num_bits = 16;
      break;
    case wiegand::Format::h10304_37:
      fac_bits = 16, num_bits = 19;
      break;
    case wiegand::Format::raw:
      return "";
  }
  if (facility >> fac_bits || number >> num_bits) return "";
  const int n = fac_bits + num_bits + 2;
  wiegand::Bits bits(static_cast<std::size_t>(n), false);
  for (int i = 0; i < fac_bits; ++i)
    bits[static_cast<std::size_t>(1 + i)] = ((facility >> (fac_bits - 1 - i)) & 1) != 0;
  for (int i = 0; i < num_bits; ++i)
    bits[static_cast<std::size_t>(1 + fac_bits + i)] = ((number >> (num_bits - 1 - i)) & 1) != 0;
  // Leading even parity over the first half of the data bits, trailing odd over the second
  // (37 bits: 1..18 and 18..35, sharing bit 18).
  const int half = (n - 1) / 2;  // 12, 16, 18
  int ones = 0;
  for (int i = 1; i <= half; ++i) ones += bits[static_cast<std::size_t>(i)] ? 1 : 0;
  bits[0] = ones % 2 == 1;
  ones = 0;
  for (int i = n - 1 - half; i <= n - 2; ++i) ones += bits[static_cast<std::size_t>(i)] ? 1 : 0;
  bits[static_cast<std::size_t>(n - 1)] = ones % 2 == 0;
  auto r = wiegand::decode(bits);
  if (r.status != wiegand::DecodeResult::Status::card || !r.card) return "";
  return credential_pseudonym(key, "wiegand", r.card->bit_count, r.card->hex);
}

void CredentialBook::replace(CredentialList list) {
  auto p = std::make_shared<const CredentialList>(std::move(list));
  std::lock_guard lock(mu_);
  list_ = std::move(p);
}

void CredentialBook::set_locked_down(const std::string& door_group, bool locked) {
  std::lock_guard lock(mu_);
  if (locked)
    locked_.insert(door_group);
  else
    locked_.erase(door_group);
}

bool CredentialBook::has_door_group(const std::string& door_group) const {
  std::lock_guard lock(mu_);
  return list_->door_groups.count(door_group) > 0;
}

std::set<std::string> CredentialBook::locked_down() const {
  std::lock_guard lock(mu_);
  std::set<std::string> out = locked_;
  out.insert(list_->locked_down.begin(), list_->locked_down.end());
  return out;
}

AccessDecision CredentialBook::decide(std::string_view credential_hash, std::string_view door,
                                      std::int64_t wall_ms) const {
  std::shared_ptr<const CredentialList> list;
  std::set<std::string> locked;
  {
    std::lock_guard lock(mu_);
    list = list_;
    locked = locked_;
  }
  return access::decide(*list, credential_hash, door, wall_ms, &locked);
}

std::size_t CredentialBook::size() const {
  std::lock_guard lock(mu_);
  return list_->credentials.size();
}

std::int64_t CredentialBook::sync_version() const {
  std::lock_guard lock(mu_);
  return list_->sync_version;
}

CredentialsSync apply_credentials_sync(const json& current, const json& args) {
  CredentialsSync r;
  auto fail = [&](std::string why) {
    r.error = std::move(why);
    return r;
  };
  if (!args.is_object()) return fail("args must be an object");
  static const std::set<std::string> kKnown{
      "version",     "base_version", "full",     "upsert",      "remove",
      "door_groups", "schedules",    "holidays", "locked_down", "utc_offset_minutes"};
  for (auto it = args.begin(); it != args.end(); ++it)
    if (!kKnown.count(it.key()))
      return fail("args." + it.key().substr(0, 64) +
                  ": unknown (expected version, base_version, full, upsert, remove, door_groups, "
                  "schedules, holidays, locked_down, utc_offset_minutes)");
  auto integer = [&](const char* key, std::int64_t& out) {
    auto it = args.find(key);
    if (it == args.end()) return false;
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0) {
      r.error = std::string("args.") + key + ": expected an integer >= 0";
      return false;
    }
    out = it->get<std::int64_t>();
    return true;
  };
  std::int64_t version = 0, base = 0;
  if (!integer("version", version))
    return fail(r.error.empty() ? "args.version: required" : r.error);
  if (version < 1) return fail("args.version: must be >= 1");
  const bool has_base = integer("base_version", base);
  if (!r.error.empty()) return r;
  bool full = false;
  if (auto it = args.find("full"); it != args.end()) {
    if (!it->is_boolean()) return fail("args.full: expected true or false");
    full = it->get<bool>();
  }
  for (const char* key : {"upsert", "remove", "holidays", "locked_down"})
    if (auto it = args.find(key); it != args.end() && !it->is_array())
      return fail(std::string("args.") + key + ": expected a list");
  for (const char* key : {"door_groups", "schedules"})
    if (auto it = args.find(key); it != args.end() && !it->is_object())
      return fail(std::string("args.") + key + ": expected an object");

  const json base_doc = current.is_object() ? current : json{{"version", 1}};
  std::int64_t have = 0;
  if (auto it = base_doc.find("sync_version"); it != base_doc.end() && it->is_number_integer())
    have = it->get<std::int64_t>();
  if (version <= have) {
    r.duplicate = true;
    r.version = have;
    return r;
  }
  if (!full) {
    if (!has_base) return fail("args.base_version: required for a delta (or send \"full\": true)");
    if (base != have)
      return fail("args.base_version " + std::to_string(base) +
                  " is not the gateway's list version " + std::to_string(have) +
                  ": send the list in full");
  }

  json doc = base_doc;
  doc["version"] = 1;
  doc["sync_version"] = version;
  for (const char* key :
       {"door_groups", "schedules", "holidays", "locked_down", "utc_offset_minutes"})
    if (auto it = args.find(key); it != args.end()) doc[key] = *it;
  // Credentials by hash, in the order they were (new ones at the end).
  json creds = full ? json::array() : doc.value("credentials", json::array());
  if (!creds.is_array()) creds = json::array();
  auto index_of = [&](const std::string& hash) -> std::ptrdiff_t {
    for (std::size_t i = 0; i < creds.size(); ++i)
      if (creds[i].is_object() && creds[i].value("hash", "") == hash)
        return static_cast<std::ptrdiff_t>(i);
    return -1;
  };
  if (auto it = args.find("remove"); it != args.end()) {
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& h = (*it)[i];
      if (!h.is_string()) return fail("args.remove[" + std::to_string(i) + "]: expected a hash");
      if (const auto at = index_of(h.get<std::string>()); at >= 0)
        creds.erase(static_cast<std::size_t>(at));  // one not there: already removed
    }
  }
  if (auto it = args.find("upsert"); it != args.end()) {
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& c = (*it)[i];
      if (!c.is_object() || !c.contains("hash") || !c["hash"].is_string())
        return fail("args.upsert[" + std::to_string(i) + "]: expected a credential with a hash");
      if (const auto at = index_of(c["hash"].get<std::string>()); at >= 0)
        creds[static_cast<std::size_t>(at)] = c;
      else
        creds.push_back(c);
    }
  }
  doc["credentials"] = std::move(creds);
  auto parsed = parse_credentials(doc.dump(), "credentials.sync");
  if (!parsed.list) {
    std::string all;
    for (std::size_t i = 0; i < parsed.errors.size() && i < 5; ++i)
      all += (i ? "; " : "") + parsed.errors[i];
    if (parsed.errors.size() > 5)
      all += "; and " + std::to_string(parsed.errors.size() - 5) + " more";
    return fail("the list it makes is refused: " + all);
  }
  r.version = version;
  r.document = std::move(doc);
  r.list = std::move(parsed.list);
  return r;
}

}  // namespace anju::drivers::access
