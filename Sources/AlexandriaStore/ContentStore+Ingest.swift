import AlexandriaCore
import Crypto
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What `add` did with one file.
public struct AddResult: Sendable, Hashable {
    public let address: ContentHash
    public let size: UInt64
    public let merkleRoot: ContentHash
    public let chunkCount: Int
    /// Chunks this add wrote (the rest were already in the store).
    public let newChunks: Int
    /// Original bytes of the chunks this add wrote.
    public let newBytes: UInt64
    /// True when the store already had this file.
    public let alreadyPresent: Bool
}

extension ContentStore {
    /// Adds one regular file: chunks it, hashes every chunk and the whole file, writes the chunks the store lacks,
    /// and commits the file's row, all or nothing.
    ///
    /// The work runs as a pipeline over both cores: one thread reads segments and finds cut points, while worker
    /// threads hash the whole file (in order), hash chunks (in any order) and append new chunks to the pack.
    /// Memory is bounded by `segmentsInFlight × (segmentBytes + maxChunk)` whatever the file size.
    ///
    /// Fails with `fileChanged` if the file's size, mtime or inode changed while it was read, `budgetExceeded` or
    /// `diskFull` when space runs out; in every failure the pack is cut back and the index is untouched.
    public func add(path: String, progress: ((UInt64) -> Void)? = nil) throws(StoreError) -> AddResult {
        let fd = try POSIX.open(path, O_RDONLY)
        defer { close(fd) }
        var before = stat()
        guard fstat(fd, &before) == 0 else { throw StoreError.posix("cannot stat", path: path) }
        guard (before.st_mode & S_IFMT) == S_IFREG else {
            throw StoreError(.unreadablePath, "\(path) is not a regular file")
        }
        let size = UInt64(before.st_size)
        guard size <= Limits.maxFileBytes else {
            throw StoreError(.unreadablePath, "\(path) is \(size) bytes; the largest file the store takes is 16 TiB")
        }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        return try asWriter { (db) throws(StoreError) -> AddResult in
            let session = try IngestSession(store: self, db: db)
            do throws(StoreError) {
                let (address, chunks, newChunks, newBytes) = try session.run(
                    fd: fd, path: path, size: size, progress: progress)
                var after = stat()
                guard fstat(fd, &after) == 0, after.st_size == before.st_size, after.st_ino == before.st_ino,
                    after.st_mtim.tv_sec == before.st_mtim.tv_sec, after.st_mtim.tv_nsec == before.st_mtim.tv_nsec
                else {
                    throw StoreError(
                        .fileChanged,
                        "\(path) changed while it was being added; nothing was recorded for it. Add it again once "
                            + "it is no longer being written")
                }
                let recipe = FileRecipe(address: address, size: size, chunker: options.chunker, chunks: chunks)
                let root = recipe.merkleRoot
                let present = try session.commit(recipe: recipe, root: root)
                return AddResult(
                    address: address, size: size, merkleRoot: root, chunkCount: chunks.count, newChunks: newChunks,
                    newBytes: newBytes, alreadyPresent: present)
            } catch {
                session.rollBack()
                throw error
            }
        }
    }
}

/// One ingest under the write lock: the pipeline, the pending rows, and the commit or roll-back.
final class IngestSession: @unchecked Sendable {
    let store: ContentStore
    let db: SQLiteConnection
    let chunker: Chunker
    /// Packs touched, with their committed size at the start (to roll back to) and whether they are new.
    private var touched: [(pack: Int, startSize: Int, isNew: Bool)] = []
    private var appender: PackAppender
    private var packsBytesAtStart: UInt64
    private var pendingBytes: UInt64 = 0
    private var pendingRows: [PendingChunk] = []
    private var pendingIDs: Set<ContentHash> = []
    private var newBytes: UInt64 = 0

    struct PendingChunk {
        let id: ContentHash
        let pack: Int
        let offset: Int
        let rawLength: Int
        let storedLength: Int
        let codec: ChunkCodec
    }

