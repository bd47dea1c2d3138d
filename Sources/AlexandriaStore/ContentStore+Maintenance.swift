import AlexandriaCore
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a scrub found.
public struct VerifyReport: Sendable {
    public struct Problem: Sendable, Hashable {
        public let chunk: ContentHash
        public let pack: Int
        public let offset: Int
        public let message: String
    }

    public var chunksChecked = 0
    public var bytesChecked: UInt64 = 0
    public var problems: [Problem] = []
    /// Files with at least one chunk that is missing or bad.
    public var incompleteFiles: [ContentHash] = []
    /// Anything `PRAGMA integrity_check` said other than "ok".
    public var indexProblems: [String] = []

    public var isClean: Bool { problems.isEmpty && incompleteFiles.isEmpty && indexProblems.isEmpty }
}

/// What a garbage collection did.
public struct GCReport: Sendable {
    public var chunksRemoved = 0
    public var packsRewritten = 0
    public var packsRemoved = 0
    public var bytesBefore: UInt64 = 0
    public var bytesAfter: UInt64 = 0
    /// Chunks the rewrite stored compressed.
    public var chunksCompressed = 0
    /// Original bytes of chunks offered to the compressor, and the time that took.
    public var bytesOfferedToCompressor: UInt64 = 0
    public var compressSeconds = 0.0
}

extension ContentStore {
    // MARK: - Scrub

    /// Reads every chunk the index names, checks each against its hash, and marks the bad ones as missing.
    /// Readers and writers go on meanwhile; the scrub only reads (and flags what it found).
    public func verify(progress: ((UInt64, UInt64) -> Void)? = nil) throws(StoreError) -> VerifyReport {
        var report = VerifyReport()
        let (locations, total, integrity) = try withReader {
            (db) throws(StoreError) -> ([ChunkLocation], UInt64, [String]) in
            var integrity: [String] = []
            let check = try db.statement("PRAGMA integrity_check")
            while try check.step() {
                let line = check.text(0)
                if line != "ok" { integrity.append(line) }
            }
            // Linked chunks (pack -1) come first, grouped by file and in file order.
            let stmt = try db.statement(
                "SELECT \(Self.locationColumns) WHERE c.bad = 0 ORDER BY c.pack, c.linked, c.offset")
            var out: [ChunkLocation] = []
            var total: UInt64 = 0
            while try stmt.step() {
                guard let location = try Self.location(row: stmt) else { continue }
                out.append(location)
                total += UInt64(location.rawLength)
            }
            return (out, total, integrity)
        }
        report.indexProblems = integrity
        let window = ReadWindow(slots: 4, maxChunk: Limits.maxChunkBytes)
        var next = 0
        var done: UInt64 = 0
        while next < locations.count {
            let batch = min(window.slots.count, locations.count - next)
            let base = next
            let errors = Mutex<[Int: StoreError]>([:])
            window.verify(store: self, locations[base..<base + batch]) { i, error in errors.withLock { $0[i] = error } }
            for (i, error) in errors.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
                let loc = locations[base + i]
                report.problems.append(
                    .init(chunk: loc.id, pack: loc.pack, offset: loc.offset, message: error.message))
                markBad(loc.id)
            }
            for i in 0..<batch { done += UInt64(locations[base + i].rawLength) }
            report.chunksChecked += batch
            progress?(done, total)
            next += batch
        }
        report.bytesChecked = done
        report.incompleteFiles = try withReader { (db) throws(StoreError) in try Self.incompleteFiles(db) }
        return report
    }

    /// What `PRAGMA integrity_check` says other than "ok" (empty for a sound index).
    public func indexProblems() throws(StoreError) -> [String] {
        try withReader { (db) throws(StoreError) in
            var lines: [String] = []
            let check = try db.statement("PRAGMA integrity_check")
            while try check.step() {
                if check.text(0) != "ok" { lines.append(check.text(0)) }
            }
            return lines
        }
    }

    static func incompleteFiles(_ db: SQLiteConnection) throws(StoreError) -> [ContentHash] {
        let files = try db.statement("SELECT address FROM files ORDER BY address")
        var addresses: [ContentHash] = []
        while try files.step() {
            if let a = ContentHash(bytes: files.blob(0)) { addresses.append(a) }
        }
        var incomplete: [ContentHash] = []
        let has = try db.statement("SELECT 1 FROM chunks WHERE id = ? AND bad = 0")
        for address in addresses {
            guard let recipe = try recipe(of: address, in: db) else { continue }
            for chunk in recipe.chunks {
                has.reset()
                has.bind(.blob(chunk.id.bytes))
                if !(try has.step()) {
                    incomplete.append(address)
                    break
                }
            }
        }
        has.reset()
        return incomplete
    }

    // MARK: - Removal

    /// Removes a file from this store: a removal record in the packs, the row gone, its chunks' counts lowered.
    /// The bytes stay until `gc`. Returns false if the store did not have the file.
    @discardableResult
    public func remove(_ address: ContentHash) throws(StoreError) -> Bool {
        try asWriter { (db) throws(StoreError) -> Bool in
            guard let recipe = try Self.recipe(of: address, in: db) else { return false }
            let session = try IngestSession(store: self, db: db)
            do throws(StoreError) {
                try session.commitRemoval(recipe: recipe)
            } catch {
                session.rollBack()
                throw error
            }
            return true
        }
    }

    // MARK: - Garbage collection, compaction and compression

    /// Drops chunks nothing references, then rewrites packs with more than `1 - minimumLiveFraction` dead bytes or
    /// whose chunks were never offered to the compressor. Every record copied is verified first; a damaged one is left behind and flagged.
    ///
    /// Readers go on throughout: rows move to the new pack in one transaction, and the old pack is unlinked only
    /// after it, so a reader holding an old location either still has the file open or looks the chunk up again.
    public func collectGarbage(
        compress: Bool = true, minimumLiveFraction: Double = 0.8
    ) throws(StoreError)
        -> GCReport
    {
        try asWriter { (db) throws(StoreError) -> GCReport in
            var report = GCReport()
            report.bytesBefore = try Self.packBytes(db)
            // 1. Unreferenced chunks leave the index; their pack loses that much live data.
            try db.transaction { () throws(StoreError) in
                let dead = try db.statement("SELECT pack, stored_length FROM chunks WHERE refs <= 0")
                var perPack: [Int: Int] = [:]
                while try dead.step() {
                    if dead.int(0) >= 0 { perPack[dead.int(0), default: 0] += PackRecordHeader.size + dead.int(1) }
                    report.chunksRemoved += 1
                }
                try db.statement("DELETE FROM chunks WHERE refs <= 0").run()
                let update = try db.statement("UPDATE packs SET live_bytes = max(0, live_bytes - ?) WHERE id = ?")
                for (pack, bytes) in perPack {
                    update.reset()
                    update.bind(.int(bytes), .int(pack))
                    try update.run()
                }
            }
            // Linked files no chunk row points at any more are forgotten (the files themselves are the user's).
            try db.execute(
                "DELETE FROM linked_files WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE chunks.linked = linked_files.id)"
            )
            // 2. Packs to rewrite.
            let candidates = try db.statement(
                "SELECT id, committed_size, live_bytes, compressed FROM packs ORDER BY id")
            var rewrite: [Int] = []
            var empty: [Int] = []
            while try candidates.step() {
                let (id, size, live, compressed) = (
                    candidates.int(0), candidates.int(1), candidates.int(2), candidates.int(3)
                )
                if live <= 0 && size > 0 || size == 0 {
                    empty.append(id)
                } else if Double(live) < minimumLiveFraction * Double(size) || (compress && compressed == 0) {
                    rewrite.append(id)
                }
            }
            candidates.reset()
            if !rewrite.isEmpty {
                let rewriter = try PackRewriter(store: self, db: db, compress: compress)
                do throws(StoreError) {
                    try rewriter.rewrite(packs: rewrite)
                } catch {
                    rewriter.rollBack()
                    throw error
                }
                report.packsRewritten = rewrite.count
                report.chunksCompressed = rewriter.chunksCompressed
                report.bytesOfferedToCompressor = rewriter.bytesOffered
                report.compressSeconds = rewriter.compressSeconds
                empty += rewrite
            }
            // 3. Empty packs go: their rows first, then the files.
            if !empty.isEmpty {
                try db.transaction { () throws(StoreError) in
                    let drop = try db.statement("DELETE FROM packs WHERE id = ?")
                    for id in empty {
                        drop.reset()
                        drop.bind(.int(id))
                        try drop.run()
                    }
                }
                for id in empty {
                    packs.forget(id)
                    unlink(packs.path(id))
                }
                report.packsRemoved = empty.count
            }
            report.bytesAfter = try Self.packBytes(db)
            return report
        }
    }

    static func packBytes(_ db: SQLiteConnection) throws(StoreError) -> UInt64 {
        let stmt = try db.statement("SELECT coalesce(sum(committed_size), 0) FROM packs")
        _ = try stmt.step()
        defer { stmt.reset() }
        return UInt64(stmt.int(0))
    }
}

