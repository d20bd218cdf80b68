#include "anju/bridge/outbox.hpp"

#include <spdlog/spdlog.h>

namespace anju::bridge {
using anju::edge::Db;
using anju::edge::Stmt;

std::string_view to_string(MsgClass c) {
  switch (c) {
    case MsgClass::alert:
      return "alert";
    case MsgClass::status:
      return "status";
    case MsgClass::summary:
      return "summary";
    case MsgClass::event:
      return "event";
  }
  return "unknown";
}

void ensure_outbox_schema(Db& db) {
  db.exec(R"SQL(
    CREATE TABLE IF NOT EXISTS outbox(
      oid INTEGER PRIMARY KEY AUTOINCREMENT,
      class INTEGER NOT NULL,
      msg_id TEXT NOT NULL,
      topic TEXT NOT NULL,
      payload BLOB NOT NULL,
      retain INTEGER NOT NULL DEFAULT 0,
      bytes INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS outbox_class ON outbox(class, oid);
  )SQL");
}

void load_counters(const Db& db, OutboxCounters& c) {
  for (int i = 0; i < kClasses; ++i) {
    c.rows[i] = 0;
    c.bytes[i] = 0;
  }
  Stmt st = db.prepare("SELECT class, count(*), sum(bytes) FROM outbox GROUP BY class");
  while (st.step()) {
    const auto cls = st.i64(0);
    if (cls < 0 || cls >= kClasses) continue;
    c.rows[cls] = st.i64(1);
    c.bytes[cls] = st.i64(2);
  }
  for (int i = 0; i < kClasses; ++i) {
    auto v = anju::edge::meta_get(db, "outbox_evicted_" + std::string(to_string(MsgClass(i))));
    c.evicted[i] = v ? std::stoll(*v) : 0;
  }
}

OutboxWriter::OutboxWriter(Db& db, std::array<std::int64_t, kClasses> budget_bytes,
                           OutboxCounters& counters)
    : db_(db), budget_(budget_bytes), counters_(counters) {
  budget_[static_cast<int>(MsgClass::alert)] = 0;  // alerts are never evicted
  insert_ = db_.prepare(
      "INSERT INTO outbox(class,msg_id,topic,payload,retain,bytes) VALUES(?,?,?,?,?,?)");
}

std::int64_t OutboxWriter::put(MsgClass cls, const std::string& msg_id, const std::string& topic,
                               const std::string& payload, bool retain) {
  const auto bytes = static_cast<std::int64_t>(payload.size() + topic.size() + msg_id.size() + 48);
  insert_.bind(1, static_cast<int>(cls))
      .bind(2, msg_id)
      .bind(3, topic)
      .bind_blob(4, payload)
      .bind(5, retain ? 1 : 0)
      .bind(6, bytes)
      .exec();
  const std::int64_t oid = sqlite3_last_insert_rowid(db_.get());
  const int i = static_cast<int>(cls);
  ++counters_.rows[i];
  counters_.bytes[i] += bytes;
  if (budget_[i] > 0 && counters_.bytes[i] > budget_[i]) evict(cls);
  return oid;
}

void OutboxWriter::evict(MsgClass cls) {
  const int i = static_cast<int>(cls);
  // Drop the oldest rows of this class until it is back under 90 % of its budget, so that
  // eviction runs in chunks rather than on every insert.
  const std::int64_t target = budget_[i] * 9 / 10;
  Stmt pick = db_.prepare("SELECT oid, bytes FROM outbox WHERE class=? ORDER BY oid");
  pick.bind(1, i);
  std::int64_t over = counters_.bytes[i] - target;
  std::int64_t last_oid = -1, n = 0, freed = 0;
  while (over > 0 && pick.step()) {
    last_oid = pick.i64(0);
    over -= pick.i64(1);
    freed += pick.i64(1);
    ++n;
  }
  pick.reset();
  if (last_oid < 0) return;
  Stmt del = db_.prepare("DELETE FROM outbox WHERE class=? AND oid<=?");
  del.bind(1, i).bind(2, last_oid).exec();
  counters_.rows[i] -= n;
  counters_.bytes[i] -= freed;
  counters_.evicted[i] += n;
  anju::edge::meta_set(db_, "outbox_evicted_" + std::string(to_string(cls)),
                       std::to_string(counters_.evicted[i].load()));
  spdlog::warn("outbox: class {} over its budget of {} bytes; evicted the {} oldest messages",
               to_string(cls), budget_[i], n);
}

OutboxSender::OutboxSender(const std::string& db_path, OutboxCounters& counters)
    : db_(db_path), counters_(counters) {
  db_.exec("PRAGMA journal_mode=WAL");
  db_.exec("PRAGMA synchronous=NORMAL");  // losing an ack on power loss only means a resend
  ensure_outbox_schema(db_);
  next_ = db_.prepare(
      "SELECT oid, msg_id, topic, payload, retain FROM outbox WHERE class=? AND oid>? "
      "ORDER BY oid LIMIT ?");
  del_ = db_.prepare("DELETE FROM outbox WHERE oid=? RETURNING bytes");
}

std::vector<OutMsg> OutboxSender::next(MsgClass cls, std::int64_t after_oid, int limit) {
  std::vector<OutMsg> out;
  next_.bind(1, static_cast<int>(cls)).bind(2, after_oid).bind(3, limit);
  while (next_.step()) {
    OutMsg m;
    m.oid = next_.i64(0);
    m.cls = cls;
    m.msg_id = next_.str(1);
    m.topic = next_.str(2);
    m.payload = next_.str(3);
    m.retain = next_.i64(4) != 0;
    out.push_back(std::move(m));
  }
  next_.reset();
  return out;
}

void OutboxSender::ack(const std::vector<std::pair<std::int64_t, MsgClass>>& acked) {
  if (acked.empty()) return;
  db_.exec("BEGIN IMMEDIATE");
  try {
    for (const auto& [oid, cls] : acked) {
      del_.bind(1, oid);
      if (del_.step()) {  // gone already if it was evicted meanwhile
        const int i = static_cast<int>(cls);
        --counters_.rows[i];
        counters_.bytes[i] -= del_.i64(0);
        ++counters_.sent[i];
      }
      del_.reset();
    }
    db_.exec("COMMIT");
  } catch (...) {
    db_.exec("ROLLBACK");
    throw;
  }
}

}  // namespace anju::bridge