    init(store: ContentStore, db: SQLiteConnection) throws(StoreError) {
        self.store = store
        self.db = db
        self.chunker = Chunker(parameters: store.options.chunker)
        let total = try db.statement("SELECT coalesce(sum(committed_size), 0) FROM packs")
        _ = try total.step()
        packsBytesAtStart = UInt64(total.int(0))
        total.reset()
        let (pack, size, isNew) = try Self.activePack(db: db, target: store.options.packTargetBytes)
        appender = try PackAppender(
            pack: pack, path: store.packs.path(pack), committedSize: size, durable: store.options.durability == .fsync)
        touched.append((pack, size, isNew))
        // One read transaction for all the dedup lookups: SQLite then takes its locks once, not once per chunk.
        // Nobody else can write meanwhile (this session holds the write lock), so the snapshot stays current.
        try db.execute("BEGIN DEFERRED")
        inReadTransaction = true
    }

    private var inReadTransaction = false

    /// Ends the lookup transaction before the commit's write transaction starts.
    func endReadTransaction() {
        if inReadTransaction {
            try? db.execute("COMMIT")
            inReadTransaction = false
        }
    }

    /// The pack to append to: the newest unsealed one, or a new one.
    static func activePack(db: SQLiteConnection, target: Int) throws(StoreError) -> (Int, Int, Bool) {
        let stmt = try db.statement(
            "SELECT id, committed_size FROM packs WHERE sealed = 0 ORDER BY id DESC LIMIT 1")
        if try stmt.step() {
            let result = (stmt.int(0), stmt.int(1), false)
            stmt.reset()
            if result.1 < target { return result }
            // Full under this target (a smaller `pack_target` than the one it was written under): sealed from now on,
            // so compression on idle may take it.
            let seal = try db.statement("UPDATE packs SET sealed = 1 WHERE id = ?")
            seal.bind(.int(result.0))
            try seal.run()
        }
        let maxStmt = try db.statement("SELECT coalesce(max(id), 0) FROM packs")
        _ = try maxStmt.step()
        let next = maxStmt.int(0) + 1
        maxStmt.reset()
        return (next, 0, true)
    }

    // MARK: - The pipeline

    final class Segment: @unchecked Sendable {
        let buffer: UnsafeMutableRawBufferPointer
        /// Valid bytes: carried-over bytes then newly read ones.
        var count = 0
        /// File offset of `buffer[0]`.
        var fileOffset: UInt64 = 0
        var cuts: [(start: Int, length: Int)] = []
        /// One slot per cut, written by the hashing workers (each its own slot) before the writer reads them.
        let hashes: UnsafeMutableBufferPointer<ContentHash>
        var index = 0

        init(capacity: Int, minChunk: Int) {
            buffer = .allocate(byteCount: capacity, alignment: 4096)
            hashes = .allocate(capacity: capacity / minChunk + 2)
            hashes.initialize(repeating: .empty)
        }

        deinit {
            buffer.deallocate()
            hashes.deallocate()
        }

        /// Bytes read for this segment (after the carried-over ones); the whole-file hash covers exactly these.
        var freshCount = 0