extension IngestSession {
    /// Appends a removal record and, in one transaction, deletes the file row and lowers its chunks' counts.
    func commitRemoval(recipe: FileRecipe) throws(StoreError) {
        endReadTransaction()
        let sequence = try nextSequence()
        let header = PackRecordHeader(
            kind: .removal, codec: .raw, rawLength: 0, storedLength: 0, sequence: UInt64(sequence),
            id: recipe.address)
        let offset = try appendRecord(header, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        try flushForCommit()
        try db.transaction { () throws(StoreError) in
            try advanceSequence(past: sequence)
            let located = try db.statement("SELECT recipe_pack, recipe_offset FROM files WHERE address = ?")
            located.bind(.blob(recipe.address.bytes))
            _ = try located.step()
            let (recipePack, recipeOffset) = (located.int(0), located.int(1))
            located.reset()
            _ = recipeOffset
            let recipeBytes = PackRecordHeader.size + 45 + 36 * recipe.chunks.count
            try db.statement("UPDATE packs SET live_bytes = max(0, live_bytes - ?) WHERE id = ?")
                .bind(.int(recipeBytes), .int(recipePack)).run()
            try db.statement("DELETE FROM files WHERE address = ?").bind(.blob(recipe.address.bytes)).run()
            var counts: [ContentHash: Int] = [:]
            for chunk in recipe.chunks { counts[chunk.id, default: 0] += 1 }
            let ref = try db.statement("UPDATE chunks SET refs = refs - ? WHERE id = ?")
            for (id, n) in counts {
                ref.reset()
                ref.bind(.int(n), .blob(id.bytes))
                try ref.run()
            }
            try db.statement(
                "INSERT OR REPLACE INTO removals (address, sequence, pack, offset) VALUES (?, ?, ?, ?)"
            ).bind(.blob(recipe.address.bytes), .int(sequence), .int(appenderPack), .int(offset)).run()
            try recordPackSizes(extraLive: [appenderPack: PackRecordHeader.size])
        }
    }
}
