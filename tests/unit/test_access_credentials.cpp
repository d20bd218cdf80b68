// Local access decisions (drivers/access/src/credentials_parser.cpp, credentials_files.cpp):
// the credentials file, its errors, decide() with schedules, holidays, validity and lock-down,
// the site key file, and enrolment pseudonyms that match what the readers produce.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include "anju/drivers/access_events.hpp"
#include "anju/drivers/credentials.hpp"
#include "anju/drivers/osdp.hpp"
#include "anju/drivers/wiegand.hpp"

using namespace anju::drivers;
using namespace anju::drivers::access;

namespace {

const PseudonymKey kKey{0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xA9, 0xBA,
                        0xCB, 0xDC, 0xED, 0xFE, 0x0F, 1,    2,    3,    4,    5,    6,
                        7,    8,    9,    10,   11,   12,   13,   14,   15,   16};

// Wall-clock ms of a local time in UTC+8.
std::int64_t local(int y, int mo, int d, int h, int mi) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return (static_cast<std::int64_t>(::timegm(&tm)) - 8 * 3600) * 1000;
}

std::string resident() {
  return wiegand_pseudonym(kKey, wiegand::Format::h10301_26, 12, 3456);
}
std::string worker() {
  return wiegand_pseudonym(kKey, wiegand::Format::h10301_26, 12, 7777);
}
std::string visitor() {
  return wiegand_pseudonym(kKey, wiegand::Format::h10304_37, 300, 400000);
}

std::string example() {
  return R"({
    "version": 1,
    "utc_offset_minutes": 480,
    "door_groups": {"gates": ["gate-north", "gate-south"], "b3": ["b3-u1", "garage"],
                    "plant": ["plant-room"]},
    "schedules": {
      "always": {"windows": [{"days": "all", "from": "00:00", "to": "24:00"}]},
      "workers": {"windows": [{"days": "weekdays", "from": "08:00", "to": "18:00"}],
                  "on_holidays": false}
    },
    "holidays": ["2026-10-01", "2026-10-02"],
    "locked_down": ["plant"],
    "credentials": [
      {"hash": ")" +
         resident() + R"(", "label": "3-1-402 #1",
       "access": [{"doors": "gates", "schedule": "always"}, {"doors": "b3", "schedule": "always"}]},
      {"hash": ")" +
         worker() + R"(", "label": "cleaner",
       "valid_from": "2026-01-01", "valid_until": "2026-12-31",
       "access": [{"doors": "gates", "schedule": "workers"}, {"doors": "plant", "schedule": "always"}]},
      {"hash": ")" +
         visitor() + R"(", "valid_from": "2026-11-30T14:00", "valid_until": "2026-11-30T18:00",
       "access": [{"doors": "gates", "schedule": "always"}]}
    ]
  })";
}

CredentialList parsed(const std::string& text) {
  auto r = parse_credentials(text, "creds.json");
  INFO((r.errors.empty() ? std::string() : r.errors.front()));
  REQUIRE(r.list);
  return *r.list;
}

std::string all_errors(const std::string& text) {
  auto r = parse_credentials(text, "creds.json");
  CHECK_FALSE(r.list);
  std::string s;
  for (const auto& e : r.errors) s += e + "\n";
  return s;
}

}  // namespace

TEST_CASE("Credentials: decisions by validity, schedule, holiday, door group and lock-down",
          "[access][credentials]") {
  const CredentialList list = parsed(example());
  REQUIRE(list.credentials.size() == 3);
  const auto mon_0900 = local(2026, 11, 30, 9, 0);  // Monday 30 Nov 2026

  auto d = decide(list, resident(), "gate-north", mon_0900);
  CHECK(d.granted);
  CHECK(d.reason == "granted");
  CHECK(d.label == "3-1-402 #1");
  CHECK(decide(list, resident(), "garage", local(2026, 10, 1, 3, 0)).granted);  // holiday, night

  CHECK(decide(list, "0123456789abcdef0123456789abcdef", "gate-north", mon_0900).reason ==
        "unknown");
  CHECK(decide(list, resident(), "plant-room", mon_0900).reason == "locked_down");
  CHECK(decide(list, worker(), "plant-room", mon_0900).reason == "locked_down");
  CHECK(decide(list, worker(), "garage", mon_0900).reason == "door_not_in_group");

  // Weekday window [08:00, 18:00) local time.
  CHECK(decide(list, worker(), "gate-south", local(2026, 11, 30, 8, 0)).granted);
  CHECK(decide(list, worker(), "gate-south", local(2026, 11, 30, 17, 59)).granted);
  CHECK(decide(list, worker(), "gate-south", local(2026, 11, 30, 18, 0)).reason ==
        "outside_schedule");
  CHECK(decide(list, worker(), "gate-south", local(2026, 11, 30, 7, 59)).reason ==
        "outside_schedule");
  CHECK(decide(list, worker(), "gate-south", local(2026, 11, 29, 10, 0)).reason ==  // Sunday
        "outside_schedule");
  CHECK(decide(list, worker(), "gate-south", local(2026, 10, 1, 10, 0)).reason == "holiday");

  // Validity: dates are inclusive, local time.
  CHECK(decide(list, worker(), "gate-north", local(2026, 12, 31, 17, 0)).granted);
  CHECK(decide(list, worker(), "gate-north", local(2027, 1, 1, 0, 0)).reason == "expired");
  CHECK(decide(list, worker(), "gate-north", local(2025, 12, 31, 10, 0)).reason == "not_yet_valid");
  CHECK(decide(list, visitor(), "gate-north", local(2026, 11, 30, 13, 59)).reason ==
        "not_yet_valid");
  CHECK(decide(list, visitor(), "gate-north", local(2026, 11, 30, 14, 0)).granted);
  CHECK(decide(list, visitor(), "gate-north", local(2026, 11, 30, 18, 0)).reason == "expired");
}

