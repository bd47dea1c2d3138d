import AlexandriaCore
import AlexandriaMetrics
import Crypto
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How hard the store works to survive a power loss (a process crash loses nothing in either mode).
public enum Durability: String, Sendable, CaseIterable {
    /// Pack bytes reach the page cache before the index commits; the kernel writes them out in its own time.
    /// A power loss can lose the newest chunks: verify-on-read then reports them missing, never serves them.
    case os
    /// `fdatasync` the packs before every index commit, and SQLite `synchronous=FULL`.
    case fsync
}

/// Settings of one open store.
public struct StoreOptions: Sendable {
    /// Largest total size of the pack files, in bytes; nil for no limit. An add that would pass it fails cleanly.
    public var budgetBytes: UInt64?
    public var durability: Durability = .os
    /// How long to wait for another writer (process or thread) before giving up.
    public var lockTimeoutSeconds: Double = 30
    /// How long SQLite waits on a lock held by another process.
    public var busyTimeoutMilliseconds: Int32 = 10_000
    public var chunker: ChunkerParameters = .v1
    /// The read size of the ingest pipeline.
    public var segmentBytes = 8 << 20
    /// Segments in flight in the ingest pipeline: bounds its memory at about this many times `segmentBytes`.
    public var segmentsInFlight = 4
    /// Whether opening the store brings the index up to what the packs hold when no writer is busy
    /// (`catchUpWithPacks`). `verify` turns it off to report the drift it finds rather than mend it silently.
    public var catchUpAtOpen = true
    /// Where sealed packs moved off the local disk are read from (`RemotePacks`); nil keeps the store local only.
    public var remotePacks: (any RemotePacks)?
    /// A writer starts a new pack once the one it appends to passes this size (`[store] pack_target`). Local stores
    /// keep 1 GiB; an object-store home uses a smaller default (Protocol/store-s3.md, "Pack size"). Only sealed packs
    /// are compressed on idle (`compressOneIdlePack`), so a smaller target gets a small mirror compressed sooner.
    public var packTargetBytes = StoreLimits.packTargetBytes
    /// Called on the writing thread when a writer leaves a pack full (it will append no more to it) while its write
    /// goes on: lets an object-store home upload the pack while the rest is ingested. The pack is not committed yet
    /// (the write may still fail and remove it). May block, which holds the writer back (backpressure).
    public var packFilled: (@Sendable (FilledPack) -> Void)?

    public init() {}
}

/// A content-addressed chunk store in one directory: pack files of chunk records and a SQLite index.
///
/// Layout: `<directory>/index.sqlite` (WAL mode), `<directory>/packs/%08d.pack`, `<directory>/write.lock`.
/// Any number of threads and processes read; one writer at a time appends (a `flock` on `write.lock` plus an
/// in-process mutex). Every chunk is hashed on every read and a mismatch is never returned.
public final class ContentStore: Sendable {
    public let directory: String
    public let options: StoreOptions
    let packs: PackFiles
    let indexPath: String
    /// The connection the writer uses. Readers never touch it.
    let writerConnection: Mutex<SQLiteConnection>
    /// Idle read connections, taken and returned by readers.
    private let readConnections = Mutex<[SQLiteConnection]>([])
    private let writeLockFile: FileLock
    private let writeMutex = Mutex<Bool>(false)
    /// What the last catch-up under the write lock found (see `catchUpWithPacks`).
    let lastCatchUp = Mutex<PackDrift?>(nil)

    /// Creates an empty store at `directory` (which may exist). Idempotent.
    public static func initialize(at directory: String) throws(StoreError) {
        try POSIX.makeDirectory(directory)
        try POSIX.makeDirectory(directory + "/packs")
        let store = try ContentStore(directory: directory, options: StoreOptions(), creating: true)
        _ = store
    }

    /// Opens an existing store.
    public convenience init(directory: String, options: StoreOptions = StoreOptions()) throws(StoreError) {
        try self.init(directory: directory, options: options, creating: false)
    }

