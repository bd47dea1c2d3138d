import AlexandriaCore

#if canImport(Glibc)
    import Glibc
#endif

/// What an index rebuild found in the packs.
public struct RebuildReport: Sendable {
    public var packsScanned = 0
    public var chunks = 0
    public var files = 0
    /// Chunk records whose bytes did not match their id; left out of the new index.
    public var damagedChunks = 0
    /// Bytes cut off pack tails that held no complete, valid record.
    public var truncatedBytes = 0
    /// Files whose recipe names chunks no pack holds intact.
    public var incompleteFiles: [ContentHash] = []
    /// Chunks held by reference to a fetched file, carried over from the old index.
    public var linkedChunks = 0
}

extension ContentStore {
    /// Rebuilds `index.sqlite` from the pack files alone, for when the index is damaged, truncated or lost.
    ///
    /// Every chunk record is decoded and hashed (a damaged one is left out); for each address the recipe or removal
    /// record with the highest sequence number decides whether the file exists. The new index is written beside the
    /// old one and renamed over it only when complete, so an interrupted rebuild changes nothing.
    ///
    /// With `remote`, the pack objects named in `objects` are indexed as well (the bucket alone is enough): each is
    /// downloaded to a scratch file, checked against its name, scanned like a local pack and removed again, and the
    /// new index records it as remote under a pack id after the local ones.
    public static func rebuildIndex(
        directory: String, remote: (any RemotePacks)? = nil, objects: [ContentHash] = []
    ) throws(StoreError) -> RebuildReport {
        let lock = try FileLock(path: directory + "/write.lock")
        try lock.lock(timeoutSeconds: 30)
        defer { lock.unlock() }
        let packs = PackFiles(directory: directory + "/packs")
        var entries: [(pack: Int, object: ContentHash?)] = packs.listOnDisk().map { ($0, nil) }
        var nextPack = (entries.last?.pack ?? 0) + 1
        if remote != nil {
            for object in Set(objects).sorted(by: { $0.hex < $1.hex }) {
                entries.append((nextPack, object))
                nextPack += 1
            }
        }
        let scratch = directory + "/packs/rebuild-download.tmp"
        var remoteRows: [(Int, ContentHash, Int)] = []
        let fresh = directory + "/index.sqlite.rebuild"
        for suffix in ["", "-wal", "-shm"] { unlink(fresh + suffix) }
        var report = RebuildReport()

        struct ChunkRow {
            let pack: Int
            let offset: Int
            let header: PackRecordHeader
        }
        var chunks: [ContentHash: ChunkRow] = [:]
        var recipes: [ContentHash: (sequence: UInt64, recipe: FileRecipe, root: ContentHash, pack: Int, offset: Int)] =
            [:]
        var removals: [ContentHash: (sequence: UInt64, pack: Int, offset: Int)] = [:]
        var packSizes: [(Int, Int)] = []
        let context = ReadContext(maxChunk: Limits.maxChunkBytes)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: Limits.maxChunkBytes, alignment: 64)
        defer { raw.deallocate() }

