import AlexandriaCore
import AlexandriaObjectStore
import AlexandriaStore
import Dispatch
import NIOCore
import NIOPosix
import Synchronization

/// `[store] backend = "s3"`: where a node keeps its sealed packs (Protocol/store-s3.md).
public struct S3StoreSettings: Sendable, Equatable {
    /// `http://host[:port]`, path-style.
    public var endpoint: String
    public var bucket: String
    /// Empty, or ending in `/`.
    public var prefix: String = ""
    public var region: String = "us-east-1"
    /// An AWS shared credentials file, used when `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` are not set.
    public var credentialsFile: String?
    /// `gc` aborts multipart uploads under the prefix that began at least this long ago (a crashed writer's). An
    /// upload still in progress must not be aborted, so this stays above the longest upload of one pack.
    public var abortUploadsAfterSeconds: Int64 = 3600

    /// The pack target of an s3 home when `[store] pack_target` is not set: the size at which a pack is sealed and
    /// its upload starts while the rest of a write is ingested (why: Protocol/store-s3.md, "Pack size").
    public static let defaultPackTargetBytes = 64 << 20

    public init(endpoint: String, bucket: String, prefix: String = "", region: String = "us-east-1") {
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
    }
}

/// The store's packs in a bucket: the `RemotePacks` the store reads through, and the async steps around it that
/// move sealed packs up (`offload`), clean the bucket (`collect`) and rebuild an index from it (`rebuild`).
public final class S3PackStore: Sendable {
    public let settings: S3StoreSettings
    public let client: S3Client
    public let objects: PackObjects
    let bridge: BlockingBridge
    let reader: S3RemotePacks
    let early: EarlyUploads

    /// The S3 client runs on event loops of its own, so a store read that blocks a caller's thread (an event loop
    /// of the gateway, a thread of the cooperative pool) never blocks the request it waits for.
    private static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    public init(settings: S3StoreSettings, environment: [String: String]) throws {
        self.settings = settings
        let credentials = try S3Credentials.resolve(environment: environment, file: settings.credentialsFile)
        client = try S3Client(
            endpoint: settings.endpoint, region: settings.region, credentials: credentials, group: Self.group)
        objects = PackObjects(
            client: client, bucket: settings.bucket, layout: try PackObjectLayout(prefix: settings.prefix))
        bridge = BlockingBridge(threads: 4)
        reader = S3RemotePacks(objects: objects, bridge: bridge)
        early = EarlyUploads(objects: objects, executor: bridge.executor)
    }

    /// What the store reads remote packs through.
    public var remotePacks: any RemotePacks { reader }

    /// What the store calls when a writer fills a pack (`StoreOptions.packFilled`): starts its upload while the
    /// write goes on. Blocks the writer while one pack is uploading and another waits (memory stays bounded).
    public var packFilled: @Sendable (FilledPack) -> Void {
        let early = self.early
        return { early.start($0) }
    }

