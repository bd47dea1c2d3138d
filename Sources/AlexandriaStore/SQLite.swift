import CSQLite

/// A thin wrapper over one SQLite connection: prepared, cached statements and errors mapped to `StoreError`.
///
/// Not thread-safe by itself: each connection is used by one thread at a time (the store guards it with a lock).
package final class SQLiteConnection: @unchecked Sendable {
    private(set) var handle: OpaquePointer?
    package let path: String
    private var cache: [String: SQLiteStatement] = [:]

    package init(path: String, readOnly: Bool, busyTimeoutMilliseconds: Int32) throws(StoreError) {
        self.path = path
        var db: OpaquePointer?
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE))
            | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw Self.error(rc, message, path: path)
        }
        handle = db
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { close() }

    package var isOpen: Bool { handle != nil }

    /// True inside an explicit transaction (`BEGIN` without its `COMMIT` or `ROLLBACK` yet).
    package var inTransaction: Bool { handle != nil && sqlite3_get_autocommit(handle) == 0 }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`, waiting at most a second for readers: copies every commit in the WAL into
    /// the database file and empties the WAL. Best effort (a reader in another process may hold it back).
    package func checkpoint() {
        guard let handle else { return }
        sqlite3_busy_timeout(handle, 1000)
        _ = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_TRUNCATE, nil, nil)
    }

    /// Finalizes every cached statement and closes the connection. Further use fails.
    package func close() {
        cache.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    package func execute(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(message)
            throw Self.error(rc, text, path: path)
        }
    }

    /// A cached prepared statement, reset and with its bindings cleared.
    package func statement(_ sql: String) throws(StoreError) -> SQLiteStatement {
        if let cached = cache[sql] {
            cached.reset()
            return cached
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw Self.error(rc, String(cString: sqlite3_errmsg(handle)), path: path)
        }
        let statement = SQLiteStatement(stmt, connection: self)
        cache[sql] = statement
        return statement
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction, committing on success and rolling back on error.
    package func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    package var changes: Int { Int(sqlite3_changes(handle)) }

    package func lastError(_ rc: Int32) -> StoreError {
        Self.error(rc, String(cString: sqlite3_errmsg(handle)), path: path)
    }

    static func error(_ rc: Int32, _ message: String, path: String) -> StoreError {
        switch rc & 0xff {
        case SQLITE_BUSY, SQLITE_LOCKED:
            return StoreError(
                .indexLocked,
                "the index \(path) is locked by another process (\(message)); wait for it to finish or stop it")
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return StoreError(
                .indexCorrupt,
                "the index \(path) is damaged (\(message)); run `alexandria verify --repair` to rebuild it from the packs"
            )
        case SQLITE_FULL:
            return StoreError(.diskFull, "the disk holding \(path) is full (\(message)); free space and retry")
        case SQLITE_CANTOPEN:
            return StoreError(.notInitialized, "cannot open the index \(path) (\(message)); run `alexandria init`")
        case SQLITE_READONLY:
            return StoreError(.io, "the index \(path) is read-only (\(message))")
        default:
            return StoreError(.io, "index \(path): \(message) (SQLite code \(rc))")
        }
    }
}

/// One prepared statement. Bind with 1-based indices, step, read columns with 0-based indices.
package final class SQLiteStatement {
    private let stmt: OpaquePointer
    private unowned let connection: SQLiteConnection

    package init(_ stmt: OpaquePointer, connection: SQLiteConnection) {
        self.stmt = stmt
        self.connection = connection
    }

    deinit { sqlite3_finalize(stmt) }

    package func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    @discardableResult
    package func bind(_ values: SQLiteValue...) -> SQLiteStatement {
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            switch value {
            case .int(let v): sqlite3_bind_int64(stmt, index, Int64(v))
            case .text(let v): sqlite3_bind_text(stmt, index, v, -1, SQLITE_TRANSIENT_PTR)
            case .blob(let v):
                v.withUnsafeBytes { raw in
                    _ = sqlite3_bind_blob(stmt, index, raw.baseAddress, Int32(raw.count), SQLITE_TRANSIENT_PTR)
                }
            case .null: sqlite3_bind_null(stmt, index)
            }
        }
        return self
    }

    /// Steps once; true when a row is available.
    package func step() throws(StoreError) -> Bool {
        let rc = sqlite3_step(stmt)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.lastError(rc)
        }
    }

    /// Steps to completion, ignoring rows.
    package func run() throws(StoreError) {
        while try step() {}
    }

    package func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(stmt, column)) }

    package func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, column) else { return "" }
        return String(cString: p)
    }

    package func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(stmt, column))
        guard count > 0, let p = sqlite3_column_blob(stmt, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }

    package func withBlob<T>(
        _ column: Int32, _ body: (UnsafeRawBufferPointer) throws(StoreError) -> T
    ) throws(StoreError) -> T {
        let count = Int(sqlite3_column_bytes(stmt, column))
        let p = sqlite3_column_blob(stmt, column)
        return try body(UnsafeRawBufferPointer(start: p, count: p == nil ? 0 : count))
    }

    package func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
}

package enum SQLiteValue {
    case int(Int)
    case text(String)
    case blob([UInt8])
    case null
}

/// `SQLITE_TRANSIENT`: SQLite copies the bound bytes before the call returns.
private let SQLITE_TRANSIENT_PTR = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
