// The durable event journal: SQLite in WAL mode, one writer (the pipeline thread), group commit.
// An event is *accepted* when the transaction that stored it has committed; its `seq` is assigned
// in that transaction, gapless and surviving restarts.
// Thread: a Journal (its writer connection) belongs to the pipeline thread. Readers elsewhere
// (the CLI, the uplink, tests) open their own connection with open_reader().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "anju/edge/alert.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/sqlite.hpp"

namespace anju::edge {

struct JournalOptions {
  std::string path;              // the database file, e.g. /var/lib/anju/anju.db
  bool synchronous_full = true;  // fsync at every commit (survives power loss)
  int retention_days = 90;
  int alert_retention_days = 365;
  std::int64_t max_bytes = 512LL * 1024 * 1024;
};

struct OpenReport {
  bool recovered_from_corruption = false;
  std::string moved_to;  // where the corrupt file was moved
  std::string reason;    // what was wrong with it
};

struct EventQuery {
  std::optional<std::int64_t> since_ms;  // ts_ms >= since
  std::optional<std::int64_t> until_ms;  // ts_ms < until
  std::optional<std::int64_t> seq_from;  // seq >= from
  std::optional<std::int64_t> seq_to;    // seq <= to
  std::optional<EventKind> kind;
  std::string device_id;  // empty: any
  int limit = 1000;
  bool newest_first = false;
};

// A device as the journal last heard of it (the `devices` table; one row per device id).
struct DeviceRecord {
  DeviceRef device;
  Location location;
  std::string source;  // driver
  std::int64_t first_seen_ms = 0;
  std::int64_t last_seen_ms = 0;
  std::int64_t last_seq = 0;  // its latest event
  std::string state;          // "online" or "offline"
  std::optional<double> battery;
  std::optional<double> signal;  // link quality or RSSI, as the driver reports it
};

// Creates the tables if needed (shared by every connection that writes).
void ensure_schema(Db& db);
// Opens another connection to the same file for reading (WAL lets it run beside the writer).
Db open_reader(const std::string& path);
// Adds anju_event_json(body) to a connection (open_reader and the journal's own have it).
void register_functions(sqlite3* db);
std::vector<Event> query_events(const Db& db, const EventQuery& q);
std::vector<Alert> load_alerts(const Db& db, bool open_only, int limit = 10000);
std::vector<DeviceRecord> load_devices(const Db& db);

// The newest event of each device among `kinds` since `since_ms` (by the time index), by id.
std::map<std::string, std::int64_t> last_event_by_device(const Db& db,
                                                         const std::vector<EventKind>& kinds,
                                                         std::int64_t since_ms);

// Device conditions that open alerts stand for while the condition is present, by device id:
// "offline" (device_offline), "battery_low", "signal_weak", "tamper".
std::map<std::string, std::vector<std::string>> device_conditions(const Db& db);

// The registry in numbers: devices known (ever heard from), online and offline (the registry's
// state: offline from a device_offline until the device is heard again, even when a person
// closed the alert), and those with each other condition (device_conditions).
struct DeviceStateCounts {
  std::int64_t known = 0;
  std::int64_t online = 0;
  std::int64_t offline = 0;
  std::int64_t battery_low = 0;
  std::int64_t signal_weak = 0;
  std::int64_t tamper = 0;
};
DeviceStateCounts device_state_counts(const Db& db);

class Journal {
 public:
  // Opens (creating) the journal and checks its integrity. A file that is not a database or fails
  // the check is moved aside (kept for inspection) and a fresh one is started; `report` says so.
  static std::unique_ptr<Journal> open(const JournalOptions& options, OpenReport* report);

  Db& db() { return db_; }
  const JournalOptions& options() const { return options_; }

  void begin();
  void commit();
  void rollback();
  bool in_transaction() const { return in_txn_; }

  // Within a transaction: assigns e.seq (next gapless number) and stores the event. `body`, when
  // given, is encode(e) already made (the stored JSON does not carry seq: the column does).
  void append(Event& e, std::string_view body = {});
  // Marks an event to be kept as long as alerts are (it caused one).
  void keep(std::int64_t seq);
  // Within a transaction: stores the alert's current state.
  void put_alert(const Alert& a, std::string_view json = {});
  std::int64_t last_seq() const { return next_seq_ - 1; }

  // Deletes at most `limit` rows that are past retention or over the size budget, in its own
  // short transaction. Returns how many rows went; 0 means nothing is due.
  int retention_step(std::int64_t now_ms, int limit);

  // Moves WAL checkpoints off the writer: a thread with its own connection copies the WAL into
  // the database when it holds `pages` pages or every `interval`. Fewer, larger checkpoints write
  // a page that many commits touched (meta, index leaves) to flash once instead of every time.
  void start_checkpointer(int pages = 2000,
                          std::chrono::milliseconds interval = std::chrono::seconds(30));
  void stop_checkpointer();
  ~Journal();
  std::int64_t size_bytes() const;  // pages in use × page size

 private:
  Journal(JournalOptions o, Db db);
  JournalOptions options_;
  Db db_;
  std::int64_t next_seq_ = 1;
  std::int64_t stored_next_seq_ = 0;  // the value in meta as of the last commit
  bool in_txn_ = false;
  bool has_id_column_ = false;
  Stmt insert_event_;
  Stmt keep_event_;
  Stmt put_alert_;
  Stmt set_next_seq_;
  Stmt put_device_;
  // Devices seen in the open transaction, written once each at commit.
  std::map<std::string, DeviceRecord> pending_devices_;
  void note_device(const Event& e);
  void flush_devices();

  static int wal_hook(void* ctx, sqlite3* db, const char* name, int pages);
  std::atomic<int> wal_pages_{0};
  int checkpoint_pages_ = 2000;
  std::mutex cp_mu_;
  std::condition_variable cp_cv_;
  bool cp_stop_ = false;
  std::thread checkpointer_;
};

}  // namespace anju::edge
