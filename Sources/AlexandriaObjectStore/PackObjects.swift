import AlexandriaCore
import Crypto
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where pack objects live in a bucket: `<prefix>packs/<first 2 hex digits>/<64 hex digits>.pack`, named by the
/// SHA-256 of the whole object (Protocol/store-s3.md). The two-digit fan-out keeps listings of a prefix small and
/// lets engines that shard by key prefix spread the load.
public struct PackObjectLayout: Sendable, Equatable {
    /// Empty, or ending in `/`.
    public let prefix: String

    public init(prefix: String) throws {
        guard prefix.isEmpty || (prefix.hasSuffix("/") && !prefix.hasPrefix("/") && !prefix.contains("//")) else {
            throw ObjectStoreError(
                .configuration, "S3 prefix '\(prefix)' must be empty or end in '/' (and not start with '/')")
        }
        guard prefix.utf8.count <= 512 else {
            throw ObjectStoreError(.configuration, "S3 prefix is over 512 bytes")
        }
        self.prefix = prefix
    }

    public var packsPrefix: String { prefix + "packs/" }

    public func key(for pack: ContentHash) -> String {
        let hex = pack.hex
        return "\(packsPrefix)\(hex.prefix(2))/\(hex).pack"
    }

    /// The pack a key names, or nil for any other key (which the store ignores and never deletes).
    public func pack(fromKey key: String) -> ContentHash? {
        guard key.hasPrefix(packsPrefix), key.hasSuffix(".pack") else { return nil }
        let rest = key.dropFirst(packsPrefix.count).dropLast(5)
        guard rest.count == 67, rest.dropFirst(2).first == "/" else { return nil }
        let hex = rest.dropFirst(3)
        guard rest.prefix(2) == hex.prefix(2), let hash = ContentHash(canonical: ContentHash.prefix + hex) else {
            return nil
        }
        return hash
    }
}

/// Settings for moving packs to and from a bucket.
public struct PackTransferOptions: Sendable {
    /// Multipart part size (S3's minimum is 5 MiB for all but the last part). Memory for an upload is about
    /// `partBytes × partsInFlight`.
    public var partBytes = 16 << 20
    public var partsInFlight = 4
    /// Ranged GETs in flight at once, across all readers of one `PackObjects`.
    public var readsInFlight = 16
    /// Objects at or under this size go up in one PUT instead of a multipart upload.
    public var singlePutBytes = 16 << 20

    public init() {}
}

/// One pack object in the bucket.
public struct PackObject: Sendable, Equatable {
    public var hash: ContentHash
    public var key: String
    public var size: UInt64
}

/// Immutable pack objects in a bucket: upload (content-named, multipart, idempotent), ranged and whole reads that
/// are verified, listing, deletion, and cleanup of uploads a crash left half done.
///
/// Writes are crash-safe by construction: an object appears under its key only when CompleteMultipartUpload (or
/// the single PUT) succeeded, so a caller that records a pack in its index only after `upload` returned never
/// points at a missing object. A blind overwrite of an existing key writes the same bytes (the key is their hash),
/// which is why the engine's missing conditional PUT (`If-None-Match: *` answers 501 on Swift) does not matter.
public final class PackObjects: Sendable {
    public let client: S3Client
    public let bucket: String
    public let layout: PackObjectLayout
    public let options: PackTransferOptions
    let reads: AsyncLimiter

    public init(client: S3Client, bucket: String, layout: PackObjectLayout, options: PackTransferOptions = .init()) {
        self.client = client
        self.bucket = bucket
        self.layout = layout
        self.options = options
        self.reads = AsyncLimiter(limit: max(1, options.readsInFlight))
    }

    // MARK: - Upload

    /// Uploads bytes `range` (nil: all) of the local file at `path` as a pack object named by their SHA-256, and
    /// returns it once the object is complete in the bucket. If an object of that name and size is already there,
    /// nothing is sent (two nodes, or a retry after a crash, converge on the same object).
    ///
    /// The file must not change during the call (a sealed pack). Its bytes are hashed in a first pass and each
    /// part is re-read for sending, with its MD5 checked by the engine and against the part's ETag.
    public func upload(file path: String, range: Range<UInt64>? = nil) async throws -> PackObject {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ObjectStoreError(.configuration, "cannot open pack \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ObjectStoreError(.configuration, "cannot stat pack \(path): \(String(cString: strerror(errno)))")
        }
        let whole = 0..<UInt64(st.st_size)
        let slice = range ?? whole
        guard slice.lowerBound <= slice.upperBound, slice.upperBound <= whole.upperBound, !slice.isEmpty else {
            throw ObjectStoreError(.configuration, "pack \(path): range \(slice) is empty or outside the file")
        }
        let hash = try Self.hash(fd: fd, range: slice, path: path)
        let key = layout.key(for: hash)
        let size = slice.upperBound - slice.lowerBound
        if let existing = try await client.headObject(bucket: bucket, key: key), existing.size == size {
            return PackObject(hash: hash, key: key, size: size)
        }
        if size <= UInt64(options.singlePutBytes) {
            let body = try Self.read(fd: fd, range: slice, path: path)
            try await client.putObject(bucket: bucket, key: key, body: body)
        } else {
            try await multipart(fd: fd, slice: slice, path: path, key: key)
        }
        guard let done = try await client.headObject(bucket: bucket, key: key), done.size == size else {
            throw ObjectStoreError(
                .badResponse, "pack \(key) is not in \(bucket) with \(size) bytes after its upload completed")
        }
        return PackObject(hash: hash, key: key, size: size)
    }