        for (pack, object) in entries {
            report.packsScanned += 1
            var path = packs.path(pack)
            if let object, let remote {
                path = scratch
                do { try remote.download(object: object, to: scratch) } catch {
                    throw StoreError(.io, "cannot download pack object \(object.hex) for the rebuild: \(error)")
                }
            }
            let fd = try POSIX.open(path, O_RDONLY)
            defer {
                close(fd)
                if object != nil { unlink(scratch) }
            }
            let size = try POSIX.fileSize(fd, path: path)
            var offset = 0
            var lastGoodEnd = 0
            while offset + PackRecordHeader.size <= size {
                context.ensureCapacity(PackRecordHeader.size)
                let head = UnsafeMutableRawBufferPointer(rebasing: context.record[0..<PackRecordHeader.size])
                var header: PackRecordHeader?
                if try POSIX.pread(fd, head, at: offset, path: path) == PackRecordHeader.size,
                    let parsed = PackRecordHeader(parsing: UnsafeRawBufferPointer(head)),
                    offset + parsed.recordSize <= size
                {
                    header = parsed
                }
                guard let header else {
                    // A damaged header: skip to the next record boundary rather than lose the rest of the pack.
                    guard let next = try Self.nextMagic(fd: fd, path: path, after: offset, size: size) else { break }
                    report.truncatedBytes += next - offset
                    offset = next
                    continue
                }
                context.ensureCapacity(header.recordSize)
                let record = UnsafeMutableRawBufferPointer(rebasing: context.record[0..<header.recordSize])
                guard try POSIX.pread(fd, record, at: offset, path: path) == header.recordSize else { break }
                let payload = UnsafeRawBufferPointer(rebasing: record[PackRecordHeader.size...])
                switch header.kind {
                case .chunk:
                    let out = UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(header.rawLength)])
                    if context.coder.decode(header.codec, payload, into: out),
                        ContentHash.of(UnsafeRawBufferPointer(out)) == header.id
                    {
                        if chunks[header.id] == nil {
                            chunks[header.id] = ChunkRow(pack: pack, offset: offset, header: header)
                        }
                    } else {
                        report.damagedChunks += 1
                    }
                case .recipe:
                    if let (recipe, root) = RecipeCodec.decode(payload, address: header.id),
                        recipes[header.id].map({ $0.sequence < header.sequence }) ?? true
                    {
                        recipes[header.id] = (header.sequence, recipe, root, pack, offset)
                    }
                case .removal:
                    if removals[header.id].map({ $0.sequence < header.sequence }) ?? true {
                        removals[header.id] = (header.sequence, pack, offset)
                    }
                }
                offset += header.recordSize
                lastGoodEnd = offset
            }
            report.truncatedBytes += size - max(offset, lastGoodEnd)
            // Rebuilt packs are sealed at their whole size: new records go to a new pack, nothing is appended after a
            // damaged tail, and the damaged bytes are kept (never cut) for a later look.
            _ = lastGoodEnd
            packSizes.append((pack, size))
            if let object { remoteRows.append((pack, object, size)) }
        }

        // Links live only in the index: carry over every one the old index can still give (a damaged row reads as
        // missing, never as wrong bytes: linked chunks are hashed on every read).
        let links = salvageLinks(directory + "/index.sqlite")
        let linkedIDs = Set(links.map(\.id))
        let db = try SQLiteConnection(path: fresh, readOnly: false, busyTimeoutMilliseconds: 10_000)
        try db.execute("PRAGMA journal_mode=WAL")
        try migrate(db)
        try db.execute(remoteSchema)
        var nextSequence: UInt64 = 1
        try db.transaction { () throws(StoreError) in
            var refs: [ContentHash: Int] = [:]
            var live: [Int: Int] = [:]
            let file = try db.statement(
                """
                INSERT INTO files (address, size, merkle_root, chunker, chunk_count, chunk_list, sequence,
                    recipe_pack, recipe_offset, added_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for (address, r) in recipes.sorted(by: { $0.key < $1.key }) {
                nextSequence = max(nextSequence, r.sequence + 1)
                if let removed = removals[address], removed.sequence > r.sequence { continue }
                file.reset()
                file.bind(
                    .blob(address.bytes), .int(Int(r.recipe.size)), .blob(r.root.bytes),
                    .text(r.recipe.chunker.description), .int(r.recipe.chunks.count),
                    .blob(ChunkList.encode(r.recipe.chunks)), .int(Int(r.sequence)), .int(r.pack), .int(r.offset),
                    .int(Int(time(nil))))
                try file.run()
                report.files += 1
                live[r.pack, default: 0] += PackRecordHeader.size + 45 + 36 * r.recipe.chunks.count
                var complete = true
                for chunk in r.recipe.chunks {
                    refs[chunk.id, default: 0] += 1
                    if chunks[chunk.id] == nil && !linkedIDs.contains(chunk.id) { complete = false }
                }
                if !complete { report.incompleteFiles.append(address) }
            }
            let removal = try db.statement(
                "INSERT INTO removals (address, sequence, pack, offset) VALUES (?, ?, ?, ?)")
            for (address, r) in removals {
                nextSequence = max(nextSequence, r.sequence + 1)
                removal.reset()
                removal.bind(.blob(address.bytes), .int(Int(r.sequence)), .int(r.pack), .int(r.offset))
                try removal.run()
                live[r.pack, default: 0] += PackRecordHeader.size
            }
            let chunk = try db.statement(
                """
                INSERT INTO chunks (id, pack, offset, raw_length, stored_length, codec, refs, bad)
                VALUES (?, ?, ?, ?, ?, ?, ?, 0)
                """)
            for (id, row) in chunks {
                chunk.reset()
                chunk.bind(
                    .blob(id.bytes), .int(row.pack), .int(row.offset), .int(Int(row.header.rawLength)),
                    .int(Int(row.header.storedLength)), .int(Int(row.header.codec.rawValue)), .int(refs[id] ?? 0))
                try chunk.run()
                live[row.pack, default: 0] += row.header.recordSize
                report.chunks += 1
            }
            let linkedFile = try db.statement("INSERT OR IGNORE INTO linked_files (path) VALUES (?)")
            let linkedFileID = try db.statement("SELECT id FROM linked_files WHERE path = ?")
            let linked = try db.statement(
                """
                INSERT OR IGNORE INTO chunks (id, pack, offset, raw_length, stored_length, codec, refs, bad, linked)
                VALUES (?, -1, ?, ?, ?, 0, ?, 0, ?)
                """)
            for link in links where chunks[link.id] == nil {
                linkedFile.reset()
                try linkedFile.bind(.text(link.path)).run()
                linkedFileID.reset()
                linkedFileID.bind(.text(link.path))
                guard try linkedFileID.step() else { continue }
                let file = linkedFileID.int(0)
                linkedFileID.reset()
                linked.reset()
                linked.bind(
                    .blob(link.id.bytes), .int(link.offset), .int(link.length), .int(link.length),
                    .int(refs[link.id] ?? 0), .int(file))
                try linked.run()
                report.linkedChunks += 1
            }
            let packRow = try db.statement(
                "INSERT INTO packs (id, committed_size, live_bytes, sealed) VALUES (?, ?, ?, 1)")
            for (pack, size) in packSizes {
                packRow.reset()
                packRow.bind(.int(pack), .int(size), .int(live[pack] ?? 0))
                try packRow.run()
            }
            let remoteRow = try db.statement("INSERT INTO remote_packs (id, object, size) VALUES (?, ?, ?)")
            for (pack, object, size) in remoteRows {
                remoteRow.reset()
                remoteRow.bind(.int(pack), .blob(object.bytes), .int(size))
                try remoteRow.run()
            }
            try db.statement("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_sequence', ?)")
                .bind(.text(String(nextSequence))).run()
        }
        try db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        let index = directory + "/index.sqlite"
        for suffix in ["-wal", "-shm"] { unlink(index + suffix) }
        guard rename(fresh, index) == 0 else { throw StoreError.posix("cannot replace", path: index) }
        for suffix in ["-wal", "-shm"] { unlink(fresh + suffix) }
        POSIX.fsyncDirectory(directory)
        return report
    }

    /// The linked chunks an old index still lists (id, offset and length in the file, the file's path); empty if it
    /// cannot be read at all.
    static func salvageLinks(_ path: String) -> [(id: ContentHash, offset: Int, length: Int, path: String)] {
        guard access(path, F_OK) == 0,
            let old = try? SQLiteConnection(path: path, readOnly: true, busyTimeoutMilliseconds: 1000),
            let stmt = try? old.statement(
                """
                SELECT c.id, c.offset, c.raw_length, f.path FROM chunks c JOIN linked_files f ON c.linked = f.id
                WHERE c.pack = -1 AND c.bad = 0
                """)
        else { return [] }
        var out: [(id: ContentHash, offset: Int, length: Int, path: String)] = []
        while (try? stmt.step()) == true {
            guard let id = ContentHash(bytes: stmt.blob(0)), stmt.int(1) >= 0, stmt.int(2) > 0,
                stmt.int(2) <= Limits.maxChunkBytes, stmt.text(3).hasPrefix("/")
            else { continue }
            out.append((id, stmt.int(1), stmt.int(2), stmt.text(3)))
        }
        stmt.reset()
        return out
    }

    /// The offset of the next record magic after `offset`, or nil if none before `size`.
    static func nextMagic(fd: Int32, path: String, after offset: Int, size: Int) throws(StoreError) -> Int? {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var at = offset + 1
        while at + 4 <= size {
            let n = try buffer.withMutableBytes { (p) throws(StoreError) in try POSIX.pread(fd, p, at: at, path: path) }
            if n < 4 { return nil }
            var i = 0
            while i + 3 < n {
                if buffer[i] == 0x41 && buffer[i + 1] == 0x4C && buffer[i + 2] == 0x58 && buffer[i + 3] == 0x52 {
                    return at + i
                }
                i += 1
            }
            at += n - 3
        }
        return nil
    }
}
