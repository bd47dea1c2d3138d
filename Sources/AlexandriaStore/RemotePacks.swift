import AlexandriaCore

#if canImport(Glibc)
    import Glibc
#endif

/// Where sealed packs live when they are not on the local disk: an object store (Protocol/store-s3.md). The store
/// asks it for bytes only; it trusts none of them (every record read is checked against the index and every chunk
/// against its id, exactly as for a local pack).
///
/// A pack is remote once a row of `remote_packs` names the object holding it; that row is written only after the
/// upload completed, so the index never names an object that is not there. The local copy is removed after that
/// commit. A pack with no row is local, as always: the local path is unchanged.
public protocol RemotePacks: Sendable {
    /// Copies bytes `range` of the pack object named `object` (the SHA-256 of the whole object, `objectSize` bytes
    /// long) into `buffer` (at least `range.count` bytes), and returns how many it copied (fewer only past the end
    /// of the object). An implementation may fetch more than asked (a run of adjacent records) and keep it for the
    /// next reads. May block; must not need the caller's thread to make progress. Throws when the bytes cannot be
    /// had (the engine is down, the object is gone); the store reports that as an I/O failure, never as damage.
    func read(
        object: ContentHash, objectSize: Int, range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer
    ) throws -> Int
    /// Downloads the whole pack object to `path` and checks that it hashes to `object` (for a rebuild).
    func download(object: ContentHash, to path: String) throws
}

/// A pack a writer filled and left (`StoreOptions.packFilled`): its first `size` bytes will not change, though the
/// write that filled it may still fail and remove it.
public struct FilledPack: Sendable, Hashable {
    public let pack: Int
    public let path: String
    public let size: Int
}

/// A sealed local pack that has not been moved to the object store yet.
public struct PendingPack: Sendable, Hashable {
    public let pack: Int
    public let path: String
    public let size: Int
}

extension ContentStore {
    /// The table of packs held remotely. Created with `IF NOT EXISTS` on every open so that local stores and older
    /// indexes gain it without a schema bump; a pack row's removal (GC) drops its remote row in the same transaction.
    static let remoteSchema = """
        CREATE TABLE IF NOT EXISTS remote_packs (
            id     INTEGER PRIMARY KEY,     -- packs.id
            object BLOB NOT NULL,           -- 32 bytes: SHA-256 of the whole pack object, its name in the bucket
            size   INTEGER NOT NULL         -- bytes of the object (= packs.committed_size)
        ) STRICT;
        CREATE TRIGGER IF NOT EXISTS remote_packs_follow AFTER DELETE ON packs
        BEGIN DELETE FROM remote_packs WHERE id = OLD.id; END;
        """

    /// The remote packs the index lists, by pack id. Empty when the table does not exist (an index from before).
    static func remotePacks(_ db: SQLiteConnection) -> [Int: ContentHash] {
        guard let stmt = try? db.statement("SELECT id, object FROM remote_packs") else { return [:] }
        defer { stmt.reset() }
        var out: [Int: ContentHash] = [:]
        while (try? stmt.step()) == true {
            if let object = ContentHash(bytes: stmt.blob(1)) { out[stmt.int(0)] = object }
        }
        return out
    }

    /// The object holding pack `pack` and its size, or nil when the pack is local.
    func remoteObject(of pack: Int) throws(StoreError) -> (object: ContentHash, size: Int)? {
        try withReader { (db) throws(StoreError) -> (object: ContentHash, size: Int)? in
            guard let stmt = try? db.statement("SELECT object, size FROM remote_packs WHERE id = ?") else {
                return nil
            }
            stmt.bind(.int(pack))
            defer { stmt.reset() }
            guard try stmt.step(), let object = ContentHash(bytes: stmt.blob(0)) else { return nil }
            return (object, stmt.int(1))
        }
    }

    /// Reads `into.count` bytes of pack `pack` at `offset`, from the local file or, when the pack has moved to the
    /// object store, with one ranged read of its object. Returns how many bytes it got (short at the end of a pack).
    func readPackBytes(
        pack: Int, at offset: Int, into buffer: UnsafeMutableRawBufferPointer
    ) throws(StoreError) -> Int {
        let path = packs.path(pack)
        if let remote = packs.remote {
            // A pack that is not on disk may be remote; a local one is read as always.
            let fd: Int32
            do throws(StoreError) { fd = try packs.readDescriptor(pack) } catch {
                guard error.code == .unreadablePath, let row = try remoteObject(of: pack) else { throw error }
                let (object, size) = (row.object, row.size)
                let end = min(size, offset + buffer.count)
                guard offset < end else { return 0 }
                do {
                    return try remote.read(object: object, objectSize: size, range: offset..<end, into: buffer)
                } catch {
                    throw StoreError(
                        .io, "cannot read pack \(pack) (object \(object.hex)) from the object store: \(error)")
                }
            }
            return try POSIX.pread(fd, buffer, at: offset, path: path)
        }
        return try POSIX.pread(try packs.readDescriptor(pack), buffer, at: offset, path: path)
    }

