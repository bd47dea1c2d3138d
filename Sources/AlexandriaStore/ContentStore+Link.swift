import AlexandriaCore

/// A chunk a caller wrote into a file outside the store: its id, and where its plain bytes are in that file.
public struct LinkedChunk: Sendable, Hashable {
    public let id: ContentHash
    public let offset: UInt64
    public let length: Int

    public init(id: ContentHash, offset: UInt64, length: Int) {
        self.id = id
        self.offset = offset
        self.length = length
    }
}

extension ContentStore {
    /// Records that `chunks` are held by reference: their bytes are at their offsets in the file at `path` (absolute),
    /// not in a pack. This is how a fetch keeps what it received without writing every byte twice.
    ///
    /// The caller MUST have hashed each chunk's bytes against its id before writing them to the file. The store does
    /// not trust the file afterwards: a linked chunk is hashed on every read like a pack record, and a file that was
    /// changed, truncated or deleted makes the chunk read as missing (and flagged bad), never as wrong bytes. The store
    /// never writes, moves or deletes the file. A chunk the store already holds intact keeps its current location;
    /// a known-bad copy is replaced by the link. Committed in one transaction; the chunks stay unreferenced (GC may
    /// drop their rows) until `registerFile`.
    public func link(_ chunks: [LinkedChunk], inFile path: String) throws(StoreError) {
        guard !chunks.isEmpty else { return }
        guard path.hasPrefix("/") else { throw StoreError(.io, "a linked file needs an absolute path, not \(path)") }
        try asWriter { (db) throws(StoreError) in
            try db.transaction { () throws(StoreError) in
                let file = try Self.linkedFileID(path, in: db)
                let insert = try db.statement(
                    """
                    INSERT INTO chunks (id, pack, offset, raw_length, stored_length, codec, refs, bad, linked)
                    VALUES (?, -1, ?, ?, ?, 0, 0, 0, ?)
                    ON CONFLICT(id) DO UPDATE SET pack = -1, offset = excluded.offset,
                        raw_length = excluded.raw_length, stored_length = excluded.stored_length, codec = 0, bad = 0,
                        linked = excluded.linked
                    WHERE chunks.bad = 1
                    """)
                for chunk in chunks {
                    guard chunk.length > 0, chunk.length <= Limits.maxChunkBytes else {
                        throw StoreError(.corruptChunk, "a linked chunk of \(chunk.length) bytes is out of range")
                    }
                    insert.reset()
                    insert.bind(
                        .blob(chunk.id.bytes), .int(Int(chunk.offset)), .int(chunk.length), .int(chunk.length),
                        .int(file))
                    try insert.run()
                }
            }
        }
    }

    /// Points every chunk linked into `from` at `to` (both absolute), in one transaction: after a caller renamed the
    /// file. Reads hash every chunk, so if `to` does not hold the same bytes they read as missing, never as wrong.
    public func relink(from: String, to: String) throws(StoreError) {
        try asWriter { (db) throws(StoreError) in
            try db.transaction { () throws(StoreError) in try Self.relink(from: from, to: to, in: db) }
        }
    }

    static func relink(from: String, to: String, in db: SQLiteConnection) throws(StoreError) {
        guard from != to else { return }
        let stmt = try db.statement("SELECT id FROM linked_files WHERE path = ?").bind(.text(from))
        guard try stmt.step() else { return }
        let fromID = stmt.int(0)
        stmt.reset()
        let toID = try linkedFileID(to, in: db)
        try db.statement("UPDATE chunks SET linked = ? WHERE linked = ?").bind(.int(toID), .int(fromID)).run()
        try db.statement("DELETE FROM linked_files WHERE id = ?").bind(.int(fromID)).run()
    }

    /// Linked files that no longer exist where the index says, for which `renamedTo` names a path that does exist:
    /// the chunks are pointed there (a process killed between renaming a file and recording the rename). Returns how
    /// many files were relinked. Cheap: one query over the linked files and a `stat` each.
    @discardableResult
    public func relinkMissingFiles(renamedTo: (String) -> String?) throws(StoreError) -> Int {
        let candidates = try withReader { (db) throws(StoreError) -> [(String, String)] in
            let stmt = try db.statement("SELECT path FROM linked_files")
            var out: [(String, String)] = []
            while try stmt.step() {
                let path = stmt.text(0)
                guard !POSIX.exists(path), let moved = renamedTo(path), POSIX.exists(moved) else { continue }
                out.append((path, moved))
            }
            return out
        }
        guard !candidates.isEmpty else { return 0 }
        try asWriter(catchingUp: false) { (db) throws(StoreError) in
            try db.transaction { () throws(StoreError) in
                for (from, to) in candidates { try Self.relink(from: from, to: to, in: db) }
            }
        }
        return candidates.count
    }

    static func linkedFileID(_ path: String, in db: SQLiteConnection) throws(StoreError) -> Int {
        try db.statement("INSERT OR IGNORE INTO linked_files (path) VALUES (?)").bind(.text(path)).run()
        let stmt = try db.statement("SELECT id FROM linked_files WHERE path = ?").bind(.text(path))
        defer { stmt.reset() }
        guard try stmt.step() else { throw StoreError(.indexCorrupt, "the linked file row for \(path) vanished") }
        return stmt.int(0)
    }

    /// How many chunks are held by reference, and their bytes (for `status`).
    public func linkedUsage() throws(StoreError) -> (files: Int, chunks: Int, bytes: UInt64) {
        try withReader { (db) throws(StoreError) in
            let stmt = try db.statement(
                "SELECT count(DISTINCT linked), count(*), coalesce(sum(raw_length), 0) FROM chunks "
                    + "WHERE linked IS NOT NULL AND bad = 0")
            _ = try stmt.step()
            defer { stmt.reset() }
            return (stmt.int(0), stmt.int(1), UInt64(stmt.int(2)))
        }
    }
}