TEST_CASE("Credentials: a CredentialBook swaps lists and locks door groups down at run time",
          "[access][credentials]") {
  CredentialBook book(parsed(example()));
  const auto t = local(2026, 11, 30, 9, 0);
  Decider decider = book.decider();
  CHECK(decider(resident(), "gate-north", t).granted);
  book.set_locked_down("gates", true);
  CHECK(decider(resident(), "gate-north", t).reason == "locked_down");
  CHECK(decider(resident(), "garage", t).granted);  // other groups unaffected
  book.set_locked_down("gates", false);
  CHECK(decider(resident(), "gate-north", t).granted);
  book.replace(CredentialList{});
  CHECK(book.size() == 0);
  CHECK(decider(resident(), "gate-north", t).reason == "unknown");
}

TEST_CASE("Credentials file errors name where and what, all at once", "[access][credentials]") {
  SECTION("a card number instead of a hash is refused") {
    const auto e = all_errors(R"({"version": 1, "door_groups": {"g": ["d"]},
      "schedules": {"s": {"windows": [{"days": "all", "from": "00:00", "to": "24:00"}]}},
      "credentials": [{"hash": "12345678", "access": [{"doors": "g", "schedule": "s"}]},
                      {"card": "3456", "hash": "0123456789ABCDEF0123456789ABCDEF",
                       "access": [{"doors": "g", "schedule": "s"}]}]})");
    CHECK_THAT(e, Catch::Contains("creds.json: credentials[0].hash: expected 32 lowercase hex "
                                  "digits (the keyed hash of the card, never the card number), "
                                  "got 8 characters"));
    CHECK_THAT(e, Catch::Contains("credentials[1].card: unknown key"));
    CHECK_THAT(e, Catch::Contains("credentials[1].hash: expected 32 lowercase hex"));
  }
  SECTION("references, times and days") {
    const auto e = all_errors(R"({"version": 1, "door_groups": {"g": ["d"]},
      "schedules": {"s": {"windows": [{"days": ["mon", "funday"], "from": "08:00", "to": "07:00"},
                                      {"days": "all", "from": "25:00", "to": "24:30"}],
                          "on_holiday": false}},
      "holidays": ["2026-02-30"], "locked_down": ["nope"],
      "credentials": [{"hash": "0123456789abcdef0123456789abcdef", "valid_until": "tomorrow",
                       "access": [{"doors": "h", "schedule": "t"}]},
                      {"hash": "0123456789abcdef0123456789abcdef",
                       "access": [{"doors": "g", "schedule": "s"}]},
                      {"hash": "0123456789abcdef0123456789abcdef",
                       "access": [{"doors": "g", "schedule": "s"}]}]})");
    CHECK_THAT(e, Catch::Contains("schedules.s.windows[0].days[1]: 'funday' is not a day"));
    CHECK_THAT(e, Catch::Contains("schedules.s.windows[0]: from 08:00 is not before to 07:00"));
    CHECK_THAT(e, Catch::Contains("schedules.s.windows[1].from: '25:00' is not HH:MM"));
    CHECK_THAT(e, Catch::Contains("schedules.s.windows[1].to: '24:30' is not HH:MM"));
    CHECK_THAT(e, Catch::Contains("schedules.s.on_holiday: unknown key"));
    CHECK_THAT(e, Catch::Contains("holidays[0]: expected a date YYYY-MM-DD"));
    CHECK_THAT(e, Catch::Contains("locked_down[0]: unknown door group 'nope'"));
    CHECK_THAT(e, Catch::Contains("credentials[0].valid_until: 'tomorrow' is not YYYY-MM-DD"));
    CHECK_THAT(e, Catch::Contains("credentials[0].access[0].doors: unknown door group 'h'"));
    CHECK_THAT(e, Catch::Contains("credentials[0].access[0].schedule: unknown schedule 't'"));
    CHECK_THAT(e, Catch::Contains("credentials[2].hash: listed twice"));
  }
  SECTION("not JSON, not an object, wrong version") {
    CHECK_THAT(all_errors("{\"version\": 1,"),
               Catch::Contains("creds.json: not valid JSON at byte"));
    CHECK_THAT(all_errors("[1]"), Catch::Contains("expected a JSON object at the top, got array"));
    // Found by fuzz_access_credentials: a number too large for a double threw out of the parser.
    CHECK_THAT(all_errors(R"({"version": 1E400})"), Catch::Contains("creds.json: not valid JSON"));
    CHECK_THAT(all_errors(R"({"version": 2, "credentials": []})"),
               Catch::Contains("version: missing or not 1"));
  }
}