        /// Hashes every cut chunk, advancing `file` over this segment's new bytes at the same time.
        func hashChunks(pairedWith file: inout SHA256Stream) {
            let fresh = UnsafeRawBufferPointer(rebasing: buffer[count - freshCount..<count])
            var filePosition = 0
            for (i, cut) in cuts.enumerated() {
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[cut.start..<cut.start + cut.length])
                let take = min(cut.length, fresh.count - filePosition)
                var stream = SHA256Stream()
                SHA256Stream.update(
                    &file, UnsafeRawBufferPointer(rebasing: fresh[filePosition..<filePosition + take]), &stream, chunk)
                filePosition += take
                hashes[i] = stream.finalize()
            }
            if filePosition < fresh.count {
                file.update(UnsafeRawBufferPointer(rebasing: fresh[filePosition...]))
            }
        }
    }

    /// A pool of segments: `take` blocks while all are in use, which is the pipeline's backpressure.
    final class SegmentPool: @unchecked Sendable {
        private let free: Mutex<[Segment]>
        private let available: DispatchSemaphore
        private let holders = Mutex<[ObjectIdentifier: Int]>([:])

        init(count: Int, capacity: Int, minChunk: Int) {
            free = Mutex((0..<count).map { _ in Segment(capacity: capacity, minChunk: minChunk) })
            available = DispatchSemaphore(value: count)
        }

        func take(holders n: Int) -> Segment {
            available.wait()
            let segment = free.withLock { $0.removeLast() }
            holders.withLock { $0[ObjectIdentifier(segment)] = n }
            return segment
        }

        /// One holder is done with `segment`; the last one returns it to the pool.
        func release(_ segment: Segment) {
            let done = holders.withLock { h -> Bool in
                let id = ObjectIdentifier(segment)
                h[id]! -= 1
                return h[id]! == 0
            }
            if done {
                segment.cuts.removeAll(keepingCapacity: true)
                free.withLock { $0.append(segment) }
                available.signal()
            }
        }
    }

    /// Reads, chunks and hashes the file, appending new chunks. Returns the address and the chunk list.
    func run(
        fd: Int32, path: String, size: UInt64, progress: ((UInt64) -> Void)?
    ) throws(StoreError)
        -> (ContentHash, [ChunkRef], Int, UInt64)
    {
        let options = store.options
        let maxChunk = chunker.parameters.maxSize
        let pool = SegmentPool(
            count: options.segmentsInFlight, capacity: options.segmentBytes + maxChunk,
            minChunk: chunker.parameters.minSize)
        let hashQueue = DispatchQueue(label: "alexandria.ingest.hash")
        let writerQueue = DispatchQueue(label: "alexandria.ingest.writer")
        let all = DispatchGroup()
        let failure = Mutex<StoreError?>(nil)
        let fileHasher = Mutex(SHA256Stream())
        // Chunk ids per segment, assembled in order at the end.
        let perSegment = Mutex<[Int: [(ContentHash, Int)]]>([:])
        let writtenChunks = Mutex(0)

        var fileOffset: UInt64 = 0
        var previous: Segment?
        var carryStart = 0
        var carryCount = 0
        var segmentIndex = 0
        var scan: Chunker.ScanState?

        func fail(_ error: StoreError) { failure.withLock { if $0 == nil { $0 = error } } }

        while failure.withLock({ $0 == nil }) {
            // Holders: the chunk writer, and this loop until it copied the carry-over.
            let segment = pool.take(holders: 2)
            segment.index = segmentIndex
            segmentIndex += 1
            if let previous {
                if carryCount > 0 {
                    segment.buffer.baseAddress!.copyMemory(
                        from: previous.buffer.baseAddress! + carryStart, byteCount: carryCount)
                }
                pool.release(previous)
            }
            segment.fileOffset = fileOffset - UInt64(carryCount)
            let want = Int(min(UInt64(options.segmentBytes), size - fileOffset))
            let fresh = UnsafeMutableRawBufferPointer(rebasing: segment.buffer[carryCount..<carryCount + want])
            let got: Int
            do { got = try POSIX.pread(fd, fresh, at: Int(fileOffset), path: path) } catch {
                fail(error)
                pool.release(segment)
                previous = segment
                break
            }
            if got < want {
                fail(
                    StoreError(
                        .fileChanged,
                        "\(path) shrank while it was being added; nothing was recorded for it. Add it again once it "
                            + "is no longer being written"))
                pool.release(segment)
                previous = segment
                break
            }
            segment.count = carryCount + got
            fileOffset += UInt64(got)
            let isFinal = fileOffset == size

            // Cut points, in order, on this thread. A chunk left undecided at the end of a segment is carried over
            // with where its search stopped, so its bytes are not searched twice.
            var position = 0
            while position < segment.count {
                let rest = UnsafeRawBufferPointer(rebasing: segment.buffer[position..<segment.count])
                guard let length = chunker.nextChunkLength(rest, isFinal: isFinal, resuming: &scan) else { break }
                segment.cuts.append((position, length))
                position += length
            }
            carryStart = position
            carryCount = segment.count - position

            // One hash stage per segment, in file order: the whole-file stream advances over the new bytes while
            // each finished chunk's stream advances beside it, two messages interleaved on one core.
            segment.freshCount = got
            let hashed = DispatchGroup()
            hashed.enter()
            hashQueue.async {
                fileHasher.withLock { file in segment.hashChunks(pairedWith: &file) }
                hashed.leave()
            }
            all.enter()
            hashed.notify(queue: writerQueue) {
                defer {
                    pool.release(segment)
                    all.leave()
                }
                guard failure.withLock({ $0 == nil }) else { return }
                var ids: [(ContentHash, Int)] = []
                ids.reserveCapacity(segment.cuts.count)
                do throws(StoreError) {
                    for (i, cut) in segment.cuts.enumerated() {
                        let id = segment.hashes[i]
                        ids.append((id, cut.length))
                        let bytes = UnsafeRawBufferPointer(
                            rebasing: segment.buffer[cut.start..<cut.start + cut.length])
                        if try self.write(id: id, bytes: bytes) { writtenChunks.withLock { $0 += 1 } }
                    }
                    // The segment's bytes are lent to the pack writer only until here.
                    try self.flushPack()
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                }
                perSegment.withLock { $0[segment.index] = ids }
            }
            progress?(fileOffset)
            previous = segment
            if isFinal { break }
        }
        if let previous { pool.release(previous) }
        all.wait()
        if let error = failure.withLock({ $0 }) { throw error }

        let address = fileHasher.withLock { $0.finalize() }
        var chunks: [ChunkRef] = []
        var offset: UInt64 = 0
        let segments = perSegment.withLock { $0 }
        for index in 0..<segmentIndex {
            for (id, length) in segments[index] ?? [] {
                chunks.append(ChunkRef(id: id, offset: offset, length: UInt32(length)))
                offset += UInt64(length)
            }
        }
        guard offset == size else {
            throw StoreError(.fileChanged, "\(path) changed while it was being added; nothing was recorded for it")
        }
        return (address, chunks, writtenChunks.withLock { $0 }, newBytes)
    }

    /// Appends a chunk unless the store (or this add) already has a good copy. Returns true if it wrote it.
    /// Runs on the writer queue only.
    func write(id: ContentHash, bytes: UnsafeRawBufferPointer) throws(StoreError) -> Bool {
        if pendingIDs.contains(id) { return false }
        // A linked chunk lives in a file the user may change or delete: an add or a copying fetch stores its own copy.
        let stmt = try db.statement("SELECT 1 FROM chunks WHERE id = ? AND bad = 0 AND linked IS NULL")
        stmt.bind(.blob(id.bytes))
        let known = try stmt.step()
        stmt.reset()
        if known { return false }
        let recordSize = UInt64(PackRecordHeader.size + bytes.count)
        if let budget = store.options.budgetBytes, packsBytesAtStart + pendingBytes + recordSize > budget {
            throw StoreError(
                .budgetExceeded,
                "the store budget of \(budget) bytes would be exceeded (\(packsBytesAtStart + pendingBytes) used); "
                    + "nothing was recorded for this file. Raise the budget in config.toml or run `alexandria gc`")
        }
        if appender.end >= store.options.packTargetBytes { try rollOver() }
        let header = PackRecordHeader(
            kind: .chunk, codec: .raw, rawLength: UInt32(bytes.count), storedLength: UInt32(bytes.count), sequence: 0,
            id: id)
        let offset = try appender.appendBorrowing(header, payload: bytes)
        pendingBytes += recordSize
        newBytes += UInt64(bytes.count)
        pendingIDs.insert(id)
        pendingRows.append(
            PendingChunk(
                id: id, pack: appender.pack, offset: offset, rawLength: bytes.count, storedLength: bytes.count,
                codec: .raw))
        return true
    }

    func flushPack() throws(StoreError) { try appender.flush() }

    private func rollOver() throws(StoreError) {
        try appender.flush()
        let full = FilledPack(pack: appender.pack, path: store.packs.path(appender.pack), size: appender.end)
        // Past every pack the index or the disk knows (GC may have made packs after the active one).
        let maxStmt = try db.statement("SELECT coalesce(max(id), 0) FROM packs")
        _ = try maxStmt.step()
        let indexed = maxStmt.int(0)
        maxStmt.reset()
        let next = max(touched.map(\.pack).max() ?? 0, indexed, store.packs.listOnDisk().last ?? 0) + 1
        try listEmptyPack(next)
        appender = try PackAppender(
            pack: next, path: store.packs.path(next), committedSize: 0,
            durable: store.options.durability == .fsync)
        touched.append((next, 0, true))
        store.options.packFilled?(full)
    }

    /// Lists a new pack in the index, empty and unsealed, before any record goes into it: a write killed after this
    /// leaves records past a listed pack's committed size (an unfinished write the next writer indexes), never a
    /// pack the index has not heard of (which `verify` must report as an index that lost packs). A pack listed
    /// empty whose file a failed write removed is nothing (a missing pack of size 0 holds no record).
    private func listEmptyPack(_ pack: Int) throws(StoreError) {
        let wasReading = inReadTransaction
        endReadTransaction()
        try db.statement(
            "INSERT OR IGNORE INTO packs (id, committed_size, live_bytes, sealed) VALUES (?, 0, 0, 0)"
        ).bind(.int(pack)).run()
        if wasReading {
            try db.execute("BEGIN DEFERRED")
            inReadTransaction = true
        }
    }

    /// Writes the recipe record, makes the packs durable as configured, and commits every row in one transaction.
    /// Returns true if the file was already in the store.
    func commit(
        recipe: FileRecipe, root: ContentHash, alsoInTransaction: ((SQLiteConnection) throws(StoreError) -> Void)? = nil
    ) throws(StoreError) -> Bool {
        endReadTransaction()
        let exists = try db.statement("SELECT 1 FROM files WHERE address = ?")
        exists.bind(.blob(recipe.address.bytes))
        let present = try exists.step()
        exists.reset()
        var recipeLocation: (pack: Int, offset: Int, sequence: Int, size: Int)?
        if !present {
            let sequence = try nextSequence()
            let payload = RecipeCodec.encode(recipe, root: root)
            let header = PackRecordHeader(
                kind: .recipe, codec: .raw, rawLength: UInt32(payload.count), storedLength: UInt32(payload.count),
                sequence: UInt64(sequence), id: recipe.address)
            let offset = try payload.withBytes { (p) throws(StoreError) in
                try appender.append(header, payload: p)
            }
            pendingBytes += UInt64(PackRecordHeader.size + payload.count)
            recipeLocation = (appender.pack, offset, sequence, PackRecordHeader.size + payload.count)
        }
        try flushForCommit()
        try db.transaction { () throws(StoreError) in
            var liveAdded: [Int: Int] = [:]
            try insertPendingChunks(into: &liveAdded)
            if let recipeLocation {
                try advanceSequence(past: recipeLocation.sequence)
                liveAdded[recipeLocation.pack, default: 0] += recipeLocation.size
                let file = try db.statement(
                    """
                    INSERT INTO files (address, size, merkle_root, chunker, chunk_count, chunk_list, sequence,
                        recipe_pack, recipe_offset, added_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                file.bind(
                    .blob(recipe.address.bytes), .int(Int(recipe.size)), .blob(root.bytes),
                    .text(recipe.chunker.description), .int(recipe.chunks.count),
                    .blob(ChunkList.encode(recipe.chunks)), .int(recipeLocation.sequence), .int(recipeLocation.pack),
                    .int(recipeLocation.offset), .int(Int(time(nil))))
                try file.run()
                var counts: [ContentHash: Int] = [:]
                for chunk in recipe.chunks { counts[chunk.id, default: 0] += 1 }
                let ref = try db.statement("UPDATE chunks SET refs = refs + ? WHERE id = ?")
                for (id, n) in counts {
                    ref.reset()
                    ref.bind(.int(n), .blob(id.bytes))
                    try ref.run()
                }
            }
            try recordPackSizes(extraLive: liveAdded)
            try alsoInTransaction?(db)
        }
        return present
    }

    /// Inserts the rows of chunks written in this session (a known-bad copy is replaced by the new good one).
    func insertPendingChunks(into liveAdded: inout [Int: Int]) throws(StoreError) {
        let insert = try db.statement(
            """
            INSERT INTO chunks (id, pack, offset, raw_length, stored_length, codec, refs, bad)
            VALUES (?, ?, ?, ?, ?, ?, 0, 0)
            ON CONFLICT(id) DO UPDATE SET pack = excluded.pack, offset = excluded.offset,
                raw_length = excluded.raw_length, stored_length = excluded.stored_length,
                codec = excluded.codec, bad = 0, linked = NULL
            """)
        for row in pendingRows {
            insert.reset()
            insert.bind(
                .blob(row.id.bytes), .int(row.pack), .int(row.offset), .int(row.rawLength),
                .int(row.storedLength), .int(Int(row.codec.rawValue)))
            try insert.run()
            liveAdded[row.pack, default: 0] += PackRecordHeader.size + row.storedLength
        }
    }

    /// Records every touched pack's new size and added live bytes. Call inside the commit transaction.
    func recordPackSizes(extraLive: [Int: Int]) throws(StoreError) {
        let packRow = try db.statement(
            """
            INSERT INTO packs (id, committed_size, live_bytes, sealed) VALUES (?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET committed_size = excluded.committed_size,
                live_bytes = packs.live_bytes + ?, sealed = excluded.sealed
            """)
        for (i, t) in touched.enumerated() {
            let isLast = i == touched.count - 1
            let end = isLast ? appender.end : try Self.fileSize(store.packs.path(t.pack))
            let live = extraLive[t.pack] ?? 0
            packRow.reset()
            packRow.bind(
                .int(t.pack), .int(end), .int(live), .int(isLast && end < store.options.packTargetBytes ? 0 : 1),
                .int(live))
            try packRow.run()
        }
    }

    var appenderPack: Int { appender.pack }

    /// Appends any record to the active pack, rolling over to a new pack when it is full.
    func appendRecord(_ header: PackRecordHeader, payload: UnsafeRawBufferPointer) throws(StoreError) -> Int {
        if appender.end >= store.options.packTargetBytes { try rollOver() }
        pendingBytes += UInt64(header.recordSize)
        return try appender.append(header, payload: payload)
    }

    /// Flushes the batch and, in durable mode, syncs the pack (and its directory if it is new).
    func flushForCommit() throws(StoreError) {
        try appender.commitPoint()
        if store.options.durability == .fsync, touched.contains(where: \.isNew) {
            POSIX.fsyncDirectory(store.packs.directory)
        }
    }

    static func fileSize(_ path: String) throws(StoreError) -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw StoreError.posix("cannot stat", path: path) }
        return Int(st.st_size)
    }

    /// The index's commit sequence (`meta.next_sequence`): the number this commit's one recipe or removal record
    /// carries. The caller holds the write lock, so it cannot change before `advanceSequence(past:)` records it in
    /// the commit's own transaction: a writer killed between its record and its commit leaves exactly one record
    /// numbered with the index's `next_sequence` (Protocol/store-v1.md, "The commit sequence").
    func nextSequence() throws(StoreError) -> Int {
        let stmt = try db.statement("SELECT value FROM meta WHERE key = 'next_sequence'")
        let current = try stmt.step() ? Int(stmt.text(0)) ?? 1 : 1
        stmt.reset()
        return current
    }

    /// Inside the commit's transaction: the next commit takes `sequence + 1`.
    func advanceSequence(past sequence: Int) throws(StoreError) {
        try db.statement("INSERT OR REPLACE INTO meta(key, value) VALUES ('next_sequence', ?)")
            .bind(.text(String(sequence + 1))).run()
    }

    /// Cuts every touched pack back to where it was. The index was not changed.
    func rollBack() {
        endReadTransaction()
        appender.rollBack(to: touched.last!.startSize)
        for t in touched.dropLast() {
            let fd = open(store.packs.path(t.pack), O_RDWR | O_CLOEXEC)
            if fd >= 0 {
                _ = ftruncate(fd, off_t(t.startSize))
                close(fd)
            }
        }
        for t in touched where t.isNew { unlink(store.packs.path(t.pack)) }
    }
}
