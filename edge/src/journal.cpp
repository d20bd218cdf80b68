#include "anju/edge/journal.hpp"
#include "anju/edge/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>

namespace anju::edge {
namespace fs = std::filesystem;

void ensure_schema(Db& db) {
  // Journals from before the devices table: fill it from the events (with the old index, once).
  const bool had_events =
      db.scalar_i64("SELECT count(*) FROM sqlite_master WHERE name='events'").value_or(0) > 0;
  const bool had_devices =
      db.scalar_i64("SELECT count(*) FROM sqlite_master WHERE name='devices'").value_or(0) > 0;
  db.exec(R"SQL(
    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS events(
      seq INTEGER PRIMARY KEY,
      ts_ms INTEGER NOT NULL,
      kind TEXT NOT NULL,
      device_id TEXT NOT NULL,
      severity INTEGER NOT NULL,
      keep INTEGER NOT NULL DEFAULT 0,
      body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS events_ts ON events(ts_ms);
    -- Every device ever heard from, updated once per device per commit (the registry's store).
    -- It replaces an index on events(device_id): that index's leaves are scattered by device, so
    -- every group commit rewrote dozens of them (measured: ~1 KB of disk writes per event).
    CREATE TABLE IF NOT EXISTS devices(
      device_id TEXT PRIMARY KEY,
      source TEXT NOT NULL,
      kind TEXT NOT NULL,
      name TEXT NOT NULL,
      gb28181 TEXT NOT NULL,
      building TEXT NOT NULL,
      unit TEXT NOT NULL,
      room TEXT NOT NULL,
      first_seen_ms INTEGER NOT NULL,
      last_seen_ms INTEGER NOT NULL,
      last_seq INTEGER NOT NULL,
      state TEXT NOT NULL,
      battery REAL,
      signal REAL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS alerts(
      alert_id TEXT PRIMARY KEY,
      rule TEXT NOT NULL,
      device_id TEXT NOT NULL,
      state TEXT NOT NULL,
      first_seen_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, updated_ms);
    CREATE TABLE IF NOT EXISTS alert_requests(
      request_id TEXT PRIMARY KEY,
      at_ms INTEGER NOT NULL,
      result TEXT NOT NULL);
  )SQL");
  if (had_events && !had_devices) {
    register_functions(db.get());
    db.exec(R"SQL(
      INSERT OR IGNORE INTO devices
      SELECT device_id, coalesce(json_extract(j,'$.source'),''),
             coalesce(json_extract(j,'$.device.kind'),''),
             coalesce(json_extract(j,'$.device.name'),''),
             coalesce(json_extract(j,'$.device.gb28181'),''),
             coalesce(json_extract(j,'$.location.building'),''),
             coalesce(json_extract(j,'$.location.unit'),''),
             coalesce(json_extract(j,'$.location.room'),''),
             first_ms, ts_ms, seq, 'online', NULL, NULL
      FROM (SELECT e.device_id, e.ts_ms, e.seq, f.first_ms, anju_event_json(e.body) AS j
            FROM events e JOIN (SELECT device_id, min(ts_ms) AS first_ms, max(seq) AS last
                                FROM events WHERE device_id!='' GROUP BY device_id) f
            ON e.seq = f.last);
    )SQL");
  }
  db.exec("DROP INDEX IF EXISTS events_device");
}

namespace {

void configure(Db& db, bool full) {
  db.exec("PRAGMA journal_mode=WAL");
  db.exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // Fewer, larger checkpoints write less to flash; 4 MiB of WAL before one.
  db.exec("PRAGMA wal_autocheckpoint=1000");
  db.exec("PRAGMA temp_store=MEMORY");
}

// Returns an empty string when the file is healthy, else what is wrong.
std::string check(const std::string& path) {
  try {
    Db db(path);
    Stmt st(db.get(), "PRAGMA quick_check");
    std::string result;
    while (st.step()) {
      if (!result.empty()) result += "; ";
      result += st.str(0);
      if (result.size() > 300) break;
    }
    return result == "ok" ? std::string() : result;
  } catch (const SqliteError& e) {
    return e.what();
  }
}

}  // namespace

namespace {
// SQL function anju_event_json(body): the stored event (binary or JSON) as JSON text, so that a
// query can use json_extract on it; NULL when the body does not decode.
void event_json_fn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const auto* p = static_cast<const char*>(sqlite3_value_blob(argv[0]));
  const int n = sqlite3_value_bytes(argv[0]);
  auto r = decode_stored(std::string_view(p ? p : "", p ? static_cast<std::size_t>(n) : 0));
  if (!r.event) {
    sqlite3_result_null(ctx);
    return;
  }
  const std::string text = encode(*r.event);
  sqlite3_result_text(ctx, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}
}  // namespace

void register_functions(sqlite3* db) {
  sqlite3_create_function_v2(db, "anju_event_json", 1,
                             SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
                             &event_json_fn, nullptr, nullptr, nullptr);
}

Db open_reader(const std::string& path) {
  Db db(path, /*read_only=*/true);
  register_functions(db.get());
  return db;
}

Journal::Journal(JournalOptions o, Db db) : options_(std::move(o)), db_(std::move(db)) {
  // Journals made before the binary body also keep the event id in a column of its own.
  has_id_column_ =
      db_.scalar_i64("SELECT count(*) FROM pragma_table_info('events') WHERE name='id'")
          .value_or(0) > 0;
  insert_event_ = db_.prepare(
      has_id_column_
          ? "INSERT INTO events(seq,ts_ms,kind,device_id,severity,body,id) VALUES(?,?,?,?,?,?,?)"
          : "INSERT INTO events(seq,ts_ms,kind,device_id,severity,body) VALUES(?,?,?,?,?,?)");
  keep_event_ = db_.prepare("UPDATE events SET keep=1 WHERE seq=?");
  put_alert_ = db_.prepare(
      "INSERT INTO alerts(alert_id,rule,device_id,state,first_seen_ms,updated_ms,body) "
      "VALUES(?,?,?,?,?,?,?) ON CONFLICT(alert_id) DO UPDATE SET state=excluded.state, "
      "updated_ms=excluded.updated_ms, body=excluded.body");
  // A device's kind/name/location come from the drivers' events; the rules' own events about a
  // device (offline) may carry only its id, and never its driver, so they never blank what a
  // driver said.
  put_device_ = db_.prepare(
      "INSERT INTO devices(device_id,source,kind,name,gb28181,building,unit,room,first_seen_ms,"
      "last_seen_ms,last_seq,state,battery,signal) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
      "ON CONFLICT(device_id) DO UPDATE SET "
      "source=CASE WHEN excluded.source!='' THEN excluded.source ELSE source END, "
      "kind=CASE WHEN excluded.kind!='' THEN excluded.kind ELSE kind END, "
      "name=CASE WHEN excluded.kind!='' THEN excluded.name ELSE name END, "
      "gb28181=CASE WHEN excluded.kind!='' THEN excluded.gb28181 ELSE gb28181 END, "
      "building=CASE WHEN excluded.kind!='' THEN excluded.building ELSE building END, "
      "unit=CASE WHEN excluded.kind!='' THEN excluded.unit ELSE unit END, "
      "room=CASE WHEN excluded.kind!='' THEN excluded.room ELSE room END, "
      "last_seen_ms=max(last_seen_ms, excluded.last_seen_ms), last_seq=excluded.last_seq, "
      "state=excluded.state, battery=coalesce(excluded.battery, battery), "
      "signal=coalesce(excluded.signal, signal)");
  set_next_seq_ = db_.prepare(
      "INSERT INTO meta(key,value) VALUES('next_seq',?) "
      "ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  // next_seq is kept in meta so that retention deleting every event never reuses a number.
  std::int64_t from_meta = 1;
  if (auto v = meta_get(db_, "next_seq")) from_meta = std::stoll(*v);
  const std::int64_t from_rows = db_.scalar_i64("SELECT max(seq) FROM events").value_or(0) + 1;
  next_seq_ = std::max(from_meta, from_rows);
  stored_next_seq_ = from_meta;
}

int Journal::wal_hook(void* ctx, sqlite3*, const char*, int pages) {
  auto* j = static_cast<Journal*>(ctx);
  j->wal_pages_.store(pages, std::memory_order_relaxed);
  if (pages >= j->checkpoint_pages_) j->cp_cv_.notify_one();
  return SQLITE_OK;
}

void Journal::start_checkpointer(int pages, std::chrono::milliseconds interval) {
  if (checkpointer_.joinable()) return;
  checkpoint_pages_ = pages;
  db_.exec("PRAGMA wal_autocheckpoint=0");  // replaces the writer's own automatic checkpoints
  sqlite3_wal_hook(db_.get(), &Journal::wal_hook, this);
  checkpointer_ = std::thread([this, interval] {
    name_this_thread("anju-checkpoint");
    Db cp(options_.path);
    auto last = std::chrono::steady_clock::now();
    for (;;) {
      {
        std::unique_lock lock(cp_mu_);
        cp_cv_.wait_for(lock, interval, [&] {
          return cp_stop_ || wal_pages_.load(std::memory_order_relaxed) >= checkpoint_pages_;
        });
        if (cp_stop_) break;
        // At most one checkpoint a second, even while a long reader keeps the WAL from resetting.
        cp_cv_.wait_until(lock, last + std::chrono::seconds(1), [&] { return cp_stop_; });
        if (cp_stop_) break;
      }
      if (wal_pages_.load() == 0 && std::chrono::steady_clock::now() - last < interval) continue;
      try {
        // PASSIVE: never waits for the writer; what it cannot copy now goes next time.
        cp.exec("PRAGMA wal_checkpoint(PASSIVE)");
        wal_pages_.store(0, std::memory_order_relaxed);
      } catch (const SqliteError& e) {
        spdlog::warn("journal checkpoint failed: {}", e.what());
      }
      last = std::chrono::steady_clock::now();
    }
    try {
      cp.exec("PRAGMA wal_checkpoint(PASSIVE)");
    } catch (const SqliteError&) {
    }
  });
}

void Journal::stop_checkpointer() {
  {
    std::lock_guard lock(cp_mu_);
    cp_stop_ = true;
  }
  cp_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
  sqlite3_wal_hook(db_.get(), nullptr, nullptr);
}

Journal::~Journal() {
  stop_checkpointer();
}

std::unique_ptr<Journal> Journal::open(const JournalOptions& options, OpenReport* report) {
  if (report) *report = {};
  const fs::path p(options.path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  if (fs::exists(p)) {
    const std::string problem = check(options.path);
    if (!problem.empty()) {
      const std::string aside =
          options.path + ".corrupt-" +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
      std::error_code ec;
      fs::rename(p, aside, ec);
      if (ec) throw SqliteError("cannot move corrupt journal aside: " + ec.message(), 0);
      for (const char* suffix : {"-wal", "-shm"}) {
        if (fs::exists(options.path + suffix))
          fs::rename(options.path + suffix, aside + suffix, ec);
      }
      spdlog::critical("journal {} failed its integrity check ({}); moved to {}, starting fresh",
                       options.path, problem, aside);
      if (report) *report = {true, aside, problem};
    }
  }
  Db db(options.path);
  configure(db, options.synchronous_full);
  ensure_schema(db);
  register_functions(db.get());
  return std::unique_ptr<Journal>(new Journal(options, std::move(db)));
}

void Journal::begin() {
  db_.exec("BEGIN IMMEDIATE");
  in_txn_ = true;
}

void Journal::note_device(const Event& e) {
  if (e.device.id.empty()) return;
  // What the gateway says about a device (alert transitions, maintenance, audit, the
  // supervisor's own verdicts, the door rules' conclusions) is not hearing from it.
  const bool offline = e.kind == EventKind::device_offline;
  const bool heard = !offline && e.kind != EventKind::alert_transition &&
                     e.kind != EventKind::maintenance && e.kind != EventKind::audit &&
                     !is_derived_source(e.source);
  if (!heard && !offline) return;
  auto [it, fresh] = pending_devices_.try_emplace(e.device.id);
  DeviceRecord& d = it->second;
  if (fresh || !e.device.kind.empty()) {
    d.device = e.device;
    d.location = e.location;
  }
  if (!is_derived_source(e.source)) d.source = e.source;  // the driver it belongs to
  if (fresh) d.first_seen_ms = e.ts_ms;
  d.last_seq = e.seq;
  if (offline) {
    d.state = "offline";
    return;
  }
  d.state = "online";
  d.last_seen_ms = std::max(d.last_seen_ms, e.ts_ms);
  if (const auto* b = e.value("battery")) d.battery = b->value;
  if (auto lq = e.attrs.find("linkquality"); lq != e.attrs.end() && lq->is_number())
    d.signal = lq->get<double>();
  else if (const auto* rssi = e.value("rssi"))
    d.signal = rssi->value;
}

void Journal::flush_devices() {
  for (const auto& [id, d] : pending_devices_) {
    put_device_.bind(1, id)
        .bind(2, d.source)
        .bind(3, d.device.kind)
        .bind(4, d.device.name)
        .bind(5, d.device.gb28181)
        .bind(6, d.location.building)
        .bind(7, d.location.unit)
        .bind(8, d.location.room)
        .bind(9, d.first_seen_ms)
        .bind(10, d.last_seen_ms)
        .bind(11, d.last_seq)
        .bind(12, d.state);
    if (d.battery)
      put_device_.bind(13, *d.battery);
    else
      put_device_.bind_null(13);
    if (d.signal)
      put_device_.bind(14, *d.signal);
    else
      put_device_.bind_null(14);
    put_device_.exec();
  }
  pending_devices_.clear();
}

void Journal::commit() {
  flush_devices();
  // Only when it moved: a transaction that wrote nothing else then writes nothing at all.
  if (next_seq_ != stored_next_seq_) set_next_seq_.bind(1, std::to_string(next_seq_)).exec();
  db_.exec("COMMIT");
  stored_next_seq_ = next_seq_;
  in_txn_ = false;
}

void Journal::rollback() {
  pending_devices_.clear();
  if (!in_txn_) return;
  try {
    db_.exec("ROLLBACK");
  } catch (const SqliteError&) {
  }
  in_txn_ = false;
  next_seq_ =
      std::max<std::int64_t>(meta_get(db_, "next_seq") ? std::stoll(*meta_get(db_, "next_seq")) : 1,
                             db_.scalar_i64("SELECT max(seq) FROM events").value_or(0) + 1);
}

void Journal::append(Event& e, std::string_view body) {
  std::string encoded;
  if (body.empty()) {
    encoded = encode_binary(e);
    body = encoded;
  }
  e.seq = next_seq_;
  insert_event_.bind(1, e.seq)
      .bind(2, e.ts_ms)
      .bind(3, to_string(e.kind))
      .bind(4, e.device.id)
      .bind(5, e.severity)
      .bind_blob(6, body);
  if (has_id_column_) insert_event_.bind(7, e.id);
  insert_event_.exec();
  note_device(e);
  ++next_seq_;
}

void Journal::keep(std::int64_t seq) {
  keep_event_.bind(1, seq).exec();
}

void Journal::put_alert(const Alert& a, std::string_view json) {
  std::string encoded;
  if (json.empty()) {
    encoded = to_json(a).dump();
    json = encoded;
  }
  put_alert_.bind(1, a.alert_id)
      .bind(2, a.rule)
      .bind(3, a.device.id)
      .bind(4, a.state)
      .bind(5, a.first_seen_ms)
      .bind(6, a.updated_ms)
      .bind(7, json)
      .exec();
}

std::int64_t Journal::size_bytes() const {
  const auto pages = db_.scalar_i64("PRAGMA page_count").value_or(0);
  const auto free_pages = db_.scalar_i64("PRAGMA freelist_count").value_or(0);
  const auto page = db_.scalar_i64("PRAGMA page_size").value_or(4096);
  return (pages - free_pages) * page;
}

int Journal::retention_step(std::int64_t now_ms, int limit) {
  constexpr std::int64_t kDay = 86'400'000;
  const std::int64_t cutoff = now_ms - options_.retention_days * kDay;
  const std::int64_t alert_cutoff = now_ms - options_.alert_retention_days * kDay;
  int deleted = 0;
  begin();
  try {
    auto del = [&](const char* sql, std::int64_t arg) {
      if (deleted >= limit) return;
      Stmt st = db_.prepare(sql);
      st.bind(1, arg).bind(2, limit - deleted).exec();
      deleted += static_cast<int>(db_.changes());
    };
    del("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts_ms<? AND keep=0 "
        "ORDER BY seq LIMIT ?)",
        cutoff);
    del("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts_ms<? "
        "ORDER BY seq LIMIT ?)",
        alert_cutoff);
    del("DELETE FROM alert_requests WHERE request_id IN (SELECT request_id FROM alert_requests "
        "WHERE at_ms<? LIMIT ?)",
        cutoff);
    del("DELETE FROM alerts WHERE alert_id IN (SELECT alert_id FROM alerts WHERE state='closed' "
        "AND updated_ms<? LIMIT ?)",
        alert_cutoff);
    if (deleted < limit && size_bytes() > options_.max_bytes) {
      // Over the size budget: the oldest ordinary events go first, then the kept ones.
      del("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE keep=0 AND seq>? "
          "ORDER BY seq LIMIT ?)",
          0);
      if (deleted == 0)
        del("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq>? "
            "ORDER BY seq LIMIT ?)",
            0);
    }
    commit();
  } catch (...) {
    rollback();
    throw;
  }
  return deleted;
}

std::vector<Event> query_events(const Db& db, const EventQuery& q) {
  std::string sql = "SELECT body, seq FROM events WHERE 1=1";
  if (q.since_ms) sql += " AND ts_ms >= :since";
  if (q.until_ms) sql += " AND ts_ms < :until";
  if (q.seq_from) sql += " AND seq >= :sfrom";
  if (q.seq_to) sql += " AND seq <= :sto";
  if (q.kind) sql += " AND kind = :kind";
  if (!q.device_id.empty()) sql += " AND device_id = :dev";
  sql += q.newest_first ? " ORDER BY seq DESC" : " ORDER BY seq ASC";
  sql += " LIMIT :lim";
  Stmt st = db.prepare(sql);
  auto bind = [&](const char* name, auto v) {
    const int idx = sqlite3_bind_parameter_index(st.raw(), name);
    if (idx > 0) st.bind(idx, v);
  };
  if (q.since_ms) bind(":since", *q.since_ms);
  if (q.until_ms) bind(":until", *q.until_ms);
  if (q.seq_from) bind(":sfrom", *q.seq_from);
  if (q.seq_to) bind(":sto", *q.seq_to);
  if (q.kind) bind(":kind", std::string(to_string(*q.kind)));
  if (!q.device_id.empty()) bind(":dev", q.device_id);
  bind(":lim", static_cast<std::int64_t>(q.limit));
  std::vector<Event> out;
  while (st.step()) {
    auto r = decode_stored(st.str(0));
    if (r.event) {
      r.event->seq = st.i64(1);
      out.push_back(std::move(*r.event));
    }
  }
  return out;
}

std::vector<DeviceRecord> load_devices(const Db& db) {
  Stmt st = db.prepare(
      "SELECT device_id,source,kind,name,gb28181,building,unit,room,first_seen_ms,last_seen_ms,"
      "last_seq,state,battery,signal FROM devices ORDER BY building, unit, room, device_id");
  std::vector<DeviceRecord> out;
  while (st.step()) {
    DeviceRecord d;
    d.device = {st.str(0), st.str(2), st.str(3), st.str(4)};
    d.source = st.str(1);
    d.location = {st.str(5), st.str(6), st.str(7)};
    d.first_seen_ms = st.i64(8);
    d.last_seen_ms = st.i64(9);
    d.last_seq = st.i64(10);
    d.state = st.str(11);
    if (!st.is_null(12)) d.battery = st.f64(12);
    if (!st.is_null(13)) d.signal = st.f64(13);
    out.push_back(std::move(d));
  }
  return out;
}

std::map<std::string, std::int64_t> last_event_by_device(const Db& db,
                                                         const std::vector<EventKind>& kinds,
                                                         std::int64_t since_ms) {
  std::map<std::string, std::int64_t> out;
  if (kinds.empty()) return out;
  std::string sql =
      "SELECT device_id, max(ts_ms) FROM events WHERE ts_ms>=? AND device_id!='' AND kind IN (";
  for (std::size_t i = 0; i < kinds.size(); ++i) sql += i ? ",?" : "?";
  sql += ") GROUP BY device_id";
  Stmt st = db.prepare(sql);
  st.bind(1, since_ms);
  for (std::size_t i = 0; i < kinds.size(); ++i)
    st.bind(static_cast<int>(i) + 2, std::string(to_string(kinds[i])));
  while (st.step()) out[st.str(0)] = st.i64(1);
  return out;
}

std::map<std::string, std::vector<std::string>> device_conditions(const Db& db) {
  Stmt st = db.prepare(
      "SELECT device_id, rule FROM alerts WHERE state!='closed' AND rule IN "
      "('device_offline','battery_low','signal_weak','tamper') AND "
      "coalesce(json_extract(body,'$.condition_cleared'),0)=0 ORDER BY device_id, rule");
  std::map<std::string, std::vector<std::string>> out;
  while (st.step()) {
    const std::string rule = st.str(1);
    out[st.str(0)].push_back(rule == "device_offline" ? "offline" : rule);
  }
  return out;
}

DeviceStateCounts device_state_counts(const Db& db) {
  DeviceStateCounts c;
  Stmt st = db.prepare("SELECT count(*), coalesce(sum(state!='offline'),0) FROM devices");
  if (st.step()) {
    c.known = st.i64(0);
    c.online = st.i64(1);
    c.offline = c.known - c.online;
  }
  for (const auto& [device, conditions] : device_conditions(db))
    for (const auto& k : conditions) {
      if (k == "battery_low") ++c.battery_low;
      if (k == "signal_weak") ++c.signal_weak;
      if (k == "tamper") ++c.tamper;
    }
  return c;
}

std::vector<Alert> load_alerts(const Db& db, bool open_only, int limit) {
  Stmt st = db.prepare(open_only ? "SELECT body FROM alerts WHERE state!='closed' "
                                   "ORDER BY first_seen_ms LIMIT ?"
                                 : "SELECT body FROM alerts ORDER BY first_seen_ms LIMIT ?");
  st.bind(1, limit);
  std::vector<Alert> out;
  while (st.step()) {
    auto j = nlohmann::json::parse(st.str(0), nullptr, false);
    if (auto a = alert_from_json(j)) out.push_back(std::move(*a));
  }
  return out;
}

}  // namespace anju::edge
