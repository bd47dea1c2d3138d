import AlexandriaCore

extension ContentStore {
    /// What each of `ids` takes in this store's packs: its whole record (the header and the stored payload, after
    /// compression), or 0 for a chunk held by reference to a file a fetch wrote (its bytes are that file's, not the
    /// store's). Chunks the store does not hold intact are absent. Each chunk is stored once however many files
    /// name it, so the stored bytes of a set of files are the sum over the distinct ids of their chunks.
    public func storedBytes(of ids: some Sequence<ContentHash>) throws(StoreError) -> [ContentHash: UInt64] {
        try withReader { (db) throws(StoreError) -> [ContentHash: UInt64] in
            let stmt = try db.statement(
                "SELECT CASE WHEN linked IS NULL THEN stored_length + \(PackRecordHeader.size) ELSE 0 END "
                    + "FROM chunks WHERE id = ? AND bad = 0")
            var out: [ContentHash: UInt64] = [:]
            for id in ids where out[id] == nil {
                stmt.reset()
                stmt.bind(.blob(id.bytes))
                if try stmt.step() { out[id] = UInt64(stmt.int(0)) }
            }
            stmt.reset()
            return out
        }
    }
}
