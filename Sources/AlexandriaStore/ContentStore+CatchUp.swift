import AlexandriaCore

#if canImport(Glibc)
    import Glibc
#endif

/// How the packs on disk and the index disagree (`Protocol/store-v1.md`, "The index follows the packs").
///
/// The packs are the truth and the index is derived. Every commit appends at least one record (a recipe or a
/// removal) before the index transaction records the pack's new `committed_size`, so an index that is current
/// lists every pack on disk at exactly its file size. Anything else is one of three things:
/// - bytes past `committed_size`, or a pack the index does not list, that hold whole records with the right hashes:
///   records the index does not know (an unfinished write, or an index that is empty, lost its `-wal` or is an older
///   copy). They are indexed again, never cut;
/// - a torn record at the very end of an unsealed pack or of a pack the index does not list (a write killed
///   halfway): the only bytes a writer may cut;
/// - a pack the index lists that is missing or shorter than `committed_size`: records the index points at are gone,
///   and only `verify --repair` (a rebuild from what the packs hold) makes the index true again.
public struct PackDrift: Sendable {
    /// Chunk records the index does not list.
    public var chunkRecords = 0
    /// Files whose recipe records the packs hold but the index does not list (and no newer removal removed).
    public var lostFiles: [ContentHash] = []
    /// Removal records the index has not applied.
    public var lostRemovals = 0
    /// Packs on disk the index does not list.
    public var unknownPacks: [Int] = []
    /// Bytes of torn records at pack tails (a killed write), which the next writer cuts.
    public var tornBytes = 0
    /// Bytes past an indexed size that are neither whole records nor a torn tail (damage; kept, never cut).
    public var damagedBytes = 0
    /// Packs the index lists that are missing or shorter than it says, described for a person.
    public var damagedPacks: [String] = []

    /// True when the index lists exactly what the packs hold.
    public var isCurrent: Bool {
        chunkRecords == 0 && lostFiles.isEmpty && lostRemovals == 0 && unknownPacks.isEmpty && tornBytes == 0
            && damagedBytes == 0 && damagedPacks.isEmpty
    }

    /// The sequence numbers of the recipe and removal records past the index's view that it has not applied, and
    /// the index's own commit sequence (`meta.next_sequence`).
    public var lostSequences: [UInt64] = []
    public var indexSequence: UInt64 = 0

    /// True when what the index lacks is exactly one commit that did not finish. Every commit that adds or removes a
    /// file appends exactly one sequenced record, numbered with the index's `next_sequence`, and advances it in its
    /// own transaction. So a writer killed between its record and its index commit leaves one record numbered
    /// `next_sequence` (routine: the next open indexes it), while an index that lost commits (emptied, lost its
    /// `-wal`, an older copy) lacks several. The one case the numbers cannot tell apart, an index that lost exactly
    /// its newest commit, loses nothing either once that record is indexed again (links aside).
    public var onlyAnUnfinishedCommit: Bool { lostSequences == [indexSequence] }

    /// True when the index lost committed facts (files or removals) that the packs still hold: damage to report,
    /// as opposed to the leftovers of a killed write (chunk records, one unfinished commit, a torn tail), which are
    /// routine.
    public var indexIsBehind: Bool { (!lostFiles.isEmpty || lostRemovals > 0) && !onlyAnUnfinishedCommit }

    /// The sentence `verify` prints, naming the command that fixes the state; nil when nothing needs fixing.
    public var advice: String? {
        if !damagedPacks.isEmpty {
            return "the index points into pack bytes that are gone (\(damagedPacks.joined(separator: "; "))); "
                + "run `alexandria verify --repair` to rebuild the index from what the packs hold"
        }
        if indexIsBehind || !unknownPacks.isEmpty && chunkRecords > 0 && !onlyAnUnfinishedCommit {
            return "the index is older than the packs: they hold \(lostFiles.count) file(s), \(lostRemovals) "
                + "removal(s) and \(chunkRecords) chunk(s) it does not list (an index that was emptied, lost its "
                + "-wal or was replaced by an older copy); run `alexandria verify --repair` to index them again"
        }
        if damagedBytes > 0 {
            return "\(damagedBytes) byte(s) past the index's view of the packs are neither whole records nor a torn "
                + "tail (damage; kept, and nothing in them is readable); run `alexandria verify --repair` to index "
                + "the records around them"
        }
        return nil
    }

