import AlexandriaCore
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The pack files of a store: a cache of read descriptors shared by all readers, and the path rules.
///
/// Readers `pread` at offsets the index gave them. A pack removed by GC stays readable through a descriptor
/// opened before the removal (POSIX unlink semantics); a reader that finds the file gone looks the chunk up again.
final class PackFiles: Sendable {
    let directory: String
    /// Where sealed packs that left the local disk are read from; nil for a store that is local only.
    let remote: (any RemotePacks)?
    private let readers = Mutex<[Int: Int32]>([:])

    init(directory: String, remote: (any RemotePacks)? = nil) {
        self.directory = directory
        self.remote = remote
    }

    deinit {
        readers.withLock { fds in
            for fd in fds.values { close(fd) }
        }
    }

    func path(_ pack: Int) -> String {
        var digits = String(pack)
        while digits.count < 8 { digits = "0" + digits }
        return "\(directory)/\(digits).pack"
    }

    func readDescriptor(_ pack: Int) throws(StoreError) -> Int32 {
        if let fd = readers.withLock({ $0[pack] }) { return fd }
        let fd = try POSIX.open(path(pack), O_RDONLY)
        return readers.withLock { fds in
            if let existing = fds[pack] {
                close(fd)
                return existing
            }
            fds[pack] = fd
            return fd
        }
    }

    /// Drops the cached descriptor of a pack that moved to the object store: new readers no longer find it (they open
    /// the path, miss, and read remotely), and the descriptor is closed only after `graceSeconds`, so a reader that
    /// took it just before keeps a valid one (closing at once could hand its number to another file mid-read).
    func retire(_ pack: Int, graceSeconds: Int = 30) {
        guard let fd = readers.withLock({ $0.removeValue(forKey: pack) }) else { return }
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(graceSeconds)) { close(fd) }
    }

    /// Drops the cached descriptor of a pack, after GC removed it.
    func forget(_ pack: Int) {
        readers.withLock { fds in
            if let fd = fds.removeValue(forKey: pack) { close(fd) }
        }
    }

    /// Pack ids present on disk, sorted.
    func listOnDisk() -> [Int] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var ids: [Int] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasSuffix(".pack"), name.count == 13, let id = Int(name.prefix(8)) { ids.append(id) }
        }
        return ids.sorted()
    }
}

/// The append side of one pack. Owned by the single writer that holds the store's write lock.
final class PackAppender {
    let pack: Int
    let path: String
    private let fd: Int32
    /// Where the next record goes.
    private(set) var end: Int
    /// A batch of records gathered before one `pwrite`, to keep system calls few for small chunks.
    private var batch: UnsafeMutableRawBufferPointer
    private var batchCount = 0
    private var batchStart: Int
    private var unsyncedBytes = 0
    private let durable: Bool

    /// Opens pack `pack` for appending at `committedSize`. The writer caught the index up with the packs when it took
    /// the lock (`catchUpUnderLock`), so the file is exactly that long; anything else is refused, never cut: bytes
    /// past the index's view may be committed records (Protocol/store-v1.md).
    init(pack: Int, path: String, committedSize: Int, durable: Bool) throws(StoreError) {
        self.pack = pack
        self.path = path
        self.durable = durable
        fd = try POSIX.open(path, O_RDWR | O_CREAT, mode: 0o644)
        let size = try POSIX.fileSize(fd, path: path)
        if size != committedSize {
            close(fd)
            throw StoreError(
                .indexCorrupt,
                "pack \(path) is \(size) bytes but the index says \(committedSize) were written; "
                    + "run `alexandria verify --repair` to rebuild the index from what the packs hold")
        }
        end = committedSize
        batchStart = committedSize
        batch = .allocate(byteCount: 4 << 20, alignment: 4096)
    }

    deinit {
        batch.deallocate()
        headers.deallocate()
        close(fd)
    }

    /// Records whose payload the caller lends until the next `flush()` (no copy), gathered for one `pwritev`.
    private var headers = UnsafeMutableRawBufferPointer.allocate(
        byteCount: PackRecordHeader.size * PackAppender.maxVectors / 2, alignment: 64)
    private var vectors: [iovec] = []
    private var vectorBytes = 0
    static let maxVectors = 512

