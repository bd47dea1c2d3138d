import AlexandriaCore
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Copies the live records of some packs into a new pack, verifying every chunk on the way and, when asked,
/// storing each raw chunk in the cheapest form `ChunkCoder` finds. Used by GC for compaction and compression.
final class PackRewriter {
    let store: ContentStore
    let db: SQLiteConnection
    let compress: Bool
    /// Threads reading, verifying and compressing at once, each a pair of chunks (the two-way hash kernel).
    let parallelism: Int
    private var appender: PackAppender
    private var created: [Int] = []
    private var nextPack: Int
    private(set) var chunksCompressed = 0
    private(set) var bytesOffered: UInt64 = 0
    private(set) var compressSeconds = 0.0
    /// Chunks read, verified and encoded between two appends: a pair for the two-way hash kernel per thread, and for
    /// `gc` enough of them (4 threads, 8 chunks) that the two cores rarely wait on one large chunk at the barrier.
    var windowSlots: Int { 2 * parallelism }

    private struct Moved {
        let id: ContentHash
        let pack: Int
        let offset: Int
        let storedLength: Int
        let codec: ChunkCodec
    }

    /// `parallelism`: threads in flight at once, each verifying a pair of chunks (4 for `gc`, which runs at full
    /// speed; 1 for compression on idle, whose pacing by wall time keeps it within a share of one core only if it never
    /// runs on two).
    init(store: ContentStore, db: SQLiteConnection, compress: Bool, parallelism: Int = 4) throws(StoreError) {
        self.store = store
        self.db = db
        self.compress = compress
        self.parallelism = max(1, parallelism)
        let maxStmt = try db.statement("SELECT coalesce(max(id), 0) FROM packs")
        _ = try maxStmt.step()
        nextPack = maxStmt.int(0) + 1
        maxStmt.reset()
        appender = try PackAppender(
            pack: nextPack, path: store.packs.path(nextPack), committedSize: 0,
            durable: store.options.durability == .fsync)
        created.append(nextPack)
    }

    /// Appends one record, copying `payload`; or, `borrowing`, lending it to the appender until the next
    /// `appender.flush()` (the window's chunk payloads, written once per window without a copy into the batch).
    private func appendRecord(
        _ header: PackRecordHeader, _ payload: UnsafeRawBufferPointer, borrowing: Bool = false
    ) throws(StoreError)
        -> (Int, Int)
    {
        if appender.end >= store.options.packTargetBytes {
            try appender.flush()
            nextPack += 1
            appender = try PackAppender(
                pack: nextPack, path: store.packs.path(nextPack), committedSize: 0,
                durable: store.options.durability == .fsync)
            created.append(nextPack)
        }
        let offset =
            borrowing
            ? try appender.appendBorrowing(header, payload: payload) : try appender.append(header, payload: payload)
        return (appender.pack, offset)
    }