    private func multipart(fd: Int32, slice: Range<UInt64>, path: String, key: String) async throws {
        let partBytes = UInt64(max(options.partBytes, ObjectStoreLimits.minPartBytes))
        let size = slice.upperBound - slice.lowerBound
        let count = Int((size + partBytes - 1) / partBytes)
        guard count <= ObjectStoreLimits.maxParts else {
            throw ObjectStoreError(.limitExceeded, "pack \(path) needs \(count) parts; the most is 10000")
        }
        let uploadId = try await client.createMultipartUpload(bucket: bucket, key: key)
        do {
            var etags = [String](repeating: "", count: count)
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                var next = 0
                var running = 0
                while next < count || running > 0 {
                    while next < count && running < max(1, options.partsInFlight) {
                        let n = next
                        let from = slice.lowerBound + UInt64(n) * partBytes
                        let to = min(slice.upperBound, from + partBytes)
                        let body = try Self.read(fd: fd, range: from..<to, path: path)
                        group.addTask {
                            let etag = try await self.client.uploadPart(
                                bucket: self.bucket, key: key, uploadId: uploadId, number: n + 1, body: body)
                            return (n, etag)
                        }
                        next += 1
                        running += 1
                    }
                    if let (n, etag) = try await group.next() {
                        etags[n] = etag
                        running -= 1
                    }
                }
            }
            try await client.completeMultipartUpload(bucket: bucket, key: key, uploadId: uploadId, etags: etags)
        } catch {
            // Best effort: gc's `abortStaleUploads` removes it later if this fails too.
            try? await client.abortMultipartUpload(bucket: bucket, key: key, uploadId: uploadId)
            throw error
        }
    }

    // MARK: - Reads

    /// Bytes `range` of a pack object, fetched with one ranged GET (at most `readsInFlight` at once). The caller
    /// verifies what it reads (a record's chunk against its id); these bytes are not trusted here.
    public func read(_ pack: ContentHash, range: Range<UInt64>) async throws -> ByteBuffer {
        try await reads.run {
            try await self.client.getObject(
                bucket: self.bucket, key: self.layout.key(for: pack), range: range, maxBytes: range.count)
        }
    }

    /// Downloads a whole pack object to `path` (through `path.partial`, renamed when complete) and checks that its
    /// bytes hash to its name. A mismatch removes the partial file and throws `integrity`.
    public func download(_ pack: ContentHash, to path: String) async throws -> UInt64 {
        let partial = path + ".partial"
        let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ObjectStoreError(.configuration, "cannot create \(partial): \(String(cString: strerror(errno)))")
        }
        let state = DownloadState(fd: fd)
        let key = layout.key(for: pack)
        do {
            let n = try await client.getObject(bucket: bucket, key: key) { piece in
                try state.write(piece, path: partial)
            }
            close(fd)
            guard state.finish() == pack else {
                unlink(partial)
                throw ObjectStoreError(.integrity, "pack \(key) in \(bucket) does not hash to its name: damaged")
            }
            guard rename(partial, path) == 0 else {
                throw ObjectStoreError(.configuration, "cannot rename \(partial): \(String(cString: strerror(errno)))")
            }
            return n
        } catch {
            close(fd)
            unlink(partial)
            throw error
        }
    }

    /// Streams a whole pack object to `sink` in arrival order, then checks its hash; `integrity` on mismatch (the
    /// caller must discard what it derived from the bytes).
    public func stream(
        _ pack: ContentHash, to sink: @escaping @Sendable (ByteBuffer) async throws -> Void
    )
        async throws -> UInt64
    {
        let hasher = HashState()
        let key = layout.key(for: pack)
        let n = try await client.getObject(bucket: bucket, key: key) { piece in
            hasher.update(piece)
            try await sink(piece)
        }
        guard hasher.finish() == pack else {
            throw ObjectStoreError(.integrity, "pack \(key) in \(bucket) does not hash to its name: damaged")
        }
        return n
    }

    // MARK: - Listing and deletion

    /// Every pack object under the prefix. Keys that are not pack names are ignored.
    public func list() async throws -> [PackObject] {
        try await client.listObjects(bucket: bucket, prefix: layout.packsPrefix).compactMap { object in
            layout.pack(fromKey: object.key).map { PackObject(hash: $0, key: object.key, size: object.size) }
        }
    }

    public func delete(_ packs: [ContentHash]) async throws {
        try await client.deleteObjects(bucket: bucket, keys: packs.map { layout.key(for: $0) })
    }

    /// Aborts multipart uploads under the prefix that started more than `olderThanSeconds` ago (by the engine's
    /// clock as it reports `Initiated`, against `nowSeconds`). Returns how many were aborted. An upload in
    /// progress is younger than any sane threshold (an hour); one older was left by a crash. `listed`, when given,
    /// is the listing to act on (taken earlier by the caller); an upload whose key is in `keeping` is never aborted.
    @discardableResult
    public func abortStaleUploads(
        olderThanSeconds: Int64, nowSeconds: Int64, listed: [MultipartUploadInfo]? = nil, keeping: Set<String> = []
    ) async throws -> Int {
        var aborted = 0
        let uploads: [MultipartUploadInfo]
        if let listed {
            uploads = listed
        } else {
            uploads = try await client.listMultipartUploads(bucket: bucket, prefix: layout.prefix)
        }
        for upload in uploads where !keeping.contains(upload.key) {
            guard let started = Self.parseISO8601(upload.initiated), nowSeconds - started >= olderThanSeconds
            else { continue }
            try await client.abortMultipartUpload(bucket: bucket, key: upload.key, uploadId: upload.uploadId)
            aborted += 1
        }
        return aborted
    }

    /// Seconds since the epoch for `YYYY-MM-DDTHH:MM:SS[.fff]Z`; nil for anything else.
    static func parseISO8601(_ s: String) -> Int64? {
        let u = Array(s.utf8)
        guard u.count >= 20, u.last == UInt8(ascii: "Z"), u[4] == 45, u[7] == 45, u[10] == 84, u[13] == 58, u[16] == 58
        else { return nil }
        func num(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for b in u[r] {
                guard (48...57).contains(b) else { return nil }
                v = v * 10 + Int64(b - 48)
            }
            return v
        }
        guard let y = num(0..<4), let m = num(5..<7), let d = num(8..<10), let hh = num(11..<13),
            let mm = num(14..<16), let ss = num(17..<19), (1...12).contains(m), (1...31).contains(d)
        else { return nil }
        // days_from_civil (Howard Hinnant)
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return days * 86400 + hh * 3600 + mm * 60 + ss
    }

    // MARK: - Local file helpers

    static func hash(fd: Int32, range: Range<UInt64>, path: String) throws -> ContentHash {
        var stream = SHA256Stream()
        let block = 8 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: block, alignment: 64)
        defer { buffer.deallocate() }
        var at = range.lowerBound
        while at < range.upperBound {
            let want = Int(min(UInt64(block), range.upperBound - at))
            let n = pread(fd, buffer.baseAddress, want, off_t(at))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw ObjectStoreError(.configuration, "cannot read pack \(path) at \(at): file shorter or unreadable")
            }
            stream.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            at += UInt64(n)
        }
        return stream.finalize()
    }

    static func read(fd: Int32, range: Range<UInt64>, path: String) throws -> ByteBuffer {
        let count = Int(range.upperBound - range.lowerBound)
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var done = 0
        while done < count {
            let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count - done) { p in
                let r = pread(fd, p.baseAddress, count - done, off_t(range.lowerBound) + off_t(done))
                return max(r, 0)
            }
            guard n > 0 else {
                throw ObjectStoreError(.configuration, "cannot read pack \(path) at \(range.lowerBound + UInt64(done))")
            }
            done += n
        }
        return buffer
    }
}

/// At most `limit` operations at once; the rest wait in order.
actor AsyncLimiter {
    let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if running >= limit {
            await withCheckedContinuation { waiting.append($0) }
        } else {
            running += 1
        }
        defer {
            if waiting.isEmpty { running -= 1 } else { waiting.removeFirst().resume() }
        }
        return try await body()
    }
}

/// The running SHA-256 of a streamed object, fed from the transport's callbacks (one at a time).
final class HashState: @unchecked Sendable {
    private var stream = SHA256Stream()
    func update(_ piece: ByteBuffer) { piece.withUnsafeReadableBytes { stream.update($0) } }
    func finish() -> ContentHash { stream.finalize() }
}

/// Writes a streamed download to a file while hashing it.
final class DownloadState: @unchecked Sendable {
    private let fd: Int32
    private let hasher = HashState()
    init(fd: Int32) { self.fd = fd }

    func write(_ piece: ByteBuffer, path: String) throws {
        hasher.update(piece)
        try piece.withUnsafeReadableBytes { p in
            var done = 0
            while done < p.count {
                let n = Glibc.write(fd, p.baseAddress! + done, p.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw ObjectStoreError(.configuration, "cannot write \(path): \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }

    func finish() -> ContentHash { hasher.finish() }
}