    /// Records of a write that did not finish (not damage): the next writer indexes them and cuts the torn bytes.
    public var unfinishedWrite: Bool {
        advice == nil && (chunkRecords > 0 || tornBytes > 0 || !lostFiles.isEmpty || lostRemovals > 0)
    }
}

/// What one pass over the packs found past the index's view, ready to be applied in one transaction.
struct CatchUpPlan {
    struct Record {
        let pack: Int
        let offset: Int
        let header: PackRecordHeader
        /// Recipes only.
        var recipe: (FileRecipe, ContentHash)?
    }

    struct PackState {
        let pack: Int
        let known: Bool
        let sealed: Bool
        /// The end of the last whole record, or the file size when damaged bytes must be kept.
        var committedSize: Int
        /// Where to cut a torn tail (unsealed packs only); nil for no cut.
        var cutAt: Int?
        var seal: Bool
    }

    var drift = PackDrift()
    var records: [Record] = []
    var packs: [PackState] = []
    /// Unknown packs of zero bytes (a killed roll-over): removed.
    var emptyUnknown: [Int] = []
}

extension ContentStore {
    /// What the packs hold that the index does not list, without changing anything. Reads only pack tails past the
    /// indexed sizes (and whole packs the index does not list); a current index costs one directory listing, one
    /// `stat` per pack and one query.
    public func packDrift() throws(StoreError) -> PackDrift {
        try withReader { (db) throws(StoreError) in try Self.planCatchUp(packs: packs, db: db).drift }
    }

    /// Indexes every whole record the packs hold past the index's view and cuts torn tails, in one transaction.
    /// Throws `indexCorrupt` (naming `verify --repair`) when an indexed pack is missing or short.
    @discardableResult
    public func catchUpWithPacks() throws(StoreError) -> PackDrift {
        try asWriter { _ in lastCatchUp.withLock { $0 } ?? PackDrift() }
    }

    /// Runs under the write lock before every write: brings the index up to what the packs hold.
    func catchUpUnderLock(_ db: SQLiteConnection) throws(StoreError) -> PackDrift {
        let plan = try Self.planCatchUp(packs: packs, db: db)
        if !plan.drift.damagedPacks.isEmpty {
            throw StoreError(.indexCorrupt, plan.drift.advice ?? "run `alexandria verify --repair`")
        }
        if plan.drift.isCurrent && plan.emptyUnknown.isEmpty { return plan.drift }
        try Self.apply(plan, db: db, packs: packs)
        return plan.drift
    }

    static func planCatchUp(packs: PackFiles, db: SQLiteConnection) throws(StoreError) -> CatchUpPlan {
        var plan = CatchUpPlan()
        var indexed: [Int: (size: Int, sealed: Bool)] = [:]
        let rows = try db.statement("SELECT id, committed_size, sealed FROM packs")
        while try rows.step() { indexed[rows.int(0)] = (rows.int(1), rows.int(2) != 0) }
        let onDisk = packs.listOnDisk()
        let present = Set(onDisk)
        let remote = remotePacks(db)
        for (pack, row) in indexed.sorted(by: { $0.key < $1.key }) {
            if !present.contains(pack) && remote[pack] == nil {
                if row.size > 0 {
                    plan.drift.damagedPacks.append(
                        "pack \(packs.path(pack)) is missing; the index says it holds \(row.size) bytes")
                }
                continue
            }
        }
        for pack in onDisk {
            let path = packs.path(pack)
            var st = stat()
            guard stat(path, &st) == 0 else { continue }
            let size = Int(st.st_size)
            let row = indexed[pack]
            if let row {
                if size == row.size { continue }
                if size < row.size {
                    plan.drift.damagedPacks.append(
                        "pack \(path) is \(size) bytes; the index says \(row.size) were written")
                    continue
                }
            } else if size == 0 {
                plan.emptyUnknown.append(pack)
                continue
            } else {
                plan.drift.unknownPacks.append(pack)
            }
            try scanTail(
                pack: pack, path: path, from: row?.size ?? 0, size: size, known: row != nil,
                sealed: row?.sealed ?? true, into: &plan)
        }
        try classify(&plan, db: db)
        return plan
    }

