// The durable outbox: every message for the city is a row here before it is sent, and is deleted
// only when the broker acknowledges it (PUBACK). It lives in the journal's database so that the
// rows a batch of events produces commit atomically with those events.
//
// Classes are sent in priority order (alert, status, summary, event); within a class, in insertion
// order. Each class but alerts has a byte budget; a class over its budget loses its oldest rows,
// and every eviction is counted. Alerts are never evicted.
// Thread: OutboxWriter on the pipeline thread (inside its transaction); OutboxSender on the uplink
// thread with its own connection; OutboxCounters is shared (atomics).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "anju/edge/sqlite.hpp"

namespace anju::bridge {

enum class MsgClass : int { alert = 0, status = 1, summary = 2, event = 3 };
inline constexpr int kClasses = 4;
std::string_view to_string(MsgClass c);

struct OutMsg {
  std::int64_t oid = 0;  // insertion order
  MsgClass cls = MsgClass::event;
  std::string msg_id;  // the message's own id, the same on every retransmission
  std::string topic;
  std::string payload;
  bool retain = false;
};

struct OutboxCounters {
  std::array<std::atomic<std::int64_t>, kClasses> rows{};
  std::array<std::atomic<std::int64_t>, kClasses> bytes{};
  std::array<std::atomic<std::int64_t>, kClasses> evicted{};
  std::array<std::atomic<std::int64_t>, kClasses> sent{};  // acknowledged by the broker
};

void ensure_outbox_schema(anju::edge::Db& db);
// Loads row/byte counts and persisted eviction counters from the database.
void load_counters(const anju::edge::Db& db, OutboxCounters& c);

class OutboxWriter {
 public:
  // budget_bytes[class] <= 0 means unlimited (alerts are always unlimited).
  OutboxWriter(anju::edge::Db& db, std::array<std::int64_t, kClasses> budget_bytes,
               OutboxCounters& counters);
  // Inside the caller's transaction. Returns the row's oid (what the uplink acknowledges).
  std::int64_t put(MsgClass cls, const std::string& msg_id, const std::string& topic,
                   const std::string& payload, bool retain = false);

 private:
  void evict(MsgClass cls);
  anju::edge::Db& db_;
  std::array<std::int64_t, kClasses> budget_;
  OutboxCounters& counters_;
  anju::edge::Stmt insert_;
};

class OutboxSender {
 public:
  OutboxSender(const std::string& db_path, OutboxCounters& counters);
  // The next rows of a class after `after_oid`, oldest first.
  std::vector<OutMsg> next(MsgClass cls, std::int64_t after_oid, int limit);
  // Deletes acknowledged rows (one transaction).
  void ack(const std::vector<std::pair<std::int64_t, MsgClass>>& acked);
  anju::edge::Db& db() { return db_; }

 private:
  anju::edge::Db db_;
  OutboxCounters& counters_;
  anju::edge::Stmt next_;
  anju::edge::Stmt del_;
};

}  // namespace anju::bridge