    func rewrite(packs: [Int]) throws(StoreError) {
        var moved: [Moved] = []
        var bad: [ContentHash] = []
        var recipes: [(ContentHash, Int, Int)] = []
        var removals: [(ContentHash, Int, Int)] = []
        let window = ReadWindow(slots: windowSlots, maxChunk: Limits.maxChunkBytes)
        for pack in packs {
            let rows = try db.statement(
                """
                SELECT id, offset, raw_length, stored_length, codec FROM chunks
                WHERE pack = ? AND bad = 0 AND refs > 0 ORDER BY offset
                """)
            rows.bind(.int(pack))
            var locations: [ContentStore.ChunkLocation] = []
            while try rows.step() {
                guard let id = ContentHash(bytes: rows.blob(0)),
                    let codec = ChunkCodec(rawValue: UInt8(truncatingIfNeeded: rows.int(4)))
                else { throw StoreError(.indexCorrupt, "a chunk row in the index is damaged") }
                locations.append(
                    .init(
                        id: id, pack: pack, offset: rows.int(1), rawLength: rows.int(2), storedLength: rows.int(3),
                        codec: codec))
            }
            rows.reset()
            let chunkLocations = locations
            var next = 0
            while next < chunkLocations.count {
                let batch = min(window.slots.count, chunkLocations.count - next)
                let base = next
                let results = Mutex<[Int: Result<(ChunkCodec, Int), StoreError>]>([:])
                let started = FileLock.now()
                let compress = self.compress
                let store = self.store
                // Two chunks per task: both read and decoded, hashed together on one core (the two-way kernel),
                // then each verified one encoded. A chunk whose hash fails is reported, never encoded or copied.
                DispatchQueue.concurrentPerform(iterations: (batch + 1) / 2) { pair in
                    let first = 2 * pair
                    let items = first + 1 < batch ? [first, first + 1] : [first]
                    var verified: [Int] = []
                    var raws: [Int: UnsafeMutableRawBufferPointer] = [:]
                    for i in items {
                        let loc = chunkLocations[base + i]
                        guard loc.rawLength <= window.slots[i].buffer.count else {
                            let error = ContentStore.corrupt(
                                loc, path: store.sourcePath(loc), "it claims too many bytes")
                            results.withLock { $0[i] = .failure(error) }
                            continue
                        }
                        raws[i] = UnsafeMutableRawBufferPointer(rebasing: window.slots[i].buffer[0..<loc.rawLength])
                        verified.append(i)
                    }
                    if verified.count == 2 {
                        let (a, b) = (verified[0], verified[1])
                        let (ea, eb) = store.readVerifiedPair(
                            chunkLocations[base + a], into: raws[a]!, context: window.slots[a].context,
                            chunkLocations[base + b], into: raws[b]!, context: window.slots[b].context)
                        if let ea { results.withLock { $0[a] = .failure(ea) } }
                        if let eb { results.withLock { $0[b] = .failure(eb) } }
                        verified = [ea == nil ? a : nil, eb == nil ? b : nil].compactMap { $0 }
                    } else if let a = verified.first {
                        do throws(StoreError) {
                            try store.readVerified(
                                chunkLocations[base + a], into: raws[a]!, context: window.slots[a].context)
                        } catch {
                            results.withLock { $0[a] = .failure(error) }
                            verified = []
                        }
                    }
                    for i in verified {
                        let loc = chunkLocations[base + i]
                        let slot = window.slots[i]
                        if compress && loc.codec == .raw {
                            let (codec, payload) = slot.context.coder.encode(UnsafeRawBufferPointer(raws[i]!))
                            results.withLock {
                                $0[i] = .success((codec, codec == .raw ? loc.rawLength : payload.count))
                            }
                            if codec != .raw { slot.stagedPayload = payload }
                        } else {
                            results.withLock { $0[i] = .success((loc.codec, -1)) }
                        }
                    }
                }
                if compress { compressSeconds += FileLock.now() - started }
                let outcome = results.withLock { $0 }
                for i in 0..<batch {
                    let loc = chunkLocations[base + i]
                    let slot = window.slots[i]
                    switch outcome[i]! {
                    case .failure:
                        bad.append(loc.id)
                    case .success((let codec, let length)):
                        if compress && loc.codec == .raw { bytesOffered += UInt64(loc.rawLength) }
                        let payload: UnsafeRawBufferPointer
                        let storedCodec: ChunkCodec
                        if length == -1 && loc.codec == .raw {
                            // Kept as it was stored, raw: its stored bytes are the verified bytes in the slot (a raw
                            // chunk's payload is read straight into the destination, not into the record buffer).
                            payload = UnsafeRawBufferPointer(rebasing: slot.buffer[0..<loc.rawLength])
                            storedCodec = .raw
                        } else if length == -1 {
                            // Kept as it was stored, compressed: the stored payload is in the record buffer, read
                            // whole by the verified read that decoded it.
                            payload = UnsafeRawBufferPointer(
                                rebasing: slot.context.record[
                                    PackRecordHeader.size..<PackRecordHeader.size + loc.storedLength])
                            storedCodec = loc.codec
                        } else if codec == .raw {
                            payload = UnsafeRawBufferPointer(rebasing: slot.buffer[0..<loc.rawLength])
                            storedCodec = .raw
                        } else {
                            payload = slot.stagedPayload!
                            storedCodec = codec
                            chunksCompressed += 1
                        }
                        let header = PackRecordHeader(
                            kind: .chunk, codec: storedCodec, rawLength: UInt32(loc.rawLength),
                            storedLength: UInt32(payload.count), sequence: 0, id: loc.id)
                        let (newPack, offset) = try appendRecord(header, payload, borrowing: true)
                        moved.append(
                            Moved(
                                id: loc.id, pack: newPack, offset: offset, storedLength: payload.count,
                                codec: storedCodec))
                    }
                    slot.stagedPayload = nil
                }
                // The window's buffers and the coders' scratch are lent to the appender only until here.
                try appender.flush()
                next += batch
            }
            // Recipes and removals move as they are (same sequence numbers), after their header is checked.
            for isRecipe in [true, false] {
                let sql =
                    isRecipe
                    ? "SELECT address, recipe_offset FROM files WHERE recipe_pack = ?"
                    : "SELECT address, offset FROM removals WHERE pack = ?"
                let stmt = try db.statement(sql)
                stmt.bind(.int(pack))
                var items: [(ContentHash, Int)] = []
                while try stmt.step() {
                    if let a = ContentHash(bytes: stmt.blob(0)) { items.append((a, stmt.int(1))) }
                }
                stmt.reset()
                for (address, offset) in items {
                    let record = try readRecord(pack: pack, offset: offset)
                    guard record.header.id == address,
                        record.header.kind == (isRecipe ? .recipe : .removal)
                    else {
                        throw StoreError(
                            .corruptChunk,
                            "the \(isRecipe ? "recipe" : "removal") record of \(address) in "
                                + "\(store.packs.path(pack)) at \(offset) is damaged; run `alexandria verify --repair`")
                    }
                    let (newPack, newOffset) = try record.payload.withBytes { (p) throws(StoreError) in
                        try appendRecord(record.header, p)
                    }
                    if isRecipe {
                        recipes.append((address, newPack, newOffset))
                    } else {
                        removals.append((address, newPack, newOffset))
                    }
                }
            }
        }
        try appender.commitPoint()
        if store.options.durability == .fsync { POSIX.fsyncDirectory(store.packs.directory) }
        try db.transaction { () throws(StoreError) in
            let move = try db.statement(
                "UPDATE chunks SET pack = ?, offset = ?, stored_length = ?, codec = ? WHERE id = ?")
            for m in moved {
                move.reset()
                move.bind(
                    .int(m.pack), .int(m.offset), .int(m.storedLength), .int(Int(m.codec.rawValue)), .blob(m.id.bytes))
                try move.run()
            }
            let markBad = try db.statement("UPDATE chunks SET bad = 1 WHERE id = ?")
            for id in bad {
                markBad.reset()
                markBad.bind(.blob(id.bytes))
                try markBad.run()
            }
            let moveRecipe = try db.statement("UPDATE files SET recipe_pack = ?, recipe_offset = ? WHERE address = ?")
            for (address, pack, offset) in recipes {
                moveRecipe.reset()
                moveRecipe.bind(.int(pack), .int(offset), .blob(address.bytes))
                try moveRecipe.run()
            }
            let moveRemoval = try db.statement("UPDATE removals SET pack = ?, offset = ? WHERE address = ?")
            for (address, pack, offset) in removals {
                moveRemoval.reset()
                moveRemoval.bind(.int(pack), .int(offset), .blob(address.bytes))
                try moveRemoval.run()
            }
            let insert = try db.statement(
                "INSERT INTO packs (id, committed_size, live_bytes, sealed, compressed) VALUES (?, ?, ?, 1, ?)")
            for pack in created {
                let size = pack == appender.pack ? appender.end : try IngestSession.fileSize(store.packs.path(pack))
                insert.reset()
                insert.bind(.int(pack), .int(size), .int(size), .int(compress ? 1 : 0))
                try insert.run()
            }
        }
    }

    /// Reads one non-chunk record whole.
    func readRecord(pack: Int, offset: Int) throws(StoreError) -> (header: PackRecordHeader, payload: [UInt8]) {
        let path = store.packs.path(pack)
        var head = [UInt8](repeating: 0, count: PackRecordHeader.size)
        let n = try head.withMutableBytes { (p) throws(StoreError) in
            try store.readPackBytes(pack: pack, at: offset, into: p)
        }
        guard n == PackRecordHeader.size, let header = head.withUnsafeBytes({ PackRecordHeader(parsing: $0) }) else {
            throw StoreError(.corruptChunk, "the record in \(path) at \(offset) is damaged")
        }
        var payload = [UInt8](repeating: 0, count: Int(header.storedLength))
        let m = try payload.withMutableBytes { (p) throws(StoreError) in
            try store.readPackBytes(pack: pack, at: offset + PackRecordHeader.size, into: p)
        }
        guard m == payload.count else {
            throw StoreError(.corruptChunk, "the record in \(path) at \(offset) is cut short")
        }
        return (header, payload)
    }

    func rollBack() {
        for pack in created { unlink(store.packs.path(pack)) }
    }
}
