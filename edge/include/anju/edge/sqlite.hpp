// Thin RAII over SQLite: a connection and prepared statements. Errors throw SqliteError; callers on
// the data path catch it at the stage boundary, count it and carry on.
// Thread: a Db belongs to the thread that uses it (SQLite in multi-thread mode).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace anju::edge {

class SqliteError : public std::runtime_error {
 public:
  SqliteError(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, std::string_view sql);
  Stmt(Stmt&& o) noexcept : db_(o.db_), st_(o.st_) { o.st_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  Stmt& bind(int i, std::int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind_blob(int i, std::string_view v);
  Stmt& bind_null(int i);
  bool step();  // true: a row is ready; false: done
  void exec();  // step to completion, then reset
  void reset();
  std::int64_t i64(int col) const { return sqlite3_column_int64(st_, col); }
  double f64(int col) const { return sqlite3_column_double(st_, col); }
  std::string str(int col) const;
  bool is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
  sqlite3_stmt* raw() const { return st_; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* st_ = nullptr;
};

class Db {
 public:
  Db() = default;
  // Opens (creating) a database. Read-only opens never create.
  explicit Db(const std::string& path, bool read_only = false);
  Db(Db&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Db& operator=(Db&& o) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  sqlite3* get() const { return db_; }
  void exec(std::string_view sql);
  Stmt prepare(std::string_view sql) const { return Stmt(db_, sql); }
  std::optional<std::int64_t> scalar_i64(std::string_view sql) const;
  std::int64_t changes() const { return sqlite3_changes(db_); }

 private:
  sqlite3* db_ = nullptr;
};

// Key/value rows in the `meta` table (counters, cursors, schema version).
std::optional<std::string> meta_get(const Db& db, std::string_view key);
void meta_set(const Db& db, std::string_view key, std::string_view value);

}  // namespace anju::edge