    /// Runs an async step to completion from synchronous code (a CLI command).
    public func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        try bridge.wait(body)
    }

    /// Fails with a clear error when the engine is unreachable, the credentials are wrong or the bucket is missing.
    public func checkAccess() async throws { try await client.checkBucket(settings.bucket) }

    /// A lease keeper for this prefix, held by `holder` (the node's key, or any name without spaces).
    public func lease(holder: String, policy: LeasePolicy = LeasePolicy()) -> LeaseKeeper {
        LeaseKeeper(client: client, bucket: settings.bucket, prefix: settings.prefix, holder: holder, policy: policy)
    }

    /// Uploads every sealed local pack, and records each in the index only after its upload completed, then
    /// removes the local copy. With `sealOpen`, the pack being written is sealed first, so everything the store
    /// holds ends up in the bucket. `lease`, when given, must be held before each upload and each commit. Returns
    /// how many packs moved.
    @discardableResult
    public func offload(_ store: ContentStore, sealOpen: Bool, lease: LeaseKeeper?) async throws -> Int {
        if sealOpen { try store.sealOpenPacks() }
        await early.drain()
        var moved = 0
        for pending in try store.pendingUploads() {
            try await lease?.requireHeld()
            let object: PackObject
            if let done = early.take(path: pending.path, size: pending.size) {
                // Uploaded while the write that filled it went on (and confirmed by a HEAD then).
                object = done
            } else {
                do { object = try await objects.upload(file: pending.path) } catch {
                    // Another process of this home (the node, or a command) moved it meanwhile: done, not a failure.
                    if try !store.pendingUploads().contains(pending) { continue }
                    throw error
                }
            }
            guard object.size == UInt64(pending.size) else {
                throw ObjectStoreError(.integrity, "pack \(pending.path) changed while it was uploaded")
            }
            try await lease?.requireHeld()
            try store.recordUploaded(pending, object: object.hash)
            moved += 1
        }
        return moved
    }

    /// What `collect` removed from the bucket.
    public struct Collected: Sendable {
        public var abortedUploads = 0
        public var deletedObjects = 0
    }

    /// Aborts multipart uploads older than `staleSeconds` and deletes pack objects no index row names (left by
    /// compaction, or by a crash between an upload and its commit). Run after the store's own GC, under the lease.
    ///
    /// Order matters: the bucket (uploads, then objects) is listed first, then the local packs awaiting upload are
    /// hashed, then the index is read. An object uploaded but not yet committed still has its local pack (removed
    /// only after the commit), and one committed since the listing is in the index: neither is deleted. An upload of
    /// a pack still awaiting upload may be in progress in another process of this home (its node), so it is never
    /// aborted, whatever its age; any other listed upload is a crash's leftover, or one that completed before its
    /// pack stopped awaiting upload (before the hashing), so aborting it cannot cut into a completion.
    public func collect(
        _ store: ContentStore, lease: LeaseKeeper?, staleSeconds: Int64 = 3600
    ) async throws
        -> Collected
    {
        var result = Collected()
        try await lease?.requireHeld()
        let uploads = try await client.listMultipartUploads(bucket: settings.bucket, prefix: objects.layout.prefix)
        let listed = try await objects.list()
        var pending = Set<ContentHash>()
        for waiting in try store.pendingUploads() {
            pending.insert(try Self.hashFile(waiting.path))
        }
        result.abortedUploads = try await objects.abortStaleUploads(
            olderThanSeconds: staleSeconds, nowSeconds: LeaseKeeper.wallClockMilliseconds() / 1000,
            listed: uploads, keeping: Set(pending.map { objects.layout.key(for: $0) }))
        var keep = pending
        keep.formUnion(try store.remoteObjects())
        let orphans = listed.map(\.hash).filter { !keep.contains($0) }
        if !orphans.isEmpty {
            try await lease?.requireHeld()
            try await objects.delete(orphans)
        }
        result.deletedObjects = orphans.count
        return result
    }

    /// Rebuilds the store's index from the local packs and every pack object in the bucket (`verify --repair`).
    public func rebuild(directory: String) throws -> RebuildReport {
        let objects = self.objects
        let listed = try bridge.wait { try await objects.list() }
        return try ContentStore.rebuildIndex(directory: directory, remote: reader, objects: listed.map(\.hash))
    }

    static func hashFile(_ path: String) throws -> ContentHash {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ObjectStoreError(.configuration, "cannot open \(path)") }
        defer { close(fd) }
        var stream = SHA256Stream()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 << 20, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ObjectStoreError(.configuration, "cannot read \(path)") }
            if n == 0 { break }
            stream.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return stream.finalize()
    }
}

/// Uploads of packs a writer filled, started while its write goes on, one at a time in the order they filled.
///
/// A pack is uploaded before the write that filled it commits, so the write may still fail and remove it: the
/// object is then one no index row names, which `collect` (gc) deletes, like one left by a crash. The index learns
/// of an object only in `offload`, after the commit, from `take`; a pack whose early upload failed is uploaded there
/// again. An upload is remembered by the file's path, size, inode and modification time, so a pack file removed and
/// written again under the same name is never taken for the one uploaded.
final class EarlyUploads: Sendable {
    struct FileKey: Hashable {
        var path: String
        var size: Int
        var inode: UInt64
        var modified: Int
    }

