#include "anju/edge/journal.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>

namespace anju::edge {
namespace fs = std::filesystem;

void ensure_schema(Db& db) {
  db.exec(R"SQL(
    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS events(
      seq INTEGER PRIMARY KEY,
      id TEXT NOT NULL,
      ts_ms INTEGER NOT NULL,
      kind TEXT NOT NULL,
      device_id TEXT NOT NULL,
      severity INTEGER NOT NULL,
      keep INTEGER NOT NULL DEFAULT 0,
      body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS events_ts ON events(ts_ms);
    CREATE INDEX IF NOT EXISTS events_device ON events(device_id, ts_ms);
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

Db open_reader(const std::string& path) {
  Db db(path, /*read_only=*/true);
  return db;
}

Journal::Journal(JournalOptions o, Db db) : options_(std::move(o)), db_(std::move(db)) {
  insert_event_ = db_.prepare(
      "INSERT INTO events(seq,id,ts_ms,kind,device_id,severity,body) VALUES(?,?,?,?,?,?,?)");
  keep_event_ = db_.prepare("UPDATE events SET keep=1 WHERE seq=?");
  put_alert_ = db_.prepare(
      "INSERT INTO alerts(alert_id,rule,device_id,state,first_seen_ms,updated_ms,body) "
      "VALUES(?,?,?,?,?,?,?) ON CONFLICT(alert_id) DO UPDATE SET state=excluded.state, "
      "updated_ms=excluded.updated_ms, body=excluded.body");
  set_next_seq_ = db_.prepare(
      "INSERT INTO meta(key,value) VALUES('next_seq',?) "
      "ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  // next_seq is kept in meta so that retention deleting every event never reuses a number.
  std::int64_t from_meta = 1;
  if (auto v = meta_get(db_, "next_seq")) from_meta = std::stoll(*v);
  const std::int64_t from_rows = db_.scalar_i64("SELECT max(seq) FROM events").value_or(0) + 1;
  next_seq_ = std::max(from_meta, from_rows);
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
  return std::unique_ptr<Journal>(new Journal(options, std::move(db)));
}

void Journal::begin() {
  db_.exec("BEGIN IMMEDIATE");
  in_txn_ = true;
}

void Journal::commit() {
  set_next_seq_.bind(1, std::to_string(next_seq_)).exec();
  db_.exec("COMMIT");
  in_txn_ = false;
}

void Journal::rollback() {
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
    e.seq = 0;
    encoded = encode(e);
    body = encoded;
  }
  e.seq = next_seq_;
  insert_event_.bind(1, e.seq)
      .bind(2, e.id)
      .bind(3, e.ts_ms)
      .bind(4, to_string(e.kind))
      .bind(5, e.device.id)
      .bind(6, e.severity)
      .bind(7, body)
      .exec();
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
    auto r = decode_event(st.str(0));
    if (r.event) {
      r.event->seq = st.i64(1);
      out.push_back(std::move(*r.event));
    }
  }
  return out;
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