    private init(directory: String, options: StoreOptions, creating: Bool) throws(StoreError) {
        self.directory = directory
        self.options = options
        self.indexPath = directory + "/index.sqlite"
        self.packs = PackFiles(directory: directory + "/packs", remote: options.remotePacks)
        // A missing index with packs beside it is a lost index, not a missing store: it is made again, empty, and
        // the catch-up below (or `verify --repair`) indexes what the packs hold.
        if !creating && !POSIX.exists(indexPath) && !POSIX.exists(directory + "/packs") {
            throw StoreError(.notInitialized, "no store at \(directory); run `alexandria init` first")
        }
        writeLockFile = try FileLock(path: directory + "/write.lock")
        let connection = try SQLiteConnection(
            path: indexPath, readOnly: false, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
        try connection.execute("PRAGMA journal_mode=WAL")
        try connection.execute(options.durability == .fsync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")
        try Self.migrate(connection)
        try connection.execute(Self.remoteSchema)
        writerConnection = Mutex(connection)
        if options.catchUpAtOpen && !creating { try catchUpIfIdle() }
    }

    deinit { closeIndex() }

    /// Checkpoints the index's WAL into `index.sqlite` (TRUNCATE) and closes every connection, so that every commit
    /// is in `index.sqlite` itself once the process is done (a copy of the home is then whole). Idempotent; runs
    /// from `deinit` too. A checkpoint that another process's open reader blocks is left to the last closer.
    public func closeIndex() {
        readConnections.withLock { connections in
            for c in connections { c.close() }
            connections.removeAll()
        }
        writerConnection.withLock { db in
            guard db.isOpen else { return }
            db.checkpoint()
            db.close()
        }
    }

    /// At open: if no writer holds the store, indexes what the packs hold past the index's view. A busy writer
    /// already did so when it took the lock, so skipping then loses nothing.
    private func catchUpIfIdle() throws(StoreError) {
        guard try writeLockFile.tryLock() else { return }
        defer { writeLockFile.unlock() }
        let drift = try writerConnection.withLock { (db) throws(StoreError) -> PackDrift? in
            let plan = try Self.planCatchUp(packs: packs, db: db)
            // A damaged pack is left for `verify` to report and writers to refuse; reads go on.
            if !plan.drift.damagedPacks.isEmpty { return plan.drift }
            return try catchUpUnderLock(db)
        }
        lastCatchUp.withLock { $0 = drift }
    }

    static func migrate(_ db: SQLiteConnection) throws(StoreError) {
        let stmt = try db.statement("PRAGMA user_version")
        _ = try stmt.step()
        let version = stmt.int(0)
        stmt.reset()
        if version > Schema.currentVersion {
            throw StoreError(
                .unsupportedVersion,
                "the index \(db.path) has schema version \(version); this build knows up to \(Schema.currentVersion). "
                    + "Upgrade alexandria")
        }
        if version == Schema.currentVersion { return }
        try db.transaction { () throws(StoreError) in
            for v in version..<Schema.currentVersion {
                try db.execute(Schema.migrations[v])
            }
            try db.execute("PRAGMA user_version = \(Schema.currentVersion)")
            try db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('next_sequence', '1')")
        }
    }

    // MARK: - Read connections

    func withReader<T>(_ body: (SQLiteConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        let pooled = readConnections.withLock { $0.popLast() }
        let connection: SQLiteConnection
        if let pooled {
            connection = pooled
        } else {
            connection = try SQLiteConnection(
                path: indexPath, readOnly: true, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
        }
        defer { readConnections.withLock { $0.append(connection) } }
        return try body(connection)
    }

    // MARK: - The writer

    /// Runs `body` as the store's only writer: in-process mutex first, then the cross-process `flock`.
    /// `catchingUp: false` is for writes that append nothing to the packs (flagging a bad chunk), which must work
    /// even when the packs are damaged.
    func asWriter<T>(
        catchingUp: Bool = true, _ body: (SQLiteConnection) throws(StoreError) -> T
    ) throws(StoreError) -> T {
        let deadline = FileLock.now() + options.lockTimeoutSeconds
        while !writeMutex.withLock({ busy in
            if busy { return false }
            busy = true
            return true
        }) {
            if FileLock.now() > deadline {
                throw StoreError(.indexLocked, "another writer in this process holds the store; try again")
            }
            usleep(5_000)
        }
        defer { writeMutex.withLock { $0 = false } }
        try writeLockFile.lock(timeoutSeconds: max(0, deadline - FileLock.now()))
        defer { writeLockFile.unlock() }
        return try writerConnection.withLock { (db) throws(StoreError) -> T in
            // The packs are the truth: before anything is appended, the index learns every whole record they hold
            // past its view, so no writer ever cuts or overwrites a committed record (Protocol/store-v1.md).
            if catchingUp {
                let drift = try catchUpUnderLock(db)
                lastCatchUp.withLock { $0 = drift }
            }
            return try body(db)
        }
    }

    // MARK: - Lookups

    /// Where a chunk's record is. Nil when the store does not hold it (or holds it only as a known-bad copy).
    struct ChunkLocation: Sendable {
        let id: ContentHash
        let pack: Int
        let offset: Int
        let rawLength: Int
        let storedLength: Int
        let codec: ChunkCodec
        /// Set for a linked chunk: the file outside the store whose bytes at `offset` are the chunk (plain).
        var linkedPath: String? = nil
    }

    /// The columns `location(of:)` and `verify` read, in order; `linkedPath` is NULL for a chunk in a pack.
    static let locationColumns = """
        c.id, c.pack, c.offset, c.raw_length, c.stored_length, c.codec, c.linked, l.path
        FROM chunks c LEFT JOIN linked_files l ON l.id = c.linked
        """

    /// A location from a row of `locationColumns`. Nil for a linked chunk whose file row is gone (reads as missing).
    static func location(row stmt: SQLiteStatement) throws(StoreError) -> ChunkLocation? {
        guard let id = ContentHash(bytes: stmt.blob(0)),
            let codec = ChunkCodec(rawValue: UInt8(truncatingIfNeeded: stmt.int(5)))
        else { throw StoreError(.indexCorrupt, "a chunk row in the index is damaged") }
        var loc = ChunkLocation(
            id: id, pack: stmt.int(1), offset: stmt.int(2), rawLength: stmt.int(3), storedLength: stmt.int(4),
            codec: codec)
        if !stmt.isNull(6) {
            guard !stmt.isNull(7), codec == .raw, loc.storedLength == loc.rawLength else { return nil }
            loc.linkedPath = stmt.text(7)
        }
        return loc
    }

    func location(of id: ContentHash, in db: SQLiteConnection) throws(StoreError) -> ChunkLocation? {
        let stmt = try db.statement("SELECT \(Self.locationColumns) WHERE c.id = ? AND c.bad = 0")
        stmt.bind(.blob(id.bytes))
        guard try stmt.step() else { return nil }
        defer { stmt.reset() }
        return try Self.location(row: stmt)
    }

    /// The file a chunk's bytes are read from: its pack, or the linked file.
    func sourcePath(_ location: ChunkLocation) -> String { location.linkedPath ?? packs.path(location.pack) }

    /// The recipe and Merkle root of a stored file, or nil if the store has no such file.
    public func recipe(of address: ContentHash) throws(StoreError) -> FileRecipe? {
        try withReader { (db) throws(StoreError) in try Self.recipe(of: address, in: db) }
    }

    static func recipe(of address: ContentHash, in db: SQLiteConnection) throws(StoreError) -> FileRecipe? {
        let stmt = try db.statement("SELECT size, chunker, chunk_count, chunk_list FROM files WHERE address = ?")
        stmt.bind(.blob(address.bytes))
        guard try stmt.step() else { return nil }
        defer { stmt.reset() }
        let size = UInt64(stmt.int(0))
        guard let chunker = ChunkerParameters(parsing: stmt.text(1)) else {
            throw StoreError(.indexCorrupt, "the index names an unknown chunker '\(stmt.text(1))' for \(address)")
        }
        let count = stmt.int(2)
        let chunks = try stmt.withBlob(3) { (blob) throws(StoreError) -> [ChunkRef] in
            guard count >= 0, count <= Limits.maxChunksPerFile, blob.count == 36 * count else {
                throw StoreError(.indexCorrupt, "the chunk list of \(address) in the index is damaged")
            }
            return ChunkList.decode(blob, count: count)
        }
        let recipe = FileRecipe(address: address, size: size, chunker: chunker, chunks: chunks)
        do { try recipe.validateLayout() } catch {
            throw StoreError(.indexCorrupt, "the chunk list of \(address) in the index is damaged: \(error)")
        }
        return recipe
    }

    /// Whether the store has a complete file at `address` (its row; chunk health is `verify`'s job).
    public func contains(_ address: ContentHash) throws(StoreError) -> Bool {
        try recipe(of: address) != nil
    }

    /// The stored Merkle root of a file.
    public func merkleRoot(of address: ContentHash) throws(StoreError) -> ContentHash? {
        try withReader { (db) throws(StoreError) -> ContentHash? in
            let stmt = try db.statement("SELECT merkle_root FROM files WHERE address = ?")
            stmt.bind(.blob(address.bytes))
            guard try stmt.step() else { return nil }
            defer { stmt.reset() }
            return ContentHash(bytes: stmt.blob(0))
        }
    }

    /// One row of `list()`.
    public struct FileSummary: Sendable, Hashable {
        public let address: ContentHash
        public let size: UInt64
        public let merkleRoot: ContentHash
        public let chunkCount: Int
    }

    /// Every file in the store, by address.
    public func list() throws(StoreError) -> [FileSummary] {
        try withReader { (db) throws(StoreError) in
            let stmt = try db.statement("SELECT address, size, merkle_root, chunk_count FROM files ORDER BY address")
            var out: [FileSummary] = []
            while try stmt.step() {
                guard let a = ContentHash(bytes: stmt.blob(0)), let r = ContentHash(bytes: stmt.blob(2)) else {
                    throw StoreError(.indexCorrupt, "a file row in the index is damaged")
                }
                out.append(FileSummary(address: a, size: UInt64(stmt.int(1)), merkleRoot: r, chunkCount: stmt.int(3)))
            }
            return out
        }
    }

    /// Totals for `status`.
    public struct Usage: Sendable, Hashable {
        public let files: Int
        public let chunks: Int
        public let rawBytes: UInt64
        public let storedBytes: UInt64
        public let packBytes: UInt64
    }

    public func usage() throws(StoreError) -> Usage {
        try withReader { (db) throws(StoreError) in
            let c = try db.statement(
                "SELECT count(*), coalesce(sum(raw_length), 0), "
                    + "coalesce(sum(CASE WHEN linked IS NULL THEN stored_length + 56 ELSE 0 END), 0) FROM chunks")
            _ = try c.step()
            let (chunks, raw, stored) = (c.int(0), c.int(1), c.int(2))
            c.reset()
            let f = try db.statement("SELECT count(*) FROM files")
            _ = try f.step()
            let files = f.int(0)
            f.reset()
            let p = try db.statement("SELECT coalesce(sum(committed_size), 0) FROM packs")
            _ = try p.step()
            let packBytes = p.int(0)
            p.reset()
            return Usage(
                files: files, chunks: chunks, rawBytes: UInt64(raw), storedBytes: UInt64(stored),
                packBytes: UInt64(packBytes))
        }
    }

    // MARK: - Verified reads

    /// Reads the chunk at `location`, checks its record header against the index, decodes it into `destination`
    /// (exactly `rawLength` bytes) and checks its SHA-256. Throws `corruptChunk` naming the pack and offset.
    func readVerified(
        _ location: ChunkLocation, into destination: UnsafeMutableRawBufferPointer, context: ReadContext
    ) throws(StoreError) {
        try load(location, into: destination, context: context)
        guard SHA256Stream.hash(UnsafeRawBufferPointer(destination)) == location.id else {
            NodeMetrics.chunk(verified: false, source: .store)
            throw Self.corrupt(location, path: sourcePath(location), "its bytes do not hash to its id")
        }
        NodeMetrics.chunk(verified: true, source: .store)
    }

    /// Two chunks read and decoded, then hashed together on one core (the two-way SHA-NI kernel).
    func readVerifiedPair(
        _ a: ChunkLocation, into da: UnsafeMutableRawBufferPointer, context ca: ReadContext,
        _ b: ChunkLocation, into db: UnsafeMutableRawBufferPointer, context cb: ReadContext
    ) -> (StoreError?, StoreError?) {
        var ea: StoreError?
        var eb: StoreError?
        do throws(StoreError) { try load(a, into: da, context: ca) } catch { ea = error }
        do throws(StoreError) { try load(b, into: db, context: cb) } catch { eb = error }
        let (ha, hb) = SHA256Stream.hashPair(
            ea == nil ? UnsafeRawBufferPointer(da) : UnsafeRawBufferPointer(start: nil, count: 0),
            eb == nil ? UnsafeRawBufferPointer(db) : UnsafeRawBufferPointer(start: nil, count: 0))
        if ea == nil { NodeMetrics.chunk(verified: ha == a.id, source: .store) }
        if eb == nil { NodeMetrics.chunk(verified: hb == b.id, source: .store) }
        if ea == nil, ha != a.id { ea = Self.corrupt(a, path: sourcePath(a), "its bytes do not hash to its id") }
        if eb == nil, hb != b.id { eb = Self.corrupt(b, path: sourcePath(b), "its bytes do not hash to its id") }
        return (ea, eb)
    }

    static func corrupt(_ location: ChunkLocation, path: String, _ why: String) -> StoreError {
        StoreError(
            .corruptChunk,
            "chunk \(location.id) in \(path) at offset \(location.offset) is damaged: \(why); "
                + "it is treated as missing (re-add the file or fetch it from a peer)")
    }

    /// `load` for callers that hash the bytes themselves (audit pairs them with the file stream).
    func loadForAudit(
        _ location: ChunkLocation, into destination: UnsafeMutableRawBufferPointer, context: ReadContext
    ) throws(StoreError) {
        try load(location, into: destination, context: context)
    }

    /// Reads a chunk's record, checks its header against the index and decodes it. Does not hash.
    private func load(
        _ location: ChunkLocation, into destination: UnsafeMutableRawBufferPointer, context: ReadContext
    ) throws(StoreError) {
        if let linked = location.linkedPath { return try loadLinked(location, path: linked, into: destination) }
        let recordSize = PackRecordHeader.size + location.storedLength
        let path = packs.path(location.pack)
        func corrupt(_ why: String) -> StoreError { Self.corrupt(location, path: path, why) }
        func check(_ record: UnsafeMutableRawBufferPointer) throws(StoreError) {
            guard let header = PackRecordHeader(parsing: UnsafeRawBufferPointer(record)) else {
                throw corrupt("the record header is not valid")
            }
            guard header.kind == .chunk, header.id == location.id, Int(header.rawLength) == location.rawLength,
                Int(header.storedLength) == location.storedLength, header.codec == location.codec,
                destination.count == location.rawLength
            else { throw corrupt("the record header does not match the index") }
        }
        if location.codec == .raw, location.storedLength == location.rawLength,
            destination.count == location.rawLength, let fd = try? packs.readDescriptor(location.pack)
        {
            // A raw chunk's payload is its bytes: only the header goes to the scratch, the payload straight into the
            // destination (one copy fewer; the caller hashes the destination before anything uses it).
            let header = UnsafeMutableRawBufferPointer(rebasing: context.record[0..<PackRecordHeader.size])
            let n = try POSIX.pread(fd, header, destination, at: location.offset, path: path)
            guard n == recordSize else { throw corrupt("the pack ends \(recordSize - n) bytes early") }
            return try check(header)
        }
        context.ensureCapacity(recordSize)
        let record = UnsafeMutableRawBufferPointer(rebasing: context.record[0..<recordSize])
        let n = try readPackBytes(pack: location.pack, at: location.offset, into: record)
        guard n == recordSize else { throw corrupt("the pack ends \(recordSize - n) bytes early") }
        try check(record)
        let payload = UnsafeRawBufferPointer(rebasing: record[PackRecordHeader.size..<recordSize])
        guard context.coder.decode(location.codec, payload, into: destination) else {
            throw corrupt("the stored bytes do not decode")
        }
    }

    /// Reads a linked chunk's plain bytes from the file outside the store. A file that is gone, not a regular file
    /// (a FIFO must not block the reader) or too short is `corruptChunk`: the chunk then reads as missing.
    private func loadLinked(
        _ location: ChunkLocation, path: String, into destination: UnsafeMutableRawBufferPointer
    ) throws(StoreError) {
        func corrupt(_ why: String) -> StoreError { Self.corrupt(location, path: path, why) }
        guard destination.count == location.rawLength else { throw corrupt("the index names a wrong length") }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { throw corrupt("the linked file cannot be opened (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw corrupt("the linked file is not a regular file")
        }
        let n = try POSIX.pread(fd, destination, at: location.offset, path: path)
        guard n == location.rawLength else {
            throw corrupt("the linked file ends \(location.rawLength - n) bytes early")
        }
    }

    /// Marks a chunk as bad so it is treated as missing until a good copy replaces it. Best effort.
    func markBad(_ id: ContentHash) {
        try? asWriter(catchingUp: false) { (db) throws(StoreError) in
            try db.statement("UPDATE chunks SET bad = 1 WHERE id = ?").bind(.blob(id.bytes)).run()
        }
    }

    /// Returns one verified chunk's bytes.
    public func chunk(_ id: ContentHash) throws(StoreError) -> [UInt8] {
        guard let location = try withReader({ (db) throws(StoreError) in try location(of: id, in: db) }) else {
            throw StoreError(.missingChunk, "this store does not hold chunk \(id)")
        }
        let context = ReadContext(maxChunk: location.rawLength)
        var out = [UInt8](repeating: 0, count: location.rawLength)
        do throws(StoreError) {
            try out.withMutableBytes { (buffer) throws(StoreError) in
                try readVerified(location, into: buffer, context: context)
            }
        } catch {
            if error.code == .corruptChunk { markBad(id) }
            throw error
        }
        return out
    }

    /// Streams the verified bytes of `range` (half-open; nil for the whole file) of the file at `address` to `sink`,
    /// in order. Chunks are read and hashed on all cores, a few ahead of the one being written; nothing reaches
    /// `sink` before its chunk's hash matched.
    public func read(
        _ address: ContentHash, range: Range<UInt64>? = nil,
        to sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard let recipe = try recipe(of: address) else {
            throw StoreError(.unknownAddress, "this store has no file \(address); `alexandria add` it or fetch it")
        }
        let wanted = range ?? 0..<recipe.size
        guard wanted.lowerBound <= wanted.upperBound, wanted.upperBound <= recipe.size else {
            throw StoreError(
                .rangeNotSatisfiable,
                "the range \(wanted.lowerBound)-\(wanted.upperBound) is outside \(address), which has \(recipe.size) bytes"
            )
        }
        let indices = recipe.chunkIndices(covering: wanted)
        if indices.isEmpty { return }
        let locations = try locate(recipe, chunks: indices).locations
        let window = ReadWindow(slots: 8, maxChunk: recipe.chunker.maxSize)
        var next = 0
        while next < locations.count {
            let batch = min(window.slots.count, locations.count - next)
            let base = next
            let failure = Mutex<(Int, StoreError)?>(nil)
            window.verify(store: self, locations[base..<base + batch]) { i, error in
                failure.withLock { if $0 == nil { $0 = (i, error) } }
            }
            if let (i, error) = failure.withLock({ $0 }) {
                if error.code == .corruptChunk { markBad(locations[base + i].id) }
                throw error
            }
            for i in 0..<batch {
                let chunk = recipe.chunks[indices.lowerBound + base + i]
                let from = max(wanted.lowerBound, chunk.offset) - chunk.offset
                let to = min(wanted.upperBound, chunk.end) - chunk.offset
                try sink(UnsafeRawBufferPointer(rebasing: window.slots[i].buffer[Int(from)..<Int(to)]))
            }
            next += batch
        }
    }
}

/// Per-thread scratch for verified reads: the record buffer and a decoder.
final class ReadContext: @unchecked Sendable {
    var record: UnsafeMutableRawBufferPointer
    let coder: ChunkCoder

    init(maxChunk: Int) {
        record = .allocate(byteCount: PackRecordHeader.size + maxChunk + maxChunk / 8 + 64, alignment: 64)
        coder = ChunkCoder(maxChunk: max(maxChunk, 1))
    }

    func ensureCapacity(_ n: Int) {
        if record.count < n {
            record.deallocate()
            record = .allocate(byteCount: n, alignment: 64)
        }
    }

    deinit { record.deallocate() }
}

/// A few chunk-sized buffers with their contexts, for reading ahead in parallel.
final class ReadWindow: @unchecked Sendable {
    final class Slot: @unchecked Sendable {
        let buffer: UnsafeMutableRawBufferPointer
        let context: ReadContext
        /// An encoded payload waiting to be appended (it lives in `context.coder`'s scratch space).
        var stagedPayload: UnsafeRawBufferPointer?
        init(maxChunk: Int) {
            buffer = .allocate(byteCount: maxChunk, alignment: 64)
            context = ReadContext(maxChunk: maxChunk)
        }
        deinit { buffer.deallocate() }
    }

    let slots: [Slot]

    init(slots: Int, maxChunk: Int) { self.slots = (0..<slots).map { _ in Slot(maxChunk: maxChunk) } }

    /// Reads and verifies `locations` (at most `slots.count`) into the slots in order, two chunks per core hashed
    /// together; calls `failed` for each chunk that is damaged (from worker threads).
    func verify(
        store: ContentStore, _ locations: ArraySlice<ContentStore.ChunkLocation>,
        failed: @Sendable (Int, StoreError) -> Void
    ) {
        let items = Array(locations)
        DispatchQueue.concurrentPerform(iterations: (items.count + 1) / 2) { pair in
            let i = 2 * pair
            let a = items[i]
            let sa = slots[i]
            guard a.rawLength <= sa.buffer.count else {
                failed(i, ContentStore.corrupt(a, path: store.sourcePath(a), "it claims too many bytes"))
                return
            }
            let da = UnsafeMutableRawBufferPointer(rebasing: sa.buffer[0..<a.rawLength])
            if i + 1 < items.count {
                let b = items[i + 1]
                let sb = slots[i + 1]
                guard b.rawLength <= sb.buffer.count else {
                    failed(i + 1, ContentStore.corrupt(b, path: store.sourcePath(b), "it claims too many bytes"))
                    return
                }
                let db = UnsafeMutableRawBufferPointer(rebasing: sb.buffer[0..<b.rawLength])
                let (ea, eb) = store.readVerifiedPair(
                    a, into: da, context: sa.context, b, into: db, context: sb.context)
                if let ea { failed(i, ea) }
                if let eb { failed(i + 1, eb) }
            } else {
                do throws(StoreError) { try store.readVerified(a, into: da, context: sa.context) } catch {
                    failed(i, error)
                }
            }
        }
    }
}