    let objects: PackObjects
    let executor: ThreadPoolTaskExecutor
    /// One uploading and one waiting at most: a third filled pack holds its writer until the first is done.
    private let slots = DispatchSemaphore(value: 2)
    private let chain = Mutex<Task<Void, Never>?>(nil)
    private let done = Mutex<[FileKey: PackObject]>([:])

    init(objects: PackObjects, executor: ThreadPoolTaskExecutor) {
        self.objects = objects
        self.executor = executor
    }

    static func key(path: String, size: Int) -> FileKey? {
        var st = stat()
        guard stat(path, &st) == 0, Int(st.st_size) >= size else { return nil }
        return FileKey(
            path: path, size: size, inode: UInt64(st.st_ino),
            modified: Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec))
    }

    func start(_ pack: FilledPack) {
        guard pack.size > 0, let key = Self.key(path: pack.path, size: pack.size) else { return }
        slots.wait()
        chain.withLock { previous in
            let before = previous
            previous = Task(executorPreference: executor) { [self] in
                await before?.value
                defer { slots.signal() }
                // A failure is not reported here: `offload` uploads the pack again after the commit.
                guard let object = try? await objects.upload(file: pack.path, range: 0..<UInt64(pack.size)),
                    Self.key(path: pack.path, size: pack.size) == key
                else { return }
                done.withLock { $0[key] = object }
            }
        }
    }

    /// Waits for every upload started so far.
    func drain() async {
        await chain.withLock { $0 }?.value
    }

    /// The object an early upload made of the pack at `path` as it is now (`size` bytes), if one did; forgets it.
    func take(path: String, size: Int) -> PackObject? {
        guard let key = Self.key(path: path, size: size) else { return nil }
        return done.withLock { $0.removeValue(forKey: key) }.flatMap { $0.size == UInt64(size) ? $0 : nil }
    }
}

/// Ranged reads of pack objects for the store's synchronous read path: coalesced into windows that cover runs of
/// adjacent records and read ahead while a reader goes on through a pack (`RangeReadCache`), with at most
/// `readsInFlight` GETs in flight (the `PackObjects` limiter). Every record read is still checked by the store.
final class S3RemotePacks: RemotePacks {
    let objects: PackObjects
    let bridge: BlockingBridge
    let cache: RangeReadCache

    init(objects: PackObjects, bridge: BlockingBridge, policy: ReadAheadPolicy = ReadAheadPolicy()) {
        self.objects = objects
        self.bridge = bridge
        let executor = bridge.executor
        cache = RangeReadCache(
            policy: policy,
            fetch: { object, range in
                try await objects.read(object, range: UInt64(range.lowerBound)..<UInt64(range.upperBound))
            },
            wait: { body in try bridge.wait(body) },
            // On the bridge's own threads: readers blocked waiting for a window never hold up its fetch.
            spawn: { body in Task(executorPreference: executor) { await body() } })
    }

    func read(
        object: ContentHash, objectSize: Int, range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer
    ) throws -> Int {
        guard !range.isEmpty else { return 0 }
        return try cache.read(object: object, objectSize: objectSize, range: range, into: buffer)
    }

    /// A pack object that does not hash to its name is still downloaded (as it is): the rebuild checks every record
    /// in it against its own id and leaves the damaged ones out, so one flipped bit costs one chunk, not the pack.
    func download(object: ContentHash, to path: String) throws {
        let objects = self.objects
        do {
            _ = try bridge.wait { try await objects.download(object, to: path) }
        } catch let error as ObjectStoreError where error.code == .integrity {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw ObjectStoreError(.configuration, "cannot create \(path)") }
            defer { close(fd) }
            let writer = FileWriter(fd: fd)
            let key = objects.layout.key(for: object)
            _ = try bridge.wait {
                try await objects.client.getObject(bucket: objects.bucket, key: key) {
                    try writer.write($0, path: path)
                }
            }
        }
    }
}

/// Appends streamed pieces to a file (pieces arrive one at a time).
final class FileWriter: @unchecked Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    func write(_ piece: ByteBuffer, path: String) throws {
        try piece.withUnsafeReadableBytes { p in
            var done = 0
            while done < p.count {
                let n = Glibc.write(fd, p.baseAddress! + done, p.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw ObjectStoreError(.configuration, "cannot write \(path)") }
                done += n
            }
        }
    }
}
