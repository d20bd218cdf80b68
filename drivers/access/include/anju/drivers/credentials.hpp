// Local access decisions: the credential list (keyed hashes only), door groups, weekly schedules
// and holidays, and decide(). Pure: the list is parsed from text, time comes in as an argument.
// It lives with the access drivers (not in edge/) because the readers' I/O threads call it
// directly: a decision must come within 100 ms of the read and must not depend on the pipeline,
// the journal or the city link.
//
// The credentials file (JSON):
//   {
//     "version": 1,
//     "sync_version": 41,                        // the city's list version (credentials.sync)
//     "utc_offset_minutes": 480,                 // local time of the schedules (China: +08:00)
//     "door_groups": {"north-gates": ["gate-north", "gate-south"], "b3": ["b3-u1", "garage"]},
//     "schedules": {
//       "always":  {"windows": [{"days": "all", "from": "00:00", "to": "24:00"}]},
//       "workers": {"windows": [{"days": "weekdays", "from": "08:00", "to": "18:00"}],
//                   "on_holidays": false}        // default true
//     },
//     "holidays": ["2026-10-01", "2026-10-02"],  // local dates
//     "locked_down": ["b3"],                     // door groups where every read is denied
//     "credentials": [
//       {"hash": "<32 hex digits: the reader's pseudonym of the card>", "label": "3-1-402 #1",
//        "valid_from": "2026-01-01", "valid_until": "2026-12-31",   // local; dates inclusive
//        "access": [{"doors": "north-gates", "schedule": "always"}]}
//     ]
//   }
// `days` is "all", "weekdays", "weekends" or a list of "mon".."sun". Windows are [from, to) in
// local time, from < to ("24:00" allowed as an end); an overnight window is written as two.
// valid_from / valid_until take "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (local). A card number can
// never be stored: "hash" must be exactly 32 lowercase hex digits and unknown keys are errors.
//
// Thread: CredentialList is an immutable value after parsing; CredentialBook is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/drivers/access_common.hpp"
#include "anju/drivers/access_events.hpp"
#include "anju/drivers/wiegand.hpp"

namespace anju::drivers::access {

struct TimeWindow {
  std::uint8_t days = 0;  // bit 0 Monday .. bit 6 Sunday
  int from_min = 0;       // minutes after local midnight, inclusive
  int to_min = 0;         // exclusive, <= 1440
};
struct Schedule {
  std::vector<TimeWindow> windows;
  bool on_holidays = true;
};
struct AccessRule {
  std::string door_group;
  std::string schedule;
};
struct Credential {
  std::string hash;  // the pseudonym, 32 hex digits
  std::string label;
  std::optional<std::int64_t> valid_from_ms;   // inclusive
  std::optional<std::int64_t> valid_until_ms;  // exclusive
  std::vector<AccessRule> access;
};

struct CredentialList {
  std::int64_t sync_version = 0;  // the city's version of the list; 0: not from the city
  int utc_offset_minutes = 480;
  std::map<std::string, std::set<std::string>> door_groups;
  std::map<std::string, Schedule> schedules;
  std::set<std::int64_t> holidays;  // local dates as days since 1970-01-01
  std::set<std::string> locked_down;
  std::unordered_map<std::string, Credential> credentials;  // by hash
};

struct CredentialsResult {
  std::optional<CredentialList> list;
  std::vector<std::string> errors;  // all of them, each naming where: "credentials[2].hash: ..."
};
// Parses the credentials file's text. `origin` prefixes the errors (e.g. the file name).
CredentialsResult parse_credentials(std::string_view text, std::string_view origin = "credentials");

// The city's credentials.sync (args of the command, docs/contract/README.md): a delta against the
// list version the gateway has, or the whole list. `current` is the document in use (the
// credentials file's JSON). Pure. The result is checked in full by parse_credentials: a sync that
// would make a file the gateway refuses is refused, and the list in use stays.
//   {"version": 42,            // the list's version after this sync (> the gateway's)
//    "base_version": 41,       // the version the delta applies to (required unless "full")
//    "full": false,            // true: "upsert" is the whole list
//    "upsert": [ {credential as in the file} ], "remove": ["<hash>", ...],
//    "door_groups": {...}, "schedules": {...}, "holidays": [...], "locked_down": [...],
//    "utc_offset_minutes": 480}  // each section replaced when present, kept when absent
struct CredentialsSync {
  std::optional<nlohmann::json> document;  // the new file's content (with sync_version)
  std::optional<CredentialList> list;      // document, parsed
  bool duplicate = false;    // version already reached: nothing to do (a retried request)
  std::int64_t version = 0;  // the list's version after this (or now, when duplicate)
  std::string error;
};
CredentialsSync apply_credentials_sync(const nlohmann::json& current, const nlohmann::json& args);

// The decision for a credential's pseudonym at a door at a wall-clock time. Reasons: "granted",
// "locked_down", "unknown", "not_yet_valid", "expired", "door_not_in_group", "holiday",
// "outside_schedule". `extra_locked_down`: groups locked down at run time.
AccessDecision decide(const CredentialList& list, std::string_view credential_hash,
                      std::string_view door, std::int64_t wall_ms,
                      const std::set<std::string>* extra_locked_down = nullptr);

// The site key (HMAC-SHA-256) from its file's text: 64 hex digits (whitespace around ignored).
struct SiteKeyResult {
  std::optional<PseudonymKey> key;
  std::string error;
};
SiteKeyResult parse_site_key(std::string_view text);

// Files (in anju_drivers: these read the disk). The key file must be readable by its owner
// only (mode 0600 or stricter); a looser mode is an error naming the mode.
SiteKeyResult load_site_key(const std::string& path);
CredentialsResult load_credentials(const std::string& path);

// Enrolment: the pseudonym a reader will produce for a Wiegand card (26/34/37 bits, parities
// computed), so that a credential list can be written without ever storing the number.
// "" when the facility or number does not fit the format.
std::string wiegand_pseudonym(const PseudonymKey& key, wiegand::Format format,
                              std::uint32_t facility, std::uint32_t number);

// The list in use, swappable at run time (a new file, later the city's sync), with run-time
// lock-downs. decide() is what the readers' Decider calls.
class CredentialBook {
 public:
  explicit CredentialBook(CredentialList list = {})
      : list_(std::make_shared<const CredentialList>(std::move(list))) {}
  void replace(CredentialList list);
  void set_locked_down(const std::string& door_group, bool locked);
  // True when the list in use defines the group.
  bool has_door_group(const std::string& door_group) const;
  // The groups locked down now: by the list and by set_locked_down().
  std::set<std::string> locked_down() const;
  AccessDecision decide(std::string_view credential_hash, std::string_view door,
                        std::int64_t wall_ms) const;
  Decider decider() const {
    return
        [this](std::string_view c, std::string_view d, std::int64_t t) { return decide(c, d, t); };
  }
  std::size_t size() const;
  std::int64_t sync_version() const;  // of the list in use (0: not from the city)

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const CredentialList> list_;
  std::set<std::string> locked_;
};

}  // namespace anju::drivers::access