    /// Reads the records of one pack from `start` to its end into the plan.
    private static func scanTail(
        pack: Int, path: String, from start: Int, size: Int, known: Bool, sealed: Bool, into plan: inout CatchUpPlan
    ) throws(StoreError) {
        let fd = try POSIX.open(path, O_RDONLY)
        defer { close(fd) }
        let context = ReadContext(maxChunk: Limits.maxChunkBytes)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: Limits.maxChunkBytes, alignment: 64)
        defer { raw.deallocate() }
        var offset = start
        var lastGoodEnd = start
        var damaged = false
        while offset < size {
            var header: PackRecordHeader?
            if offset + PackRecordHeader.size <= size {
                context.ensureCapacity(PackRecordHeader.size)
                let head = UnsafeMutableRawBufferPointer(rebasing: context.record[0..<PackRecordHeader.size])
                if try POSIX.pread(fd, head, at: offset, path: path) == PackRecordHeader.size,
                    let parsed = PackRecordHeader(parsing: UnsafeRawBufferPointer(head)),
                    offset + parsed.recordSize <= size
                {
                    header = parsed
                }
            }
            var good = false
            var record = CatchUpPlan.Record(pack: pack, offset: offset, header: header ?? .placeholder)
            if let header {
                context.ensureCapacity(header.recordSize)
                let bytes = UnsafeMutableRawBufferPointer(rebasing: context.record[0..<header.recordSize])
                if try POSIX.pread(fd, bytes, at: offset, path: path) == header.recordSize {
                    let payload = UnsafeRawBufferPointer(rebasing: bytes[PackRecordHeader.size...])
                    switch header.kind {
                    case .chunk:
                        let out = UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(header.rawLength)])
                        good =
                            context.coder.decode(header.codec, payload, into: out)
                            && ContentHash.of(UnsafeRawBufferPointer(out)) == header.id
                    case .recipe:
                        record.recipe = RecipeCodec.decode(payload, address: header.id)
                        good = record.recipe != nil
                    case .removal:
                        good = true
                    }
                }
            }
            if good, let header {
                plan.records.append(record)
                offset += header.recordSize
                lastGoodEnd = offset
                continue
            }
            // Not a whole, valid record. If another record starts later, this is damage, not a torn tail: keep it.
            if let next = try nextMagic(fd: fd, path: path, after: offset, size: size) {
                damaged = true
                plan.drift.damagedBytes += next - offset
                offset = next
                continue
            }
            break
        }
        let tail = size - lastGoodEnd
        var state = CatchUpPlan.PackState(
            pack: pack, known: known, sealed: sealed, committedSize: lastGoodEnd, cutAt: nil, seal: sealed || damaged)
        if tail > 0 {
            // A pack the index never listed was being written by a killed writer (GC's rewriter, whose packs are
            // listed only at its commit): a torn tail there is that writer's last record, cut like an unsealed one.
            if damaged || (sealed && known) {
                // Never cut a pack with damage in it or a sealed one: keep every byte, append nowhere after them.
                state.committedSize = size
                state.seal = true
                if !damaged { plan.drift.damagedBytes += tail }
            } else {
                state.cutAt = lastGoodEnd
                plan.drift.tornBytes += tail
            }
        }
        plan.packs.append(state)
    }

    /// Sorts the records found into what the index lacks.
    private static func classify(_ plan: inout CatchUpPlan, db: SQLiteConnection) throws(StoreError) {
        let hasChunk = try db.statement("SELECT bad FROM chunks WHERE id = ?")
        let fileSequence = try db.statement("SELECT sequence FROM files WHERE address = ?")
        let removalSequence = try db.statement("SELECT sequence FROM removals WHERE address = ?")
        func sequence(_ stmt: SQLiteStatement, _ id: ContentHash) throws(StoreError) -> Int? {
            stmt.reset()
            stmt.bind(.blob(id.bytes))
            defer { stmt.reset() }
            return try stmt.step() ? stmt.int(0) : nil
        }
        var newestRecipe: [ContentHash: UInt64] = [:]
        var newestRemoval: [ContentHash: UInt64] = [:]
        let next = try db.statement("SELECT value FROM meta WHERE key = 'next_sequence'")
        plan.drift.indexSequence = try next.step() ? UInt64(next.text(0)) ?? 0 : 0
        next.reset()
        var lost: Set<UInt64> = []
        for record in plan.records {
            let h = record.header
            switch h.kind {
            case .chunk:
                if let bad = try sequence(hasChunk, h.id), bad == 0 { continue }
                plan.drift.chunkRecords += 1
            case .recipe: newestRecipe[h.id] = max(newestRecipe[h.id] ?? 0, h.sequence)
            case .removal: newestRemoval[h.id] = max(newestRemoval[h.id] ?? 0, h.sequence)
            }
        }
        for (address, seq) in newestRecipe.sorted(by: { $0.key < $1.key }) {
            if try sequence(fileSequence, address) != nil { continue }
            let removed = max(Int(newestRemoval[address] ?? 0), try sequence(removalSequence, address) ?? 0)
            if removed > Int(seq) { continue }
            plan.drift.lostFiles.append(address)
            lost.insert(seq)
        }
        for (address, seq) in newestRemoval {
            if let known = try sequence(removalSequence, address), known >= Int(seq) { continue }
            if let file = try sequence(fileSequence, address), file > Int(seq) { continue }
            if try sequence(fileSequence, address) == nil, newestRecipe[address] == nil {
                // Removes a file the index never had: record it so a later rebuild agrees, but nothing was lost.
                continue
            }
            plan.drift.lostRemovals += 1
            lost.insert(seq)
        }
        plan.drift.lostSequences = lost.sorted()
    }

    /// Applies a plan: one transaction for the rows, then the cuts of torn tails.
    private static func apply(_ plan: CatchUpPlan, db: SQLiteConnection, packs: PackFiles) throws(StoreError) {
        try db.transaction { () throws(StoreError) in
            var live: [Int: Int] = [:]
            var touched: Set<ContentHash> = []
            let chunk = try db.statement(
                """
                INSERT INTO chunks (id, pack, offset, raw_length, stored_length, codec, refs, bad)
                VALUES (?, ?, ?, ?, ?, ?, 0, 0)
                ON CONFLICT(id) DO UPDATE SET pack = excluded.pack, offset = excluded.offset,
                    raw_length = excluded.raw_length, stored_length = excluded.stored_length,
                    codec = excluded.codec, bad = 0, linked = NULL
                WHERE chunks.bad = 1
                """)
            for r in plan.records where r.header.kind == .chunk {
                chunk.reset()
                chunk.bind(
                    .blob(r.header.id.bytes), .int(r.pack), .int(r.offset), .int(Int(r.header.rawLength)),
                    .int(Int(r.header.storedLength)), .int(Int(r.header.codec.rawValue)))
                try chunk.run()
                if db.changes > 0 {
                    live[r.pack, default: 0] += r.header.recordSize
                    touched.insert(r.header.id)
                }
            }
            // Recipes and removals in sequence order: the newest fact about an address wins, as in a rebuild.
            let facts = plan.records.filter { $0.header.kind != .chunk }.sorted {
                $0.header.sequence < $1.header.sequence
            }
            var maxSequence = 0
            for r in facts {
                let address = r.header.id
                let seq = Int(r.header.sequence)
                maxSequence = max(maxSequence, seq)
                let removal = try db.statement("SELECT sequence FROM removals WHERE address = ?")
                    .bind(.blob(address.bytes))
                let removedAt = try removal.step() ? removal.int(0) : nil
                removal.reset()
                let existing = try db.statement("SELECT sequence FROM files WHERE address = ?")
                    .bind(.blob(address.bytes))
                let fileAt = try existing.step() ? existing.int(0) : nil
                existing.reset()
                if r.header.kind == .recipe, let (recipe, root) = r.recipe {
                    if fileAt != nil { continue }
                    if let removedAt, removedAt > seq { continue }
                    try db.statement(
                        """
                        INSERT INTO files (address, size, merkle_root, chunker, chunk_count, chunk_list, sequence,
                            recipe_pack, recipe_offset, added_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """
                    ).bind(
                        .blob(address.bytes), .int(Int(recipe.size)), .blob(root.bytes),
                        .text(recipe.chunker.description), .int(recipe.chunks.count),
                        .blob(ChunkList.encode(recipe.chunks)), .int(seq), .int(r.pack), .int(r.offset),
                        .int(Int(time(nil)))
                    ).run()
                    live[r.pack, default: 0] += r.header.recordSize
                    for c in recipe.chunks { touched.insert(c.id) }
                } else if r.header.kind == .removal {
                    if let removedAt, removedAt >= seq { continue }
                    if let fileAt, fileAt > seq { continue }
                    if fileAt != nil, let recipe = try Self.recipe(of: address, in: db) {
                        for c in recipe.chunks { touched.insert(c.id) }
                        try db.statement("DELETE FROM files WHERE address = ?").bind(.blob(address.bytes)).run()
                    }
                    try db.statement(
                        "INSERT OR REPLACE INTO removals (address, sequence, pack, offset) VALUES (?, ?, ?, ?)"
                    ).bind(.blob(address.bytes), .int(seq), .int(r.pack), .int(r.offset)).run()
                    live[r.pack, default: 0] += r.header.recordSize
                }
            }
            try recount(touched, db: db)
            let next = try db.statement("SELECT value FROM meta WHERE key = 'next_sequence'")
            let current = try next.step() ? Int(next.text(0)) ?? 1 : 1
            next.reset()
            try db.statement("INSERT OR REPLACE INTO meta(key, value) VALUES ('next_sequence', ?)")
                .bind(.text(String(max(current, maxSequence + 1)))).run()
            let packRow = try db.statement(
                """
                INSERT INTO packs (id, committed_size, live_bytes, sealed) VALUES (?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET committed_size = excluded.committed_size,
                    live_bytes = packs.live_bytes + excluded.live_bytes, sealed = excluded.sealed
                """)
            for p in plan.packs {
                packRow.reset()
                // A pack the index did not know is sealed: new records go to a new pack.
                packRow.bind(
                    .int(p.pack), .int(p.committedSize), .int(live[p.pack] ?? 0), .int(p.seal || !p.known ? 1 : 0))
                try packRow.run()
            }
        }
        for p in plan.packs {
            guard let cut = p.cutAt else { continue }
            let path = packs.path(p.pack)
            let fd = open(path, O_RDWR | O_CLOEXEC)
            if fd >= 0 {
                _ = ftruncate(fd, off_t(cut))
                close(fd)
            }
        }
        for pack in plan.emptyUnknown { unlink(packs.path(pack)) }
    }

    /// Sets `refs` of `ids` to the number of file positions that use them, counted over every file row.
    private static func recount(_ ids: Set<ContentHash>, db: SQLiteConnection) throws(StoreError) {
        guard !ids.isEmpty else { return }
        var counts: [ContentHash: Int] = [:]
        let files = try db.statement("SELECT chunk_count, chunk_list FROM files")
        while try files.step() {
            let count = files.int(0)
            try files.withBlob(1) { (blob) throws(StoreError) in
                guard count >= 0, blob.count == 36 * count else { return }
                for c in ChunkList.decode(blob, count: count) where ids.contains(c.id) {
                    counts[c.id, default: 0] += 1
                }
            }
        }
        let set = try db.statement("UPDATE chunks SET refs = ? WHERE id = ?")
        for id in ids {
            set.reset()
            set.bind(.int(counts[id] ?? 0), .blob(id.bytes))
            try set.run()
        }
    }
}

extension PackRecordHeader {
    /// A header value for a record slot that did not parse; never written.
    static let placeholder = PackRecordHeader(
        kind: .removal, codec: .raw, rawLength: 0, storedLength: 0, sequence: 0, id: .empty)
}
