import AlexandriaCore

#if canImport(Glibc)
    import Glibc
#endif

/// Chunk bytes that have been checked against their id. The only way to make one is to hash the bytes, so the store
/// can accept chunks from a peer without trusting the caller to have checked them.
public struct VerifiedChunk: Sendable {
    public let id: ContentHash
    public let bytes: [UInt8]

    /// Nil when `bytes` do not hash to `id`.
    public init?(id: ContentHash, bytes: [UInt8]) {
        guard !bytes.isEmpty, bytes.count <= Limits.maxChunkBytes,
            bytes.withUnsafeBytes({ SHA256Stream.hash($0) }) == id
        else { return nil }
        self.id = id
        self.bytes = bytes
    }

    /// For two chunks hashed together on one core; nil entries failed.
    public static func pair(
        _ a: (ContentHash, [UInt8]), _ b: (ContentHash, [UInt8])
    ) -> (VerifiedChunk?, VerifiedChunk?) {
        let (ha, hb) = a.1.withUnsafeBytes { pa in b.1.withUnsafeBytes { pb in SHA256Stream.hashPair(pa, pb) } }
        return (
            ha == a.0 && !a.1.isEmpty && a.1.count <= Limits.maxChunkBytes
                ? VerifiedChunk(trusted: a.0, bytes: a.1) : nil,
            hb == b.0 && !b.1.isEmpty && b.1.count <= Limits.maxChunkBytes
                ? VerifiedChunk(trusted: b.0, bytes: b.1) : nil
        )
    }

    private init(trusted id: ContentHash, bytes: [UInt8]) {
        self.id = id
        self.bytes = bytes
    }
}

extension ContentStore {
    /// Which of `ids` the store holds intact (not flagged bad).
    public func holds(_ ids: [ContentHash]) throws(StoreError) -> Set<ContentHash> {
        try withReader { (db) throws(StoreError) -> Set<ContentHash> in
            let stmt = try db.statement("SELECT 1 FROM chunks WHERE id = ? AND bad = 0")
            var out = Set<ContentHash>()
            for id in ids {
                stmt.reset()
                stmt.bind(.blob(id.bytes))
                if try stmt.step() { out.insert(id) }
            }
            stmt.reset()
            return out
        }
    }

    /// Stores verified chunks (those already held are skipped) and commits them in one transaction, so a fetch that
    /// is killed keeps everything committed so far. They stay unreferenced (GC may drop them) until `registerFile`.
    public func put(_ chunks: [VerifiedChunk]) throws(StoreError) {
        guard !chunks.isEmpty else { return }
        try asWriter { (db) throws(StoreError) in
            let session = try IngestSession(store: self, db: db)
            do throws(StoreError) {
                for chunk in chunks {
                    // The pack writer borrows the bytes: write them out before the buffer goes away.
                    try chunk.bytes.withBytes { (p) throws(StoreError) in
                        _ = try session.writeChunk(id: chunk.id, bytes: p)
                        try session.flushPack()
                    }
                }
                try session.commitChunksOnly()
            } catch {
                session.rollBack()
                throw error
            }
        }
    }

    /// Records a file whose chunks are all in the store. The caller MUST have checked that the bytes the recipe
    /// describes hash to `recipe.address` (the fetcher does, over the file it wrote, before calling this).
    public func registerFile(_ recipe: FileRecipe) throws(StoreError) {
        try registerFile(recipe, alsoInTransaction: nil)
    }

    func registerFile(
        _ recipe: FileRecipe, alsoInTransaction: ((SQLiteConnection) throws(StoreError) -> Void)?
    ) throws(StoreError) {
        do { try recipe.validateLayout() } catch {
            throw StoreError(.corruptChunk, "the chunk list of \(recipe.address) is malformed: \(error)")
        }
        let missing = Set(recipe.chunks.map(\.id)).subtracting(try holds(recipe.chunks.map(\.id)))
        guard missing.isEmpty else {
            throw StoreError(.missingChunk, "\(missing.count) chunk(s) of \(recipe.address) are not in the store yet")
        }
        try asWriter { (db) throws(StoreError) in
            let session = try IngestSession(store: self, db: db)
            do throws(StoreError) {
                _ = try session.commit(recipe: recipe, root: recipe.merkleRoot, alsoInTransaction: alsoInTransaction)
            } catch {
                session.rollBack()
                throw error
            }
        }
    }
}

extension IngestSession {
    /// Appends one chunk (unless held); for `put`. Copies the bytes into the pack's batch.
    func writeChunk(id: ContentHash, bytes: UnsafeRawBufferPointer) throws(StoreError) -> Bool {
        try write(id: id, bytes: bytes)
    }

    /// Commits the chunk rows written so far, without a file.
    func commitChunksOnly() throws(StoreError) {
        endReadTransaction()
        try flushForCommit()
        try db.transaction { () throws(StoreError) in
            var live: [Int: Int] = [:]
            try insertPendingChunks(into: &live)
            try recordPackSizes(extraLive: live)
        }
    }
}