    /// Seals every unsealed pack that holds records, so it can be uploaded, and lists an empty pack for the next
    /// records. That row matters for a killed write: records it leaves are then past a known pack's committed size
    /// (an unfinished write the next writer indexes), not in a pack the index has never heard of (which `verify`
    /// must treat as an index that lost packs).
    public func sealOpenPacks() throws(StoreError) {
        try asWriter { (db) throws(StoreError) in
            try db.transaction { () throws(StoreError) in
                try db.execute("UPDATE packs SET sealed = 1 WHERE sealed = 0 AND committed_size > 0")
                try db.execute(
                    """
                    INSERT INTO packs (id, committed_size, live_bytes, sealed)
                    SELECT top + 1, 0, 0, 0 FROM (SELECT coalesce(max(id), 0) AS top FROM packs)
                    WHERE NOT EXISTS (SELECT 1 FROM packs WHERE sealed = 0)
                    """)
            }
        }
    }

    /// Makes sure an unsealed pack is listed for the next records, without sealing the one being filled (see
    /// `sealOpenPacks` for why the listing matters).
    public func listOpenPack() throws(StoreError) {
        try asWriter { (db) throws(StoreError) in
            try db.execute(
                """
                INSERT INTO packs (id, committed_size, live_bytes, sealed)
                SELECT top + 1, 0, 0, 0 FROM (SELECT coalesce(max(id), 0) AS top FROM packs)
                WHERE NOT EXISTS (SELECT 1 FROM packs WHERE sealed = 0)
                """)
        }
    }

    /// The bytes held by unsealed packs (records waiting for their pack to fill or to be sealed).
    public func openPackBytes() throws(StoreError) -> Int {
        try withReader { (db) throws(StoreError) -> Int in
            let stmt = try db.statement("SELECT coalesce(sum(committed_size), 0) FROM packs WHERE sealed = 0")
            defer { stmt.reset() }
            _ = try stmt.step()
            return stmt.int(0)
        }
    }

    /// Sealed packs still on the local disk with no remote copy recorded, oldest first.
    public func pendingUploads() throws(StoreError) -> [PendingPack] {
        try withReader { (db) throws(StoreError) -> [PendingPack] in
            let remote = Self.remotePacks(db)
            let stmt = try db.statement("SELECT id, committed_size FROM packs WHERE sealed = 1 ORDER BY id")
            defer { stmt.reset() }
            var out: [PendingPack] = []
            while try stmt.step() {
                let (id, size) = (stmt.int(0), stmt.int(1))
                guard remote[id] == nil, size > 0, POSIX.exists(packs.path(id)) else { continue }
                out.append(PendingPack(pack: id, path: packs.path(id), size: size))
            }
            return out
        }
    }

    /// Records that `pending` now lives in the object store as `object` (call only after its upload completed), then
    /// removes the local copy. Refuses when the pack changed since it was listed.
    public func recordUploaded(_ pending: PendingPack, object: ContentHash) throws(StoreError) {
        try asWriter(catchingUp: false) { (db) throws(StoreError) in
            let stmt = try db.statement("SELECT committed_size, sealed FROM packs WHERE id = ?")
            stmt.bind(.int(pending.pack))
            guard try stmt.step(), stmt.int(0) == pending.size, stmt.int(1) == 1 else {
                stmt.reset()
                throw StoreError(.io, "pack \(pending.path) changed while it was uploaded; it stays local")
            }
            stmt.reset()
            try db.statement("INSERT OR REPLACE INTO remote_packs (id, object, size) VALUES (?, ?, ?)")
                .bind(.int(pending.pack), .blob(object.bytes), .int(pending.size)).run()
        }
        unlink(pending.path)
        packs.retire(pending.pack)
    }

    /// Every pack object the index names (for GC's sweep of objects nothing names).
    public func remoteObjects() throws(StoreError) -> Set<ContentHash> {
        try withReader { (db) throws(StoreError) in Set(Self.remotePacks(db).values) }
    }
}