    /// Appends one record whose payload stays valid, unchanged, until the next `flush()`; returns its offset.
    /// Saves the copy into the batch buffer: ingest lends chunk bytes straight from its read segments.
    func appendBorrowing(_ header: PackRecordHeader, payload: UnsafeRawBufferPointer) throws(StoreError) -> Int {
        if batchCount > 0 { try flush() }
        if vectors.count + 2 > Self.maxVectors { try flush() }
        let offset = end
        let slot = headers.baseAddress! + PackRecordHeader.size * (vectors.count / 2)
        header.write(to: slot)
        vectors.append(iovec(iov_base: slot, iov_len: PackRecordHeader.size))
        vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count))
        vectorBytes += PackRecordHeader.size + payload.count
        end += PackRecordHeader.size + payload.count
        return offset
    }

    private func flushVectors() throws(StoreError) {
        guard !vectors.isEmpty else { return }
        var start = end - vectorBytes
        var index = 0
        var skip = 0
        while index < vectors.count {
            var batch = Array(vectors[index..<min(vectors.count, index + 1024)])
            batch[0].iov_base = batch[0].iov_base.map { $0 + skip }
            batch[0].iov_len -= skip
            let n = batch.withUnsafeBufferPointer { pwritev(fd, $0.baseAddress, Int32($0.count), off_t(start)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.posix("cannot write", path: path)
            }
            start += n
            var left = n + skip
            skip = 0
            while index < vectors.count, left >= vectors[index].iov_len {
                left -= vectors[index].iov_len
                index += 1
            }
            skip = left
        }
        let written = vectorBytes
        vectors.removeAll(keepingCapacity: true)
        vectorBytes = 0
        batchStart = end
        try noteWritten(written)
    }

    /// Appends one record; returns its offset. The bytes may sit in a batch until `flush()`.
    func append(_ header: PackRecordHeader, payload: UnsafeRawBufferPointer) throws(StoreError) -> Int {
        if !vectors.isEmpty { try flushVectors() }
        let offset = end
        let size = PackRecordHeader.size + payload.count
        if batchCount + size > batch.count { try flush() }
        if size > batch.count {
            var head = [UInt8](repeating: 0, count: PackRecordHeader.size)
            head.withUnsafeMutableBytes { header.write(to: $0.baseAddress!) }
            try head.withBytes { (h) throws(StoreError) in try POSIX.pwrite(fd, h, at: offset, path: path) }
            try POSIX.pwrite(fd, payload, at: offset + PackRecordHeader.size, path: path)
            end += size
            batchStart = end
            try noteWritten(size)
            return offset
        }
        header.write(to: batch.baseAddress! + batchCount)
        if payload.count > 0 {
            (batch.baseAddress! + batchCount + PackRecordHeader.size).copyMemory(
                from: payload.baseAddress!, byteCount: payload.count)
        }
        batchCount += size
        end += size
        return offset
    }

    /// Writes out the pending batch and any lent records.
    func flush() throws(StoreError) {
        try flushVectors()
        guard batchCount > 0 else { return }
        try POSIX.pwrite(fd, UnsafeRawBufferPointer(rebasing: batch[0..<batchCount]), at: batchStart, path: path)
        let written = batchCount
        batchStart += batchCount
        batchCount = 0
        try noteWritten(written)
    }

    private func noteWritten(_ n: Int) throws(StoreError) {
        guard durable else { return }
        unsyncedBytes += n
        // Start writeback early so the final fdatasync does not wait for all of it at once.
        if unsyncedBytes >= 64 << 20 {
            _ = c_sync_file_range(fd, Int64(end - unsyncedBytes), Int64(unsyncedBytes), SYNC_FILE_RANGE_WRITE_FLAG)
            unsyncedBytes = 0
        }
    }

    /// Flushes and, in durable mode, makes the bytes survive a power loss; call before committing the index.
    func commitPoint() throws(StoreError) {
        try flush()
        if durable { try POSIX.fsync(fd, path: path) }
    }

    /// Throws away everything appended since `size` (after a failed add).
    func rollBack(to size: Int) {
        batchCount = 0
        vectors.removeAll()
        vectorBytes = 0
        end = size
        batchStart = size
        _ = ftruncate(fd, off_t(size))
    }
}
