// The audit log: every `audit` event of the journal (who did what, to which alert, door, evidence
// or credential list, from where, and why) copied to files of their own,
// <dir>/audit-YYYYMMDD.jsonl, apart from the journal and kept for their own retention
// (journal.audit_retention_days), so that the journal's size cap and its shorter retention never
// take the record of who looked at what.
//
// Append-only and chained: each line is {"seq","ts_ms","prev","event"} where `prev` is the SHA-256
// (hex) of the line before it, across files; verify_audit_log() finds an edited, removed or
// reordered line. Retention removes whole days from the oldest end only, so the chain stays whole
// from the first line kept.
//
// Crash-safe by construction: the journal is the source. catch_up() copies the audit events with a
// seq above the last line logged, then fdatasyncs; a line lost to a crash before its sync is
// copied again on the next run (the journal keeps audit events for retention_days, far longer
// than a restart takes).
// Thread: one owner (anjud's main loop).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "anju/edge/sqlite.hpp"

namespace anju::edge {

struct AuditLogOptions {
  std::string dir;           // <data_dir>/audit (created 0750 if missing)
  int retention_days = 365;  // whole days older than this are removed
};

class AuditLog {
 public:
  // Reads the newest file's last line (its seq and hash). Throws std::runtime_error naming the
  // directory or file when it cannot be used (a last line that is not a log line).
  explicit AuditLog(AuditLogOptions options);

  // Copies the journal's audit events after the last one logged, at most `limit`, into the file
  // of the day (UTC, never earlier than the newest file's). Returns how many were written; throws
  // std::runtime_error naming the file when one cannot be written (nothing is skipped: the next
  // call starts again after the last line that was written whole).
  std::size_t catch_up(const Db& journal, std::int64_t now_ms, int limit = 1000);
  // Removes the day files older than the retention (never the newest). Returns how many.
  std::size_t prune(std::int64_t now_ms);

  std::int64_t last_seq() const { return last_seq_; }
  std::int64_t lines_written() const { return written_; }
  // A line cut short by a crash was found at the end and removed (it is copied again).
  bool repaired() const { return repaired_; }

 private:
  AuditLogOptions o_;
  std::int64_t last_seq_ = 0;
  std::string last_hash_;  // of the last line
  std::string last_day_;   // YYYYMMDD of the newest file
  std::int64_t written_ = 0;
  bool repaired_ = false;
};

struct AuditVerify {
  bool ok = true;
  std::int64_t files = 0, lines = 0;
  std::int64_t first_seq = 0, last_seq = 0;
  std::string error;  // the file and line that break the chain, and how
};
// Reads every file of the log in order and checks each line's form, its seq (increasing) and its
// `prev` against the line before (the first line kept may follow days removed by retention).
AuditVerify verify_audit_log(const std::string& dir);

// The last `n` lines of the log (oldest of them first), as written.
std::vector<std::string> audit_log_tail(const std::string& dir, std::size_t n);

// SHA-256 of `text` as 64 lower-case hex digits.
std::string sha256_hex(const std::string& text);
// YYYYMMDD (UTC) of a wall-clock time in ms.
std::string utc_day(std::int64_t wall_ms);

}  // namespace anju::edge