TEST_CASE("Site key: 64 hex digits in a file only its owner can read", "[access][credentials]") {
  auto k = parse_site_key("  00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n");
  REQUIRE(k.key);
  CHECK((*k.key)[1] == 0x11);
  CHECK((*k.key)[31] == 0xFF);
  CHECK(parse_site_key("abc").error ==
        "site key: expected 64 hex digits (32 bytes), got 3 characters");
  CHECK(parse_site_key(std::string(63, '0') + "g").error ==
        "site key: character 64 is not a hex digit");
  CHECK(parse_site_key(std::string(64, '0')).error == "site key: all zero");

  const auto dir =
      std::filesystem::temp_directory_path() / ("anju-sitekey-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "site.key").string();
  {
    std::ofstream out(path);
    out << "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
  }
  ::chmod(path.c_str(), 0644);
  auto loose = load_site_key(path);
  CHECK_FALSE(loose.key);
  CHECK_THAT(loose.error, Catch::Contains("mode 0644") && Catch::Contains("chmod 600"));
  ::chmod(path.c_str(), 0600);
  auto ok = load_site_key(path);
  INFO(ok.error);
  CHECK(ok.key);
  CHECK_THAT(load_site_key((dir / "missing").string()).error, Catch::Contains("cannot stat"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("Enrolment pseudonyms match what the readers produce for the same card",
          "[access][credentials]") {
  struct Case {
    wiegand::Format f;
    std::uint32_t facility, number;
  };
  for (const auto& c :
       {Case{wiegand::Format::h10301_26, 12, 3456}, Case{wiegand::Format::h10306_34, 40000, 65535},
        Case{wiegand::Format::h10304_37, 65535, 524287}}) {
    const std::string p = wiegand_pseudonym(kKey, c.f, c.facility, c.number);
    REQUIRE(p.size() == 32);
    // Build the same frame the way a reader sends it and decode it.
    wiegand::Bits bits;
    {
      const int fb = c.f == wiegand::Format::h10301_26 ? 8 : 16;
      const int nb = c.f == wiegand::Format::h10304_37 ? 19 : 16;
      const int n = fb + nb + 2;
      bits.assign(static_cast<std::size_t>(n), false);
      for (int i = 0; i < fb; ++i) bits[1 + i] = ((c.facility >> (fb - 1 - i)) & 1) != 0;
      for (int i = 0; i < nb; ++i) bits[1 + fb + i] = ((c.number >> (nb - 1 - i)) & 1) != 0;
      // try both values of each parity bit: exactly one combination decodes as a card
      bool found = false;
      for (int a = 0; a < 2 && !found; ++a)
        for (int b = 0; b < 2 && !found; ++b) {
          bits[0] = a == 1;
          bits[static_cast<std::size_t>(n - 1)] = b == 1;
          found = wiegand::decode(bits).status == wiegand::DecodeResult::Status::card;
        }
      REQUIRE(found);
    }
    auto ev = event_from_wiegand(wiegand::decode(bits), kKey, 0);
    REQUIRE(ev);
    CHECK(ev->attrs.at("credential") == p);
  }
  CHECK(wiegand_pseudonym(kKey, wiegand::Format::h10301_26, 256, 1).empty());  // facility > 8 bits
  CHECK(wiegand_pseudonym(kKey, wiegand::Format::raw, 1, 1).empty());
}

TEST_CASE("credentials.sync: deltas against the list version, the whole list, and what is refused",
          "[access][credentials][city]") {
  const std::string a(32, 'a'), b(32, 'b'), c(32, 'c');
  auto cred = [](const std::string& hash, const std::string& group) {
    return nlohmann::json{
        {"hash", hash},
        {"label", "resident"},
        {"access", nlohmann::json::array({{{"doors", group}, {"schedule", "always"}}})}};
  };
  const nlohmann::json sections{
      {"door_groups", {{"gates", {"gate-north"}}, {"b3", {"b3-u1"}}}},
      {"schedules",
       {{"always",
         {{"windows",
           nlohmann::json::array({{{"days", "all"}, {"from", "00:00"}, {"to", "24:00"}}})}}}}}};
  // The file an installer wrote: no sync version yet.
  nlohmann::json local = sections;
  local["version"] = 1;
  local["credentials"] = nlohmann::json::array({cred(a, "gates")});

  // A delta needs the version it applies to; the installer's file is version 0.
  auto r = apply_credentials_sync(
      local, {{"version", 5}, {"upsert", nlohmann::json::array({cred(b, "gates")})}});
  CHECK(r.error == "args.base_version: required for a delta (or send \"full\": true)");
  r = apply_credentials_sync(local, {{"version", 5}, {"base_version", 4}});
  CHECK(r.error ==
        "args.base_version 4 is not the gateway's list version 0: send the list in full");

  // The whole list, version 5: replaces the credentials, keeps the sections it does not send.
  r = apply_credentials_sync(
      local, {{"version", 5},
              {"full", true},
              {"upsert", nlohmann::json::array({cred(b, "gates"), cred(c, "b3")})}});
  INFO(r.error);
  REQUIRE(r.list);
  CHECK(r.version == 5);
  CHECK(r.list->sync_version == 5);
  CHECK(r.list->credentials.size() == 2);
  CHECK(r.list->credentials.count(a) == 0);
  CHECK(decide(*r.list, b, "gate-north", 0).granted);
  CHECK((*r.document)["sync_version"] == 5);
  // The document is a credentials file the gateway reads back as the same list.
  const auto reread = parse_credentials(r.document->dump());
  REQUIRE(reread.list);
  CHECK(reread.list->sync_version == 5);

  // A delta on version 5: c moves to the gates, b leaves, a comes back.
  const nlohmann::json v5 = *r.document;
  r = apply_credentials_sync(
      v5, {{"version", 6},
           {"base_version", 5},
           {"remove", nlohmann::json::array({b, std::string(32, 'f')})},
           {"upsert", nlohmann::json::array({cred(c, "gates"), cred(a, "b3")})}});
  INFO(r.error);
  REQUIRE(r.list);
  CHECK(r.list->credentials.size() == 2);
  CHECK_FALSE(decide(*r.list, b, "gate-north", 0).granted);
  CHECK(decide(*r.list, c, "gate-north", 0).granted);
  CHECK(decide(*r.list, a, "b3-u1", 0).granted);

  // The same sync again (a retried request), or an older one: nothing to do.
  const nlohmann::json v6 = *r.document;
  r = apply_credentials_sync(v6, {{"version", 6}, {"base_version", 5}});
  CHECK(r.duplicate);
  CHECK(r.version == 6);
  CHECK_FALSE(r.document);
  CHECK(r.error.empty());
  // A delta against a version the gateway does not have (one was lost): the city sends it all.
  r = apply_credentials_sync(v6, {{"version", 8}, {"base_version", 7}});
  CHECK(r.error ==
        "args.base_version 7 is not the gateway's list version 6: send the list in full");

  // A delta that would make a list the gateway refuses is refused whole, naming the problem.
  r = apply_credentials_sync(v6, {{"version", 7},
                                  {"base_version", 6},
                                  {"upsert", nlohmann::json::array({cred("1234", "gates")})}});
  CHECK_THAT(r.error, Catch::Contains(
                          "the list it makes is refused: credentials.sync: credentials[2].hash"));
  r = apply_credentials_sync(v6, {{"version", 7},
                                  {"base_version", 6},
                                  {"upsert", nlohmann::json::array({cred(b, "nowhere")})}});
  CHECK_THAT(r.error, Catch::Contains("unknown door group 'nowhere'"));
  CHECK(apply_credentials_sync(v6, {{"version", 7}, {"base_version", 6}, {"numbers", {1}}})
            .error.starts_with("args.numbers: unknown"));
  CHECK(apply_credentials_sync(v6, {{"base_version", 6}}).error == "args.version: required");
  CHECK(apply_credentials_sync(v6, {{"version", "7"}}).error ==
        "args.version: expected an integer >= 0");
  CHECK(apply_credentials_sync(v6, {{"version", 7}, {"base_version", 6}, {"upsert", {{"x", 1}}}})
            .error == "args.upsert: expected a list");
}
